// The GRPO loop: on a task whose reward the policy can learn, the mean
// reward rises (seeded, CI-sized); bad options are errors.
#include <gtest/gtest.h>

#include "common/error.h"
#include "train/grpo_trainer.h"

namespace rv::train {
namespace {

ModelShape tiny() {
  ModelShape s;
  s.vocab = 12;
  s.hidden = 16;
  s.layers = 1;
  s.heads = 2;
  s.kv_heads = 1;
  s.intermediate = 24;
  s.max_position = 32;
  return s;
}

// Prompt "p 10": the reward is 1 when the first sampled token is (p + 1) mod 10.
// From a near-uniform init the expected reward is about 1/12.
std::vector<std::vector<int32_t>> prompts() {
  std::vector<std::vector<int32_t>> p;
  for (int i = 0; i < 10; ++i) p.push_back({i, 10});
  return p;
}

GrpoTrainResult run(double beta, LossAggregation agg, int steps) {
  TrainModel policy(tiny(), {.threads = 1});
  policy.init(3, 0.2f);
  TrainModel ref(tiny(), {.threads = 1});
  ref.init(3, 0.2f);
  GrpoTrainOptions o;
  o.steps = steps;
  o.prompts = 8;
  o.group = 8;
  o.max_tokens = 2;
  o.mu = 2;
  o.lr = 2e-2;
  o.seed = 5;
  o.loss.beta = beta;
  o.loss.aggregation = agg;
  const auto ps = prompts();
  auto reward = [&](int p, const std::vector<int32_t>& t, bool) {
    GrpoReward r;
    r.correct = !t.empty() && t[0] == (ps[p][0] + 1) % 10;
    r.reward = r.correct;
    return r;
  };
  return train_grpo(policy, beta > 0 ? &ref : nullptr, ps, reward, o);
}

double mean_reward(const GrpoTrainResult& r, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += r.log[i].reward;
  return s / (to - from);
}

TEST(TrainGrpo, MeanRewardRises) {
  for (auto agg : {LossAggregation::kTokenMean, LossAggregation::kSequenceMean}) {
    auto r = run(0.0, agg, 30);
    ASSERT_EQ(r.log.size(), 30u);
    const double first = mean_reward(r, 0, 5), last = mean_reward(r, 25, 30);
    EXPECT_LT(first, 0.3);
    EXPECT_GT(last, first + 0.3) << "first " << first << " last " << last;
    EXPECT_EQ(r.log[0].kl, 0);
    EXPECT_GT(r.log[0].entropy, 1.0);
    EXPECT_LE(r.log[0].length, 2.0);
  }
}

TEST(TrainGrpo, KlToTheReferenceIsMeasuredAndGrows) {
  auto r = run(0.04, LossAggregation::kTokenMean, 12);
  EXPECT_GE(r.log.front().kl, 0);
  EXPECT_GT(r.log.back().kl, r.log.front().kl);
}

TEST(TrainGrpo, SameSeedSameRun) {
  auto a = run(0.0, LossAggregation::kTokenMean, 4), b = run(0.0, LossAggregation::kTokenMean, 4);
  for (size_t i = 0; i < a.log.size(); ++i) EXPECT_EQ(a.log[i].reward, b.log[i].reward);
}

TEST(TrainGrpo, BadOptionsAreErrors) {
  TrainModel m(tiny(), {.threads = 1});
  GrpoTrainOptions o;
  auto reward = [](int, const std::vector<int32_t>&, bool) { return GrpoReward{}; };
  EXPECT_THROW(train_grpo(m, nullptr, {}, reward, o), Error);
  o.group = 1;
  EXPECT_THROW(train_grpo(m, nullptr, prompts(), reward, o), Error);
  o.group = 4;
  o.loss.beta = 0.1;
  EXPECT_THROW(train_grpo(m, nullptr, prompts(), reward, o), Error);
}

}  // namespace
}  // namespace rv::train
