// The language-model training loop: packing and targets, an interrupted run
// resuming bit for bit, and a NaN stopping training with the step named.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "common/error.h"
#include "train/lm_trainer.h"

namespace fs = std::filesystem;

namespace rv::train {
namespace {

ModelShape tiny_lm() {
  ModelShape s;
  s.vocab = 16;
  s.hidden = 16;
  s.layers = 1;
  s.heads = 2;
  s.kv_heads = 1;
  s.intermediate = 24;
  s.max_position = 64;
  return s;
}

// Examples "a a+1 a+2 ... " of varying length; the first two tokens are a
// prompt (not targets).
std::vector<Example> counting(int n) {
  std::vector<Example> d;
  for (int i = 0; i < n; ++i) {
    Example e;
    const int len = 3 + i % 7;
    for (int k = 0; k < len; ++k) {
      e.tokens.push_back((i + k) % 16);
      e.target.push_back(k >= 2);
    }
    d.push_back(e);
  }
  return d;
}

TEST(PackBatch, SegmentsPositionsAndTargetsFollowTheExamples) {
  auto data = counting(40);
  LmTrainOptions o;
  o.rows = 3;
  o.seq_len = 20;
  std::vector<int32_t> targets;
  Batch b = pack_batch(data, o, 3, 0, targets);
  ASSERT_EQ(b.tokens.size(), 60u);
  for (int r = 0; r < 3; ++r) {
    int used = 0;
    for (int t = 0; t < 20; ++t) {
      const size_t i = r * 20 + t;
      if (b.seg[i] < 0) {
        EXPECT_EQ(targets[i], -1);
        continue;
      }
      ++used;
      // Positions restart at each segment; counting sequences step by 1.
      if (t > 0 && b.seg[i] == b.seg[i - 1]) {
        EXPECT_EQ(b.pos[i], b.pos[i - 1] + 1);
        EXPECT_EQ(b.tokens[i], (b.tokens[i - 1] + 1) % 16);
      } else {
        EXPECT_EQ(b.pos[i], 0);
      }
      // A target predicts the next token of the same example, never a prompt token.
      if (targets[i] >= 0) {
        ASSERT_LT(t + 1, 20);
        EXPECT_EQ(b.seg[i + 1], b.seg[i]);
        EXPECT_EQ(targets[i], b.tokens[i + 1]);
        EXPECT_GE(b.pos[i + 1], 2);
      } else if (t + 1 < 20 && b.seg[i + 1] == b.seg[i]) {
        EXPECT_LT(b.pos[i + 1], 2);
      }
    }
    EXPECT_GT(used, 10);
  }
  // A pure function of (seed, step, micro).
  std::vector<int32_t> t2;
  EXPECT_EQ(pack_batch(data, o, 3, 0, t2).tokens, b.tokens);
  EXPECT_NE(pack_batch(data, o, 4, 0, t2).tokens, b.tokens);
}

TEST(TrainLm, LossFallsAndAnInterruptedRunResumesBitForBit) {
  auto data = counting(200);
  LmTrainOptions o;
  o.steps = 40;
  o.rows = 4;
  o.seq_len = 32;
  o.grad_accum = 2;
  o.lr = 3e-2;
  o.warmup = 3;
  o.seed = 11;

  TrainModel a(tiny_lm(), {.threads = 1});
  a.init(1);
  auto ra = train_lm(a, data, o);
  ASSERT_EQ(ra.log.size(), 40u);
  EXPECT_LT(ra.log.back().loss, 0.5 * ra.log.front().loss);

  const fs::path ck = fs::temp_directory_path() / ("rv_lm_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(ck);
  o.checkpoint_dir = ck;
  o.checkpoint_every = 10;
  TrainModel b(tiny_lm(), {.threads = 1});
  b.init(1);
  // Dies after step 15: the checkpoint of step 10 survives.
  EXPECT_THROW(train_lm(b, data, o,
                        [](const LmStepLog& l) {
                          if (l.step == 15) throw std::runtime_error("crash");
                        }),
               std::runtime_error);
  ASSERT_TRUE(fs::exists(ck / "state.json"));
  TrainModel c(tiny_lm(), {.threads = 1});
  c.init(1);
  auto rc = train_lm(c, data, o);
  EXPECT_EQ(rc.start_step, 10);
  EXPECT_EQ(rc.log.size(), 30u);
  EXPECT_EQ(c.params().data, a.params().data);
  EXPECT_EQ(rc.log.back().loss, ra.log.back().loss);
  fs::remove_all(ck);
}

TEST(TrainLm, ANonFiniteLossStopsWithTheStepNamed) {
  auto data = counting(50);
  LmTrainOptions o;
  o.steps = 5;
  o.rows = 2;
  o.seq_len = 16;
  TrainModel m(tiny_lm(), {.threads = 1});
  m.init(2);
  m.params().get("model.norm.weight")[0] = std::numeric_limits<float>::quiet_NaN();
  try {
    train_lm(m, data, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step 1: loss is nan"), std::string::npos) << e.what();
  }
}

TEST(TrainLm, BadOptionsAreErrors) {
  TrainModel m(tiny_lm(), {.threads = 1});
  LmTrainOptions o;
  EXPECT_THROW(train_lm(m, {}, o), Error);
  o.seq_len = 1000;
  EXPECT_THROW(train_lm(m, counting(5), o), Error);
}

}  // namespace
}  // namespace rv::train
