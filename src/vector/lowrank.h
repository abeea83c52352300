// Low-rank extraction of a reasoning vector: a truncated SVD of every 2-D
// projection delta (q/k/v/o/gate/up/down of each layer), written as a PEFT
// LoRA adapter, plus the singular-value spectrum `inspect --spectrum` shows.
//
//   v_t ≈ B_t · A_t,   A_t = diag(√σ) Vᵀ  (r × in),   B_t = U diag(√σ)  (out × r)
//
// The singular values are split evenly (√σ on each side) so A and B have the
// same scale. The adapter's lora_alpha equals r for every tensor (alpha_pattern
// mirrors rank_pattern), so PEFT's scaling lora_alpha / r is exactly 1 and the
// adapter at scale 1 adds B·A = v_r, the best rank-r approximation of v_t.
//
// Arithmetic is in double (Eigen): the input is f32, and the reconstruction
// test demands f32 rounding; a double sketch keeps the small singular values
// of a randomized SVD as accurate as the exact one and costs ~2x an f32 run,
// which is negligible next to reading a model. Factors are stored in f32.
//
// Decompositions (no hand-written ones): Eigen's BDCSVD for matrices whose
// smaller side is at most kExactSvdMaxDim or when the requested rank plus
// oversampling reaches half the smaller side; otherwise a randomized SVD
// (Halko, Martinsson & Tropp 2011, Alg. 4.4): a Gaussian sketch of k + p
// columns, q power iterations each re-orthonormalised by Householder QR, and
// an exact SVD of the small projected matrix. The sketch is seeded from
// (seed, tensor name), so results do not depend on the thread count.
//
// Thread-safety: truncated_svd is pure and reentrant. lowrank() and
// spectrum() run in parallel over tensors on the process pool
// (common/parallel.h); `Log` is called from the calling thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vector/vector.h"

namespace rv::vec {

// Matrices whose smaller side is at most this get an exact SVD.
inline constexpr int64_t kExactSvdMaxDim = 256;

struct SvdOptions {
  int oversample = 10;            // p: extra sketch columns beyond the rank
  int power_iters = 2;            // q: power iterations (each with QR re-orthonormalisation)
  uint64_t seed = 0;              // sketch seed
  uint64_t stream = 0;            // sketch stream (lowrank() uses hash_name(tensor))
  bool force_exact = false;       // always BDCSVD (tests, the spectrum)
  bool force_randomized = false;  // randomized even for small matrices (tests)
};

// A rank-r factorisation M ≈ B · A of a row-major rows × cols matrix.
struct Factors {
  int rank = 0;
  std::vector<float> A;       // rank × cols, row-major: diag(√σ) Vᵀ
  std::vector<float> B;       // rows × rank, row-major: U diag(√σ)
  std::vector<double> sigma;  // the singular values computed, descending (>= rank of them)
  double total_sq = 0;        // ‖M‖²_F, in double
  bool randomized = false;    // which decomposition produced them
};

// Truncated SVD of M (row-major, rows × cols, f32). Exactly one of
// `rank` (1 <= rank <= min(rows, cols)) and `energy` (in (0, 1]) is non-zero:
// with `energy` the rank is the smallest r with Σ_{i<r} σ_i² >= energy·‖M‖²_F
// (at least 1); a randomized run doubles its sketch until the singular values
// it found reach that energy, falling back to an exact SVD when the sketch
// would exceed half the smaller side. Throws rv::Error("truncated_svd: ...")
// on bad arguments. A zero matrix gives rank 1 (energy) or `rank` zero factors.
Factors truncated_svd(const float* M, int64_t rows, int64_t cols, int rank, double energy,
                      const SvdOptions& opt = {});

// The LoRA target module of a vector tensor: "q_proj", ..., "down_proj" for
// model.layers.N.{self_attn,mlp}.<m>.weight of rank 2, else "".
std::string lora_module(const std::string& tensor_name, const std::vector<int64_t>& shape);

struct LowrankOptions {
  int rank = 0;         // fixed rank for every projection ...
  double energy = 0;    // ... or per tensor the smallest rank capturing this share of ‖v_t‖²
  int oversample = 10;  // randomized SVD oversampling p
  int power_iters = 2;  // randomized SVD power iterations q
  uint64_t seed = 0;    // sketch seed
  // Also write the non-LoRA tensors of v (norms, embeddings, lm_head as
  // PEFT modules_to_save; q/k/v biases through bias = "lora_only") as full
  // new values θ + v. REQUIRES `model`.
  bool modules_to_save = false;
  std::filesystem::path model;  // base model: architecture, base_model_name_or_path, θ
  bool force = false;           // replace an existing output directory
  std::string command_line;     // recorded in the report
  // Called with the adapter's temporary directory after everything above is
  // written and before it is published, so callers can add files (the CLI's
  // GGUF adapter) to the same all-or-nothing output. May throw.
  std::function<void(const std::filesystem::path& dir, const struct LowrankResult&)> before_commit;
};

struct LowrankTensorReport {
  std::string name;            // vector tensor name
  std::string module;          // "q_proj", ...
  int64_t rows = 0, cols = 0;  // out, in
  int rank = 0;
  double norm_sq = 0;    // ‖v_t‖²
  double energy = 0;     // ‖v_r‖² / ‖v_t‖² (1 for a zero tensor)
  double rel_error = 0;  // ‖v_t − B·A‖ / ‖v_t‖ from the f32 factors written (0 for zero)
  bool randomized = false;
  std::vector<double> top_sigma;  // the largest singular values (up to 8)
};

struct LowrankResult {
  std::vector<LowrankTensorReport> tensors;  // natural name order
  int r = 0;                                 // adapter_config r (the most common rank)
  double total_sq = 0;                       // ‖v‖² over every tensor of v
  double energy_captured = 0;                // Σ ‖v_r‖² / ‖v‖² (LoRA part only)
  double unrepresentable_share = 0;  // ‖v‖² share neither LoRA nor modules_to_save carries
  double modules_to_save_share = 0;  // ‖v‖² share written as full modules
  std::vector<std::string> unrepresentable;  // those tensors' names
  std::vector<std::string> modules_to_save;  // module short names in adapter_config
  std::string architecture;                  // Hugging Face class of the base
  std::string base_model;                    // base_model_name_or_path written
  nlohmann::json to_json() const;
};

// Reads the vector (a .safetensors file or tensor directory) and writes a
// PEFT LoRA adapter directory at `out` (atomically, kDirectory):
// adapter_config.json, adapter_model.safetensors (f32) and
// lowrank_report.json (LowrankResult::to_json). The architecture comes from
// --model's config.json, else the vector's reasonvec.architecture metadata.
// Checked before any SVD (rv::Error, nothing written): exactly one of
// rank/energy, rank <= min(rows, cols) of every projection, energy in (0, 1],
// at least one projection in v, a known architecture, modules_to_save with a
// model, `out` absent unless force. `log` (may be empty) gets the note on
// the share of v a LoRA cannot carry.
LowrankResult lowrank(const std::filesystem::path& vector, const std::filesystem::path& out,
                      const LowrankOptions& opt, const Log& log);

// Singular-value spectrum of each projection tensor (exact SVD, values only:
// about min(m,n)²·max(m,n) flops per tensor).
struct SpectrumTensor {
  std::string name, module;
  int layer = -1;
  int64_t rows = 0, cols = 0;
  std::vector<double> sigma;   // all singular values, descending
  double effective_rank = 0;   // exp(entropy of σ²/Σσ²)  (Roy & Vetterli 2007)
  int rank90 = 0, rank99 = 0;  // smallest r capturing 90 % / 99 % of Σσ²
};
struct SpectrumResult {
  std::vector<SpectrumTensor> tensors;  // natural name order
  nlohmann::json to_json(int top_k) const;
};
// Throws rv::Error when `vector` holds no projection tensor.
SpectrumResult spectrum(const std::filesystem::path& vector);
// Effective rank and energy ranks of a descending σ list (exposed for tests).
double effective_rank(const std::vector<double>& sigma);
int energy_rank(const std::vector<double>& sigma, double fraction);
// An SVG plot: log10 σ_i / σ_1 against i, one line per module kind, averaged
// over layers (mean of log10).
std::string spectrum_svg(const SpectrumResult& r);

}  // namespace rv::vec
