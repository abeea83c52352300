// Batched rollouts: greedy samples equal Model::generate_greedy, the first
// token's empirical distribution matches the softmax the test computes from
// the model's logits (with and without temperature / top-k / top-p), and a
// seed gives the same completions whatever max_batch is. Also times the
// lab's rollout shape (32 prompts × 8 samples × 48 tokens).
#include "train/rollout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "common/error.h"
#include "formats/synth.h"
#include "support/llamacpp_oracle.h"
#include "support/temp_dir.h"

namespace rv::train {
namespace {

// A synthesized f32 model; one thread by default (the small models' forward
// passes are too short to gain from a pool).
std::unique_ptr<engine::Model> synth(const rv_test::TmpDir& tmp, int layers, int hidden, int vocab,
                                     float init_scale, int threads = 1) {
  SynthOptions s;
  s.layers = layers;
  s.hidden = hidden;
  s.heads = 4;
  s.kv_heads = 2;
  s.intermediate = hidden * 3 / 2;
  s.vocab = vocab;
  s.dtype = DType::F32;
  s.seed = 3;
  s.init_scale = init_scale;
  synth_model(s, tmp.p / "m", true);
  return engine::Model::load(tmp.p / "m", {.threads = threads});
}

std::vector<std::vector<int32_t>> some_prompts(const std::vector<int>& lengths, int vocab) {
  std::vector<std::vector<int32_t>> r;
  for (size_t p = 0; p < lengths.size(); ++p) {
    r.emplace_back();
    for (int i = 0; i < lengths[p]; ++i)
      r.back().push_back(static_cast<int32_t>((p * 131 + i * 17 + 1) % vocab));
  }
  return r;
}

TEST(SampleGroup, GreedySamplesEqualGenerateGreedy) {
  rv_test::TmpDir tmp("rollout");
  auto m = synth(tmp, 2, 64, 256, 0.2f);
  const auto prompts = some_prompts({3, 7, 1, 12}, 256);
  RolloutOptions o;
  o.group = 3;
  o.max_tokens = 10;
  o.temperature = 0;
  o.max_batch = 5;  // fewer slots than samples: slots are reused across prompts
  // A stop id from prompt 1's greedy continuation, so it ends early there.
  o.stop_ids = {m->generate_greedy(prompts[1], 10)[4]};
  const auto got = sample_group(*m, prompts, o);
  ASSERT_EQ(got.size(), prompts.size() * 3);
  bool any_stopped = false;
  for (size_t i = 0; i < got.size(); ++i) {
    const int p = static_cast<int>(i / 3);
    EXPECT_EQ(got[i].prompt, p);
    const auto want = m->generate_greedy(prompts[p], 10, o.stop_ids);
    EXPECT_EQ(got[i].tokens, want) << "sample " << i;
    EXPECT_EQ(got[i].stopped, want.back() == o.stop_ids[0]);
    any_stopped |= got[i].stopped;
  }
  EXPECT_TRUE(any_stopped);
}

// The distribution sampling should draw from, computed here in double as
// Hugging Face defines it: softmax(x / T), keep the top k, renormalise,
// keep the smallest most-likely prefix reaching top_p, renormalise.
std::vector<double> expected_dist(const std::vector<float>& x, double T, int top_k, double top_p) {
  const int n = static_cast<int>(x.size());
  const double mx = *std::max_element(x.begin(), x.end());
  std::vector<double> p(n);
  for (int i = 0; i < n; ++i) p[i] = std::exp((x[i] - mx) / T);
  std::vector<int> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return p[a] > p[b]; });
  const int k = top_k > 0 ? std::min(top_k, n) : n;
  double total = 0;
  for (int i = 0; i < k; ++i) total += p[ids[i]];
  std::vector<double> out(n, 0.0);
  double cum = 0;
  for (int i = 0; i < k; ++i) {
    out[ids[i]] = p[ids[i]] / total;
    cum += out[ids[i]];
    if (cum >= top_p) break;
  }
  for (double& v : out) v /= cum;
  return out;
}

TEST(SampleGroup, FirstTokenFrequenciesMatchTheSoftmax) {
  rv_test::TmpDir tmp("rollout");
  auto m = synth(tmp, 2, 64, 256, 0.1f);
  const std::vector<int32_t> prompt = {5, 17, 99, 3};
  const auto all = m->forward_all(prompt);
  const std::vector<float> last(all.end() - 256, all.end());
  const int n = rv_test::sanitizer_run() ? 2000 : 8000;
  struct Case {
    float T;
    int top_k;
    float top_p;
  };
  for (const Case c : {Case{1.0f, 0, 1.0f}, Case{0.7f, 20, 0.8f}}) {
    SCOPED_TRACE("T " + std::to_string(c.T));
    RolloutOptions o;
    o.group = n;
    o.max_tokens = 1;
    o.temperature = c.T;
    o.top_k = c.top_k;
    o.top_p = c.top_p;
    o.seed = 11;
    const auto got = sample_group(*m, {prompt}, o);
    std::vector<int> count(256, 0);
    for (const auto& s : got) ++count.at(s.tokens.at(0));
    const auto p = expected_dist(last, c.T, c.top_k, c.top_p);
    double worst = 0;  // largest deviation in standard deviations
    for (int v = 0; v < 256; ++v) {
      if (p[v] == 0) {
        EXPECT_EQ(count[v], 0) << "token " << v << " is outside top-k / top-p";
        continue;
      }
      const double sd = std::sqrt(n * p[v] * (1 - p[v]));
      worst = std::max(worst, std::abs(count[v] - n * p[v]) / (sd + 1e-9));
      EXPECT_LE(std::abs(count[v] - n * p[v]), 5 * sd + 1) << "token " << v;
    }
    std::printf("[ rollout  ] T %.1f top_k %d top_p %.1f: %d draws, worst deviation %.2f sd\n", c.T,
                c.top_k, c.top_p, n, worst);
  }
}

TEST(SampleGroup, SameSeedSameCompletionsWhateverTheBatch) {
  rv_test::TmpDir tmp("rollout");
  auto m = synth(tmp, 2, 64, 256, 0.1f);
  const auto prompts = some_prompts({4, 9, 2, 6, 5}, 256);
  RolloutOptions o;
  o.group = 4;
  o.max_tokens = 12;
  o.top_p = 0.95f;
  o.seed = 7;
  for (int32_t t = 0; t < 16; ++t) o.stop_ids.push_back(t);  // ~6% a step: uneven lengths
  o.max_batch = 64;
  const auto ref = sample_group(*m, prompts, o);
  int stopped = 0;
  for (const auto& c : ref) {
    if (c.stopped) {
      ++stopped;
      EXPECT_LT(c.tokens.back(), 16);
    } else {
      EXPECT_EQ(c.tokens.size(), 12u);
    }
  }
  EXPECT_GT(stopped, 0);
  EXPECT_LT(stopped, static_cast<int>(ref.size()));
  auto same = [](const std::vector<Completion>& a, const std::vector<Completion>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].tokens != b[i].tokens || a[i].stopped != b[i].stopped || a[i].prompt != b[i].prompt)
        return false;
    return true;
  };
  for (int mb : {1, 3, 7}) {
    o.max_batch = mb;
    EXPECT_TRUE(same(sample_group(*m, prompts, o), ref)) << "max_batch " << mb;
  }
  o.seed = 8;
  EXPECT_FALSE(same(sample_group(*m, prompts, o), ref));
}

TEST(SampleGroup, RejectsBadInput) {
  rv_test::TmpDir tmp("rollout");
  auto m = synth(tmp, 1, 32, 64, 0.1f);
  RolloutOptions o;
  EXPECT_THROW(sample_group(*m, {{1, 2}, {}}, o), Error);
  EXPECT_THROW(sample_group(*m, {{1, 64}}, o), Error);
  o.group = 0;
  EXPECT_THROW(sample_group(*m, {{1, 2}}, o), Error);
}

// The lab's GRPO rollout shape; prints samples/s (no assertion: a timing).
TEST(SampleGroup, ThroughputOfTheLabShape) {
  if (rv_test::sanitizer_run()) GTEST_SKIP() << "timing only";
  rv_test::TmpDir tmp("rollout");
  auto m = synth(tmp, 4, 128, 1024, 0.02f, 2);
  std::vector<int> lengths(32, 24);
  const auto prompts = some_prompts(lengths, 1024);
  RolloutOptions o;
  o.group = 8;
  o.max_tokens = 48;
  o.seed = 1;
  const auto t0 = std::chrono::steady_clock::now();
  const auto got = sample_group(*m, prompts, o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t tokens = 0;
  for (const auto& c : got) tokens += c.tokens.size();
  EXPECT_EQ(tokens, 32u * 8 * 48);
  std::printf(
      "[ rollout  ] 32 prompts x 8 samples x 48 tokens (hidden 128, 4 layers, vocab 1024, "
      "%d threads): %.2f s, %.1f samples/s, %.0f tokens/s\n",
      m->threads(), s, got.size() / s, tokens / s);
}

}  // namespace
}  // namespace rv::train
