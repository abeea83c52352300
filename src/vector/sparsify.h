// Sparsification of task vectors (TIES, DARE, DELLA, breadcrumbs) and the
// compact sparse vector file format, with one reader for dense and sparse
// vector files.
//
// Methods follow mergekit (merge_methods/generalized_task_arithmetic.py and
// sparsify.py, the release with `rescale: bool`), parameter by parameter:
//
//   magnitude (TIES trim)   keep the k = ⌊density·n⌋ entries of largest |v|
//                           of each tensor. rescale: multiply the kept entries
//                           by Σ|v| / Σ|kept| (both ≥ 1e-8; sums in double).
//   random (DARE)           keep each entry with probability density.
//                           rescale: divide the kept entries by density.
//   magnitude_outliers      (breadcrumbs) rank |v| ascending; drop the
//                           n_top = ⌊gamma·n⌋ largest and the
//                           n_bot = n − ⌊density·n⌋ − n_top smallest (when
//                           n_bot < 0, n_top shrinks so that density holds).
//                           rescale as for magnitude.
//   rank_magnitude (DELLA)  per row of a 2-D tensor (along dimension 1 of an
//                           N-D one, over the whole of a 1-D one), rank |v|
//                           ascending r = 1..m, p = (density − ε) +
//                           2ε·(r − 1)/(m − 1) (f32, as torch), keep with
//                           probability p. rescale: divide each kept entry by
//                           its own p, so E[out] = v (DELLA's 1/(1 − p_drop)).
//                           A one-element row gets p = density − ε (mergekit
//                           would divide 0 by 0).
//
// All of it is computed in f32 (sums for rescale in double). mergekit runs
// DARE/DELLA in bf16 when the merge dtype is bf16; here the f32 result is
// rounded once to the merge dtype instead (a difference of at most one
// rounding). Deviations from mergekit, deliberately: equal magnitudes are
// ordered by element index (the later element ranks higher) where torch's
// argsort order is unspecified; ⌊density·n⌋ = 0 keeps nothing where mergekit
// asserts; breadcrumbs with n_top = 0 keeps the top (mergekit's
// `indices[n_bot:-0]` is empty, a bug).
//
// Random draws: entry i of tensor `name` in term t keeps when
//   u = (splitmix(seed ^ splitmix(stream ^ splitmix(i))) >> 11) · 2⁻⁵³ < p,
//   stream = hash_name(name) + t·0x9e3779b97f4a7c15
// (splitmix and hash_name as in formats/synth.cpp), so results depend on
// (seed, name, term, index) only: the same bytes on any thread count.
//
// Selection (top-k, quantiles) uses std::nth_element on a 32-bit copy of
// |v| per tensor, never a full sort; DELLA sorts within each row because it
// needs every rank. Tensors are processed in parallel, one per worker, so
// memory is O(largest tensor) per worker (times the number of vectors when
// merging several).
//
// Merging several sparsified deltas δ_j with weights w_j (GTA):
//   consensus (ties, dare_ties, della, breadcrumbs_ties): majority sign of
//     Σ_j w_j·δ_j (≥ 0 counts as +), keep only the w_j·δ_j of that sign
//     (zeros never count), divisor Σ w_j over the kept (0 → 1);
//   otherwise: all terms, divisor Σ w_j (|·| < 1e-8 → 1).
//   mixed = Σ kept w_j·δ_j; normalize: mixed / divisor; della*: × lambda.
//
// Thread-safety: free functions are reentrant; VectorReader is immutable
// after construction, so concurrent read_f32 calls (any ranges) are safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/model_dir.h"
#include "vector/vector.h"

namespace rv::vec {

enum class Sparsification { kNone, kMagnitude, kRandom, kMagnitudeOutliers, kRankMagnitude };

// A mergekit GTA merge method and its defaults.
struct MergeMethod {
  const char* name;
  Sparsification sparsification;
  bool consensus;          // TIES sign election ("sum")
  bool default_normalize;  // mergekit's default for `normalize`
  bool default_rescale;    // mergekit's default for `rescale`
  bool uses_lambda;        // della*: the merged delta is scaled by lambda
};

// linear, task_arithmetic, ties, dare_linear, dare_ties, della, della_linear,
// breadcrumbs, breadcrumbs_ties. nullptr when unknown.
const MergeMethod* find_merge_method(std::string_view name);
// "linear, ties, ..." for error messages.
std::string merge_method_names();

struct SparsifyParams {
  double density = 1.0;   // fraction of entries kept, in (0, 1]; 1: unchanged
  double epsilon = 0.15;  // DELLA: keep probabilities span density ± epsilon
  double gamma = 0.01;    // breadcrumbs: fraction of largest entries dropped, ≥ 0
  bool rescale = true;
};

// Throws rv::Error("`where`: ...") when p is invalid for m: density outside
// (0, 1], gamma < 0 or > 1, epsilon < 0 or density ± epsilon outside (0, 1)
// (DELLA with density < 1), non-finite values.
void validate_sparsify(Sparsification m, const SparsifyParams& p, const std::string& where);

// The random stream of tensor `name` in term `term` (see above).
uint64_t sparsify_stream(const std::string& name, size_t term);

// Sparsifies x[0, numel(shape)) in place. Deterministic (see above).
// REQUIRES: validate_sparsify(m, p) passed. Runs on the process pool.
void sparsify_tensor(Sparsification m, const SparsifyParams& p, const std::vector<int64_t>& shape,
                     uint64_t seed, uint64_t stream, float* x);

// Merges deltas[j][0, n) (already sparsified; entries at or past limits[j]
// count as 0) with weights[j] into out[0, n), every operation rounded to
// `compute` (identity for F32; mergekit's merge dtype). `lambda` is applied
// when given. Runs on the process pool.
void merge_deltas(DType compute, bool consensus, bool normalize, std::optional<float> lambda,
                  const std::vector<const float*>& deltas, const std::vector<uint64_t>& limits,
                  const std::vector<float>& weights, uint64_t n, float* out);

// ---- Sparse vector files -------------------------------------------------
//
// A sparse vector is a valid .safetensors file. A tensor X whose kept
// entries take fewer bytes as (index, value) pairs than densely is stored as
//   X.__sparse_idx  U32 (I64 when numel > 2³²), 1-D, flat element indices,
//                   strictly ascending
//   X.__sparse_val  F32, 1-D, the values at those indices
// and listed in __metadata__ "reasonvec.sparse" = JSON {"X": [dense shape]}.
// Other tensors are stored densely (F32) under their own names. The file's
// metadata has reasonvec.kind = "sparse-vector" when any tensor is sparse.
// Why: at density 0.1 a vector shrinks to ~20 % of its dense f32 size while
// staying readable by any safetensors tool; entries not listed are 0.

bool is_sparse_vector(const TensorSet& set);

// Dense f32 view of any vector file or tensor set (a .safetensors file, an
// index.json, a directory): dense tensors are converted from their dtype,
// sparse tensors expanded. Construction validates the sparse encoding (pairs
// complete, dtypes, lengths, indices ascending and in range) and throws
// rv::Error("path: ...") otherwise. Immutable afterwards: all const methods
// may be called concurrently.
class VectorReader {
 public:
  explicit VectorReader(const std::filesystem::path& path);
  ~VectorReader();
  VectorReader(const VectorReader&) = delete;
  VectorReader& operator=(const VectorReader&) = delete;

  const std::filesystem::path& path() const { return set_->path(); }
  bool sparse() const { return !sparse_.empty(); }
  // Logical tensor names (sparse pairs shown once), natural order.
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return info_.count(name) != 0; }
  // REQUIRES (these four): has(name); otherwise rv::Error.
  const std::vector<int64_t>& shape(const std::string& name) const;
  uint64_t numel(const std::string& name) const;
  DType dtype(const std::string& name) const;  // stored dtype; F32 for sparse tensors
  uint64_t stored_bytes(const std::string& name) const;
  bool is_sparse(const std::string& name) const;
  // Writes the dense values of elements [lo, hi) of `name` as f32 to out.
  // Throws rv::Error for a non-float tensor or hi > numel.
  void read_f32(const std::string& name, uint64_t lo, uint64_t hi, float* out) const;
  // The mapped bytes of a dense tensor (fast paths); nullopt when sparse.
  std::optional<TensorView> dense_view(const std::string& name) const;
  // Lets the kernel drop pages of [lo, hi) of a dense tensor (streaming).
  void release(const std::string& name, uint64_t lo, uint64_t hi) const;
  const std::map<std::string, std::string>& metadata() const { return set_->metadata(); }
  const TensorSet& tensors() const { return *set_; }

 private:
  struct Sparse {
    TensorView idx, val;
    uint64_t nnz = 0;
  };
  struct Info {
    std::vector<int64_t> shape;
    uint64_t numel = 0;
    int sparse = -1;  // index into sparse_, or -1
  };
  const Info& info(const std::string& name) const;
  std::unique_ptr<TensorSet> set_;
  std::vector<std::string> names_;
  std::map<std::string, Info> info_;
  std::vector<Sparse> sparse_;
};

// ---- reasonvec sparsify ----------------------------------------------------

enum class SparseFormat { kAuto, kDense, kSparse };

struct SparsifyOptions {
  // dare | ties | magnitude | della | breadcrumbs (ties ≡ magnitude for one vector).
  std::string method = "magnitude";
  SparsifyParams params;  // rescale: the CLI uses sparsify_default_rescale(method)
  uint64_t seed = 0;
  SparseFormat format = SparseFormat::kAuto;  // auto: sparse where it is smaller
  bool force = false;
  std::string command_line;
};

// The rescale default of a `sparsify` method (dare, della: true).
bool sparsify_default_rescale(const std::string& method);

struct SparsifyResult {
  size_t tensors = 0, sparse_tensors = 0;
  uint64_t elements = 0, kept = 0;  // kept: non-zero entries written
  uint64_t bytes_written = 0;       // size of the output file
  uint64_t dense_bytes = 0;         // size of the same vector stored densely in f32
};

// Writes the sparsified `vector` (any vector file, dense or sparse) to the
// .safetensors file `out`, atomically (stored forms are staged in a
// temporary "<out temp>.payload" beside it, removed in every case). Validates the method and
// parameters before reading any tensor. Metadata: the input's plus reasonvec.sparsify (JSON of the
// method and parameters) and reasonvec.sparsified_from.
SparsifyResult sparsify(const std::filesystem::path& vector, const std::filesystem::path& out,
                        const SparsifyOptions& opt, const Log& log);

}  // namespace rv::vec
