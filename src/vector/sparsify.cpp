#include "vector/sparsify.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "common/parallel.h"
#include "common/progress.h"
#include "formats/synth.h"
#include "vector/internal.h"

namespace rv::vec {

using namespace detail;
using json = nlohmann::json;

namespace {

constexpr const char* kIdxSuffix = ".__sparse_idx";
constexpr const char* kValSuffix = ".__sparse_val";
constexpr const char* kSparseKey = "reasonvec.sparse";

// mergekit's GTA registry (merge_methods/__init__.py): consensus,
// sparsification and the normalize / rescale defaults of each method.
const MergeMethod kMethods[] = {
    {"linear", Sparsification::kNone, false, true, false, false},
    {"task_arithmetic", Sparsification::kNone, false, false, false, false},
    {"ties", Sparsification::kMagnitude, true, true, false, false},
    {"dare_linear", Sparsification::kRandom, false, false, true, false},
    {"dare_ties", Sparsification::kRandom, true, false, true, false},
    {"della", Sparsification::kRankMagnitude, true, true, true, true},
    {"della_linear", Sparsification::kRankMagnitude, false, false, true, true},
    {"breadcrumbs", Sparsification::kMagnitudeOutliers, false, false, false, false},
    {"breadcrumbs_ties", Sparsification::kMagnitudeOutliers, true, false, false, false},
};

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) with 53 random bits, a pure function of its arguments.
inline double uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<double>(splitmix(seed ^ splitmix(stream ^ splitmix(index))) >> 11) *
         (1.0 / 9007199254740992.0);
}

// |x| as an integer that orders like the magnitude (NaN above Inf), so that
// nth_element gets a strict weak order even with NaNs in the input.
inline uint32_t mag_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u & 0x7fffffffu;
}

// +0 is what a sparse tensor leaves out; -0 is stored, so that expanding
// gives back the dense bits exactly.
inline bool is_plus_zero(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u == 0;
}

uint64_t numel_of(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// The boundary before ascending rank r in the order (|x|, index): element i
// ranks below r iff key < `key`, or key == `key` and fewer than `eq_below`
// elements of that key come before it.
struct Cut {
  uint32_t key = 0;
  uint64_t eq_below = 0;
};

Cut cut_at(std::vector<uint32_t>& keys, uint64_t r) {
  const uint64_t n = keys.size();
  if (r == 0) return {0, 0};
  if (r >= n) return {0xffffffffu, 0};  // every key (≤ 0x7fffffff) is below
  std::nth_element(keys.begin(), keys.begin() + r, keys.end());
  const uint32_t k = keys[r];
  uint64_t less = 0;
  for (uint64_t i = 0; i < r; ++i) less += keys[i] < k;
  return {k, r - less};
}

// Zeroes every entry of x whose ascending (|x|, index) rank is outside
// [lo, hi), and, with rescale, scales the rest by Σ|x| / Σ|kept|.
void keep_rank_range(float* x, uint64_t n, uint64_t lo, uint64_t hi, bool rescale) {
  // Reused per thread: a fresh multi-MB allocation per tensor costs more in
  // page faults than the selection itself.
  thread_local std::vector<uint32_t> keys;
  keys.resize(n);
  for (uint64_t i = 0; i < n; ++i) keys[i] = mag_key(x[i]);
  const Cut a = cut_at(keys, lo);
  const Cut b = cut_at(keys, hi);
  uint64_t seen_a = 0, seen_b = 0;  // earlier elements with key a.key / b.key
  double before = 0, after = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t k = mag_key(x[i]);
    const bool below_a = k < a.key || (k == a.key && seen_a < a.eq_below);
    const bool below_b = k < b.key || (k == b.key && seen_b < b.eq_below);
    seen_a += k == a.key;
    seen_b += k == b.key;
    before += std::fabs(static_cast<double>(x[i]));
    if (below_a || !below_b) x[i] = 0.0f;
    after += std::fabs(static_cast<double>(x[i]));
  }
  if (rescale && before >= 1e-8 && after >= 1e-8) {
    const float f = static_cast<float>(before / after);
    for (uint64_t i = 0; i < n; ++i) x[i] = x[i] * f;
  }
}

void random_drop(float* x, uint64_t n, double density, bool rescale, uint64_t seed,
                 uint64_t stream) {
  const float d = static_cast<float>(density);
  for_tiles(n, [&](uint64_t lo, uint64_t hi) {
    for (uint64_t i = lo; i < hi; ++i) {
      if (uniform01(seed, stream, i) < density) {
        if (rescale) x[i] = x[i] / d;
      } else {
        x[i] = 0.0f;
      }
    }
  });
}

void rank_magnitude(float* x, const std::vector<int64_t>& shape, const SparsifyParams& p,
                    uint64_t seed, uint64_t stream) {
  // Rows along dimension 1 (a 1-D tensor is one row), as torch's dim=1.
  uint64_t outer = 1, mid = 1, inner = 1;
  if (shape.size() <= 1) {
    mid = numel_of(shape);
  } else {
    outer = static_cast<uint64_t>(shape[0]);
    mid = static_cast<uint64_t>(shape[1]);
    for (size_t k = 2; k < shape.size(); ++k) inner *= static_cast<uint64_t>(shape[k]);
  }
  const float base = static_cast<float>(p.density - p.epsilon);
  const float eps = static_cast<float>(p.epsilon);
  const float span = static_cast<float>(mid > 1 ? mid - 1 : 1);
  parallel_for(outer * inner, 1, [&](size_t rb, size_t re) {
    std::vector<uint32_t> order(mid);
    for (size_t row = rb; row < re; ++row) {
      const uint64_t o = row / inner, in = row % inner;
      auto at = [&](uint64_t j) { return o * mid * inner + j * inner + in; };
      for (uint64_t j = 0; j < mid; ++j) order[j] = static_cast<uint32_t>(j);
      std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
        const uint32_t ka = mag_key(x[at(a)]), kb = mag_key(x[at(b)]);
        return ka != kb ? ka < kb : a < b;
      });
      for (uint64_t r = 0; r < mid; ++r) {
        const uint64_t i = at(order[r]);
        const float rank_norm = std::clamp(static_cast<float>(r) / span, 0.0f, 1.0f);
        const float prob = base + (rank_norm * 2.0f) * eps;
        if (uniform01(seed, stream, i) < prob) {
          if (p.rescale) x[i] = x[i] / prob;
        } else {
          x[i] = 0.0f;
        }
      }
    }
  });
}

std::string fmt_num(double v) {
  char b[32];
  snprintf(b, sizeof b, "%g", v);
  return b;
}

// Entry i of a sparse tensor's index list.
inline uint64_t sparse_index(const TensorView& idx, uint64_t i) {
  if (idx.dtype() == DType::U32) {
    uint32_t u;
    std::memcpy(&u, idx.data + 4 * i, 4);
    return u;
  }
  int64_t q;
  std::memcpy(&q, idx.data + 8 * i, 8);
  return static_cast<uint64_t>(q);
}

// Position of the first stored index ≥ at, in an ascending list of nnz.
uint64_t sparse_lower_bound(const TensorView& idx, uint64_t nnz, uint64_t at) {
  uint64_t a = 0, b = nnz;
  while (a < b) {
    const uint64_t m = a + (b - a) / 2;
    if (sparse_index(idx, m) < at)
      a = m + 1;
    else
      b = m;
  }
  return a;
}

}  // namespace

const MergeMethod* find_merge_method(std::string_view name) {
  for (const auto& m : kMethods)
    if (name == m.name) return &m;
  return nullptr;
}

std::string merge_method_names() {
  std::string s;
  for (const auto& m : kMethods) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

void validate_sparsify(Sparsification m, const SparsifyParams& p, const std::string& where) {
  auto bad = [&](const std::string& what) { throw Error(where, what); };
  if (!std::isfinite(p.density) || !std::isfinite(p.epsilon) || !std::isfinite(p.gamma))
    bad("density, epsilon and gamma must be finite numbers");
  if (m == Sparsification::kNone) return;
  if (!(p.density > 0 && p.density <= 1))
    bad("density must be in (0, 1], got " + fmt_num(p.density));
  if (m == Sparsification::kMagnitudeOutliers && (p.gamma < 0 || p.gamma > 1))
    bad("gamma must be in [0, 1], got " + fmt_num(p.gamma));
  if (m == Sparsification::kRankMagnitude && p.density < 1) {
    if (p.epsilon < 0) bad("epsilon must be >= 0, got " + fmt_num(p.epsilon));
    if (p.density - p.epsilon <= 0 || p.density + p.epsilon >= 1)
      bad("epsilon " + fmt_num(p.epsilon) +
          " puts keep probabilities outside (0, 1): density ± "
          "epsilon must lie strictly between 0 and 1 (density " +
          fmt_num(p.density) + ")");
  }
}

uint64_t sparsify_stream(const std::string& name, size_t term) {
  return hash_name(name) + static_cast<uint64_t>(term) * 0x9e3779b97f4a7c15ull;
}

void sparsify_tensor(Sparsification m, const SparsifyParams& p, const std::vector<int64_t>& shape,
                     uint64_t seed, uint64_t stream, float* x) {
  if (m == Sparsification::kNone || p.density >= 1) return;  // mergekit: density 1 is a no-op
  const uint64_t n = numel_of(shape);
  if (n == 0) return;
  switch (m) {
    case Sparsification::kMagnitude: {
      const auto k = static_cast<uint64_t>(p.density * static_cast<double>(n));
      keep_rank_range(x, n, n - k, n, p.rescale);
      break;
    }
    case Sparsification::kMagnitudeOutliers: {
      const auto target = static_cast<int64_t>(p.density * static_cast<double>(n));
      auto n_top = static_cast<int64_t>(p.gamma * static_cast<double>(n));
      int64_t n_bot = static_cast<int64_t>(n) - target - n_top;
      if (n_bot < 0) {  // fewer outliers, so that density holds
        n_top += n_bot;
        n_bot = 0;
      }
      keep_rank_range(x, n, static_cast<uint64_t>(n_bot), n - static_cast<uint64_t>(n_top),
                      p.rescale);
      break;
    }
    case Sparsification::kRandom:
      random_drop(x, n, p.density, p.rescale, seed, stream);
      break;
    case Sparsification::kRankMagnitude:
      rank_magnitude(x, shape, p, seed, stream);
      break;
    case Sparsification::kNone:
      break;
  }
}

void merge_deltas(DType D, bool consensus, bool normalize, std::optional<float> lambda,
                  const std::vector<const float*>& deltas, const std::vector<uint64_t>& limits,
                  const std::vector<float>& weights, uint64_t n, float* out) {
  const size_t k = deltas.size();
  // One f32 delta, nothing to divide or scale: every path below reduces to
  // 0 + w·δ (a zero term is left out, giving +0 all the same).
  if (k == 1 && D == DType::F32 && !normalize && !lambda) {
    const float w = weights[0];
    const float* d = deltas[0];
    const uint64_t lim = std::min(n, limits[0]);
    for_tiles(n, [&](uint64_t lo, uint64_t hi) {
      for (uint64_t i = lo; i < hi; ++i) out[i] = i < lim ? 0.0f + d[i] * w : 0.0f;
    });
    return;
  }
  // Without consensus the divisor is the same for every element.
  float wsum = 0;
  for (float w : weights) wsum += w;
  wsum = round_to(D, wsum);
  if (std::fabs(wsum) < 1e-8f) wsum = 1.0f;
  for_tiles(n, [&](uint64_t lo, uint64_t hi) {
    std::vector<float> t(k);
    for (uint64_t i = lo; i < hi; ++i) {
      float s = 0;
      for (size_t j = 0; j < k; ++j) {
        t[j] = i < limits[j] ? round_to(D, deltas[j][i] * weights[j]) : 0.0f;
        s += t[j];  // torch sums in an f32 accumulator, rounding once
      }
      float mixed = round_to(D, s), div = wsum;
      if (consensus) {
        const float majority = round_to(D, s) >= 0 ? 1.0f : -1.0f;
        float acc = 0, dacc = 0;
        for (size_t j = 0; j < k; ++j) {
          const float sign = t[j] > 0 ? 1.0f : t[j] < 0 ? -1.0f : 0.0f;
          if (sign != majority) continue;
          acc += t[j];
          dacc += weights[j];
        }
        mixed = round_to(D, acc);
        div = round_to(D, dacc);
        if (div == 0) div = 1.0f;
      }
      if (normalize) mixed = round_to(D, mixed / div);
      if (lambda) mixed = round_to(D, mixed * *lambda);
      out[i] = mixed;
    }
  });
}

// ---- VectorReader ----------------------------------------------------------

bool is_sparse_vector(const TensorSet& set) {
  return set.metadata().count(kSparseKey) != 0;
}

VectorReader::VectorReader(const fs::path& path) : set_(std::make_unique<TensorSet>(path)) {
  const std::string where = set_->path().string();
  auto ends = [](const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  json sp = json::object();
  if (auto it = set_->metadata().find(kSparseKey); it != set_->metadata().end()) {
    try {
      sp = json::parse(it->second);
    } catch (const json::exception&) {
      throw Error(where, std::string("metadata ") + kSparseKey + " is not valid JSON");
    }
    if (!sp.is_object())
      throw Error(where, std::string("metadata ") + kSparseKey + " is not a JSON object");
  }
  for (const auto& [name, shape_j] : sp.items()) {
    const std::string in = name + kIdxSuffix, vn = name + kValSuffix;
    if (!set_->has(in) || !set_->has(vn))
      throw Error(where, "sparse tensor '" + name + "' lacks " + (set_->has(in) ? vn : in));
    if (set_->has(name))
      throw Error(where, "tensor '" + name + "' is stored both densely and sparsely");
    Info inf;
    if (!shape_j.is_array())
      throw Error(where, "sparse tensor '" + name + "': shape is not a list");
    inf.numel = 1;
    for (const auto& d : shape_j) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw Error(where,
                    "sparse tensor '" + name + "': shape has a negative or non-integer dimension");
      const auto u = d.get<uint64_t>();
      if (u != 0 && inf.numel > (~0ull >> 1) / u)
        throw Error(where, "sparse tensor '" + name + "': shape overflows");
      inf.numel *= u;
      inf.shape.push_back(d.get<int64_t>());
    }
    Sparse s{set_->view(in), set_->view(vn), 0};
    if (s.idx.dtype() != DType::U32 && s.idx.dtype() != DType::I64)
      throw Error(where, "sparse tensor '" + name + "': indices must be U32 or I64, not " +
                             std::string(dtype_name(s.idx.dtype())));
    if (s.val.dtype() != DType::F32)
      throw Error(where, "sparse tensor '" + name + "': values must be F32, not " +
                             std::string(dtype_name(s.val.dtype())));
    if (s.idx.shape().size() != 1 || s.val.shape() != s.idx.shape())
      throw Error(where, "sparse tensor '" + name + "': indices " + shape_str(s.idx.shape()) +
                             " and values " + shape_str(s.val.shape()) +
                             " must be equal 1-D lists");
    s.nnz = s.idx.numel();
    // Ascending and in range, so read_f32 may binary-search without checks.
    uint64_t prev = 0;
    for (uint64_t i = 0; i < s.nnz; ++i) {
      uint64_t v;
      if (s.idx.dtype() == DType::U32) {
        uint32_t u;
        std::memcpy(&u, s.idx.data + 4 * i, 4);
        v = u;
      } else {
        int64_t q;
        std::memcpy(&q, s.idx.data + 8 * i, 8);
        if (q < 0) throw Error(where, "sparse tensor '" + name + "': negative index");
        v = static_cast<uint64_t>(q);
      }
      if (v >= inf.numel || (i > 0 && v <= prev))
        throw Error(where, "sparse tensor '" + name + "': index " + std::to_string(v) + " at " +
                               std::to_string(i) + " is out of range or not ascending");
      prev = v;
    }
    detail::release(*set_, s.idx, 0, s.nnz);  // validated: no need to keep it resident
    inf.sparse = static_cast<int>(sparse_.size());
    sparse_.push_back(s);
    info_[name] = inf;
    names_.push_back(name);
  }
  for (const auto& n : set_->names()) {
    if (ends(n, kIdxSuffix) || ends(n, kValSuffix)) {
      const std::string base = n.substr(0, n.size() - std::strlen(kIdxSuffix));
      if (!sp.contains(base))
        throw Error(where, "tensor '" + n + "' is not listed in metadata " + kSparseKey);
      continue;
    }
    Info inf;
    inf.shape = set_->find(n)->shape;
    inf.numel = set_->find(n)->numel();
    info_[n] = inf;
    names_.push_back(n);
  }
  std::sort(names_.begin(), names_.end(), natural_less);
}

VectorReader::~VectorReader() = default;

const VectorReader::Info& VectorReader::info(const std::string& name) const {
  auto it = info_.find(name);
  if (it == info_.end()) throw Error(path().string(), "has no tensor '" + name + "'");
  return it->second;
}

const std::vector<int64_t>& VectorReader::shape(const std::string& name) const {
  return info(name).shape;
}
uint64_t VectorReader::numel(const std::string& name) const {
  return info(name).numel;
}
bool VectorReader::is_sparse(const std::string& name) const {
  return info(name).sparse >= 0;
}

DType VectorReader::dtype(const std::string& name) const {
  return is_sparse(name) ? DType::F32 : set_->find(name)->dtype;
}

uint64_t VectorReader::stored_bytes(const std::string& name) const {
  const Info& i = info(name);
  if (i.sparse < 0) return set_->find(name)->nbytes();
  return sparse_[i.sparse].idx.nbytes() + sparse_[i.sparse].val.nbytes();
}

std::optional<TensorView> VectorReader::dense_view(const std::string& name) const {
  if (is_sparse(name)) return std::nullopt;
  return set_->view(name);
}

void VectorReader::release(const std::string& name, uint64_t lo, uint64_t hi) const {
  const Info& inf = info(name);
  if (inf.sparse < 0) {
    detail::release(*set_, set_->view(name), lo, hi);
    return;
  }
  // The stored entries of [lo, hi): their index and value pages.
  const Sparse& s = sparse_[inf.sparse];
  const uint64_t a = sparse_lower_bound(s.idx, s.nnz, lo), b = sparse_lower_bound(s.idx, s.nnz, hi);
  if (b > a) {
    detail::release(*set_, s.idx, a, b);
    detail::release(*set_, s.val, a, b);
  }
}

void VectorReader::read_f32(const std::string& name, uint64_t lo, uint64_t hi, float* out) const {
  const Info& inf = info(name);
  if (lo > hi || hi > inf.numel)
    throw Error(path().string(), "tensor '" + name + "': read of [" + std::to_string(lo) + ", " +
                                     std::to_string(hi) + ") past its " +
                                     std::to_string(inf.numel) + " elements");
  if (inf.sparse < 0) {
    const TensorView v = set_->view(name);
    if (!is_float_dtype(v.dtype()))
      throw Error(path().string(), "tensor '" + name + "' has non-float dtype " +
                                       std::string(dtype_name(v.dtype())));
    load_f32(v, lo, hi, out);
    return;
  }
  const Sparse& s = sparse_[inf.sparse];
  std::fill(out, out + (hi - lo), 0.0f);
  for (uint64_t i = sparse_lower_bound(s.idx, s.nnz, lo); i < s.nnz; ++i) {
    const uint64_t at = sparse_index(s.idx, i);
    if (at >= hi) break;
    std::memcpy(out + (at - lo), s.val.data + 4 * i, 4);
  }
}

// ---- reasonvec sparsify ----------------------------------------------------

namespace {

Sparsification sparsify_method(const std::string& m) {
  if (m == "magnitude" || m == "ties") return Sparsification::kMagnitude;
  if (m == "dare") return Sparsification::kRandom;
  if (m == "della") return Sparsification::kRankMagnitude;
  if (m == "breadcrumbs") return Sparsification::kMagnitudeOutliers;
  throw Error("--method: unknown sparsification method '" + m +
              "' (dare, ties, magnitude, della, breadcrumbs)");
}

}  // namespace

bool sparsify_default_rescale(const std::string& method) {
  return method == "dare" || method == "della";
}

SparsifyResult sparsify(const fs::path& in, const fs::path& out, const SparsifyOptions& opt,
                        const Log& log) {
  const Sparsification m = sparsify_method(opt.method);
  validate_sparsify(m, opt.params, "sparsify");
  VectorReader R(in);
  for (const auto& n : R.names())
    if (!is_float_dtype(R.dtype(n)))
      throw Error(in.string(), "tensor '" + n + "' has non-float dtype " +
                                   std::string(dtype_name(R.dtype(n))) + "; not a vector");
  SparsifyResult r;
  const auto& names = R.names();
  uint64_t total = 0;
  for (const auto& n : names) total += R.numel(n);

  // Pass 1, one tensor per worker (selection and ranking are sequential
  // within a tensor, so tensors in parallel keep every core busy; memory:
  // one tensor per worker): sparsify, then append the tensor's stored form
  // (index/value lists or dense f32) to a payload file beside the output.
  // The safetensors header needs every stored size before the first byte,
  // and copying the payload is far cheaper than sparsifying twice.
  struct Piece {
    uint64_t offset = 0, idx_bytes = 0, val_bytes = 0, nnz = 0;
    bool sparse = false, wide = false;
  };
  std::vector<Piece> pieces(names.size());
  AtomicOutput output(out, AtomicOutput::Kind::kFile, opt.force);
  const fs::path payload_path = output.path().string() + ".payload";
  struct Remove {
    fs::path p;
    ~Remove() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } remove_payload{payload_path};
  FileWriter payload(payload_path);
  std::mutex mu;  // payload appends
  std::vector<size_t> order(names.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),  // largest first: balanced workers
                   [&](size_t a, size_t b) { return R.numel(names[a]) > R.numel(names[b]); });
  Progress prog("sparsify", total, Progress::Unit::kItems, "values");
  std::atomic<size_t> next{0};
  parallel_for(static_cast<size_t>(num_threads()), 1, [&](size_t, size_t) {
    std::vector<float> buf;
    std::vector<uint8_t> bytes;
    for (size_t t; (t = next.fetch_add(1)) < order.size();) {
      try {
        check_interrupted();
        const size_t i = order[t];
        const std::string& n = names[i];
        const uint64_t numel = R.numel(n);
        buf.resize(numel);
        R.read_f32(n, 0, numel, buf.data());
        R.release(n, 0, numel);
        sparsify_tensor(m, opt.params, R.shape(n), opt.seed, sparsify_stream(n, 0), buf.data());
        Piece& pc = pieces[i];
        for (uint64_t k = 0; k < numel; ++k) pc.nnz += !is_plus_zero(buf[k]);
        pc.wide = numel > (1ull << 32);
        const uint64_t isz = pc.wide ? 8 : 4;
        pc.sparse = opt.format == SparseFormat::kSparse ||
                    (opt.format == SparseFormat::kAuto && pc.nnz * (isz + 4) < numel * 4);
        if (pc.sparse) {
          pc.idx_bytes = pc.nnz * isz;
          pc.val_bytes = pc.nnz * 4;
          bytes.resize(pc.idx_bytes + pc.val_bytes);
          uint8_t* ip = bytes.data();
          uint8_t* vp = bytes.data() + pc.idx_bytes;
          for (uint64_t k = 0; k < numel; ++k) {
            if (is_plus_zero(buf[k])) continue;
            if (pc.wide) {
              const auto q = static_cast<int64_t>(k);
              std::memcpy(ip, &q, 8);
            } else {
              const auto u = static_cast<uint32_t>(k);
              std::memcpy(ip, &u, 4);
            }
            ip += isz;
            std::memcpy(vp, &buf[k], 4);
            vp += 4;
          }
        } else {
          pc.val_bytes = numel * 4;
          bytes.resize(pc.val_bytes);
          if (numel) std::memcpy(bytes.data(), buf.data(), numel * 4);
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          pc.offset = payload.offset();
          payload.write(bytes.data(), bytes.size());
        }
        prog.add(numel);
      } catch (...) {
        next.store(order.size());  // the others stop at their next tensor
        throw;
      }
    }
  });
  payload.close();
  prog.finish();

  std::vector<TensorSpec> specs;
  json sp = json::object();
  for (size_t i = 0; i < names.size(); ++i) {
    const Piece& pc = pieces[i];
    const uint64_t numel = R.numel(names[i]);
    if (pc.sparse) {
      const auto len = static_cast<int64_t>(pc.nnz);
      specs.push_back({names[i] + kIdxSuffix, pc.wide ? DType::I64 : DType::U32, {len}});
      specs.push_back({names[i] + kValSuffix, DType::F32, {len}});
      sp[names[i]] = R.shape(names[i]);
      ++r.sparse_tensors;
    } else {
      specs.push_back({names[i], DType::F32, R.shape(names[i])});
    }
    r.elements += numel;
    r.kept += pc.nnz;
    r.dense_bytes += numel * 4;
  }
  r.tensors = names.size();

  auto meta = R.metadata();
  meta.erase(kSparseKey);
  meta.erase("format");
  json params = {{"method", opt.method},
                 {"density", opt.params.density},
                 {"rescale", opt.params.rescale},
                 {"seed", opt.seed}};
  if (m == Sparsification::kRankMagnitude) params["epsilon"] = opt.params.epsilon;
  if (m == Sparsification::kMagnitudeOutliers) params["gamma"] = opt.params.gamma;
  meta["reasonvec.sparsify"] = params.dump();
  meta["reasonvec.sparsified_from"] = in.string();
  if (!opt.command_line.empty()) meta["reasonvec.command"] = opt.command_line;
  if (r.sparse_tensors) {
    meta[kSparseKey] = sp.dump();
    meta["reasonvec.kind"] = "sparse-vector";
  }

  // Pass 2: the payload, copied into place.
  SafetensorsWriter::Options wo;
  wo.shard_size = ~0ull;
  wo.metadata = meta;
  wo.single_name = output.path().filename().string();
  fs::path dir = output.path().parent_path();
  if (dir.empty()) dir = ".";
  SafetensorsWriter w(dir, specs, wo);
  {
    MappedFile pm(payload_path);
    size_t spec = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      const Piece& pc = pieces[i];
      const uint8_t* base = pm.data() + pc.offset;
      if (pc.sparse) {
        if (pc.idx_bytes) w.write(spec, 0, base, pc.idx_bytes);
        if (pc.val_bytes) w.write(spec + 1, 0, base + pc.idx_bytes, pc.val_bytes);
        spec += 2;
      } else {
        if (pc.val_bytes) w.write(spec, 0, base, pc.val_bytes);
        ++spec;
      }
    }
  }
  w.finish();
  r.bytes_written = fs::file_size(output.path());
  output.commit();
  if (r.kept == 0) log("warning: every entry was dropped (density too low for these tensors?)");
  return r;
}

}  // namespace rv::vec
