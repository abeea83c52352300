// An independent, minimal GGUF parser for tests: written from the GGUF spec's
// byte layout, sharing no code with src/formats/gguf.*, so that tests of our
// writer do not trust our reader. Aborts the test (ADD_FAILURE + throw) on
// anything malformed.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace mini_gguf {

struct Val {
  uint32_t type = 0;  // gguf_type
  uint64_t u = 0;     // unsigned ints and bool
  int64_t i = 0;      // signed ints
  double f = 0;       // f32 / f64
  std::string s;      // string
  uint32_t elem = 0;  // array element type
  std::vector<Val> arr;
};

struct Tensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct File {
  uint32_t version = 0;
  std::vector<std::string> key_order;
  std::map<std::string, Val> kv;
  std::vector<Tensor> tensors;
  uint64_t header_end = 0;  // end of tensor infos
  uint64_t data_start = 0;
  uint32_t alignment = 32;
  const uint8_t* base = nullptr;
  size_t size = 0;
  const Tensor* tensor(const std::string& n) const {
    for (auto& t : tensors)
      if (t.name == n) return &t;
    return nullptr;
  }
  const uint8_t* data(const Tensor& t) const { return base + data_start + t.offset; }
};

struct Cursor {
  const uint8_t* p;
  size_t n, pos = 0;
  template <class T>
  T rd() {
    if (pos + sizeof(T) > n) throw std::runtime_error("mini_gguf: truncated");
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str() {
    uint64_t len = rd<uint64_t>();
    if (len > n - pos) throw std::runtime_error("mini_gguf: string past end");
    std::string s(reinterpret_cast<const char*>(p + pos), len);
    pos += len;
    return s;
  }
  Val val(uint32_t t) {
    Val v;
    v.type = t;
    switch (t) {
      case 0:
        v.u = rd<uint8_t>();
        break;
      case 1:
        v.i = rd<int8_t>();
        break;
      case 2:
        v.u = rd<uint16_t>();
        break;
      case 3:
        v.i = rd<int16_t>();
        break;
      case 4:
        v.u = rd<uint32_t>();
        break;
      case 5:
        v.i = rd<int32_t>();
        break;
      case 6:
        v.f = rd<float>();
        break;
      case 7:
        v.u = rd<uint8_t>();
        break;
      case 8:
        v.s = str();
        break;
      case 9: {
        v.elem = rd<uint32_t>();
        uint64_t cnt = rd<uint64_t>();
        if (cnt > n) throw std::runtime_error("mini_gguf: bad array length");
        for (uint64_t k = 0; k < cnt; ++k) v.arr.push_back(val(v.elem));
        break;
      }
      case 10:
        v.u = rd<uint64_t>();
        break;
      case 11:
        v.i = rd<int64_t>();
        break;
      case 12:
        v.f = rd<double>();
        break;
      default:
        throw std::runtime_error("mini_gguf: bad type " + std::to_string(t));
    }
    return v;
  }
};

inline File parse(const uint8_t* p, size_t n) {
  Cursor c{p, n};
  File f;
  f.base = p;
  f.size = n;
  if (c.rd<uint8_t>() != 'G' || c.rd<uint8_t>() != 'G' || c.rd<uint8_t>() != 'U' ||
      c.rd<uint8_t>() != 'F')
    throw std::runtime_error("mini_gguf: bad magic");
  f.version = c.rd<uint32_t>();
  uint64_t nt = c.rd<uint64_t>(), nkv = c.rd<uint64_t>();
  for (uint64_t k = 0; k < nkv; ++k) {
    std::string key = c.str();
    uint32_t t = c.rd<uint32_t>();
    f.key_order.push_back(key);
    f.kv[key] = c.val(t);
  }
  if (f.kv.count("general.alignment"))
    f.alignment = static_cast<uint32_t>(f.kv["general.alignment"].u);
  for (uint64_t k = 0; k < nt; ++k) {
    Tensor t;
    t.name = c.str();
    uint32_t nd = c.rd<uint32_t>();
    for (uint32_t d = 0; d < nd; ++d) t.ne.push_back(c.rd<uint64_t>());
    t.type = c.rd<uint32_t>();
    t.offset = c.rd<uint64_t>();
    f.tensors.push_back(t);
  }
  f.header_end = c.pos;
  f.data_start = (c.pos + f.alignment - 1) / f.alignment * f.alignment;
  return f;
}

inline size_t type_size(uint32_t t) {
  return t == 0 ? 4 : 2;
}  // F32 / F16 / BF16

inline uint64_t nbytes(const Tensor& t) {
  uint64_t n = type_size(t.type);
  for (auto d : t.ne) n *= d;
  return n;
}

// bf16 / f16 -> f32 written out longhand (independent of rv::dtype).
inline float bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float f16(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0)
    v = m * (1.0 / 16777216.0);  // 2^-24
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = (1.0 + m / 1024.0) * std::ldexp(1.0, e - 15);
  return static_cast<float>(s ? -v : v);
}

}  // namespace mini_gguf
