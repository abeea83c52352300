// mergekit configs run natively. Expectations are recomputed here from
// mergekit's published formulas, operation by operation, with the rounding
// PyTorch applies to bf16 tensors (f32 op, then round to bf16).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "common/error.h"
#include "formats/dtype.h"
#include "formats/synth.h"
#include "support/st_checker.h"
#include "vector/mergekit.h"

namespace {

rv::SynthOptions tiny(rv::DType dt, uint64_t delta_seed, float delta) {
  rv::SynthOptions o;
  o.layers = 1;
  o.hidden = 16;
  o.heads = 2;
  o.kv_heads = 1;
  o.intermediate = 24;
  o.vocab = 32;
  o.dtype = dt;
  o.seed = 5;
  o.delta_seed = delta_seed;
  o.delta_scale = delta;
  return o;
}

float r16(float x) { return rv::bf16_to_f32(rv::f32_to_bf16(x)); }

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(Mergekit, TaskArithmeticWithNegativeWeightF32) {
  std::string d = rvtest::temp_dir("mk");
  rv::synth_model(tiny(rv::DType::F32, 0, 0), d + "/base", false);
  rv::synth_model(tiny(rv::DType::F32, 1, 0.01f), d + "/a", false);
  rv::synth_model(tiny(rv::DType::F32, 2, 0.01f), d + "/b", false);
  write(d + "/m.yml",
        "merge_method: task_arithmetic\nbase_model: base\nmodels:\n"
        "  - model: a\n    parameters:\n      weight: 1.0\n"
        "  - model: b\n    parameters:\n      weight: -0.5\ndtype: float32\n");
  rv::vec::run_mergekit(d + "/m.yml", d + "/out", {}, [](const std::string&) {});
  auto base = rvtest::read_model_checked(d + "/base"), a = rvtest::read_model_checked(d + "/a"),
       b = rvtest::read_model_checked(d + "/b"), out = rvtest::read_model_checked(d + "/out");
  for (auto& [name, t] : out.tensors) {
    auto x0 = base.tensors[name].as_f32(), x1 = a.tensors[name].as_f32(), x2 = b.tensors[name].as_f32();
    auto got = t.as_f32();
    for (size_t i = 0; i < got.size(); ++i) {
      float m = (x1[i] - x0[i]) * 1.0f;
      m = m + (x2[i] - x0[i]) * -0.5f;
      ASSERT_EQ(got[i], x0[i] + m) << name << i;
    }
  }
}

TEST(Mergekit, LinearBf16NoNormalizeWithFilters) {
  std::string d = rvtest::temp_dir("mk2");
  rv::synth_model(tiny(rv::DType::BF16, 1, 0.01f), d + "/a", false);
  rv::synth_model(tiny(rv::DType::BF16, 2, 0.01f), d + "/b", false);
  write(d + "/m.yml",
        "merge_method: linear\nparameters:\n  normalize: false\nmodels:\n"
        "  - model: a\n    parameters:\n      weight:\n        - filter: self_attn\n          "
        "value: 0.3\n"
        "        - value: 1.0\n"
        "  - model: b\n    parameters:\n      weight: -0.7\ndtype: bfloat16\n");
  rv::vec::run_mergekit(d + "/m.yml", d + "/out", {}, [](const std::string&) {});
  auto a = rvtest::read_model_checked(d + "/a"), b = rvtest::read_model_checked(d + "/b"),
       out = rvtest::read_model_checked(d + "/out");
  for (auto& [name, t] : out.tensors) {
    EXPECT_EQ(t.dtype, "BF16");
    float wa = r16(name.find("self_attn") != std::string::npos ? 0.3f : 1.0f), wb = r16(-0.7f);
    auto x = a.tensors[name].as_f32(), y = b.tensors[name].as_f32(), got = t.as_f32();
    for (size_t i = 0; i < got.size(); ++i) {
      float acc = r16(wa * x[i]);
      acc = acc + r16(wb * y[i]);
      ASSERT_EQ(got[i], r16(acc)) << name << i;
    }
  }
}

TEST(Mergekit, ConfigErrorsNameTheLine) {
  std::string d = rvtest::temp_dir("mk3");
  write(d + "/bad.yml", "merge_method: slerp\nmodels: []\n");
  try {
    rv::vec::run_mergekit(d + "/bad.yml", d + "/out", {}, [](const std::string&) {});
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yml:1: merge_method 'slerp' is not supported"),
              std::string::npos)
        << e.what();
  }
  write(d + "/missing.yml", "merge_method: linear\nmodels:\n  - model: nowhere\n    parameters:\n      weight: 1\n");
  try {
    rv::vec::run_mergekit(d + "/missing.yml", d + "/out", {}, [](const std::string&) {});
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.yml:3: model 'nowhere' is not a local model directory"),
              std::string::npos)
        << e.what();
  }
}
