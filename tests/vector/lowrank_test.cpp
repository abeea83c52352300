// vec::truncated_svd / lowrank / spectrum against independent computations:
// vectors of known rank built here as B·A, Eigen's JacobiSVD in double as the
// exact reference, and a reader of PEFT's documented adapter layout
// (adapter_config.json keys, base_model.model.<module>.lora_A/B.weight names
// and shapes, scaling lora_alpha / r with rank_pattern / alpha_pattern).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <Eigen/SVD>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "common/error.h"
#include "formats/model_dir.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "support/llamacpp_oracle.h"
#include "support/temp_dir.h"
#include "vector/lowrank.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Eigen::MatrixXd;
using rv_test::TmpDir;

namespace {

constexpr double kU = 1.0 / (1 << 24);  // f32 unit roundoff

// Gaussian matrix from the synth stream (independent of the code under test's sketch).
MatrixXd gauss(int64_t r, int64_t c, uint64_t seed, uint64_t stream) {
  MatrixXd m(r, c);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) m(i, j) = rv::synth_normal(seed, stream, i * c + j);
  return m;
}

std::vector<float> to_f32_rowmajor(const MatrixXd& m) {
  std::vector<float> v(m.size());
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) v[i * m.cols() + j] = static_cast<float>(m(i, j));
  return v;
}

MatrixXd from_f32(const float* p, int64_t r, int64_t c) {
  MatrixXd m(r, c);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) m(i, j) = p[i * c + j];
  return m;
}

MatrixXd read_tensor(const rv::TensorSet& ts, const std::string& n) {
  const rv::TensorView v = ts.view(n);
  std::vector<float> x(v.numel());
  rv::to_f32(v.dtype(), v.data, x.data(), x.size());
  const auto& s = v.shape();
  return s.size() == 2 ? from_f32(x.data(), s[0], s[1]) : from_f32(x.data(), 1, s[0]);
}

// A tiny Qwen2 model (f32) and a vector over its tensors: each projection an
// exactly rank-`rank_of(name)` product B·A (rounded once to f32), everything
// else (norms, biases, embeddings, lm_head) small Gaussian noise.
struct Fixture {
  TmpDir tmp{"lowrank"};
  fs::path model, vec;
  std::map<std::string, int> true_rank;
  Fixture(const std::function<int(const std::string&)>& rank_of, const std::string& arch_meta,
          bool projections = true) {
    rv::SynthOptions so;
    so.layers = 2;
    so.hidden = 64;
    so.heads = 4;
    so.kv_heads = 2;
    so.intermediate = 96;
    so.vocab = 50;
    so.dtype = rv::DType::F32;
    model = tmp.p / "model";
    rv::synth_model(so, model, false);
    rv::TensorSet ts(model);
    std::vector<rv::TensorSpec> specs;
    std::vector<std::vector<float>> data;
    uint64_t k = 0;
    for (const auto& n : ts.names()) {
      const auto& shape = ts.find(n)->shape;
      const bool proj = !rv::vec::lora_module(n, shape).empty();
      if (proj && !projections) continue;
      specs.push_back({n, rv::DType::F32, shape});
      ++k;
      if (proj) {
        const int r = rank_of(n);
        true_rank[n] = r;
        MatrixXd B = gauss(shape[0], r, 5, 2 * k), A = gauss(r, shape[1], 5, 2 * k + 1);
        for (int i = 0; i < r; ++i) B.col(i) *= std::pow(0.5, i) * 0.01;  // distinct σ
        data.push_back(to_f32_rowmajor(B * A));
      } else {
        MatrixXd m = gauss(1, ts.find(n)->numel(), 6, k) * 0.001;
        data.push_back(to_f32_rowmajor(m));
      }
    }
    vec = tmp.p / "v.safetensors";
    rv::SafetensorsWriter::Options wo;
    wo.single_name = "v.safetensors";
    wo.metadata["reasonvec.architecture"] = arch_meta;
    wo.metadata["reasonvec.base"] = "org/base-model";
    rv::SafetensorsWriter w(tmp.p, specs, wo);
    for (size_t i = 0; i < specs.size(); ++i) w.write(i, 0, data[i].data(), data[i].size() * 4);
    w.finish();
  }
};

// What PEFT does with an adapter directory, from its documented layout.
struct PeftReader {
  json cfg;
  std::unique_ptr<rv::TensorSet> ts;
  explicit PeftReader(const fs::path& dir) {
    cfg = json::parse(std::ifstream(dir / "adapter_config.json"));
    ts = std::make_unique<rv::TensorSet>(dir / "adapter_model.safetensors");
  }
  // PEFT's pattern look-up (peft.tuners.tuners_utils.get_pattern_key):
  // the first key k with re.match(rf"(.*\.)?({k})$", module).
  static std::string pattern_key(const json& pats, const std::string& module) {
    for (auto it = pats.begin(); it != pats.end(); ++it)
      if (std::regex_match(module, std::regex("(.*\\.)?(" + it.key() + ")"))) return it.key();
    return "";
  }
  // scaling · B · A for a base-model module ("model.layers.0.self_attn.q_proj").
  MatrixXd delta(const std::string& module, int* rank_out) const {
    const std::string p = "base_model.model." + module;
    const MatrixXd A = read_tensor(*ts, p + ".lora_A.weight");
    const MatrixXd B = read_tensor(*ts, p + ".lora_B.weight");
    const json rp = cfg["rank_pattern"], ap = cfg["alpha_pattern"];
    std::string key = pattern_key(rp, module);
    if (key.empty()) key = pattern_key(ap, module);
    const double r = rp.contains(key) ? rp[key].get<double>() : cfg["r"].get<double>();
    const double alpha = ap.contains(key) ? ap[key].get<double>() : cfg["lora_alpha"].get<double>();
    EXPECT_EQ(A.rows(), static_cast<int64_t>(r)) << module;
    EXPECT_EQ(B.cols(), static_cast<int64_t>(r)) << module;
    *rank_out = static_cast<int>(r);
    return (alpha / r) * B * A;
  }
};

std::string module_of(const std::string& n) {
  return n.substr(0, n.rfind('.'));
}

}  // namespace

// An exactly rank-r f32 matrix comes back to f32 rounding. Bound: the input
// is X rounded to f32 (‖v − X‖ ≤ u‖v‖), the double SVD adds ~1e-15, and
// rounding A = √σVᵀ and B = U√σ to f32 adds ≤ 2u·‖B‖_F‖A‖_F = 2u·Σσ ≤ 2u√r‖v‖:
// relative Frobenius error ≤ (1 + 2√r)·u, checked with a factor 1.5 slack.
TEST(TruncatedSvd, ExactRankReconstructsToF32RoundingBothMethods) {
  for (bool randomized : {false, true}) {
    SCOPED_TRACE(randomized ? "randomized" : "exact");
    const bool san = rv_test::sanitizer_run();  // smaller matrices, same checks
    const int64_t m = san ? 120 : 300, n = san ? 100 : 280;
    const int r = 6;
    const std::vector<float> M = to_f32_rowmajor(gauss(m, r, 1, 1) * gauss(r, n, 1, 2));
    rv::vec::SvdOptions o;
    o.force_randomized = randomized;
    o.force_exact = !randomized;
    const rv::vec::Factors f = rv::vec::truncated_svd(M.data(), m, n, r, 0, o);
    ASSERT_EQ(f.rank, r);
    EXPECT_EQ(f.randomized, randomized);
    ASSERT_EQ(f.A.size(), static_cast<size_t>(r * n));
    ASSERT_EQ(f.B.size(), static_cast<size_t>(m * r));
    const MatrixXd Md = from_f32(M.data(), m, n);
    const MatrixXd R = from_f32(f.B.data(), m, r) * from_f32(f.A.data(), r, n);
    const double rel = (Md - R).norm() / Md.norm();
    EXPECT_LT(rel, 1.5 * (1 + 2 * std::sqrt(r)) * kU);
    EXPECT_GT(rel, 0.0);  // f32 factors are not exact: the bound is what is tested
  }
}

// Randomized SVD (p = 10, q = 2) on low-rank-plus-noise: its top singular
// values within 1e-6 (relative) of a double JacobiSVD, and its rank-k error
// within 0.1 % of the optimal ‖M − M_k‖ (Eckart–Young: √Σ_{i>k} σ_i²).
TEST(TruncatedSvd, RandomizedMatchesJacobiOnLowRankPlusNoise) {
  const bool san = rv_test::sanitizer_run();  // smaller matrices, same checks
  const int64_t m = san ? 160 : 400, n = san ? 120 : 300;
  const int k = 12;
  MatrixXd B = gauss(m, k, 2, 1);
  for (int i = 0; i < k; ++i) B.col(i) *= 1.0 / (1 + i);
  const MatrixXd X = B * gauss(k, n, 2, 2) + 1e-3 * gauss(m, n, 2, 3);
  const std::vector<float> M = to_f32_rowmajor(X);
  const MatrixXd Md = from_f32(M.data(), m, n);
  Eigen::JacobiSVD<MatrixXd> ref(Md);
  const auto& s = ref.singularValues();
  rv::vec::SvdOptions o;
  o.force_randomized = san;  // else chosen because min(m, n) > kExactSvdMaxDim
  const rv::vec::Factors f = rv::vec::truncated_svd(M.data(), m, n, k, 0, o);
  ASSERT_TRUE(f.randomized);
  ASSERT_GE(f.sigma.size(), static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) EXPECT_NEAR(f.sigma[i], s[i], 1e-6 * s[i]) << i;
  double opt = 0;
  for (int i = k; i < s.size(); ++i) opt += s[i] * s[i];
  const MatrixXd R = from_f32(f.B.data(), m, k) * from_f32(f.A.data(), k, n);
  EXPECT_LT((Md - R).norm(), 1.001 * std::sqrt(opt));
}

// --energy F: the smallest r with Σ_{i<r} σ_i² >= F·‖M‖², on a matrix built
// with known singular values (orthonormal U, V from QR).
TEST(TruncatedSvd, EnergyPicksTheSmallestSufficientRank) {
  const bool san = rv_test::sanitizer_run();  // smaller matrices, same checks
  const int64_t m = san ? 120 : 300, n = san ? 100 : 270;
  Eigen::HouseholderQR<MatrixXd> qu(gauss(m, n, 3, 1)), qv(gauss(n, n, 3, 2));
  const MatrixXd U = qu.householderQ() * MatrixXd::Identity(m, n);
  const MatrixXd V = qv.householderQ() * MatrixXd::Identity(n, n);
  Eigen::VectorXd sig(n);
  for (int i = 0; i < n; ++i) sig[i] = std::pow(0.8, i);
  const std::vector<float> M = to_f32_rowmajor(U * sig.asDiagonal() * V.transpose());
  const MatrixXd Md = from_f32(M.data(), m, n);
  const double total = Md.squaredNorm();
  for (double F : {0.3, 0.9, 0.99, 0.9999}) {
    // Expected from the designed σ (gaps between cumulative shares are far
    // above the f32 perturbation of the stored matrix).
    int want = 0;
    double cum = 0;
    while (cum < F * total) cum += sig[want] * sig[want], ++want;
    for (bool randomized : {false, true}) {
      SCOPED_TRACE("F=" + std::to_string(F) + (randomized ? " randomized" : " exact"));
      rv::vec::SvdOptions o;
      o.force_exact = !randomized;
      o.force_randomized = randomized;
      const rv::vec::Factors f = rv::vec::truncated_svd(M.data(), m, n, 0, F, o);
      EXPECT_EQ(f.rank, want);
      EXPECT_EQ(f.randomized, randomized);
      EXPECT_EQ(static_cast<int>(f.A.size()), want * n);
    }
  }
  EXPECT_THROW(rv::vec::truncated_svd(M.data(), m, n, 0, 1.5, {}), rv::Error);
  EXPECT_THROW(rv::vec::truncated_svd(M.data(), m, n, n + 1, 0, {}), rv::Error);
  EXPECT_THROW(rv::vec::truncated_svd(M.data(), m, n, 3, 0.5, {}), rv::Error);
}

// lowrank --rank r on a vector of exact rank r: PEFT's reading of the adapter
// (scaling · B · A) reproduces every projection to f32 rounding; the report's
// numbers match ones recomputed here.
TEST(Lowrank, FixedRankAdapterReproducesVectorUnderPeftReading) {
  const int r = 4;
  Fixture fx([&](const std::string&) { return r; }, "Qwen2ForCausalLM");
  const fs::path out = fx.tmp.p / "adapter";
  rv::vec::LowrankOptions o;
  o.rank = r;
  std::vector<std::string> logs;
  auto res = rv::vec::lowrank(fx.vec, out, o, [&](const std::string& m) { logs.push_back(m); });

  PeftReader pr(out);
  EXPECT_EQ(pr.cfg["peft_type"], "LORA");
  EXPECT_EQ(pr.cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(pr.cfg["r"], r);
  EXPECT_EQ(pr.cfg["lora_alpha"], r);
  EXPECT_EQ(pr.cfg["fan_in_fan_out"], false);
  EXPECT_EQ(pr.cfg["bias"], "none");
  EXPECT_EQ(pr.cfg["use_rslora"], false);
  EXPECT_EQ(pr.cfg["base_model_name_or_path"], "org/base-model");
  EXPECT_TRUE(pr.cfg["rank_pattern"].empty());
  EXPECT_TRUE(pr.cfg["modules_to_save"].is_null());
  EXPECT_EQ(pr.cfg["target_modules"],
            json({"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}));

  rv::TensorSet v(fx.vec);
  double lora_sq = 0, other_sq = 0;
  size_t n_proj = 0;
  for (const auto& n : v.names()) {
    const MatrixXd x = read_tensor(v, n);
    if (!fx.true_rank.count(n)) {
      other_sq += x.squaredNorm();
      continue;
    }
    ++n_proj;
    lora_sq += x.squaredNorm();
    int rank = 0;
    const MatrixXd d = pr.delta(module_of(n), &rank);
    ASSERT_EQ(d.rows(), x.rows()) << n;
    ASSERT_EQ(d.cols(), x.cols()) << n;
    EXPECT_LT((x - d).norm() / x.norm(), 1.5 * (1 + 2 * std::sqrt(r)) * kU) << n;
  }
  EXPECT_EQ(n_proj, 14u);
  EXPECT_EQ(pr.ts->names().size(), 2 * n_proj);  // nothing else without --modules-to-save

  ASSERT_EQ(res.tensors.size(), n_proj);
  for (const auto& t : res.tensors) {
    EXPECT_EQ(t.rank, r);
    EXPECT_NEAR(t.energy, 1.0, 1e-12) << t.name;
    EXPECT_LT(t.rel_error, 1.5 * (1 + 2 * std::sqrt(r)) * kU) << t.name;
  }
  EXPECT_NEAR(res.unrepresentable_share, other_sq / (lora_sq + other_sq), 1e-12);
  EXPECT_NEAR(res.energy_captured, lora_sq / (lora_sq + other_sq), 1e-9);
  EXPECT_EQ(res.unrepresentable.size(), v.names().size() - n_proj);
  EXPECT_FALSE(logs.empty());  // the unrepresentable share is reported
  const json rep = json::parse(std::ifstream(out / "lowrank_report.json"));
  EXPECT_EQ(rep["tensors"].size(), n_proj);
  EXPECT_NEAR(rep["unrepresentable_share"].get<double>(), res.unrepresentable_share, 1e-15);
}

// --energy on a vector whose projections have different exact ranks: each
// rank is recovered, and rank_pattern / alpha_pattern make PEFT's scaling 1.
TEST(Lowrank, EnergyRecoversPerTensorRanksThroughRankPattern) {
  auto rank_of = [](const std::string& n) {
    if (n.find("q_proj") != std::string::npos) return 3;
    if (n.find("k_proj") != std::string::npos) return 2;
    if (n.find("layers.1.mlp") != std::string::npos) return 7;
    return 5;
  };
  Fixture fx(rank_of, "Qwen2ForCausalLM");
  const fs::path out = fx.tmp.p / "adapter";
  rv::vec::LowrankOptions o;
  // The smallest designed σ_r² is ~0.25^6 ≈ 2.4e-4 of the largest (> 1e-5 of
  // ‖v_t‖²), and the
  // f32 noise beyond rank r is ~1e-14 of it: 1 − 1e-6 separates them.
  o.energy = 1 - 1e-6;
  auto res = rv::vec::lowrank(fx.vec, out, o, nullptr);
  PeftReader pr(out);
  EXPECT_EQ(pr.cfg["r"], 5);  // the most common rank
  EXPECT_FALSE(pr.cfg["rank_pattern"].empty());
  EXPECT_EQ(pr.cfg["rank_pattern"], pr.cfg["alpha_pattern"]);
  for (const auto& [n, r] : fx.true_rank) {
    int rank = 0;
    const MatrixXd d = pr.delta(module_of(n), &rank);
    EXPECT_EQ(rank, r) << n;
    const MatrixXd x = read_tensor(rv::TensorSet(fx.vec), n);
    EXPECT_LT((x - d).norm() / x.norm(), 1.5 * (1 + 2 * std::sqrt(r)) * kU) << n;
    // PEFT's older matcher, re.match(rf".*\.{key}$", current_key), agrees.
    const std::string key = PeftReader::pattern_key(pr.cfg["rank_pattern"], module_of(n));
    if (!key.empty()) {
      EXPECT_TRUE(std::regex_match(module_of(n), std::regex(".*\\." + key))) << key;
    }
  }
}

// --modules-to-save: every norm / embedding / lm_head module of the base is
// stored as θ + v under PEFT's name; q/k/v biases stay unrepresentable.
TEST(Lowrank, ModulesToSaveStoresFullNewWeights) {
  Fixture fx([](const std::string&) { return 2; }, "Qwen2ForCausalLM");
  const fs::path out = fx.tmp.p / "adapter";
  rv::vec::LowrankOptions o;
  o.rank = 2;
  o.modules_to_save = true;
  EXPECT_THROW(rv::vec::lowrank(fx.vec, out, o, nullptr), rv::Error);  // needs --model
  EXPECT_FALSE(fs::exists(out));
  o.model = fx.model;
  auto res = rv::vec::lowrank(fx.vec, out, o, nullptr);
  PeftReader pr(out);
  EXPECT_EQ(pr.cfg["base_model_name_or_path"], fx.model.string());
  EXPECT_EQ(pr.cfg["modules_to_save"], json({"embed_tokens", "input_layernorm", "lm_head", "norm",
                                             "post_attention_layernorm"}));
  rv::TensorSet v(fx.vec), theta(fx.model);
  double bias_sq = 0, saved_sq = 0, total = 0;
  size_t n_saved = 0;
  for (const auto& n : v.names()) {
    const MatrixXd x = read_tensor(v, n);
    total += x.squaredNorm();
    if (fx.true_rank.count(n)) continue;
    if (n.find("_proj.bias") != std::string::npos) {
      bias_sq += x.squaredNorm();
      EXPECT_FALSE(pr.ts->has("base_model.model." + n));
      continue;
    }
    saved_sq += x.squaredNorm();
    ++n_saved;
    const MatrixXd got = read_tensor(*pr.ts, "base_model.model." + n);
    const MatrixXd th = read_tensor(theta, n);
    for (int64_t i = 0; i < x.size(); ++i)  // θ + v added once in f32
      ASSERT_EQ(static_cast<float>(got.data()[i]),
                static_cast<float>(th.data()[i]) + static_cast<float>(x.data()[i]))
          << n;
  }
  EXPECT_EQ(pr.ts->names().size(), 2 * fx.true_rank.size() + n_saved);
  EXPECT_GT(bias_sq, 0);
  EXPECT_NEAR(res.unrepresentable_share, bias_sq / total, 1e-12);
  EXPECT_NEAR(res.modules_to_save_share, saved_sq / total, 1e-12);
}

// Bad inputs: one-line errors naming the problem, before any output exists.
TEST(Lowrank, BadInputsFailBeforeWriting) {
  Fixture fx([](const std::string&) { return 2; }, "Qwen2ForCausalLM");
  const fs::path out = fx.tmp.p / "adapter";
  auto expect_error = [&](const fs::path& vec, rv::vec::LowrankOptions o, const std::string& msg) {
    try {
      rv::vec::lowrank(vec, out, o, nullptr);
      ADD_FAILURE() << "no error, expected: " << msg;
    } catch (const rv::Error& e) {
      EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    EXPECT_FALSE(fs::exists(out));
    for (const auto& e : fs::directory_iterator(fx.tmp.p))
      EXPECT_EQ(e.path().filename().string().find(".adapter"), std::string::npos) << e.path();
  };
  rv::vec::LowrankOptions o;
  o.rank = 33;  // k_proj is 32 x 64
  expect_error(fx.vec, o, "exceeds min(rows, cols) = 32 of model.layers.0.self_attn.k_proj");
  o.rank = 0;
  o.energy = 1.5;
  expect_error(fx.vec, o, "--energy must lie in (0, 1]");
  o.energy = 0;
  expect_error(fx.vec, o, "exactly one of --rank and --energy");
  o.rank = 2;
  o.energy = 0.5;
  expect_error(fx.vec, o, "exactly one of --rank and --energy");

  Fixture gpt2([](const std::string&) { return 2; }, "GPT2LMHeadModel");
  o.energy = 0;
  expect_error(gpt2.vec, o, "architecture GPT2LMHeadModel has no known PEFT module map");
  Fixture none([](const std::string&) { return 2; }, "Qwen2ForCausalLM", false);
  expect_error(none.vec, o, "no 2-D projection tensor");
}

TEST(Spectrum, EffectiveRankAndEnergyRanks) {
  EXPECT_NEAR(rv::vec::effective_rank({2, 2, 2, 2}), 4.0, 1e-12);
  EXPECT_NEAR(rv::vec::effective_rank({1, 0, 0}), 1.0, 1e-12);
  // σ² = 9, 4, 1 (total 14): entropy of (9/14, 4/14, 1/14).
  const double p[3] = {9 / 14.0, 4 / 14.0, 1 / 14.0};
  const double h = -(p[0] * std::log(p[0]) + p[1] * std::log(p[1]) + p[2] * std::log(p[2]));
  EXPECT_NEAR(rv::vec::effective_rank({3, 2, 1}), std::exp(h), 1e-12);
  EXPECT_EQ(rv::vec::energy_rank({3, 2, 1}, 0.6), 1);  // 9/14 = 0.64
  EXPECT_EQ(rv::vec::energy_rank({3, 2, 1}, 0.9), 2);  // 13/14 = 0.93
  EXPECT_EQ(rv::vec::energy_rank({3, 2, 1}, 0.99), 3);
}

// spectrum(): each projection's σ equal JacobiSVD's; r99 never above the
// true rank; the SVG has one line per module kind.
TEST(Spectrum, MatchesJacobiOnKnownRankVector) {
  Fixture fx([](const std::string&) { return 3; }, "Qwen2ForCausalLM");
  const auto sp = rv::vec::spectrum(fx.vec);
  ASSERT_EQ(sp.tensors.size(), fx.true_rank.size());
  rv::TensorSet v(fx.vec);
  for (const auto& t : sp.tensors) {
    Eigen::JacobiSVD<MatrixXd> ref(read_tensor(v, t.name));
    ASSERT_EQ(static_cast<int64_t>(t.sigma.size()), ref.singularValues().size());
    for (size_t i = 0; i < t.sigma.size(); ++i)
      EXPECT_NEAR(t.sigma[i], ref.singularValues()[i], 1e-12 * ref.singularValues()[0]);
    EXPECT_LE(t.rank99, 3);
    EXPECT_GE(t.rank90, 1);
    EXPECT_GT(t.effective_rank, 1.0);
    EXPECT_LT(t.effective_rank, 3.0 + 1e-6);
  }
  const std::string svg = rv::vec::spectrum_svg(sp);
  size_t lines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1))
    ++lines;
  EXPECT_EQ(lines, 7u);
  EXPECT_EQ(sp.to_json(2)["tensors"][0]["sigma"].size(), 2u);
}
