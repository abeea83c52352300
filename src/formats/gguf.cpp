#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "common/error.h"

namespace rv::gguf {

namespace {

bool valid_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(ValueType::F64);
}

// Size of a fixed-size scalar value, 0 for STRING and ARRAY.
size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::BOOL:
      return 1;
    case ValueType::U16:
    case ValueType::I16:
      return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32:
      return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
      return 8;
    default:
      return 0;
  }
}

bool valid_tensor_type(uint32_t t) {
  return t == 0 || t == 1 || t == 30;
}

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

std::string type_err(const Value& v, const char* want) {
  return std::string("value is ") + value_type_name(v.type()) + ", expected " + want;
}

// Serialises into a growing byte string (headers are small next to the data).
struct Out {
  std::string b;
  void raw(const void* p, size_t n) { b.append(static_cast<const char*>(p), n); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u64(s.size());
    b += s;
  }
  void scalar(const Value& v) {
    switch (v.type()) {
      case ValueType::U8: {
        uint8_t x = static_cast<uint8_t>(v.as_uint());
        raw(&x, 1);
        break;
      }
      case ValueType::I8: {
        int8_t x = static_cast<int8_t>(v.as_int());
        raw(&x, 1);
        break;
      }
      case ValueType::U16: {
        uint16_t x = static_cast<uint16_t>(v.as_uint());
        raw(&x, 2);
        break;
      }
      case ValueType::I16: {
        int16_t x = static_cast<int16_t>(v.as_int());
        raw(&x, 2);
        break;
      }
      case ValueType::U32:
        u32(static_cast<uint32_t>(v.as_uint()));
        break;
      case ValueType::I32: {
        int32_t x = static_cast<int32_t>(v.as_int());
        raw(&x, 4);
        break;
      }
      case ValueType::F32: {
        float x = static_cast<float>(v.as_float());
        raw(&x, 4);
        break;
      }
      case ValueType::BOOL: {
        uint8_t x = v.as_bool() ? 1 : 0;
        raw(&x, 1);
        break;
      }
      case ValueType::U64:
        u64(v.as_uint());
        break;
      case ValueType::I64: {
        int64_t x = v.as_int();
        raw(&x, 8);
        break;
      }
      case ValueType::F64: {
        double x = v.as_float();
        raw(&x, 8);
        break;
      }
      case ValueType::STRING:
        str(v.as_string());
        break;
      case ValueType::ARRAY:
        u32(static_cast<uint32_t>(v.elem_type()));
        u64(v.as_array().size());
        for (const Value& e : v.as_array()) scalar(e);
        break;
    }
  }
};

// Bounds-checked little-endian cursor over untrusted bytes.
struct In {
  const uint8_t* p;
  size_t size;
  size_t pos = 0;
  const std::string& where;
  void need(uint64_t n, const char* what) const {
    if (n > size - pos)
      throw Error(where, "truncated: " + std::string(what) + " at offset " + std::to_string(pos) +
                             " needs " + std::to_string(n) + " bytes, " +
                             std::to_string(size - pos) + " left");
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    uint64_t n = get<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(p + pos), n);
    pos += n;
    return s;
  }
};

Value read_value(In& in, ValueType t, int depth, const std::string& key) {
  switch (t) {
    case ValueType::U8:
      return Value::u8(in.get<uint8_t>("value"));
    case ValueType::I8:
      return Value::i8(in.get<int8_t>("value"));
    case ValueType::U16:
      return Value::u16(in.get<uint16_t>("value"));
    case ValueType::I16:
      return Value::i16(in.get<int16_t>("value"));
    case ValueType::U32:
      return Value::u32(in.get<uint32_t>("value"));
    case ValueType::I32:
      return Value::i32(in.get<int32_t>("value"));
    case ValueType::F32:
      return Value::f32(in.get<float>("value"));
    case ValueType::U64:
      return Value::u64(in.get<uint64_t>("value"));
    case ValueType::I64:
      return Value::i64(in.get<int64_t>("value"));
    case ValueType::F64:
      return Value::f64(in.get<double>("value"));
    case ValueType::BOOL: {
      uint8_t b = in.get<uint8_t>("value");
      if (b > 1)
        throw Error(in.where,
                    "key '" + key + "': bool value " + std::to_string(b) + " is not 0 or 1");
      return Value::boolean(b != 0);
    }
    case ValueType::STRING:
      return Value::string(in.str("string value"));
    case ValueType::ARRAY: {
      if (depth >= 4) throw Error(in.where, "key '" + key + "': arrays nested more than 4 deep");
      uint32_t et = in.get<uint32_t>("array type");
      if (!valid_value_type(et))
        throw Error(in.where,
                    "key '" + key + "': unknown array element type " + std::to_string(et));
      uint64_t n = in.get<uint64_t>("array length");
      // Every element takes at least one byte (8 for strings and arrays):
      // reject impossible counts before allocating.
      size_t min_elem = scalar_size(static_cast<ValueType>(et));
      if (min_elem == 0) min_elem = 8;
      if (n > (in.size - in.pos) / min_elem)
        throw Error(in.where, "truncated: key '" + key + "': array of " + std::to_string(n) +
                                  " elements runs past end of file");
      std::vector<Value> items;
      items.reserve(n);
      for (uint64_t i = 0; i < n; ++i)
        items.push_back(read_value(in, static_cast<ValueType>(et), depth + 1, key));
      return Value::array(static_cast<ValueType>(et), std::move(items));
    }
  }
  throw Error(in.where, "key '" + key + "': unknown value type");
}

}  // namespace

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8:
      return "u8";
    case ValueType::I8:
      return "i8";
    case ValueType::U16:
      return "u16";
    case ValueType::I16:
      return "i16";
    case ValueType::U32:
      return "u32";
    case ValueType::I32:
      return "i32";
    case ValueType::F32:
      return "f32";
    case ValueType::BOOL:
      return "bool";
    case ValueType::STRING:
      return "string";
    case ValueType::ARRAY:
      return "array";
    case ValueType::U64:
      return "u64";
    case ValueType::I64:
      return "i64";
    case ValueType::F64:
      return "f64";
  }
  return "?";
}

const char* tensor_type_name(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return "F32";
    case TensorType::F16:
      return "F16";
    case TensorType::BF16:
      return "BF16";
  }
  return "?";
}

DType tensor_dtype(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return DType::F32;
    case TensorType::F16:
      return DType::F16;
    case TensorType::BF16:
      return DType::BF16;
  }
  return DType::F32;  // unreachable: parse() admits only these
}

size_t tensor_type_size(TensorType t) {
  return t == TensorType::F32 ? 4 : 2;
}

// ---- Value ----

Value Value::uint_(ValueType t, uint64_t v) {
  Value x;
  x.type_ = t;
  x.u_ = v;
  return x;
}
Value Value::int_(ValueType t, int64_t v) {
  Value x;
  x.type_ = t;
  x.i_ = v;
  return x;
}
Value Value::float_(ValueType t, double v) {
  Value x;
  x.type_ = t;
  x.f_ = v;
  return x;
}
Value Value::string(std::string s) {
  Value x;
  x.type_ = ValueType::STRING;
  x.s_ = std::move(s);
  return x;
}
Value Value::array(ValueType elem, std::vector<Value> items) {
  for (const Value& v : items)
    if (v.type_ != elem)
      throw Error(std::string("gguf array of ") + value_type_name(elem) + " holds a " +
                  value_type_name(v.type_));
  Value x;
  x.type_ = ValueType::ARRAY;
  x.elem_ = elem;
  x.arr_ = std::move(items);
  return x;
}
Value Value::strings(const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(string(s));
  return array(ValueType::STRING, std::move(items));
}
Value Value::i32s(const std::vector<int32_t>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(i32(x));
  return array(ValueType::I32, std::move(items));
}
Value Value::f32s(const std::vector<float>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(f32(x));
  return array(ValueType::F32, std::move(items));
}

bool Value::is_integer() const {
  switch (type_) {
    case ValueType::U8:
    case ValueType::U16:
    case ValueType::U32:
    case ValueType::U64:
    case ValueType::I8:
    case ValueType::I16:
    case ValueType::I32:
    case ValueType::I64:
      return true;
    default:
      return false;
  }
}
static bool is_unsigned(ValueType t) {
  return t == ValueType::U8 || t == ValueType::U16 || t == ValueType::U32 || t == ValueType::U64;
}
uint64_t Value::as_uint() const {
  if (!is_integer()) throw Error(type_err(*this, "an integer"));
  if (is_unsigned(type_)) return u_;
  if (i_ < 0) throw Error("value " + std::to_string(i_) + " is negative, expected >= 0");
  return static_cast<uint64_t>(i_);
}
int64_t Value::as_int() const {
  if (!is_integer()) throw Error(type_err(*this, "an integer"));
  if (!is_unsigned(type_)) return i_;
  if (u_ > static_cast<uint64_t>(INT64_MAX))
    throw Error("value " + std::to_string(u_) + " too large");
  return static_cast<int64_t>(u_);
}
double Value::as_float() const {
  if (is_float()) return f_;
  if (is_integer()) return is_unsigned(type_) ? static_cast<double>(u_) : static_cast<double>(i_);
  throw Error(type_err(*this, "a number"));
}
bool Value::as_bool() const {
  if (type_ != ValueType::BOOL) throw Error(type_err(*this, "a bool"));
  return u_ != 0;
}
const std::string& Value::as_string() const {
  if (type_ != ValueType::STRING) throw Error(type_err(*this, "a string"));
  return s_;
}
const std::vector<Value>& Value::as_array() const {
  if (type_ != ValueType::ARRAY) throw Error(type_err(*this, "an array"));
  return arr_;
}

// ---- tensors ----

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  return n;
}

std::vector<uint64_t> ne_from_shape(const std::vector<int64_t>& shape) {
  std::vector<uint64_t> ne;
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) ne.push_back(static_cast<uint64_t>(*it));
  if (ne.empty()) ne.push_back(1);  // a scalar is a 1-element vector in ggml
  return ne;
}

// Element count with overflow detection, shared by writer and reader so
// both refuse the same tensors. Returns false on overflow.
static bool checked_nbytes(const TensorInfo& t, uint64_t* out) {
  uint64_t n = tensor_type_size(t.type);
  for (uint64_t d : t.ne) {
    if (d != 0 && n > UINT64_MAX / d) return false;
    n *= d;
  }
  *out = n;
  return true;
}

// ---- Writer ----

Writer::Writer(const std::filesystem::path& path, std::vector<KeyValue> kv,
               std::vector<TensorInfo> tensors, uint32_t alignment)
    : tensors_(std::move(tensors)), alignment_(alignment) {
  const std::string where = path.string();
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error(where, "alignment " + std::to_string(alignment) + " is not a power of two");
  std::set<std::string> keys;
  for (const auto& [k, v] : kv) {
    if (!keys.insert(k).second) throw Error(where, "duplicate metadata key '" + k + "'");
    if (k == "general.alignment")
      throw Error(where, "pass the alignment as an argument, not a key");
  }
  if (alignment != kDefaultAlignment) kv.emplace_back("general.alignment", Value::u32(alignment));
  std::set<std::string> names;
  uint64_t off = 0;
  for (auto& t : tensors_) {
    if (!names.insert(t.name).second) throw Error(where, "duplicate tensor '" + t.name + "'");
    if (t.ne.empty() || t.ne.size() > static_cast<size_t>(kMaxDims))
      throw Error(where, "tensor '" + t.name + "': " + std::to_string(t.ne.size()) +
                             " dims, GGUF allows 1 to 4");
    uint64_t nb;
    if (!checked_nbytes(t, &nb)) throw Error(where, "tensor '" + t.name + "': size overflows");
    t.offset = off;
    off = align_up(off + nb, alignment_);
  }

  Out h;
  h.u32(kMagic);
  h.u32(kVersion);
  h.u64(tensors_.size());
  h.u64(kv.size());
  for (const auto& [k, v] : kv) {
    h.str(k);
    h.u32(static_cast<uint32_t>(v.type()));
    h.scalar(v);
  }
  for (const auto& t : tensors_) {
    h.str(t.name);
    h.u32(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) h.u64(d);
    h.u32(static_cast<uint32_t>(t.type));
    h.u64(t.offset);
  }
  data_start_ = align_up(h.b.size(), alignment_);
  h.b.resize(data_start_, '\0');
  out_ = std::make_unique<FileWriter>(path);
  out_->write(h.b);
  advance();
}

Writer::~Writer() = default;

// Skips finished (and empty) tensors, writing the padding between them.
void Writer::advance() {
  while (cur_ < tensors_.size() && cur_written_ == tensors_[cur_].nbytes()) {
    ++cur_;
    cur_written_ = 0;
    uint64_t pos = out_->offset() - data_start_;
    uint64_t target = cur_ < tensors_.size() ? tensors_[cur_].offset : align_up(pos, alignment_);
    static const char zeros[64] = {};
    while (pos < target) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(zeros), target - pos));
      out_->write(zeros, n);
      pos += n;
    }
  }
}

void Writer::append(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (cur_ >= tensors_.size())
      throw Error(out_->path().string(), "more tensor data written than the tensors hold");
    uint64_t room = tensors_[cur_].nbytes() - cur_written_;
    size_t k = static_cast<size_t>(std::min<uint64_t>(room, n));
    out_->write(p, k);
    p += k;
    n -= k;
    cur_written_ += k;
    advance();
  }
}

void Writer::finish() {
  if (finished_) return;
  if (cur_ < tensors_.size())
    throw Error(out_->path().string(),
                "tensor '" + tensors_[cur_].name + "' incomplete: " + std::to_string(cur_written_) +
                    " of " + std::to_string(tensors_[cur_].nbytes()) + " bytes written");
  out_->close();
  finished_ = true;
}

// ---- reader ----

Header parse(const uint8_t* data, size_t size, const std::string& where) {
  In in{data, size, 0, where};
  if (size < 4)
    throw Error(where, "truncated: " + std::to_string(size) + " bytes, not a GGUF file");
  uint32_t magic = in.get<uint32_t>("magic");
  if (magic != kMagic) throw Error(where, "bad magic (not a GGUF file)");
  Header h;
  h.version = in.get<uint32_t>("version");
  if (h.version != 2 && h.version != 3)
    throw Error(where,
                "unsupported GGUF version " + std::to_string(h.version) + " (expected 2 or 3)");
  uint64_t n_tensors = in.get<uint64_t>("tensor count");
  uint64_t n_kv = in.get<uint64_t>("metadata count");
  // Each key-value takes at least 8+4+1 bytes, each tensor info 8+4+8+4+8.
  if (n_kv > (size - in.pos) / 13)
    throw Error(where,
                "truncated: metadata count " + std::to_string(n_kv) + " runs past end of file");
  if (n_tensors > (size - in.pos) / 32)
    throw Error(where,
                "truncated: tensor count " + std::to_string(n_tensors) + " runs past end of file");

  std::set<std::string> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = in.str("metadata key");
    if (!keys.insert(key).second) throw Error(where, "duplicate metadata key '" + key + "'");
    uint32_t t = in.get<uint32_t>("value type");
    if (!valid_value_type(t))
      throw Error(where, "key '" + key + "': unknown value type " + std::to_string(t));
    h.kv.emplace_back(key, read_value(in, static_cast<ValueType>(t), 0, key));
  }
  for (const auto& [k, v] : h.kv) {
    if (k != "general.alignment") continue;
    if (v.type() != ValueType::U32)
      throw Error(where, std::string("general.alignment is ") + value_type_name(v.type()) +
                             ", expected u32");
    uint64_t a = v.as_uint();
    if (a == 0 || (a & (a - 1)) != 0)
      throw Error(where, "general.alignment " + std::to_string(a) + " is not a power of two");
    h.alignment = static_cast<uint32_t>(a);
  }

  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.name = in.str("tensor name");
    if (!names.insert(t.name).second) throw Error(where, "duplicate tensor '" + t.name + "'");
    uint32_t nd = in.get<uint32_t>("tensor dims");
    if (nd < 1 || nd > static_cast<uint32_t>(kMaxDims))
      throw Error(where,
                  "tensor '" + t.name + "': " + std::to_string(nd) + " dims, GGUF allows 1 to 4");
    for (uint32_t d = 0; d < nd; ++d) t.ne.push_back(in.get<uint64_t>("tensor dim"));
    uint32_t ty = in.get<uint32_t>("tensor type");
    if (!valid_tensor_type(ty))
      throw Error(where, "tensor '" + t.name + "': unsupported ggml type " + std::to_string(ty) +
                             " (only F32, F16, BF16 are supported)");
    t.type = static_cast<TensorType>(ty);
    t.offset = in.get<uint64_t>("tensor offset");
    if (t.offset % h.alignment)
      throw Error(where, "tensor '" + t.name + "': offset " + std::to_string(t.offset) +
                             " is not a multiple of the alignment " + std::to_string(h.alignment));
    uint64_t nb;
    if (!checked_nbytes(t, &nb)) throw Error(where, "tensor '" + t.name + "': size overflows");
    h.tensors.push_back(std::move(t));
  }
  h.data_start = align_up(in.pos, h.alignment);
  if (h.data_start > size && !h.tensors.empty())
    throw Error(where, "truncated: data section starts at " + std::to_string(h.data_start) +
                           " past end of file (" + std::to_string(size) + " bytes)");
  const uint64_t data_size = size > h.data_start ? size - h.data_start : 0;
  std::vector<const TensorInfo*> by_off;
  for (const auto& t : h.tensors) {
    if (t.offset > data_size || t.nbytes() > data_size - t.offset)
      throw Error(where, "truncated: tensor '" + t.name + "' (" + std::to_string(t.nbytes()) +
                             " bytes at data offset " + std::to_string(t.offset) +
                             ") runs past end of file");
    by_off.push_back(&t);
  }
  std::sort(by_off.begin(), by_off.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i - 1]->offset + by_off[i - 1]->nbytes() > by_off[i]->offset)
      throw Error(where,
                  "tensors '" + by_off[i - 1]->name + "' and '" + by_off[i]->name + "' overlap");
  return h;
}

bool is_gguf_path(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return false;
  if (path.extension() == ".gguf") return true;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream f(path, std::ios::binary);
  uint32_t magic = 0;
  return f.read(reinterpret_cast<char*>(&magic), sizeof magic) && magic == kMagic;
}

File::File(const std::filesystem::path& path) : file_(path) {
  header_ = parse(file_.data(), file_.size(), path.string());
}

const Value* File::find(const std::string& key) const {
  for (const auto& [k, v] : header_.kv)
    if (k == key) return &v;
  return nullptr;
}

const Value& File::get(const std::string& key) const {
  const Value* v = find(key);
  if (!v) throw Error(path().string(), "key '" + key + "' missing");
  return *v;
}

template <class F>
static decltype(auto) typed(const File& f, const std::string& key, F fn) {
  try {
    return fn(f.get(key));
  } catch (const Error& e) {
    if (!f.find(key)) throw;
    throw Error(f.path().string(), "key '" + key + "': " + e.what());
  }
}

uint64_t File::get_uint(const std::string& key) const {
  return typed(*this, key, [](const Value& v) { return v.as_uint(); });
}
double File::get_float(const std::string& key) const {
  return typed(*this, key, [](const Value& v) { return v.as_float(); });
}
bool File::get_bool(const std::string& key) const {
  return typed(*this, key, [](const Value& v) { return v.as_bool(); });
}
const std::string& File::get_string(const std::string& key) const {
  return typed(*this, key, [](const Value& v) -> const std::string& { return v.as_string(); });
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  for (const auto& t : header_.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) throw Error(path().string(), "tensor '" + name + "' missing");
  return *t;
}

}  // namespace rv::gguf
