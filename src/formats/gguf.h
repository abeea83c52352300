// The GGUF file format (llama.cpp / ggml): a streaming writer and a fully
// validated, memory-mapped reader.
//
// Layout (little-endian, GGUF v3):
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x (string key, u32 value_type, value),
//   tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset),
//   zero padding to `general.alignment` (default 32), then the data section.
// Strings are u64 length + bytes (no terminator). Arrays are u32 element type,
// u64 count, elements. Tensor dims are in ggml order: ne[0] is the fastest-
// varying (contiguous) dimension, i.e. the reverse of a PyTorch shape. Tensor
// offsets are relative to the data section and multiples of the alignment.
//
// Only the float tensor types F32, F16 and BF16 are supported (what
// `reasonvec export-gguf` writes); quantized files are rejected by the reader.
// Objects are not thread-safe for mutation; an open GgufFile may be read from
// any number of threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/file.h"
#include "formats/dtype.h"

namespace rv::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// Metadata value types (gguf_type), numbered as in the spec.
enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* value_type_name(ValueType t);

// Tensor element types (ggml_type) this implementation handles.
enum class TensorType : uint32_t { F32 = 0, F16 = 1, BF16 = 30 };
const char* tensor_type_name(TensorType t);
size_t tensor_type_size(TensorType t);  // bytes per element
DType tensor_dtype(TensorType t);       // the same element type as a safetensors DType

// llama.cpp's general.file_type (llama_ftype) for all-float files.
enum class FileType : uint32_t { ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_BF16 = 32 };

// tokenizer.ggml.token_type values (llama_token_type) the exporter writes and
// the tokenizer reads back: vocabulary tokens, special added tokens, other
// added tokens, and padding rows that name no token.
enum TokenType : int32_t {
  kTokenNormal = 1,
  kTokenControl = 3,
  kTokenUserDefined = 4,
  kTokenUnused = 5,
};

// One metadata value: a scalar, a string, or an array of values of one type.
// Accessors throw rv::Error when the stored type does not fit.
class Value {
 public:
  Value() = default;
  static Value u8(uint8_t v) { return uint_(ValueType::U8, v); }
  static Value u16(uint16_t v) { return uint_(ValueType::U16, v); }
  static Value u32(uint32_t v) { return uint_(ValueType::U32, v); }
  static Value u64(uint64_t v) { return uint_(ValueType::U64, v); }
  static Value i8(int8_t v) { return int_(ValueType::I8, v); }
  static Value i16(int16_t v) { return int_(ValueType::I16, v); }
  static Value i32(int32_t v) { return int_(ValueType::I32, v); }
  static Value i64(int64_t v) { return int_(ValueType::I64, v); }
  static Value f32(float v) { return float_(ValueType::F32, v); }
  static Value f64(double v) { return float_(ValueType::F64, v); }
  static Value boolean(bool v) { return uint_(ValueType::BOOL, v ? 1 : 0); }
  static Value string(std::string s);
  // REQUIRES: every element has type `elem` (checked; throws otherwise).
  static Value array(ValueType elem, std::vector<Value> items);
  static Value strings(const std::vector<std::string>& v);
  static Value i32s(const std::vector<int32_t>& v);
  static Value f32s(const std::vector<float>& v);

  ValueType type() const { return type_; }
  ValueType elem_type() const { return elem_; }  // for arrays
  bool is_integer() const;
  bool is_float() const { return type_ == ValueType::F32 || type_ == ValueType::F64; }

  uint64_t as_uint() const;  // any integer type holding a value >= 0
  int64_t as_int() const;    // any integer type holding a value that fits int64
  double as_float() const;   // F32/F64, or any integer type
  bool as_bool() const;
  const std::string& as_string() const;
  const std::vector<Value>& as_array() const;

 private:
  static Value uint_(ValueType t, uint64_t v);
  static Value int_(ValueType t, int64_t v);
  static Value float_(ValueType t, double v);
  ValueType type_ = ValueType::U8;
  ValueType elem_ = ValueType::U8;
  uint64_t u_ = 0;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::vector<Value> arr_;
};

using KeyValue = std::pair<std::string, Value>;

// A tensor's description. `ne` is in ggml order (reverse of PyTorch's shape).
struct TensorInfo {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<uint64_t> ne;
  uint64_t offset = 0;  // within the data section
  uint64_t numel() const;
  uint64_t nbytes() const { return numel() * tensor_type_size(type); }
};

// Converts a PyTorch/safetensors shape (outermost first) to ggml `ne`.
std::vector<uint64_t> ne_from_shape(const std::vector<int64_t>& shape);

// Writes a GGUF v3 file sequentially. The header (metadata and tensor infos,
// with offsets computed from the given order and the alignment) is written
// by the constructor; then tensor data must be appended in the same order,
// in any number of pieces per tensor. finish() checks every byte arrived,
// pads the end and fsyncs. Errors throw rv::Error naming the path. If the
// writer is destroyed without finish() the file is left incomplete: write
// under rv::AtomicOutput for all-or-nothing output.
class Writer {
 public:
  // `kv` is written in the given order; "general.alignment" is added when
  // `alignment` is not the default. Duplicate keys or tensor names, bad dims
  // and a non-power-of-two alignment are rejected before anything is written.
  Writer(const std::filesystem::path& path, std::vector<KeyValue> kv,
         std::vector<TensorInfo> tensors, uint32_t alignment = kDefaultAlignment);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Appends bytes to the current tensor (the first one not yet complete).
  // Throws if more bytes arrive than the tensors hold.
  void append(const void* data, size_t n);
  void finish();
  // Tensor infos with their computed offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  uint64_t data_start() const { return data_start_; }

 private:
  void advance();
  std::unique_ptr<FileWriter> out_;
  std::vector<TensorInfo> tensors_;
  uint32_t alignment_;
  uint64_t data_start_ = 0;
  size_t cur_ = 0;            // tensor being written
  uint64_t cur_written_ = 0;  // bytes of it written so far
  bool finished_ = false;
};

// The parsed, validated header of a GGUF file.
struct Header {
  uint32_t version = 0;
  std::vector<KeyValue> kv;
  std::vector<TensorInfo> tensors;  // in file order
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_start = 0;  // absolute file offset of the data section
};

// Validates: magic, version (2 or 3), counts and every string/array length
// against the bytes left, known value types, array nesting (<= 4 deep),
// unique keys, general.alignment a u32 power of two, tensor names unique,
// 1..4 dims, no element-count overflow, supported tensor types, offsets
// aligned and every tensor inside the file without overlaps. `where`
// prefixes error messages (usually the path). Throws rv::Error on the first
// problem; safe on arbitrary bytes.
Header parse(const uint8_t* data, size_t size, const std::string& where);

// True when `path` should be read as a GGUF file: it is not a directory and
// is named *.gguf or starts with the GGUF magic. Checks nothing else (open it
// with File or parse() for that); never throws.
bool is_gguf_path(const std::filesystem::path& path);

// A memory-mapped, validated GGUF file. Tensor data pointers stay valid for
// the object's lifetime and are aligned to the file's alignment relative to
// the start of the mapping (which is page-aligned).
class File {
 public:
  explicit File(const std::filesystem::path& path);
  const std::filesystem::path& path() const { return file_.path(); }
  const Header& header() const { return header_; }
  uint32_t version() const { return header_.version; }
  const std::vector<KeyValue>& metadata() const { return header_.kv; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }

  const Value* find(const std::string& key) const;  // nullptr when absent
  // Typed getters: throw "path: key 'k' missing" / "... is a string, expected an integer".
  const Value& get(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;

  const TensorInfo* find_tensor(const std::string& name) const;
  const TensorInfo& tensor(const std::string& name) const;  // throws when absent
  const uint8_t* data(const TensorInfo& t) const {
    return file_.data() + header_.data_start + t.offset;
  }

 private:
  MappedFile file_;
  Header header_;
};

}  // namespace rv::gguf
