// AdamW, gradient clipping and the learning-rate schedule against their
// textbook definitions computed here in double.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "support/temp_dir.h"
#include "train/optim.h"

namespace {

using rv::train::ParamSet;

// A 2-D tensor (decayed) and a 1-D one (not decayed).
ParamSet two_tensors(float a, float b) {
  ParamSet s;
  s.entries = {{"w", {2, 2}, 0, 4}, {"b", {3}, 4, 3}};
  s.data = {a, -a, 2 * a, 0.5f * a, b, -b, 0.0f};
  return s;
}

TEST(TrainOptim, AdamWFollowsTorchFormula) {
  ParamSet p = two_tensors(0.5f, 0.25f);
  const double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.2;
  rv::train::AdamW opt(p, {.beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd});
  std::vector<double> ref(p.data.begin(), p.data.end()), m(7, 0.0), v(7, 0.0);
  for (int t = 1; t <= 4; ++t) {
    ParamSet g = p;
    for (size_t i = 0; i < 7; ++i) g.data[i] = float(std::sin(double(i + 3 * t)));
    opt.step(p, g, lr);
    for (size_t i = 0; i < 7; ++i) {
      const double gi = g.data[i];
      if (i < 4) ref[i] *= 1 - lr * wd;  // decoupled decay on the 2-D tensor only
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      ref[i] -= lr * mh / (std::sqrt(vh) + eps);
      EXPECT_NEAR(p.data[i], ref[i], 1e-6) << "step " << t << " entry " << i;
    }
  }
  EXPECT_EQ(opt.steps(), 4);
}

TEST(TrainOptim, AdamWRejectsAnotherLayout) {
  ParamSet p = two_tensors(1, 1);
  rv::train::AdamW opt(p, {});
  ParamSet q;
  q.entries = {{"w", {2}, 0, 2}};
  q.data = {1, 2};
  EXPECT_THROW(opt.step(q, q, 0.1), rv::Error);
  rv_test::TmpDir tmp("optim");
  opt.save(tmp.p / "s.safetensors");
  try {
    opt.load(tmp.p / "s.safetensors", q);
    FAIL() << "loaded a state for 7 parameters into 2";
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("s.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(opt.load(tmp.p / "missing.safetensors", p), rv::Error);
}

TEST(TrainOptim, ClipGradNormAsTorch) {
  ParamSet g = two_tensors(3, 4);
  double ss = 0;
  for (float x : g.data) ss += double(x) * x;
  const double norm = std::sqrt(ss);
  ParamSet measured = g;
  EXPECT_NEAR(rv::train::clip_grad_norm(measured, 0), norm, 1e-9);
  EXPECT_EQ(measured.data, g.data);  // max_norm <= 0 only measures
  ParamSet big = g;
  EXPECT_NEAR(rv::train::clip_grad_norm(big, 1000), norm, 1e-9);
  EXPECT_EQ(big.data, g.data);  // under the limit: unchanged
  ParamSet clipped = g;
  rv::train::clip_grad_norm(clipped, 1.0);
  const double coef = 1.0 / (norm + 1e-6);
  for (size_t i = 0; i < g.data.size(); ++i)
    EXPECT_FLOAT_EQ(clipped.data[i], float(g.data[i] * coef));
  EXPECT_NEAR(rv::train::clip_grad_norm(clipped, 0), 1.0, 1e-5);
}

TEST(TrainOptim, LrScheduleWarmupThenCosine) {
  const double peak = 1e-3;
  EXPECT_DOUBLE_EQ(rv::train::lr_schedule(0, 100, 10, peak), 0.0);
  EXPECT_DOUBLE_EQ(rv::train::lr_schedule(5, 100, 10, peak), peak * 0.5);
  EXPECT_DOUBLE_EQ(rv::train::lr_schedule(10, 100, 10, peak), peak);
  // Halfway through the decay: the cosine is at 0.5.
  EXPECT_NEAR(rv::train::lr_schedule(55, 100, 10, peak, 0.1), peak * (0.1 + 0.9 * 0.5), 1e-15);
  EXPECT_NEAR(rv::train::lr_schedule(100, 100, 10, peak, 0.1), peak * 0.1, 1e-15);
  for (int s = 11; s < 100; ++s)
    EXPECT_LE(rv::train::lr_schedule(s, 100, 10, peak),
              rv::train::lr_schedule(s - 1, 100, 10, peak));
  EXPECT_DOUBLE_EQ(rv::train::lr_schedule(0, 10, 0, peak), peak);  // no warmup
}

}  // namespace
