// Sparsification (TIES trim, DARE, DELLA, breadcrumbs), sign-elected
// merging, sparse vector files and apply's --partial policy. References are
// written here from the published definitions (TIES: Yadav et al. 2023;
// DARE: Yu et al. 2023; DELLA: Deep et al. 2024; breadcrumbs: Davari &
// Belilovsky 2023) with full sorts and plain loops; the random draws are
// recomputed from the formula documented in vector/sparsify.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "common/parallel.h"
#include "formats/dtype.h"
#include "formats/synth.h"
#include "support/st_checker.h"
#include "vector/mergekit.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace fs = std::filesystem;
using rv::vec::Sparsification;
using rv::vec::SparsifyParams;
using rvtest::CheckedFile;

namespace {

rv::vec::Log quiet() {
  return [](const std::string&) {};
}

// ---- references ------------------------------------------------------------

uint64_t ref_splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t ref_fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
uint64_t ref_stream(const std::string& name, size_t term) {
  return ref_fnv1a(name) + term * 0x9e3779b97f4a7c15ull;
}
double ref_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
  return double(ref_splitmix(seed ^ ref_splitmix(stream ^ ref_splitmix(i))) >> 11) /
         9007199254740992.0;
}

// Indices by |x| ascending; equal magnitudes keep index order (later ranks higher).
std::vector<size_t> ascending(const std::vector<float>& x) {
  std::vector<size_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](size_t a, size_t b) { return std::fabs(x[a]) < std::fabs(x[b]); });
  return idx;
}

// Keeps ascending ranks [lo, hi); rescale: × Σ|x| / Σ|kept| (TIES trim, breadcrumbs).
std::vector<float> ref_rank_range(const std::vector<float>& x, size_t lo, size_t hi, bool rescale) {
  auto idx = ascending(x);
  std::vector<float> out(x.size(), 0.0f);
  for (size_t r = lo; r < hi; ++r) out[idx[r]] = x[idx[r]];
  if (rescale) {
    double a = 0, b = 0;
    for (size_t i = 0; i < x.size(); ++i)
      a += std::fabs(double(x[i])), b += std::fabs(double(out[i]));
    if (a >= 1e-8 && b >= 1e-8)
      for (auto& v : out) v = v * float(a / b);
  }
  return out;
}

std::vector<float> ref_magnitude(const std::vector<float>& x, double density, bool rescale) {
  size_t k = size_t(density * double(x.size()));
  return ref_rank_range(x, x.size() - k, x.size(), rescale);
}

std::vector<float> ref_breadcrumbs(const std::vector<float>& x, double density, double gamma) {
  long n = long(x.size()), target = long(density * double(n)), top = long(gamma * double(n));
  long bot = n - target - top;
  if (bot < 0) top += bot, bot = 0;
  return ref_rank_range(x, size_t(bot), size_t(n - top), false);
}

std::vector<float> ref_dare(const std::vector<float>& x, double density, bool rescale,
                            uint64_t seed, uint64_t stream) {
  std::vector<float> out(x.size(), 0.0f);
  for (size_t i = 0; i < x.size(); ++i)
    if (ref_uniform(seed, stream, i) < density) out[i] = rescale ? x[i] / float(density) : x[i];
  return out;
}

// DELLA on a [rows, cols] tensor: rank within each row.
std::vector<float> ref_della(const std::vector<float>& x, size_t rows, size_t cols, double density,
                             double eps, bool rescale, uint64_t seed, uint64_t stream) {
  std::vector<float> out(x.size(), 0.0f);
  for (size_t r = 0; r < rows; ++r) {
    std::vector<float> row(x.begin() + r * cols, x.begin() + (r + 1) * cols);
    auto idx = ascending(row);
    for (size_t k = 0; k < cols; ++k) {
      size_t i = r * cols + idx[k];
      float p = float(density - eps) + (float(k) / float(cols - 1) * 2.0f) * float(eps);
      if (ref_uniform(seed, stream, i) < p) out[i] = rescale ? x[i] / p : x[i];
    }
  }
  return out;
}

// GTA merge (f32): TIES sign election by mass and disjoint mean, or a plain sum.
std::vector<float> ref_merge(const std::vector<std::vector<float>>& d, const std::vector<float>& w,
                             bool consensus, bool normalize) {
  std::vector<float> out(d[0].size());
  for (size_t i = 0; i < out.size(); ++i) {
    float s = 0, wsum = 0;
    for (size_t j = 0; j < d.size(); ++j) s += d[j][i] * w[j], wsum += w[j];
    float acc = 0, div = 0;
    for (size_t j = 0; j < d.size(); ++j) {
      float t = d[j][i] * w[j];
      if (consensus && !((s >= 0 && t > 0) || (s < 0 && t < 0))) continue;
      acc += t;
      div += w[j];
    }
    if (!consensus) div = std::fabs(wsum) < 1e-8f ? 1.0f : wsum;
    if (div == 0) div = 1;
    out[i] = normalize ? acc / div : acc;
  }
  return out;
}

// Distinct magnitudes (no ties), random signs, in random order.
std::vector<float> distinct_values(size_t n, uint64_t seed) {
  std::vector<float> x(n);
  std::vector<size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[ref_splitmix(seed + i) % i]);
  for (size_t i = 0; i < n; ++i)
    x[i] = float(perm[i] + 1) * 1e-3f * ((ref_splitmix(seed * 7 + i) & 1) ? -1.0f : 1.0f);
  return x;
}

std::vector<float> run(Sparsification m, SparsifyParams p, std::vector<int64_t> shape,
                       const std::vector<float>& x, uint64_t seed = 0, uint64_t stream = 0) {
  std::vector<float> y = x;
  rv::vec::sparsify_tensor(m, p, shape, seed, stream, y.data());
  return y;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b,
                      const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(bits(a[i]), bits(b[i])) << what << " at " << i;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

rv::SynthOptions small(int layers = 2) {
  rv::SynthOptions o;
  o.layers = layers;
  o.hidden = 32;
  o.heads = 4;
  o.kv_heads = 2;
  o.intermediate = 48;
  o.vocab = 64;
  o.dtype = rv::DType::F32;
  o.seed = 11;
  return o;
}

// sft, grpo (= sft + delta), a second tuned model and the vectors of both.
struct Models {
  std::string dir, sft, grpo, other, v, w;
};

Models make_models() {
  Models m;
  m.dir = rvtest::temp_dir("sparse");
  auto o = small();
  m.sft = m.dir + "/sft";
  rv::synth_model(o, m.sft, false);
  o.delta_scale = 0.002f;
  o.delta_seed = 1;
  m.grpo = m.dir + "/grpo";
  rv::synth_model(o, m.grpo, false);
  o.delta_seed = 2;
  m.other = m.dir + "/other";
  rv::synth_model(o, m.other, false);
  m.v = m.dir + "/v.safetensors";
  m.w = m.dir + "/w.safetensors";
  rv::vec::extract(m.sft, m.grpo, m.v, {}, quiet());
  rv::vec::extract(m.sft, m.other, m.w, {}, quiet());
  return m;
}

}  // namespace

// ---- single tensors ----------------------------------------------------------

TEST(Sparsify, MagnitudeTrimKeepsTheLargestExactly) {
  const auto x = distinct_values(37 * 53, 3);
  for (double d : {0.1, 0.5, 0.99})
    for (bool rescale : {false, true}) {
      auto got = run(Sparsification::kMagnitude, {d, 0, 0, rescale}, {37, 53}, x);
      expect_same_bits(got, ref_magnitude(x, d, rescale), "density " + std::to_string(d));
      size_t kept = std::count_if(got.begin(), got.end(), [](float v) { return v != 0; });
      EXPECT_EQ(kept, size_t(d * double(x.size())));
    }
  // density 1 leaves the tensor as it is (mergekit), rescale or not.
  expect_same_bits(run(Sparsification::kMagnitude, {1.0, 0, 0, true}, {37, 53}, x), x, "d=1");
}

TEST(Sparsify, MagnitudeTiesBreakByIndex) {
  std::vector<float> x = {0.5f, -0.5f, 0.5f, 0.1f, -0.5f, 0.2f};           // four equal magnitudes
  auto got = run(Sparsification::kMagnitude, {0.5, 0, 0, false}, {6}, x);  // k = 3
  expect_same_bits(got, ref_magnitude(x, 0.5, false), "ties");
  EXPECT_EQ(got, (std::vector<float>{0.0f, -0.5f, 0.5f, 0.0f, -0.5f, 0.0f}));
}

TEST(Sparsify, BreadcrumbsDropsOutliersAndSmallest) {
  const auto x = distinct_values(4000, 5);
  for (auto [d, g] : {std::pair{0.3, 0.01}, {0.3, 0.05}, {0.995, 0.01}, {0.2, 0.0}}) {
    auto got = run(Sparsification::kMagnitudeOutliers, {d, 0, g, false}, {40, 100}, x);
    expect_same_bits(got, ref_breadcrumbs(x, d, g), "breadcrumbs");
    size_t kept = std::count_if(got.begin(), got.end(), [](float v) { return v != 0; });
    EXPECT_EQ(kept, size_t(d * 4000.0));
  }
  // The largest entry is gone with gamma > 0 and kept with gamma = 0.
  size_t top = std::max_element(x.begin(), x.end(),
                                [](float a, float b) { return std::fabs(a) < std::fabs(b); }) -
               x.begin();
  EXPECT_EQ(run(Sparsification::kMagnitudeOutliers, {0.3, 0, 0.01, false}, {4000}, x)[top], 0.0f);
  EXPECT_EQ(run(Sparsification::kMagnitudeOutliers, {0.3, 0, 0.0, false}, {4000}, x)[top], x[top]);
}

TEST(Sparsify, DareMatchesDefinitionAndStatistics) {
  const size_t n = 200000;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = 1.0f + 0.5f * rv::synth_normal(9, 1, i);
  const uint64_t stream = ref_stream("t", 0);
  for (double d : {0.1, 0.5}) {
    auto got = run(Sparsification::kRandom, {d, 0, 0, true}, {int64_t(n)}, x, 42, stream);
    expect_same_bits(got, ref_dare(x, d, true, 42, stream), "dare");
    // Kept count: Binomial(n, d), within 5 standard deviations.
    double kept = double(std::count_if(got.begin(), got.end(), [](float v) { return v != 0; }));
    EXPECT_NEAR(kept, n * d, 5 * std::sqrt(n * d * (1 - d)));
    // Rescaled, the sum is unbiased: Var(Σ) = Σ x² (1 - d) / d.
    double s = 0, s0 = 0, var = 0;
    for (size_t i = 0; i < n; ++i)
      s += got[i], s0 += x[i], var += double(x[i]) * x[i] * (1 - d) / d;
    EXPECT_NEAR(s, s0, 5 * std::sqrt(var));
  }
  auto plain = run(Sparsification::kRandom, {0.3, 0, 0, false}, {int64_t(n)}, x, 42, stream);
  expect_same_bits(plain, ref_dare(x, 0.3, false, 42, stream), "dare, no rescale");
  auto other = run(Sparsification::kRandom, {0.3, 0, 0, false}, {int64_t(n)}, x, 43, stream);
  EXPECT_NE(plain, other);
}

TEST(Sparsify, RandomDropsDoNotDependOnThreadCount) {
  // DARE runs tile by tile (1 Mi elements), DELLA row by row: enough of each
  // to give every thread work.
  const size_t n = (2u << 20) + 17;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = rv::synth_normal(1, 2, i);
  const std::vector<float> rows(x.begin(), x.begin() + 64 * 1000);
  const int before = rv::num_threads();
  std::vector<std::vector<float>> outs;
  for (int t : {1, 2, 4}) {
    rv::set_num_threads(t);
    auto a = run(Sparsification::kRandom, {0.2, 0, 0, true}, {int64_t(n)}, x, 7, 99);
    auto b = run(Sparsification::kRankMagnitude, {0.2, 0.1, 0, true}, {64, 1000}, rows, 7, 99);
    a.insert(a.end(), b.begin(), b.end());
    outs.push_back(std::move(a));
  }
  rv::set_num_threads(before);
  expect_same_bits(outs[0], outs[1], "1 vs 2 threads");
  expect_same_bits(outs[0], outs[2], "1 vs 4 threads");
}

TEST(Sparsify, DellaMatchesDefinitionAndStatistics) {
  const size_t rows = 40, cols = 2500;
  std::vector<float> x(rows * cols);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f + 0.5f * rv::synth_normal(4, 4, i);
  const double d = 0.3, eps = 0.2;
  auto got = run(Sparsification::kRankMagnitude, {d, eps, 0, true}, {int64_t(rows), int64_t(cols)},
                 x, 5, 77);
  expect_same_bits(got, ref_della(x, rows, cols, d, eps, true, 5, 77), "della");
  auto plain = run(Sparsification::kRankMagnitude, {d, eps, 0, false},
                   {int64_t(rows), int64_t(cols)}, x, 5, 77);
  expect_same_bits(plain, ref_della(x, rows, cols, d, eps, false, 5, 77), "della, no rescale");
  // Keep probabilities average to density; larger magnitudes keep more often.
  double kept = 0, var = 0, s = 0, s0 = 0, svar = 0;
  size_t small_kept = 0, large_kept = 0, band = 0;
  for (size_t r = 0; r < rows; ++r) {
    std::vector<float> row(x.begin() + r * cols, x.begin() + (r + 1) * cols);
    auto idx = ascending(row);
    for (size_t k = 0; k < cols; ++k) {
      size_t i = r * cols + idx[k];
      double p = (d - eps) + 2 * eps * double(k) / double(cols - 1);
      var += p * (1 - p);
      svar += double(x[i]) * x[i] * (1 - p) / p;
      bool on = plain[i] != 0;
      kept += on;
      if (k < cols / 10) small_kept += on, ++band;
      if (k >= cols - cols / 10) large_kept += on;
    }
  }
  for (size_t i = 0; i < x.size(); ++i) s += got[i], s0 += x[i];
  EXPECT_NEAR(kept, d * x.size(), 5 * std::sqrt(var));
  EXPECT_NEAR(s, s0, 5 * std::sqrt(svar));  // rescaled by 1/p: unbiased
  // Bands of the 10 % smallest / largest: p ≈ d − 0.9ε and d + 0.9ε.
  EXPECT_NEAR(double(small_kept) / band, d - 0.9 * eps, 0.03);
  EXPECT_NEAR(double(large_kept) / band, d + 0.9 * eps, 0.03);
}

TEST(Sparsify, InvalidParametersAreRejected) {
  auto msg = [](Sparsification m, SparsifyParams p) {
    try {
      rv::vec::validate_sparsify(m, p, "x");
    } catch (const rv::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(
      msg(Sparsification::kMagnitude, {0.0, 0, 0, false}).find("density must be in (0, 1], got 0"),
      std::string::npos);
  EXPECT_NE(msg(Sparsification::kRandom, {1.5, 0, 0, false}).find("density"), std::string::npos);
  EXPECT_NE(msg(Sparsification::kMagnitudeOutliers, {0.5, 0, -0.1, false})
                .find("gamma must be in [0, 1]"),
            std::string::npos);
  EXPECT_NE(msg(Sparsification::kRankMagnitude, {0.5, 0.6, 0, false}).find("outside (0, 1)"),
            std::string::npos);
  EXPECT_NE(msg(Sparsification::kRankMagnitude, {0.5, -0.1, 0, false}).find("epsilon must be >= 0"),
            std::string::npos);
  EXPECT_NE(msg(Sparsification::kRandom, {NAN, 0, 0, false}).find("finite"), std::string::npos);
  EXPECT_EQ(msg(Sparsification::kRankMagnitude, {0.5, 0.4, 0, false}), "");
}

TEST(Merge, SignElectionByMassAndDisjointMean) {
  // Element 0: two small positives lose to one large negative (mass, not count).
  // Element 1: all agree. Element 2: zeros never vote or count.
  std::vector<std::vector<float>> d = {
      {0.1f, 1.0f, 0.0f}, {0.2f, 3.0f, 0.0f}, {-1.0f, 2.0f, -4.0f}};
  std::vector<float> w = {1.0f, 1.0f, 0.5f};
  std::vector<const float*> ptrs = {d[0].data(), d[1].data(), d[2].data()};
  std::vector<float> out(3);
  rv::vec::merge_deltas(rv::DType::F32, true, true, std::nullopt, ptrs, {3, 3, 3}, w, 3,
                        out.data());
  EXPECT_EQ(out[0], -0.5f / 0.5f);  // only the negative, divided by its weight
  EXPECT_EQ(out[1], (1.0f + 3.0f + 1.0f) / 2.5f);
  EXPECT_EQ(out[2], -2.0f / 0.5f);
  // Against the reference on random deltas, with and without consensus.
  std::vector<std::vector<float>> r(3, std::vector<float>(5000));
  for (size_t j = 0; j < 3; ++j)
    for (size_t i = 0; i < 5000; ++i) r[j][i] = (i % 7 == j) ? 0.0f : rv::synth_normal(j, 3, i);
  std::vector<float> wr = {0.7f, -0.4f, 1.3f};
  for (bool cons : {false, true})
    for (bool norm : {false, true}) {
      std::vector<float> got(5000);
      rv::vec::merge_deltas(rv::DType::F32, cons, norm, std::nullopt,
                            {r[0].data(), r[1].data(), r[2].data()}, {5000, 5000, 5000}, wr, 5000,
                            got.data());
      expect_same_bits(got, ref_merge(r, wr, cons, norm), "merge");
    }
}

// ---- files -------------------------------------------------------------------

TEST(SparseFile, RoundTripsAndReadsLikeTheDenseVector) {
  Models m = make_models();
  rv::vec::SparsifyOptions o;
  o.method = "dare";
  o.params.density = 0.1;
  o.params.rescale = true;
  o.seed = 3;
  const std::string sp = m.dir + "/sp.safetensors", dn = m.dir + "/dn.safetensors";
  auto rs = rv::vec::sparsify(m.v, sp, o, quiet());
  o.format = rv::vec::SparseFormat::kDense;
  auto rd = rv::vec::sparsify(m.v, dn, o, quiet());
  EXPECT_EQ(rs.kept, rd.kept);
  EXPECT_GT(rs.sparse_tensors, 0u);
  EXPECT_EQ(rd.sparse_tensors, 0u);
  EXPECT_LT(rs.bytes_written, rd.bytes_written / 3);
  EXPECT_EQ(rs.bytes_written, fs::file_size(sp));
  EXPECT_NEAR(double(rs.kept) / rs.elements, 0.1, 0.01);

  // A valid safetensors file, checked by the independent reader.
  CheckedFile cs = rvtest::read_safetensors_checked(sp), cd = rvtest::read_safetensors_checked(dn);
  EXPECT_EQ(cs.metadata["reasonvec.kind"], "sparse-vector");
  auto shapes = nlohmann::json::parse(cs.metadata["reasonvec.sparse"]);
  // Expand the pairs by hand and compare with the dense file.
  for (auto& [name, t] : cd.tensors) {
    auto dense = t.as_f32();
    if (!shapes.contains(name)) {
      expect_same_bits(cs.tensors.at(name).as_f32(), dense, name);
      continue;
    }
    EXPECT_EQ(shapes[name].get<std::vector<int64_t>>(), t.shape);
    const auto& idx = cs.tensors.at(name + ".__sparse_idx");
    auto val = cs.tensors.at(name + ".__sparse_val").as_f32();
    ASSERT_EQ(idx.dtype, "U32");
    std::vector<float> expanded(dense.size(), 0.0f);
    for (size_t k = 0; k < val.size(); ++k) {
      uint32_t at;
      std::memcpy(&at, idx.bytes.data() + 4 * k, 4);
      if (k) {
        uint32_t prev;
        std::memcpy(&prev, idx.bytes.data() + 4 * (k - 1), 4);
        ASSERT_LT(prev, at);
      }
      expanded.at(at) = val[k];
    }
    expect_same_bits(expanded, dense, name);
  }
  // VectorReader: same names, shapes and values for any range.
  rv::vec::VectorReader a(sp), b(dn);
  EXPECT_TRUE(a.sparse());
  EXPECT_TRUE(rv::vec::is_sparse_vector(a.tensors()));
  EXPECT_FALSE(b.sparse());
  ASSERT_EQ(a.names(), b.names());
  for (const auto& n : a.names()) {
    ASSERT_EQ(a.shape(n), b.shape(n));
    const uint64_t len = a.numel(n);
    for (auto [lo, hi] :
         {std::pair<uint64_t, uint64_t>{0, len}, {len / 3, len / 2}, {len - 1, len}}) {
      std::vector<float> x(hi - lo), y(hi - lo);
      a.read_f32(n, lo, hi, x.data());
      b.read_f32(n, lo, hi, y.data());
      expect_same_bits(x, y, n);
    }
  }
  // inspect / compare / check see the dense vector.
  EXPECT_EQ(rv::vec::inspect(sp, "").to_json()["tensors"],
            rv::vec::inspect(dn, "").to_json()["tensors"]);
  auto c = rv::vec::compare(sp, dn);
  EXPECT_NEAR(c.total.cosine(), 1.0, 1e-12);
  EXPECT_EQ(c.total.a_sq, c.total.b_sq);
  EXPECT_EQ(c.tensors.size(), a.names().size());
  auto k1 = rv::vec::check(m.sft, sp, {}), k2 = rv::vec::check(m.sft, dn, {});
  EXPECT_EQ(k1.matched, k2.matched);
  EXPECT_EQ(k1.verdict, rv::vec::CheckResult::Verdict::kCompatible);
}

TEST(SparseFile, RandomControlOfASparseVectorIsTheDenseOnes) {
  Models m = make_models();
  rv::vec::SparsifyOptions o;
  o.params.density = 0.2;
  rv::vec::sparsify(m.v, m.dir + "/sp.safetensors", o, quiet());
  o.format = rv::vec::SparseFormat::kDense;
  rv::vec::sparsify(m.v, m.dir + "/dn.safetensors", o, quiet());
  rv::vec::random_like(m.dir + "/sp.safetensors", 4, m.dir + "/rs.safetensors");
  rv::vec::random_like(m.dir + "/dn.safetensors", 4, m.dir + "/rd.safetensors");
  CheckedFile a = rvtest::read_safetensors_checked(m.dir + "/rs.safetensors"),
              b = rvtest::read_safetensors_checked(m.dir + "/rd.safetensors");
  EXPECT_EQ(a.metadata.count("reasonvec.sparse"), 0u);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (auto& [name, t] : b.tensors) EXPECT_TRUE(a.tensors.at(name).bytes == t.bytes) << name;
}

TEST(SparseFile, MalformedEncodingsAreRejected) {
  Models m = make_models();
  rv::vec::SparsifyOptions o;
  o.params.density = 0.1;
  o.format = rv::vec::SparseFormat::kSparse;
  const std::string sp = m.dir + "/sp.safetensors";
  rv::vec::sparsify(m.v, sp, o, quiet());
  // Swap two indices in place: no longer ascending.
  std::string bytes = slurp(sp);
  CheckedFile cs = rvtest::read_safetensors_checked(sp);
  const auto& idx = cs.tensors.at("model.norm.weight.__sparse_idx").bytes;
  ASSERT_GE(idx.size(), 8u);
  size_t at = bytes.find(idx);
  ASSERT_NE(at, std::string::npos);
  std::string swapped = idx;
  std::swap_ranges(swapped.begin(), swapped.begin() + 4, swapped.begin() + 4);
  bytes.replace(at, idx.size(), swapped);
  std::ofstream(m.dir + "/bad.safetensors", std::ios::binary) << bytes;
  try {
    rv::vec::VectorReader r(m.dir + "/bad.safetensors");
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight': index"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("not ascending"), std::string::npos) << e.what();
  }
}

TEST(ApplyMethod, TiesOnOneVectorIsTrimmedVectorTimesAlpha) {
  Models m = make_models();
  rv::vec::ApplyOptions o;
  o.method = "ties";
  o.density = 0.2;
  rv::vec::apply(m.sft, {{m.v, 0.75}}, m.dir + "/out", o, quiet());
  CheckedFile t = rvtest::read_model_checked(m.sft), v = rvtest::read_model_checked(m.v),
              out = rvtest::read_model_checked(m.dir + "/out");
  for (auto& [name, tv] : out.tensors) {
    auto x = t.tensors[name].as_f32(), d = ref_magnitude(v.tensors[name].as_f32(), 0.2, false);
    auto got = tv.as_f32();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(bits(got[i]), bits(x[i] + d[i] * 0.75f)) << name << i;
  }
}

TEST(ApplyMethod, DellaLinearScalesByLambda) {
  Models m = make_models();
  rv::vec::ApplyOptions o;
  o.method = "della_linear";
  o.density = 0.4;
  o.epsilon = 0.1;
  o.lambda = 0.5;
  o.seed = 2;
  rv::vec::apply(m.sft, {{m.v, 1.5}}, m.dir + "/out", o, quiet());
  CheckedFile t = rvtest::read_model_checked(m.sft), v = rvtest::read_model_checked(m.v),
              out = rvtest::read_model_checked(m.dir + "/out");
  for (auto& [name, tv] : out.tensors) {
    const auto& shape = v.tensors[name].shape;
    const size_t rows = shape.size() == 2 ? size_t(shape[0]) : 1;
    const size_t cols = shape.size() == 2 ? size_t(shape[1]) : size_t(shape[0]);
    auto x = t.tensors[name].as_f32();
    auto d =
        ref_della(v.tensors[name].as_f32(), rows, cols, 0.4, 0.1, true, 2, ref_stream(name, 0));
    auto got = tv.as_f32();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(bits(got[i]), bits(x[i] + (0.0f + d[i] * 1.5f) * 0.5f)) << name << i;
  }
}

TEST(ApplyMethod, TwoVectorsDareTiesAgainstReference) {
  Models m = make_models();
  rv::vec::ApplyOptions o;
  o.method = "dare_ties";
  o.density = 0.4;
  o.seed = 9;
  o.normalize = true;
  rv::vec::apply(m.sft, {{m.v, 1.0}, {m.w, 0.5}}, m.dir + "/out", o, quiet());
  CheckedFile t = rvtest::read_model_checked(m.sft), v = rvtest::read_model_checked(m.v),
              w = rvtest::read_model_checked(m.w), out = rvtest::read_model_checked(m.dir + "/out");
  for (auto& [name, tv] : out.tensors) {
    auto x = t.tensors[name].as_f32();
    std::vector<std::vector<float>> d = {
        ref_dare(v.tensors[name].as_f32(), 0.4, true, 9, ref_stream(name, 0)),
        ref_dare(w.tensors[name].as_f32(), 0.4, true, 9, ref_stream(name, 1))};
    auto mixed = ref_merge(d, {1.0f, 0.5f}, true, true);
    auto got = tv.as_f32();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(bits(got[i]), bits(x[i] + mixed[i])) << name << i;
  }
}

TEST(ApplyMethod, SparseAndDenseFilesAndMethodGiveIdenticalBytes) {
  Models m = make_models();
  rv::vec::SparsifyOptions so;
  so.method = "dare";
  so.params.density = 0.25;
  so.params.rescale = true;
  so.seed = 5;
  rv::vec::sparsify(m.v, m.dir + "/sp.safetensors", so, quiet());
  so.format = rv::vec::SparseFormat::kDense;
  rv::vec::sparsify(m.v, m.dir + "/dn.safetensors", so, quiet());
  rv::vec::apply(m.sft, {{m.dir + "/sp.safetensors", 0.8}}, m.dir + "/a", {}, quiet());
  rv::vec::apply(m.sft, {{m.dir + "/dn.safetensors", 0.8}}, m.dir + "/b", {}, quiet());
  rv::vec::ApplyOptions o;
  o.method = "dare_linear";
  o.density = 0.25;
  o.seed = 5;
  rv::vec::apply(m.sft, {{m.v, 0.8}}, m.dir + "/c", o, quiet());
  // Identical weights (the metadata names the vector file, so whole files differ).
  CheckedFile ca = rvtest::read_model_checked(m.dir + "/a"),
              cb = rvtest::read_model_checked(m.dir + "/b"),
              cc = rvtest::read_model_checked(m.dir + "/c");
  ASSERT_EQ(ca.tensors.size(), cb.tensors.size());
  for (auto& [name, t] : ca.tensors) {
    EXPECT_TRUE(t.bytes == cb.tensors[name].bytes) << "sparse vs dense file: " << name;
    EXPECT_TRUE(t.bytes == cc.tensors[name].bytes) << "sparsify+linear vs dare_linear: " << name;
  }
  // linear on the original vector still gives exactly θ + α·v.
  rv::vec::apply(m.sft, {{m.v, 0.8}}, m.dir + "/lin", {}, quiet());
  CheckedFile t = rvtest::read_model_checked(m.sft), v = rvtest::read_model_checked(m.v),
              lin = rvtest::read_model_checked(m.dir + "/lin");
  for (auto& [name, tv] : lin.tensors) {
    auto x = t.tensors[name].as_f32(), d = v.tensors[name].as_f32(), got = tv.as_f32();
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(bits(got[i]), bits(x[i] + 0.8f * d[i]));
  }
}

TEST(ApplyMethod, BadParametersFailBeforeAnyOutput) {
  Models m = make_models();
  auto fails = [&](rv::vec::ApplyOptions o, const std::string& want) {
    try {
      rv::vec::apply(m.sft, {{m.v, 1.0}}, m.dir + "/out", o, quiet());
      ADD_FAILURE() << "no error for " << want;
    } catch (const rv::Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    EXPECT_FALSE(fs::exists(m.dir + "/out"));
  };
  rv::vec::ApplyOptions o;
  o.method = "tiez";
  fails(o, "unknown merge method 'tiez'");
  o.method = "ties";
  o.density = 0;
  fails(o, "density must be in (0, 1], got 0");
  o.density = 1.2;
  fails(o, "density must be in (0, 1], got 1.2");
  o.method = "breadcrumbs";
  o.density = 0.5;
  o.gamma = -0.1;
  fails(o, "gamma must be in [0, 1]");
  o.method = "della";
  o.gamma = 0.01;
  o.epsilon = 0.6;
  fails(o, "keep probabilities outside (0, 1)");
}

TEST(ApplyPartial, LayerCountMismatchIsRefusedUnlessPartial) {
  Models m = make_models();
  const std::string target = m.dir + "/three";
  rv::synth_model(small(3), target, false);
  try {
    rv::vec::apply(target, {{m.v, 1.0}}, m.dir + "/out", {}, quiet());
    FAIL();
  } catch (const rv::Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("num_hidden_layers 2 in the vector's source, 3 in the target"),
              std::string::npos)
        << w;
    EXPECT_NE(w.find("target weights are not in the vector (model.layers.2."), std::string::npos)
        << w;
    EXPECT_NE(w.find("--partial"), std::string::npos) << w;
  }
  EXPECT_FALSE(fs::exists(m.dir + "/out"));
  rv::vec::ApplyOptions o;
  o.partial = true;
  auto r = rv::vec::apply(target, {{m.v, 1.0}}, m.dir + "/out", o, quiet());
  CheckedFile t = rvtest::read_model_checked(target),
              out = rvtest::read_model_checked(m.dir + "/out");
  size_t layer2 = 0;
  for (auto& [name, tv] : t.tensors)
    if (name.find("model.layers.2.") == 0) {
      ++layer2;
      EXPECT_EQ(out.tensors[name].bytes, tv.bytes) << name;
      EXPECT_NE(std::find(r.unchanged.begin(), r.unchanged.end(), name), r.unchanged.end()) << name;
    }
  EXPECT_GT(layer2, 0u);
  EXPECT_EQ(r.unchanged.size(), layer2);
  const std::string card = slurp(m.dir + "/out/README.md");
  EXPECT_NE(card.find("Tensors left unchanged"), std::string::npos);
  for (const auto& n : r.unchanged) EXPECT_NE(card.find("`" + n + "`"), std::string::npos) << n;
  // A vector restricted to part of the model is refused too.
  rv::vec::ExtractOptions eo;
  eo.include = "layers\\.0\\.";
  rv::vec::extract(m.sft, m.grpo, m.dir + "/part.safetensors", eo, quiet());
  EXPECT_THROW(
      rv::vec::apply(m.sft, {{m.dir + "/part.safetensors", 1.0}}, m.dir + "/out2", {}, quiet()),
      rv::Error);
  EXPECT_FALSE(fs::exists(m.dir + "/out2"));
}

TEST(MergekitMethods, TiesAndDareTiesWithTwoModels) {
  Models m = make_models();
  auto write = [](const std::string& p, const std::string& s) { std::ofstream(p) << s; };
  CheckedFile base = rvtest::read_model_checked(m.sft), a = rvtest::read_model_checked(m.grpo),
              b = rvtest::read_model_checked(m.other);
  // ties: trim to density 0.3 (per-model density filter on self_attn for b),
  // sign election, normalize (mergekit default true for ties).
  write(m.dir + "/ties.yml",
        "merge_method: ties\nbase_model: sft\nmodels:\n"
        "  - model: grpo\n    parameters:\n      weight: 1.0\n      density: 0.3\n"
        "  - model: other\n    parameters:\n      weight: 0.6\n      density:\n"
        "        - filter: self_attn\n          value: 0.5\n        - value: 0.3\n"
        "dtype: float32\n");
  rv::vec::run_mergekit(m.dir + "/ties.yml", m.dir + "/ties", {}, quiet());
  CheckedFile out = rvtest::read_model_checked(m.dir + "/ties");
  for (auto& [name, t] : out.tensors) {
    auto x0 = base.tensors[name].as_f32(), x1 = a.tensors[name].as_f32(),
         x2 = b.tensors[name].as_f32();
    std::vector<float> d1(x0.size()), d2(x0.size());
    for (size_t i = 0; i < x0.size(); ++i) d1[i] = x1[i] - x0[i], d2[i] = x2[i] - x0[i];
    const double db = name.find("self_attn") != std::string::npos ? 0.5 : 0.3;
    auto mixed = ref_merge({ref_magnitude(d1, 0.3, false), ref_magnitude(d2, db, false)},
                           {1.0f, 0.6f}, true, true);
    auto got = t.as_f32();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(bits(got[i]), bits(x0[i] + mixed[i])) << name << i;
  }
  // dare_ties: random drops with rescale (default), no normalize (default), seed from options.
  write(m.dir + "/dare.yml",
        "merge_method: dare_ties\nbase_model: sft\nparameters:\n  density: 0.5\nmodels:\n"
        "  - model: sft\n"
        "  - model: grpo\n    parameters:\n      weight: 0.7\n"
        "  - model: other\n    parameters:\n      weight: 0.4\n"
        "dtype: float32\n");
  rv::vec::MergekitOptions mo;
  mo.seed = 12;
  rv::vec::run_mergekit(m.dir + "/dare.yml", m.dir + "/dare", mo, quiet());
  out = rvtest::read_model_checked(m.dir + "/dare");
  for (auto& [name, t] : out.tensors) {
    auto x0 = base.tensors[name].as_f32(), x1 = a.tensors[name].as_f32(),
         x2 = b.tensors[name].as_f32();
    std::vector<float> d1(x0.size()), d2(x0.size());
    for (size_t i = 0; i < x0.size(); ++i) d1[i] = x1[i] - x0[i], d2[i] = x2[i] - x0[i];
    auto mixed = ref_merge({ref_dare(d1, 0.5, true, 12, ref_stream(name, 0)),
                            ref_dare(d2, 0.5, true, 12, ref_stream(name, 1))},
                           {0.7f, 0.4f}, true, false);
    auto got = t.as_f32();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(bits(got[i]), bits(x0[i] + mixed[i])) << name << i;
  }
  // Invalid parameters name the model and tensor before any output.
  write(m.dir + "/bad.yml",
        "merge_method: della\nbase_model: sft\nmodels:\n"
        "  - model: grpo\n    parameters:\n      weight: 1\n      density: 0.5\n      epsilon: "
        "0.7\n");
  try {
    rv::vec::run_mergekit(m.dir + "/bad.yml", m.dir + "/bad", {}, quiet());
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("keep probabilities outside (0, 1)"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(m.dir + "/bad"));
}
