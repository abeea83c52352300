// GGUF writer and reader: byte layout checked with an independent parser,
// round trips, and malformed files.
#include "formats/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/file.h"
#include "gguf_mini_parser.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace rv::gguf;

namespace {

using rv_test::TmpDir;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f.write(s.data(), s.size());
}

std::string expect_error(const fs::path& p) {
  try {
    File f(p);
  } catch (const rv::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << p;
  return "";
}

// A file with every metadata type and three tensors of different types.
struct Sample {
  std::vector<KeyValue> kv;
  std::vector<TensorInfo> tensors;
  std::vector<std::string> data;
};

Sample make_sample() {
  Sample s;
  s.kv = {
      {"general.architecture", Value::string("qwen2")},
      {"t.u8", Value::u8(200)},
      {"t.i8", Value::i8(-100)},
      {"t.u16", Value::u16(60000)},
      {"t.i16", Value::i16(-30000)},
      {"t.u32", Value::u32(4000000000u)},
      {"t.i32", Value::i32(-2000000000)},
      {"t.f32", Value::f32(0.15625f)},
      {"t.bool", Value::boolean(true)},
      {"t.str", Value::string(std::string("h\xc3\xa9llo\0x", 8))},
      {"t.u64", Value::u64(0xfedcba9876543210ull)},
      {"t.i64", Value::i64(-1234567890123ll)},
      {"t.f64", Value::f64(1e-300)},
      {"t.strs", Value::strings({"a", "", "b c"})},
      {"t.i32s", Value::i32s({1, -2, 3})},
      {"t.nested", Value::array(ValueType::ARRAY, {Value::f32s({1.5f}), Value::f32s({})})},
  };
  s.tensors = {{"a", TensorType::F32, {3}, 0},
               {"b.weight", TensorType::BF16, {5, 3}, 0},
               {"c", TensorType::F16, {2, 1, 3, 1}, 0}};
  for (auto& t : s.tensors) {
    std::string d(t.nbytes(), '\0');
    for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<char>(i * 7 + t.name.size());
    s.data.push_back(d);
  }
  return s;
}

void write_sample(const fs::path& p, const Sample& s, uint32_t alignment = kDefaultAlignment) {
  Writer w(p, s.kv, s.tensors, alignment);
  for (const auto& d : s.data) {
    // In uneven pieces, to exercise tensors spanning appends.
    size_t half = d.size() / 3;
    w.append(d.data(), half);
    w.append(d.data() + half, d.size() - half);
  }
  w.finish();
}

}  // namespace

TEST(Gguf, WriterLayoutMatchesSpec) {
  TmpDir tmp;
  Sample s = make_sample();
  fs::path p = tmp.p / "x.gguf";
  write_sample(p, s);
  std::string bytes = slurp(p);
  ASSERT_GE(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 4), "GGUF");
  auto f = mini_gguf::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(f.version, 3u);
  ASSERT_EQ(f.key_order.size(), s.kv.size());  // no general.alignment at the default
  for (size_t i = 0; i < s.kv.size(); ++i) EXPECT_EQ(f.key_order[i], s.kv[i].first);
  EXPECT_EQ(f.kv["general.architecture"].s, "qwen2");
  EXPECT_EQ(f.kv["t.u8"].type, 0u);
  EXPECT_EQ(f.kv["t.u8"].u, 200u);
  EXPECT_EQ(f.kv["t.i8"].i, -100);
  EXPECT_EQ(f.kv["t.u16"].u, 60000u);
  EXPECT_EQ(f.kv["t.i16"].i, -30000);
  EXPECT_EQ(f.kv["t.u32"].type, 4u);
  EXPECT_EQ(f.kv["t.u32"].u, 4000000000u);
  EXPECT_EQ(f.kv["t.i32"].i, -2000000000);
  EXPECT_EQ(f.kv["t.f32"].type, 6u);
  EXPECT_EQ(f.kv["t.f32"].f, 0.15625);
  EXPECT_EQ(f.kv["t.bool"].type, 7u);
  EXPECT_EQ(f.kv["t.bool"].u, 1u);
  EXPECT_EQ(f.kv["t.str"].s, std::string("h\xc3\xa9llo\0x", 8));
  EXPECT_EQ(f.kv["t.u64"].u, 0xfedcba9876543210ull);
  EXPECT_EQ(f.kv["t.i64"].i, -1234567890123ll);
  EXPECT_EQ(f.kv["t.f64"].type, 12u);
  EXPECT_EQ(f.kv["t.f64"].f, 1e-300);
  ASSERT_EQ(f.kv["t.strs"].elem, 8u);
  ASSERT_EQ(f.kv["t.strs"].arr.size(), 3u);
  EXPECT_EQ(f.kv["t.strs"].arr[2].s, "b c");
  ASSERT_EQ(f.kv["t.i32s"].elem, 5u);
  EXPECT_EQ(f.kv["t.i32s"].arr[1].i, -2);
  ASSERT_EQ(f.kv["t.nested"].elem, 9u);
  ASSERT_EQ(f.kv["t.nested"].arr.size(), 2u);
  EXPECT_EQ(f.kv["t.nested"].arr[0].arr[0].f, 1.5);
  EXPECT_TRUE(f.kv["t.nested"].arr[1].arr.empty());

  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.data_start % 32, 0u);
  EXPECT_LT(f.data_start - f.header_end, 32u);
  // Padding between the header and the data is zeros.
  for (uint64_t i = f.header_end; i < f.data_start; ++i) EXPECT_EQ(bytes[i], '\0');
  const uint32_t types[] = {0, 30, 1};
  uint64_t expect_off = 0;
  for (size_t i = 0; i < 3; ++i) {
    const auto& t = f.tensors[i];
    EXPECT_EQ(t.name, s.tensors[i].name);
    EXPECT_EQ(t.ne, s.tensors[i].ne);
    EXPECT_EQ(t.type, types[i]);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.offset, expect_off);
    expect_off = (t.offset + mini_gguf::nbytes(t) + 31) / 32 * 32;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data(t)), mini_gguf::nbytes(t)),
              s.data[i]);
  }
  EXPECT_EQ(bytes.size(), f.data_start + expect_off);  // the end is padded too
}

TEST(Gguf, RoundTripThroughReader) {
  TmpDir tmp;
  Sample s = make_sample();
  fs::path p = tmp.p / "x.gguf";
  write_sample(p, s);
  File f(p);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "qwen2");
  EXPECT_EQ(f.get_uint("t.u32"), 4000000000u);
  EXPECT_EQ(f.get("t.i64").as_int(), -1234567890123ll);
  EXPECT_EQ(f.get_float("t.f32"), 0.15625);
  EXPECT_TRUE(f.get_bool("t.bool"));
  EXPECT_EQ(f.get("t.strs").as_array().size(), 3u);
  EXPECT_EQ(f.get("t.nested").as_array()[0].as_array()[0].as_float(), 1.5);
  ASSERT_EQ(f.tensors().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const TensorInfo& t = f.tensor(s.tensors[i].name);
    EXPECT_EQ(t.ne, s.tensors[i].ne);
    EXPECT_EQ(t.type, s.tensors[i].type);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data(t)), t.nbytes()), s.data[i]);
  }
  // Typed getters name the key and the problem.
  try {
    f.get_uint("t.str");
    ADD_FAILURE();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("key 't.str': value is string, expected an integer"),
              std::string::npos)
        << e.what();
  }
  try {
    f.get_uint("absent.key");
    ADD_FAILURE();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("key 'absent.key' missing"), std::string::npos);
  }
  EXPECT_THROW(f.get_uint("t.i8"), rv::Error);  // negative
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

TEST(Gguf, CustomAlignment) {
  TmpDir tmp;
  Sample s = make_sample();
  fs::path p = tmp.p / "x.gguf";
  write_sample(p, s, 64);
  std::string bytes = slurp(p);
  auto f = mini_gguf::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_TRUE(f.kv.count("general.alignment"));
  EXPECT_EQ(f.kv["general.alignment"].type, 4u);
  EXPECT_EQ(f.kv["general.alignment"].u, 64u);
  EXPECT_EQ(f.data_start % 64, 0u);
  for (auto& t : f.tensors) EXPECT_EQ(t.offset % 64, 0u);
  File r(p);
  EXPECT_EQ(r.header().alignment, 64u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.data(r.tensor("c"))), 12), s.data[2]);
}

TEST(Gguf, WriterRejectsMisuse) {
  TmpDir tmp;
  Sample s = make_sample();
  auto dup = s.tensors;
  dup[1].name = "a";
  EXPECT_THROW(Writer(tmp.p / "d.gguf", s.kv, dup), rv::Error);
  auto dupkv = s.kv;
  dupkv.push_back({"t.u8", Value::u8(1)});
  EXPECT_THROW(Writer(tmp.p / "d.gguf", dupkv, s.tensors), rv::Error);
  EXPECT_THROW(Writer(tmp.p / "d.gguf", s.kv, s.tensors, 24), rv::Error);
  auto fivedims = s.tensors;
  fivedims[0].ne = {1, 1, 1, 1, 3};
  EXPECT_THROW(Writer(tmp.p / "d.gguf", s.kv, fivedims), rv::Error);
  EXPECT_THROW(Value::array(ValueType::I32, {Value::u8(1)}), rv::Error);
  {
    Writer w(tmp.p / "e.gguf", s.kv, s.tensors);
    w.append(s.data[0].data(), s.data[0].size());
    try {
      w.finish();
      ADD_FAILURE();
    } catch (const rv::Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 'b.weight' incomplete"), std::string::npos);
    }
  }
  {
    Writer w(tmp.p / "f.gguf", s.kv, s.tensors);
    std::string all = s.data[0] + s.data[1] + s.data[2] + "x";
    EXPECT_THROW(w.append(all.data(), all.size()), rv::Error);
  }
}

TEST(Gguf, ReaderRejectsMalformedFiles) {
  TmpDir tmp;
  Sample s = make_sample();
  fs::path good = tmp.p / "good.gguf";
  write_sample(good, s);
  const std::string bytes = slurp(good);
  auto f = mini_gguf::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  fs::path bad = tmp.p / "bad.gguf";
  auto check = [&](const std::string& content, const std::string& want) {
    spit(bad, content);
    std::string m = expect_error(bad);
    EXPECT_EQ(m.rfind(bad.string() + ": ", 0), 0u) << m;  // starts with the path
    EXPECT_NE(m.find(want), std::string::npos) << "got: " << m << "\nwant: " << want;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  };
  check("", "truncated");
  check("GGML" + bytes.substr(4), "bad magic");
  {
    std::string b = bytes;
    b[4] = 9;
    check(b, "unsupported GGUF version 9");
  }
  // Every prefix that cuts into the header or the tensor data is an error,
  // never a crash (only the trailing padding may be missing).
  const auto& last = f.tensors.back();
  const size_t data_end = f.data_start + last.offset + mini_gguf::nbytes(last);
  for (size_t n = 0; n < data_end; n += (n < f.data_start ? 1 : 7)) {
    spit(bad, bytes.substr(0, n));
    std::string m = expect_error(bad);
    EXPECT_NE(m.find("truncated"), std::string::npos) << "prefix " << n << ": " << m;
  }
  {
    // Value type of the first key -> 13 (unknown).
    std::string b = bytes;
    size_t pos = 24 + 8 + std::string("general.architecture").size();
    b[pos] = 13;
    check(b, "key 'general.architecture': unknown value type 13");
  }
  {
    // The tensor count field claims far more tensors than can fit.
    std::string b = bytes;
    b[15] = 0x10;
    check(b, "tensor count");
  }
  // Tensor-info edits: locate tensor "c"'s type and offset fields (the last 12 bytes of the infos).
  {
    std::string b = bytes;
    uint32_t ty = 2;  // Q4_0
    std::memcpy(&b[f.header_end - 12], &ty, 4);
    check(b, "tensor 'c': unsupported ggml type 2");
  }
  {
    std::string b = bytes;
    uint64_t off = f.tensors[2].offset + 8;
    std::memcpy(&b[f.header_end - 8], &off, 8);
    check(b,
          "tensor 'c': offset " + std::to_string(off) + " is not a multiple of the alignment 32");
  }
  {
    std::string b = bytes;
    uint64_t off = f.tensors[1].offset;  // on top of "b.weight"
    std::memcpy(&b[f.header_end - 8], &off, 8);
    check(b, "overlap");
  }
  {
    std::string b = bytes;
    uint64_t off = 1ull << 40;
    std::memcpy(&b[f.header_end - 8], &off, 8);
    check(b, "truncated: tensor 'c'");
  }
  {
    // A dimension so large the byte size overflows.
    std::string b = bytes;
    uint64_t huge = 1ull << 62;
    std::memcpy(&b[f.header_end - 12 - 32], &huge, 8);  // c's ne[0] (4 dims precede type)
    check(b, "tensor 'c': size overflows");
  }
  {
    // Hand-built: two keys named "k".
    std::string b("GGUF\3\0\0\0", 8);
    auto u64 = [&](uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
    auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
    u64(0);
    u64(2);
    for (int i = 0; i < 2; ++i) {
      u64(1);
      b += "k";
      u32(0);
      b += '\1';
    }
    check(b, "duplicate metadata key 'k'");
  }
  check(std::string("GGUF\3\0\0\0", 8), "truncated");
}
