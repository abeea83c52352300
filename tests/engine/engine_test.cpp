// The Engine (scheduler, continuous batching, sampling, scoring, text) on a
// tiny model with the real Qwen2.5 tokenizer. Expected values come from the
// independent reference forward (engine_test_util.h) or from running each
// request alone.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "common/error.h"
#include "engine/model.h"
#include "engine/sampling.h"
#include "engine_test_util.h"
#include "support/llamacpp_oracle.h"
#include "tokenizer/tokenizer.h"

namespace rv::engine {
namespace {

using enginetest::make_model;
using enginetest::RefModel;
using enginetest::temp_dir;

// One shared model for the suite (synthesizing it takes a moment).
class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(temp_dir("engine_model"));
    SynthOptions o;
    o.arch = "qwen2";
    o.layers = 2;
    o.hidden = 64;
    o.heads = 4;
    o.kv_heads = 2;
    o.intermediate = 96;
    o.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
    o.dtype = DType::BF16;
    o.tied = true;
    o.seed = 3;
    o.init_scale = 0.2f;
    make_model(o, *dir_);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::unique_ptr<Engine> open(int max_batch = 8) {
    EngineOptions eo;
    eo.threads = 2;
    eo.max_batch = max_batch;
    eo.max_context = 256;
    return Engine::open(*dir_, eo);
  }
  static std::vector<int32_t> prompt(const Engine& e, const std::string& text) {
    return e.tokenizer().encode(text);
  }
  static std::filesystem::path* dir_;
};
std::filesystem::path* EngineTest::dir_ = nullptr;

const char* kPrompts[] = {"The quick brown fox",
                          "Hello",
                          "In 1905, Albert Einstein published four papers that",
                          "def fib(n):\n    return",
                          "Q: What is 12 * 7?\nA:",
                          "東京は",
                          "a b c d e f g h i j k l m n o p",
                          "Once upon a time"};

TEST_F(EngineTest, GreedyMatchesModelAndContinuousBatchingMatchesAlone) {
  auto e = open(3);  // 8 requests through 3 slots: sequences join and leave
  auto m = Model::load(*dir_, {2});
  SamplingParams p;
  p.max_tokens = 12;
  p.ignore_eos = true;
  std::vector<std::future<GenerationResult>> fs;
  std::vector<std::vector<int32_t>> prompts;
  for (const char* t : kPrompts) {
    prompts.push_back(prompt(*e, t));
    SamplingParams pi = p;
    pi.max_tokens = 6 + static_cast<int>(prompts.size()) % 5;  // different lengths
    fs.push_back(e->submit_generate(prompts.back(), pi));
  }
  for (size_t i = 0; i < fs.size(); ++i) {
    GenerationResult r = fs[i].get();
    const int n = 6 + static_cast<int>(i + 1) % 5;
    EXPECT_EQ(r.tokens, m->generate_greedy(prompts[i], n)) << kPrompts[i];
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_EQ(r.prompt_tokens, static_cast<int>(prompts[i].size()));
    EXPECT_EQ(r.text, e->tokenizer().decode(r.tokens, true));
    ASSERT_EQ(r.token_logprobs.size(), r.tokens.size());
  }
}

TEST_F(EngineTest, LoglikelihoodEqualsReferenceLogSoftmax) {
  auto e = open();
  RefModel ref(*dir_);
  const auto ctx = prompt(*e, "The capital of France is");
  const auto cont = prompt(*e, " Paris, of course");
  std::vector<int32_t> all = ctx;
  all.insert(all.end(), cont.begin(), cont.end());
  auto want = ref.forward(all);
  double sum = 0;
  bool greedy = true;
  std::vector<double> lps;
  for (size_t i = 0; i < cont.size(); ++i) {
    const auto& row = want[ctx.size() - 1 + i];
    auto ls = enginetest::log_softmax(row.data(), row.size());
    lps.push_back(ls[cont[i]]);
    sum += ls[cont[i]];
    greedy = greedy && int(std::max_element(row.begin(), row.end()) - row.begin()) == cont[i];
  }
  auto r = e->submit_loglikelihood(ctx, cont).get();
  EXPECT_NEAR(r.logprob, sum, 1e-3 * std::max(1.0, std::abs(sum)));
  EXPECT_EQ(r.is_greedy, greedy);
  ASSERT_EQ(r.token_logprobs.size(), cont.size());
  for (size_t i = 0; i < cont.size(); ++i) EXPECT_NEAR(r.token_logprobs[i], lps[i], 1e-3);

  // The reference's own greedy continuation is greedy; changing a token is not.
  std::vector<int32_t> g;
  std::vector<int32_t> seq = ctx;
  for (int i = 0; i < 4; ++i) {
    auto rows = ref.forward(seq);
    const auto& row = rows.back();
    g.push_back(int(std::max_element(row.begin(), row.end()) - row.begin()));
    seq.push_back(g.back());
  }
  EXPECT_TRUE(e->submit_loglikelihood(ctx, g).get().is_greedy);
  auto g2 = g;
  g2[2] = (g2[2] + 1) % 1000;
  EXPECT_FALSE(e->submit_loglikelihood(ctx, g2).get().is_greedy);
}

TEST_F(EngineTest, ManyLoglikelihoodsBatchedEqualOneByOne) {
  auto e = open(4);
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> reqs;
  for (const char* c : kPrompts)
    for (const char* k : {" yes", " no, never", " 42"})
      reqs.push_back({prompt(*e, c), prompt(*e, k)});
  std::vector<LoglikelihoodResult> alone;
  for (auto& [c, k] : reqs) alone.push_back(e->submit_loglikelihood(c, k).get());
  std::vector<std::future<LoglikelihoodResult>> fs;
  for (auto& [c, k] : reqs) fs.push_back(e->submit_loglikelihood(c, k));
  for (size_t i = 0; i < fs.size(); ++i) {
    auto r = fs[i].get();
    EXPECT_NEAR(r.logprob, alone[i].logprob, 1e-4);
    EXPECT_EQ(r.is_greedy, alone[i].is_greedy);
  }
}

TEST_F(EngineTest, ScoreGivesEveryPositionAndTopK) {
  auto e = open();
  RefModel ref(*dir_);
  const auto toks = prompt(*e, "Scores for every position of this sentence.");
  auto want = ref.forward(toks);
  auto s = e->submit_score(toks, 3).get();
  ASSERT_EQ(s.token_logprobs.size(), toks.size());
  ASSERT_EQ(s.top_logprobs.size(), toks.size());
  EXPECT_TRUE(std::isnan(s.token_logprobs[0]));
  EXPECT_TRUE(s.top_logprobs[0].empty());
  for (size_t i = 1; i < toks.size(); ++i) {
    auto ls = enginetest::log_softmax(want[i - 1].data(), want[i - 1].size());
    EXPECT_NEAR(s.token_logprobs[i], ls[toks[i]], 1e-3) << i;
    ASSERT_EQ(s.top_logprobs[i].size(), 3u);
    std::vector<int32_t> order(ls.size());
    for (size_t j = 0; j < order.size(); ++j) order[j] = int32_t(j);
    std::partial_sort(order.begin(), order.begin() + 3, order.end(),
                      [&](int a, int b) { return ls[a] > ls[b]; });
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(s.top_logprobs[i][j].logprob, ls[order[j]], 1e-3);
      if (ls[order[j]] - (j < 2 ? ls[order[j + 1]] : -1e9) > 1e-3) {
        EXPECT_EQ(s.top_logprobs[i][j].id, order[j]);
      }
    }
  }
}

TEST_F(EngineTest, SeededSamplingIsReproducibleAndRespectsTopK) {
  auto e = open();
  RefModel ref(*dir_);
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 3;
  p.max_tokens = 10;
  p.ignore_eos = true;
  p.seed = 1234;
  const auto pr = prompt(*e, "Sampling test");
  auto a = e->submit_generate(pr, p).get();
  auto b = e->submit_generate(pr, p).get();
  EXPECT_EQ(a.tokens, b.tokens);
  // Batched together with other work gives the same draws.
  auto c1 = e->submit_generate(prompt(*e, "other"), p);
  auto c = e->submit_generate(pr, p);
  EXPECT_EQ(c.get().tokens, a.tokens);
  c1.get();
  // Each token is among the reference top-3 at its position.
  std::vector<int32_t> seq = pr;
  seq.insert(seq.end(), a.tokens.begin(), a.tokens.end());
  auto rows = ref.forward(seq);
  for (size_t i = 0; i < a.tokens.size(); ++i) {
    auto row = rows[pr.size() - 1 + i];
    std::vector<double> sorted = row;
    std::nth_element(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    EXPECT_GE(row[a.tokens[i]], sorted[2] - 1e-3) << i;
  }
  // Other seeds give other samples (with top-3 at temperature 1.5, ten equal
  // draws for all of 5 seeds is practically impossible).
  int differ = 0;
  for (uint64_t s = 1; s <= 5; ++s) {
    p.seed = s;
    differ += e->submit_generate(pr, p).get().tokens != a.tokens;
  }
  EXPECT_GE(differ, 1);
}

TEST_F(EngineTest, StopStringAcrossTokenBoundaryCutsTextAndStream) {
  auto e = open();
  SamplingParams p;
  p.max_tokens = 16;
  p.ignore_eos = true;
  const auto pr = prompt(*e, "Stop strings");
  std::vector<std::string> pieces;
  auto full = e->submit_generate(pr, p, [&](const std::string& d) { pieces.push_back(d); }).get();
  ASSERT_EQ(full.tokens.size(), 16u);
  // Without stop strings text streams as it completes and adds up.
  std::string joined;
  for (auto& s : pieces) joined += s;
  EXPECT_EQ(joined, full.text);
  // A stop string made of the end of one streamed piece and the start of the
  // next (so it spans a token boundary).
  size_t at = 0, split = std::string::npos;
  for (size_t i = 0; i + 1 < pieces.size(); ++i) {
    at += pieces[i].size();
    if (pieces[i].size() >= 1 && pieces[i + 1].size() >= 1 && i >= 2) {
      split = at;
      break;
    }
  }
  ASSERT_NE(split, std::string::npos);
  const std::string stop = full.text.substr(split - 1, 2);
  const size_t first = full.text.find(stop);
  p.stop_strings = {"never-occurs-xyz", stop};
  std::string streamed;
  auto cut = e->submit_generate(pr, p, [&](const std::string& d) { streamed += d; }).get();
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text, full.text.substr(0, first));
  EXPECT_EQ(streamed, cut.text);
  EXPECT_LT(cut.tokens.size(), full.tokens.size());
}

TEST_F(EngineTest, StopIdsAndMaxTokens) {
  auto e = open();
  SamplingParams p;
  p.max_tokens = 8;
  p.ignore_eos = true;
  const auto pr = prompt(*e, "Stop ids");
  auto full = e->submit_generate(pr, p).get();
  EXPECT_EQ(full.finish_reason, "length");
  ASSERT_EQ(full.tokens.size(), 8u);
  // Choose a token whose first occurrence is at index k > 0.
  size_t k = 1;
  while (k < 8 && std::find(full.tokens.begin(), full.tokens.begin() + k, full.tokens[k]) !=
                      full.tokens.begin() + k)
    ++k;
  ASSERT_LT(k, 8u);
  p.stop_ids = {full.tokens[k]};
  auto r = e->submit_generate(pr, p).get();
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + k));
  p.stop_ids.clear();
  p.max_tokens = 0;
  EXPECT_TRUE(e->submit_generate(pr, p).get().tokens.empty());
}

TEST_F(EngineTest, BadRequestsFailTheirFutureOnly) {
  auto e = open();
  SamplingParams p;
  EXPECT_THROW(e->submit_generate({}, p).get(), Error);
  EXPECT_THROW(e->submit_generate({1, 999999999}, p).get(), Error);
  EXPECT_THROW(e->submit_loglikelihood({1}, {}).get(), Error);
  std::vector<int32_t> too_long(300, 5);
  EXPECT_THROW(e->submit_score(too_long, 1).get(), Error);
  SamplingParams bad;
  bad.top_p = 0;
  EXPECT_THROW(e->submit_generate({1, 2}, bad).get(), Error);
  p.max_tokens = 3;
  EXPECT_EQ(e->submit_generate({1, 2}, p).get().tokens.size() <= 3, true);
}

TEST_F(EngineTest, CancelAllFailsPendingWork) {
  auto e = open(1);
  SamplingParams p;
  p.max_tokens = 200;
  p.ignore_eos = true;
  std::vector<std::future<GenerationResult>> fs;
  for (int i = 0; i < 4; ++i) fs.push_back(e->submit_generate({1, 2, 3}, p));
  e->cancel_all();
  int cancelled = 0;
  for (auto& f : fs) {
    try {
      f.get();
    } catch (const Error& err) {
      EXPECT_STREQ(err.what(), "engine: cancelled");
      ++cancelled;
    }
  }
  EXPECT_GE(cancelled, 3);
  p.max_tokens = 2;
  EXPECT_EQ(e->submit_generate({1, 2, 3}, p).get().tokens.size(), 2u);  // still usable
}

// ---- sampling filters on hand-made distributions ---------------------------

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

TEST(Sampling, FiltersKeepTheRightSupport) {
  // Probabilities 0.4 0.25 0.15 0.1 0.06 0.04 (ids 0..5, shuffled).
  const std::vector<double> pr = {0.06, 0.4, 0.1, 0.25, 0.04, 0.15};
  auto l = logits_of(pr);
  auto ids = [&](SamplingParams p) {
    std::set<int32_t> s;
    for (auto& [id, w] : sampling_candidates(l.data(), 6, p)) s.insert(id);
    return s;
  };
  SamplingParams p;
  p.temperature = 1;
  EXPECT_EQ(ids(p).size(), 6u);
  p.top_k = 2;
  EXPECT_EQ(ids(p), (std::set<int32_t>{1, 3}));
  p.top_k = 0;
  p.top_p = 0.7f;  // 0.4 + 0.25 = 0.65 < 0.7 -> needs the third
  EXPECT_EQ(ids(p), (std::set<int32_t>{1, 3, 5}));
  p.top_p = 0.6f;
  EXPECT_EQ(ids(p), (std::set<int32_t>{1, 3}));
  p.top_p = 1;
  p.min_p = 0.3f;  // keep p >= 0.12
  EXPECT_EQ(ids(p), (std::set<int32_t>{1, 3, 5}));
  // top-k then top-p over the renormalised top-k: top-3 = .4 .25 .15 (sum .8);
  // .4/.8 = .5 < .55 -> two tokens.
  p.min_p = 0;
  p.top_k = 3;
  p.top_p = 0.55f;
  EXPECT_EQ(ids(p), (std::set<int32_t>{1, 3}));
  // Renormalised probabilities.
  auto c = sampling_candidates(l.data(), 6, p);
  EXPECT_NEAR(c[0].second, 0.4 / 0.65, 1e-6);
}

TEST(Sampling, DrawFrequenciesFollowTheDistribution) {
  const std::vector<double> pr = {0.06, 0.4, 0.1, 0.25, 0.04, 0.15};
  auto l = logits_of(pr);
  for (bool plain : {true, false}) {
    SamplingParams p;
    p.temperature = 1;
    if (!plain) p.top_p = 0.999f;  // the sorted path, same support here
    Rng rng(7);
    std::vector<int> count(6);
    const int N = 40000;
    for (int i = 0; i < N; ++i) ++count[sample_token(l.data(), 6, p, rng)];
    for (int i = 0; i < 6; ++i)
      EXPECT_NEAR(count[i] / double(N), pr[i], 4 * std::sqrt(pr[i] * (1 - pr[i]) / N)) << i;
  }
  // Temperature 0.5 squares the odds.
  SamplingParams p;
  p.temperature = 0.5f;
  Rng rng(9);
  double z = 0;
  for (double x : pr) z += x * x;
  std::vector<int> count(6);
  const int N = 40000;
  for (int i = 0; i < N; ++i) ++count[sample_token(l.data(), 6, p, rng)];
  for (int i = 0; i < 6; ++i) {
    const double q = pr[i] * pr[i] / z;
    EXPECT_NEAR(count[i] / double(N), q, 4 * std::sqrt(q * (1 - q) / N) + 1e-4) << i;
  }
}

TEST(Sampling, GreedyTiesPickLowestId) {
  std::vector<float> l = {0.5f, 2.0f, 2.0f, -1.0f};
  SamplingParams p;
  Rng rng(1);
  EXPECT_EQ(sample_token(l.data(), 4, p, rng), 1);
  EXPECT_EQ(argmax(l.data(), 4), 1);
  auto top = top_logprobs(l.data(), 4, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].id, 1);
  EXPECT_EQ(top[1].id, 2);
  EXPECT_NEAR(top[0].logprob,
              std::log(std::exp(2.0) / (std::exp(0.5) + 2 * std::exp(2.0) + std::exp(-1.0))), 1e-6);
}

// top_logprobs picks the k best by a one-pass window for small k and by a
// partial sort for large k: both must equal a full stable sort by (logit
// descending, id ascending), ties included.
TEST(Sampling, TopLogprobsEqualAFullSortForSmallAndLargeK) {
  Rng rng(5);
  std::vector<float> l(5000);
  for (auto& x : l) x = static_cast<float>(std::floor(rng.uniform() * 40.0) / 4.0);  // many ties
  std::vector<int32_t> order(l.size());
  for (size_t i = 0; i < l.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  const double lse = log_sum_exp(l.data(), static_cast<int>(l.size()));
  for (int k : {1, 2, 7, 64, 65, 300}) {
    auto top = top_logprobs(l.data(), static_cast<int>(l.size()), k);
    ASSERT_EQ(top.size(), size_t(k));
    for (int i = 0; i < k; ++i) {
      ASSERT_EQ(top[i].id, order[i]) << "k=" << k << " i=" << i;
      ASSERT_EQ(top[i].logprob, l[order[i]] - lse);
    }
  }
  EXPECT_EQ(top_logprobs(l.data(), 3, 10).size(), 3u);
}

}  // namespace
}  // namespace rv::engine
