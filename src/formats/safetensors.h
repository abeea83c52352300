// The safetensors format: read (mmap, zero-copy, fully validated) and write
// (streaming, parallel, sharded with a Hugging Face index).
//
// Layout: u64 little-endian N, then N bytes of JSON header (object mapping
// tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} plus an
// optional "__metadata__" string->string map), padded with spaces, then the
// data section. Offsets are relative to the data section.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/file.h"
#include "formats/dtype.h"

namespace rv {

// Safetensors' own limit on the header size; larger is treated as corrupt.
inline constexpr uint64_t kMaxSafetensorsHeader = 100ull * 1000 * 1000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets within the data section

  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A parsed and validated header. Tensors are sorted by their offsets.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
};

// Validates everything the spec allows checking from the bytes alone: header
// length bounded and inside the file, JSON well-formed object, no duplicate
// names, known dtypes, non-negative shapes whose byte size matches the span,
// offsets in range, contiguous and non-overlapping, covering the whole data
// section. `where` prefixes error messages (usually the path).
// Throws rv::Error on the first problem. Safe on arbitrary input (fuzzed).
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& where);

// A read-only view of one tensor's bytes inside a mapped file.
struct TensorView {
  const TensorInfo* info = nullptr;
  const uint8_t* data = nullptr;  // not aligned in general
  DType dtype() const { return info->dtype; }
  uint64_t numel() const { return info->numel(); }
  uint64_t nbytes() const { return info->nbytes(); }
  const std::vector<int64_t>& shape() const { return info->shape; }
  const std::string& name() const { return info->name; }
};

// One mapped, validated .safetensors file. Views stay valid for its lifetime.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const fs::path& path);
  const fs::path& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(const std::string& name) const;
  TensorView view(const TensorInfo& t) const {
    return {&t, file_.data() + header_.data_start + t.begin};
  }
  const MappedFile& file() const { return file_; }
  uint64_t data_start() const { return header_.data_start; }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> by_name_;
};

// What a writer needs to know about a tensor before any data is written.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

// Builds the header bytes (JSON padded with spaces to a multiple of 8).
// Tensors are laid out in the order given. `metadata` always gets
// "format": "pt" added (transformers refuses shards without it).
std::string build_safetensors_header(const std::vector<TensorSpec>& tensors,
                                     std::map<std::string, std::string> metadata,
                                     std::vector<uint64_t>* offsets_out);

// Writes a set of tensors as one .safetensors file or as HF-style shards
// (model-0000i-of-0000N.safetensors + model.safetensors.index.json) into an existing
// directory. Data may arrive in any order and from many threads at once:
// write() is a positioned write into a preallocated file. Tensors are never
// split across shards; a tensor larger than the shard size gets its own.
class SafetensorsWriter {
 public:
  struct Options {
    uint64_t shard_size = 5'000'000'000ull;  // bytes of tensor data per shard (HF "5GB")
    std::string single_name = "model.safetensors";
    std::string shard_prefix = "model";  // model-00001-of-00002.safetensors
    std::map<std::string, std::string> metadata;
  };
  SafetensorsWriter(const fs::path& dir, std::vector<TensorSpec> tensors, Options opt);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  const TensorSpec& spec(size_t i) const { return specs_[i]; }
  // Writes bytes [offset, offset+n) of tensor i. Thread-safe.
  void write(size_t tensor, uint64_t offset, const void* data, size_t n);
  // fsyncs and closes every shard and writes the index when sharded.
  void finish();
  // Files written (relative names), in shard order.
  std::vector<std::string> files() const;
  uint64_t total_bytes() const { return total_; }

 private:
  ssize_t write_at(int fd, const void* p, size_t n, uint64_t pos);

  struct Shard {
    std::string name;
    fs::path path;
    int fd = -1;
    uint64_t data_start = 0;
  };
  fs::path dir_;
  std::string index_name_;
  std::vector<TensorSpec> specs_;
  std::vector<size_t> shard_of_;
  std::vector<uint64_t> offset_of_;  // within the shard's data section
  std::vector<Shard> shards_;
  uint64_t total_ = 0;
  bool sharded_ = false;
  bool finished_ = false;
  std::atomic<bool> dontcache_{true};  // false once the kernel refused RWF_DONTCACHE
};

// Parses sizes like "5GB", "500MB", "2GiB", "1000000" (HF uses decimal units).
uint64_t parse_size(const std::string& s);

}  // namespace rv
