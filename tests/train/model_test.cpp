// TrainModel: the backward pass against f64 central differences of the same
// forward (model_core.h in double), forward/gradients/AdamW against a PyTorch
// reference (torch_reference.py), checkpoints against the engine's loader.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"
#include "engine/model.h"
#include "formats/dtype.h"
#include "formats/safetensors.h"
#include "support/llamacpp_oracle.h"
#include "support/temp_dir.h"
#include "train/model.h"
#include "train/model_core.h"
#include "train/optim.h"

namespace {

using rv::train::Batch;
using rv::train::ModelShape;
using rv::train::TrainModel;

ModelShape tiny_shape(bool tied) {
  ModelShape s;
  s.vocab = 11;
  s.hidden = 8;
  s.layers = 2;
  s.heads = 2;
  s.kv_heads = 1;
  s.intermediate = 12;
  s.max_position = 64;
  s.tied = tied;
  return s;
}

// Two rows of 5: row 0 packs two documents, row 1 ends in one padding token.
Batch tiny_batch() {
  Batch b;
  b.rows = 2;
  b.T = 5;
  b.tokens = {1, 4, 7, 2, 9, 3, 10, 0, 5, 6};
  b.pos = {0, 1, 2, 0, 1, 0, 1, 2, 3, 0};
  b.seg = {0, 0, 0, 1, 1, 0, 0, 0, 0, -1};
  return b;
}

// Random weights of the given layout: matrices N(0, 0.3²), norms 1 + N(0, 0.1²),
// biases N(0, 0.1²), so that every op (incl. norms and biases) is exercised.
template <class R>
std::vector<R> random_params(const std::vector<rv::train::ParamSet::Entry>& lay, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  size_t total = 0;
  for (const auto& e : lay) total += e.size;
  std::vector<R> p(total);
  for (const auto& e : lay) {
    const bool norm = e.name.find("norm") != std::string::npos;
    const bool bias = e.name.find(".bias") != std::string::npos;
    for (size_t i = 0; i < e.size; ++i)
      p[e.offset + i] = R(norm ? 1.0 + 0.1 * n01(rng) : (bias ? 0.1 : 0.3) * n01(rng));
  }
  return p;
}

std::vector<double> padding_free_weights(const Batch& b, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::vector<double> c(b.tokens.size() * size_t(vocab));
  for (size_t t = 0; t < b.tokens.size(); ++t)
    for (int v = 0; v < vocab; ++v) c[t * vocab + v] = b.seg[t] < 0 ? 0.0 : n01(rng);
  return c;
}

// Every tensor's gradient from the hand-written backward pass against
// central differences of L = Σ c·logits, all in f64 (the same code as the
// f32 model, instantiated for double).
void finite_difference_check(bool tied) {
  const ModelShape s = tiny_shape(tied);
  const auto lay = rv::train::param_layout(s);
  const Batch b = tiny_batch();
  std::vector<double> p = random_params<double>(lay, 7);
  const std::vector<double> c = padding_free_weights(b, s.vocab, 11);
  rv::train::Decoder<double> dec(s, 2);
  auto loss = [&]() {
    const auto& z = dec.forward(p.data(), b);
    double L = 0;
    for (size_t i = 0; i < z.size(); ++i) L += c[i] * z[i];
    return L;
  };
  loss();
  std::vector<double> g(p.size(), 0.0);
  dec.backward(p.data(), g.data(), c.data());

  const double h = 1e-5;
  std::mt19937_64 rng(3);
  for (const auto& e : lay) {
    // Up to 12 entries per tensor (all of the small ones; 4 under sanitizers).
    const size_t samples = rv_test::sanitizer_run() ? 4 : 12;
    std::vector<size_t> idx;
    if (e.size <= samples) {
      for (size_t i = 0; i < e.size; ++i) idx.push_back(i);
    } else {
      for (size_t k = 0; k < samples; ++k) idx.push_back(rng() % e.size);
    }
    double max_abs = 0;
    for (size_t i : idx) {
      double& x = p[e.offset + i];
      const double x0 = x;
      x = x0 + h;
      const double lp = loss();
      x = x0 - h;
      const double lm = loss();
      x = x0;
      const double num = (lp - lm) / (2 * h);
      const double ana = g[e.offset + i];
      max_abs = std::max(max_abs, std::abs(ana));
      EXPECT_NEAR(ana, num, 1e-7 + 1e-6 * std::abs(num)) << e.name << "[" << i << "]";
    }
    // The sampled entries must carry gradient, or the check proves nothing.
    EXPECT_GT(max_abs, 1e-4) << e.name << ": sampled gradients are all ~0";
  }
}

TEST(TrainModel, BackwardMatchesFiniteDifferencesTied) {
  finite_difference_check(true);
}
TEST(TrainModel, BackwardMatchesFiniteDifferencesUntied) {
  finite_difference_check(false);
}

// The f32 model (OpenBLAS sgemm) agrees with the f64 instantiation.
TEST(TrainModel, FloatMatchesDouble) {
  const ModelShape s = tiny_shape(true);
  const auto lay = rv::train::param_layout(s);
  const Batch b = tiny_batch();
  const std::vector<double> pd = random_params<double>(lay, 5);
  const std::vector<double> c = padding_free_weights(b, s.vocab, 6);
  rv::train::Decoder<double> dec(s, 1);
  const auto zd = dec.forward(pd.data(), b);
  std::vector<double> gd(pd.size(), 0.0);
  dec.backward(pd.data(), gd.data(), c.data());

  TrainModel m(s, {.threads = 2});
  std::copy(pd.begin(), pd.end(), m.params().data.begin());
  const auto& z = m.forward(b);
  for (size_t i = 0; i < z.size(); ++i)
    if (b.seg[i / s.vocab] >= 0) {
      ASSERT_NEAR(z[i], zd[i], 1e-4) << i;
    }
  m.zero_grad();
  m.backward(std::vector<float>(c.begin(), c.end()));
  double gmax = 0;
  for (double v : gd) gmax = std::max(gmax, std::abs(v));
  for (size_t i = 0; i < gd.size(); ++i) ASSERT_NEAR(m.grads().data[i], gd[i], 1e-5 * gmax) << i;
}

TEST(TrainModel, DeterministicForSameThreads) {
  const ModelShape s;  // the default lab shape
  Batch b;
  b.rows = 2;
  b.T = 32;
  for (int r = 0; r < b.rows; ++r)
    for (int t = 0; t < b.T; ++t) {
      b.tokens.push_back((r * 131 + t * 17) % s.vocab);
      b.pos.push_back(t % 20);
      b.seg.push_back(t / 20);
    }
  std::vector<int32_t> targets(b.tokens.size());
  for (size_t i = 0; i < targets.size(); ++i) targets[i] = b.tokens[(i + 1) % targets.size()];
  std::vector<std::vector<float>> grads;
  for (int run = 0; run < 2; ++run) {
    TrainModel m(s, {.threads = 2});
    m.init(42);
    std::vector<float> d;
    rv::train::cross_entropy(m.forward(b), s.vocab, targets, double(targets.size()), d);
    m.zero_grad();
    m.backward(d);
    grads.push_back(m.grads().data);
  }
  EXPECT_TRUE(grads[0] == grads[1]);
}

// ---- PyTorch oracle ------------------------------------------------------

bool torch_available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return ok;
}

std::vector<float> read_f32(const rv::SafetensorsFile& f, const std::string& name) {
  const rv::TensorInfo* t = f.find(name);
  if (!t) throw rv::Error(f.path().string(), name + ": missing in the torch output");
  std::vector<float> out(t->numel());
  rv::to_f32(t->dtype, f.view(*t).data, out.data(), out.size());
  return out;
}

void torch_oracle(bool tied) {
  ModelShape s;
  s.vocab = 64;
  s.hidden = 32;
  s.layers = 2;
  s.heads = 4;
  s.kv_heads = 2;
  s.intermediate = 48;
  s.max_position = 128;
  s.tied = tied;
  TrainModel m(s, {.threads = 2});
  m.init(9, 0.1f);
  // Norms and biases away from 1 and 0 so that their gradients matter.
  std::mt19937_64 rng(17);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  for (const auto& e : m.params().entries)
    if (e.shape.size() == 1)
      for (size_t i = 0; i < e.size; ++i) m.params().data[e.offset + i] += 0.1f * n01(rng);

  // Three rows of 16: packed documents, padding at the end of the last row.
  Batch b;
  b.rows = 3;
  b.T = 16;
  const int doc_len[3][3] = {{16, 0, 0}, {7, 9, 0}, {5, 4, 3}};  // row 2: 12 tokens + 4 padding
  std::vector<int32_t> targets;
  for (int r = 0; r < 3; ++r) {
    int t = 0;
    for (int d = 0; d < 3; ++d)
      for (int k = 0; k < doc_len[r][d]; ++k, ++t) {
        b.tokens.push_back(int32_t(rng() % s.vocab));
        b.pos.push_back(k);
        b.seg.push_back(d);
      }
    for (; t < b.T; ++t) {
      b.tokens.push_back(0);
      b.pos.push_back(0);
      b.seg.push_back(-1);
    }
  }
  int counted = 0;
  for (size_t i = 0; i < b.tokens.size(); ++i) {
    const bool next_same = (i + 1) % b.T != 0 && b.seg[i] >= 0 && b.seg[i + 1] == b.seg[i];
    targets.push_back(next_same ? b.tokens[i + 1] : -1);
    counted += next_same;
  }

  rv_test::TmpDir tmp("train_torch");
  m.save(tmp.p / "model", 1, 2);
  const double lr = 1e-2, wd = 0.1;
  nlohmann::json bj = {{"rows", b.rows},        {"T", b.T},     {"tokens", b.tokens},
                       {"pos", b.pos},          {"seg", b.seg}, {"targets", targets},
                       {"normalizer", counted}, {"lr", lr},     {"beta1", 0.9},
                       {"beta2", 0.95},         {"eps", 1e-8},  {"weight_decay", wd},
                       {"threads", 2}};
  std::ofstream(tmp.p / "batch.json") << bj.dump();
  const std::string cmd = "/usr/bin/python3 " RV_SOURCE_DIR
                          "/tests/train/torch_reference.py grad " +
                          (tmp.p / "model").string() + " " + (tmp.p / "batch.json").string() + " " +
                          (tmp.p / "out.safetensors").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const rv::SafetensorsFile out(tmp.p / "out.safetensors");

  std::vector<float> dlogits;
  const auto& logits = m.forward(b);
  const double loss = rv::train::cross_entropy(logits, s.vocab, targets, counted, dlogits);
  m.zero_grad();
  m.backward(dlogits);

  const rv::TensorInfo* lt = out.find("loss");
  ASSERT_TRUE(lt && lt->dtype == rv::DType::F64);
  double torch_loss;
  std::memcpy(&torch_loss, out.view(*lt).data, sizeof(double));
  EXPECT_NEAR(loss, torch_loss, 1e-5 * std::abs(torch_loss));
  EXPECT_GT(loss, 1.0);  // an untrained model: a loss near ln(vocab), not a degenerate 0

  const auto tl = read_f32(out, "logits");
  ASSERT_EQ(tl.size(), logits.size());
  for (size_t i = 0; i < tl.size(); ++i)
    if (b.seg[i / s.vocab] >= 0) {
      ASSERT_NEAR(logits[i], tl[i], 1e-4) << "logit " << i;
    }

  // Gradients: per tensor, max |ours - torch| <= 1e-4 * max |torch gradient of that tensor|.
  for (const auto& e : m.grads().entries) {
    const auto tg = read_f32(out, "grad." + e.name);
    ASSERT_EQ(tg.size(), e.size) << e.name;
    double gmax = 0, diff = 0;
    for (size_t i = 0; i < e.size; ++i) {
      gmax = std::max(gmax, double(std::abs(tg[i])));
      diff = std::max(diff, double(std::abs(tg[i] - m.grads().data[e.offset + i])));
    }
    EXPECT_GT(gmax, 0.0) << e.name;
    EXPECT_LE(diff, 1e-4 * gmax) << e.name << " (max |torch grad| " << gmax << ")";
  }

  // AdamW: our step fed torch's own gradients must land on torch.optim.AdamW's
  // parameters (the same gradients isolate the optimizer: a first Adam step is
  // ~lr·sign(g), which would amplify f32 noise in near-zero gradients).
  rv::train::ParamSet tgrads = m.grads();
  for (const auto& e : tgrads.entries) {
    const auto tg = read_f32(out, "grad." + e.name);
    std::copy(tg.begin(), tg.end(), tgrads.data.begin() + long(e.offset));
  }
  rv::train::AdamW opt(m.params(), {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = wd});
  opt.step(m.params(), tgrads, lr);
  for (const auto& e : m.params().entries) {
    const auto tp = read_f32(out, "param." + e.name);
    double diff = 0;
    for (size_t i = 0; i < e.size; ++i)
      diff = std::max(diff, double(std::abs(tp[i] - m.params().data[e.offset + i])));
    EXPECT_LE(diff, 1e-6) << e.name;
  }
}

TEST(TrainModel, MatchesTorchTied) {
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (python3-torch)";
  torch_oracle(true);
}
TEST(TrainModel, MatchesTorchUntied) {
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (python3-torch)";
  torch_oracle(false);
}

// ---- checkpoints ----------------------------------------------------------

TEST(TrainModel, SavedCheckpointRunsInTheEngine) {
  for (bool tied : {true, false}) {
    ModelShape s;
    s.vocab = 50;
    s.hidden = 32;
    s.layers = 2;
    s.heads = 4;
    s.kv_heads = 2;
    s.intermediate = 40;
    s.max_position = 64;
    s.tied = tied;
    TrainModel m(s, {.threads = 2});
    m.init(3, 0.2f);
    rv_test::TmpDir tmp("train_engine");
    m.save(tmp.p / "ckpt", -1, 5);
    Batch b;
    b.rows = 1;
    b.T = 20;
    for (int t = 0; t < b.T; ++t) {
      b.tokens.push_back((t * 7 + 3) % s.vocab);
      b.pos.push_back(t);
      b.seg.push_back(0);
    }
    const auto& z = m.forward(b);
    auto em = rv::engine::Model::load(tmp.p / "ckpt", {.threads = 2});
    EXPECT_EQ(em->spec().tied, tied);
    const auto ez = em->forward_all(b.tokens);
    ASSERT_EQ(ez.size(), z.size());
    double zmax = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      zmax = std::max(zmax, double(std::abs(z[i])));
      ASSERT_NEAR(ez[i], z[i], 1e-4) << "tied " << tied << " logit " << i;
    }
    EXPECT_GT(zmax, 0.1);  // logits that mean something
  }
}

TEST(TrainModel, SaveLoadRoundTripIsBitExact) {
  ModelShape s = tiny_shape(false);
  TrainModel m(s, {.threads = 1});
  m.init(77, 0.5f);
  rv_test::TmpDir tmp("train_rt");
  m.save(tmp.p / "a", 0, 1);
  m.save(tmp.p / "a", 0, 1);  // replacing an existing checkpoint works
  TrainModel l = TrainModel::load(tmp.p / "a", {.threads = 1});
  EXPECT_EQ(l.shape().vocab, s.vocab);
  EXPECT_EQ(l.shape().tied, false);
  EXPECT_EQ(l.shape().kv_heads, s.kv_heads);
  ASSERT_EQ(l.params().entries.size(), m.params().entries.size());
  EXPECT_TRUE(l.params().data == m.params().data);
  const auto cfg = nlohmann::json::parse(std::ifstream(tmp.p / "a" / "config.json"));
  EXPECT_EQ(cfg["eos_token_id"], 1);
  EXPECT_EQ(cfg["architectures"][0], "Qwen2ForCausalLM");
}

TEST(TrainModel, LoadNamesFileAndTensor) {
  TrainModel m(tiny_shape(true), {.threads = 1});
  m.init(1);
  rv_test::TmpDir tmp("train_bad");
  m.save(tmp.p / "a", -1, -1);
  auto cfg = nlohmann::json::parse(std::ifstream(tmp.p / "a" / "config.json"));
  cfg["tie_word_embeddings"] = false;
  std::ofstream(tmp.p / "a" / "config.json") << cfg.dump();
  try {
    TrainModel::load(tmp.p / "a");
    FAIL() << "loaded a checkpoint without lm_head.weight as untied";
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("lm_head.weight: tensor missing"), std::string::npos)
        << e.what();
  }
}

TEST(ModelShape, ValidateNamesTheKey) {
  auto msg = [](ModelShape s) {
    try {
      s.validate("cfg");
    } catch (const rv::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  ModelShape s;
  EXPECT_EQ(msg(s), "(no error)");
  s.hidden = 130;
  EXPECT_EQ(msg(s), "cfg: hidden: 130 is not a multiple of heads (4)");
  s = {};
  s.kv_heads = 3;
  EXPECT_EQ(msg(s), "cfg: heads: 4 is not a multiple of kv_heads (3)");
  s = {};
  s.hidden = 12;
  EXPECT_EQ(msg(s), "cfg: hidden: head_dim 3 (hidden / heads) must be even for RoPE");
  s = {};
  s.vocab = 0;
  EXPECT_EQ(msg(s), "cfg: vocab: must be >= 1 (got 0)");
  EXPECT_THROW(TrainModel m(s), rv::Error);
}

TEST(TrainModel, ForwardRejectsBadBatches) {
  TrainModel m(tiny_shape(true), {.threads = 1});
  m.init(1);
  Batch b = tiny_batch();
  b.tokens[3] = 11;
  EXPECT_THROW(m.forward(b), rv::Error);
  b = tiny_batch();
  b.pos.pop_back();
  EXPECT_THROW(m.forward(b), rv::Error);
  b = tiny_batch();
  b.pos[0] = 64;
  EXPECT_THROW(m.forward(b), rv::Error);
}

TEST(TrainOptim, HasNonfiniteNamesTheTensor) {
  TrainModel m(tiny_shape(true), {.threads = 1});
  m.init(1);
  std::string which;
  EXPECT_FALSE(rv::train::has_nonfinite(m.params(), &which));
  m.params().get("model.layers.1.mlp.up_proj.weight")[5] = NAN;
  EXPECT_TRUE(rv::train::has_nonfinite(m.params(), &which));
  EXPECT_EQ(which, "model.layers.1.mlp.up_proj.weight");
  m.params().get("model.layers.1.mlp.up_proj.weight")[5] = 0;
  m.params().get("model.norm.weight")[0] = INFINITY;
  EXPECT_TRUE(rv::train::has_nonfinite(m.params(), &which));
  EXPECT_EQ(which, "model.norm.weight");
}

// ---- optimisation ---------------------------------------------------------

double train_step(TrainModel& m, rv::train::AdamW& opt, const Batch& b,
                  const std::vector<int32_t>& targets, double lr) {
  std::vector<float> d;
  int counted = 0;
  for (int32_t t : targets) counted += t >= 0;
  const double loss = rv::train::cross_entropy(m.forward(b), m.shape().vocab, targets, counted, d);
  m.zero_grad();
  m.backward(d);
  rv::train::clip_grad_norm(m.grads(), 1.0);
  opt.step(m.params(), m.grads(), lr);
  return loss;
}

TEST(TrainOptim, AdamWResumeIsBitExact) {
  const ModelShape s = tiny_shape(true);
  const Batch b = tiny_batch();
  std::vector<int32_t> targets = {4, 7, -1, 9, -1, 10, 0, 5, -1, -1};
  TrainModel a(s, {.threads = 2});
  a.init(5, 0.3f);
  rv::train::AdamW opt(a.params(), {.weight_decay = 0.1});
  for (int i = 0; i < 3; ++i) train_step(a, opt, b, targets, 1e-2);
  rv_test::TmpDir tmp("train_adam");
  opt.save(tmp.p / "opt.safetensors");
  a.save(tmp.p / "model", -1, -1);
  for (int i = 0; i < 3; ++i) train_step(a, opt, b, targets, 1e-2);

  TrainModel r = TrainModel::load(tmp.p / "model", {.threads = 2});
  rv::train::AdamW ropt(r.params(), {.weight_decay = 0.1});
  ropt.load(tmp.p / "opt.safetensors", r.params());
  EXPECT_EQ(ropt.steps(), 3);
  for (int i = 0; i < 3; ++i) train_step(r, ropt, b, targets, 1e-2);
  EXPECT_TRUE(r.params().data == a.params().data);

  // A state of another model is refused, naming the file.
  TrainModel other(tiny_shape(false), {.threads = 1});
  rv::train::AdamW oopt(other.params(), {});
  try {
    oopt.load(tmp.p / "opt.safetensors", other.params());
    FAIL() << "loaded another model's optimizer state";
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("opt.safetensors"), std::string::npos) << e.what();
  }
}

// Next-token prediction of a short repeating pattern is learned quickly.
TEST(TrainOptim, LossFallsOnRepetitiveCorpus) {
  ModelShape s;
  s.vocab = 16;
  s.hidden = 32;
  s.layers = 2;
  s.heads = 2;
  s.kv_heads = 1;
  s.intermediate = 64;
  s.max_position = 64;
  TrainModel m(s, {.threads = 2});
  m.init(1234);
  const int pattern[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
  Batch b;
  b.rows = 4;
  b.T = 32;
  std::vector<int32_t> targets;
  for (int r = 0; r < b.rows; ++r)
    for (int t = 0; t <= b.T; ++t) {
      const int tok = pattern[(r * 5 + t) % 12];
      if (t < b.T) {
        b.tokens.push_back(tok);
        b.pos.push_back(t);
        b.seg.push_back(0);
      }
      if (t > 0) targets.push_back(tok);
    }
  rv::train::AdamW opt(m.params(), {.weight_decay = 0.01});
  const int steps = 80;
  double first = 0, last = 0;
  for (int i = 0; i < steps; ++i) {
    const double loss = train_step(m, opt, b, targets, rv::train::lr_schedule(i, steps, 5, 1e-2));
    if (i == 0) first = loss;
    last = loss;
  }
  EXPECT_NEAR(first, std::log(16.0), 0.2);
  EXPECT_LT(last, 0.3) << "from " << first;
}

}  // namespace
