// Helpers shared by the vector operations (not a public interface).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "common/progress.h"
#include "formats/model_dir.h"

namespace rv::vec::detail {

// Elements per work unit: 1 Mi elements keeps per-thread scratch at a few MB
// and gives every core several tiles even for mid-sized tensors.
inline constexpr uint64_t kTile = 1u << 20;

// Runs fn(begin, end) over [0, n) in kTile pieces on all cores.
void for_tiles(uint64_t n, const std::function<void(uint64_t, uint64_t)>& fn);

// Runs fn(tensor, begin, end) over the kTile pieces of every tensor, where
// numel[tensor] is its element count, in one parallel loop; each thread takes
// the next tile in order, so writes stay roughly sequential. One loop per
// tensor would leave cores idle at every tensor's end (a one-tile k_proj, an
// odd tile count): about 15 % of extract's wall time on two cores.
void for_all_tiles(const std::vector<uint64_t>& numel,
                   const std::function<void(size_t, uint64_t, uint64_t)>& fn);

// Runs fn(i) for every i in [0, size.size()) on all cores, one item per
// worker at a time, largest size first (so the big ones do not end up last
// on one core). For whole-tensor work whose inner steps are sequential
// (top-k selection, ranks): for_tiles calls inside fn run serially on the
// worker. The first exception stops the remaining items and is rethrown.
void for_each_item(const std::vector<uint64_t>& size, const std::function<void(size_t)>& fn);

// Per-thread scratch buffers (reused across tiles and tensors).
std::vector<float>& scratch(int slot, size_t n);
std::vector<uint8_t>& scratch_bytes(size_t n);            // slot 0
std::vector<uint8_t>& scratch_bytes(int slot, size_t n);  // slots 0-2

// Elements per cache-sized piece of a tile. A tile's I/O (one write, one
// release) stays whole, but its arithmetic runs piece by piece so the f32
// temporaries stay in L2 instead of round-tripping through memory
// (bench/vector_vs_cp.sh shows the effect).
inline constexpr uint64_t kChunk = 1u << 14;

// Runs fn(begin, end, s0, s1) over [b, e) in kChunk pieces, on this thread;
// s0 and s1 are scratch(0) and scratch(1), kChunk elements each.
template <class Fn>
void for_chunks(uint64_t b, uint64_t e, Fn&& fn) {
  float* s0 = scratch(0, kChunk).data();
  float* s1 = scratch(1, kChunk).data();
  for (uint64_t c = b; c < e; c += kChunk) fn(c, std::min(e, c + kChunk), s0, s1);
}

// x rounded to dtype d and widened back (identity for f32): one operation
// "in d" as PyTorch computes it on CPU (in f32, rounded once).
inline float round_to(DType d, float x) {
  if (d == DType::BF16) return bf16_to_f32(f32_to_bf16(x));
  if (d == DType::F16) return f16_to_f32(f32_to_f16(x));
  return x;
}

// Reads elements [b, e) of a float tensor view into f32.
inline void load_f32(const TensorView& v, uint64_t b, uint64_t e, float* out) {
  to_f32(v.dtype(), v.data + b * dtype_size(v.dtype()), out, e - b);
}

// Elements per pread of a streamed input: a bf16 target piece, an f32
// vector piece and the output piece they make (128 + 256 + 128 KiB) stay in
// L2 between the read and the arithmetic.
inline constexpr uint64_t kReadChunk = 1u << 16;

// Where a view's bytes live: its mapped file, and its byte offset there.
// Streaming passes read through it (MappedFile::read) rather than touching
// the mapping; see MappedFile::read for why.
struct ViewSource {
  const MappedFile* file = nullptr;
  uint64_t offset = 0;
  size_t elem = 0;  // bytes per element
  // Copies elements [b, e) into dst.
  void read(uint64_t b, uint64_t e, void* dst) const {
    file->read(offset + b * elem, dst, (e - b) * elem);
  }
};
ViewSource source_of(const TensorSet& set, const TensorView& v);

// Tells the kernel we are done with elements [b, e) of a mapped tensor so
// streaming a model larger than RAM does not grow the resident set.
void release(const TensorSet& set, const TensorView& v, uint64_t b, uint64_t e);

// Name filter from --include / --exclude (ECMAScript, search semantics).
class NameFilter {
 public:
  NameFilter(const std::string& include, const std::string& exclude);
  bool operator()(const std::string& name) const;

 private:
  bool has_inc_ = false, has_exc_ = false;
  std::regex inc_, exc_;
};

// Number of NaN/Inf values in x[0, n). A bit test rather than
// std::isfinite, so the loop vectorises.
inline uint64_t count_nonfinite(const float* x, size_t n) {
  uint64_t bad = 0;
  for (size_t k = 0; k < n; ++k) {
    uint32_t u;
    std::memcpy(&u, x + k, 4);
    bad += (u & 0x7f800000u) == 0x7f800000u;
  }
  return bad;
}

std::string shape_str(const std::vector<int64_t>& s);

// A *.weight or *.bias tensor: what a full vector is expected to cover
// (apply and load-time vectors refuse one that leaves such target tensors
// unchanged, unless partial).
bool is_weight_name(const std::string& name);
// "<missing.size()> of <total> <what> are not in the vector (a, b, ...)",
// naming the first six.
std::string uncovered_text(const std::vector<std::string>& missing, size_t total,
                           const std::string& what);

// Input and output embedding matrices, whose first dimension is the vocabulary.
bool is_vocab_tensor(const std::string& name);
inline const char* kEmbed = "model.embed_tokens.weight";
inline const char* kLmHead = "lm_head.weight";

// Provenance fields common to everything we write.
std::map<std::string, std::string> base_metadata(const std::string& kind,
                                                 const std::string& command_line);

// Opens either a model directory or a tensor file/dir as a TensorSet; also
// returns the config when there is one.
struct Opened {
  std::unique_ptr<TensorSet> set;
  std::optional<ModelConfig> config;
};
Opened open_any(const std::filesystem::path& p);

}  // namespace rv::vec::detail
