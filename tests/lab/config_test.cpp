// The lab config: presets, overrides, and one-line errors naming the key.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "lab/config.h"
#include "lab/report.h"

namespace rv::lab {
namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_lab_config(yaml, "lab.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LabConfig, PresetsAreValid) {
  for (const auto& name : lab_preset_names()) {
    LabConfig c = lab_preset(name);
    EXPECT_NO_THROW(validate(c)) << name;
    EXPECT_EQ(c.model.vocab, c.tokenizer.vocab_size) << name;
  }
  EXPECT_THROW(lab_preset("huge"), Error);
}

TEST(LabConfig, OverridesKeyByKeyOverThePreset) {
  LabConfig c = parse_lab_config(
      "preset: quick\nseeds: 3\nmodel: {layers: 2}\ngrpo: {init: both, beta: 0, loss: constant}\n"
      "eval: {alphas: [0, 2], splits: [test_id]}\ntokenizer: {vocab_size: 300}\n",
      "lab.yaml");
  LabConfig q = lab_preset("quick");
  EXPECT_EQ(c.seeds, 3);
  EXPECT_EQ(c.model.layers, 2);
  EXPECT_EQ(c.model.hidden, q.model.hidden);
  EXPECT_EQ(c.model.vocab, 300);
  EXPECT_EQ(c.grpo.init, (std::vector<std::string>{"sft", "base"}));
  EXPECT_EQ(c.grpo.beta, 0);
  EXPECT_EQ(c.grpo.loss, "constant");
  EXPECT_EQ(c.grpo.steps, q.grpo.steps);
  EXPECT_EQ(c.eval.alphas, (std::vector<double>{0, 2}));
  // The fingerprinted record changes with a result-shaping key, not with threads.
  LabConfig t = c;
  t.threads = 7;
  EXPECT_EQ(t.to_json(), c.to_json());
  t.grpo.lr *= 2;
  EXPECT_NE(t.to_json(), c.to_json());
}

TEST(LabConfig, BadConfigsAreOneLineErrorsNamingTheKey) {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"modle: {layers: 2}\n", "lab.yaml:1: modle: unknown key"},
      {"model: {layer: 2}\n", "model.layer: unknown key"},
      {"model: {hidden: 100, heads: 3}\n", "hidden"},
      {"model: {heads: 4, kv_heads: 3}\n", "kv_heads"},
      {"tokenizer: {vocab_size: 200}\n",
       "tokenizer.vocab_size: 200 cannot hold the 256 byte tokens and 3 special tokens"},
      {"pretrain: {steps: 0}\n", "lab.yaml:1: pretrain.steps: must be a positive integer"},
      {"pretrain: {seq_len: 100000}\n", "pretrain.seq_len: 100000 exceeds model.max_position"},
      {"grpo: {group: 1}\n", "grpo.group: must be >= 2"},
      {"grpo: {init: rl}\n", "grpo.init: expected sft, base or both, got 'rl'"},
      {"grpo: {loss: mean}\n", "grpo.loss: expected token_mean, sequence_mean or constant"},
      {"eval: {alphas: [1, 2]}\n", "eval.alphas: must include 0"},
      {"task: {min_ops: 5, max_ops: 2}\n", "task.min_ops: is larger than task.max_ops"},
      {"preset: huge\n", "unknown preset 'huge'"},
      {"seeds: [1\n", "lab.yaml:"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.yaml);
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.yaml << " -> " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST(LabReport, MeanAndStudentTIntervalOverSeeds) {
  // Three values: mean 2, sd 1, t(0.975, 2) = 4.303: half-width 4.303/sqrt(3).
  MeanCi m = mean_t_ci({1, 2, 3});
  EXPECT_DOUBLE_EQ(m.mean, 2);
  EXPECT_NEAR(m.hi - m.mean, 4.303 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(m.mean - m.lo, 4.303 / std::sqrt(3.0), 1e-12);
  EXPECT_EQ(m.n, 3);
  MeanCi one = mean_t_ci({0.25});
  EXPECT_DOUBLE_EQ(one.mean, 0.25);
  EXPECT_TRUE(std::isnan(one.lo) && std::isnan(one.hi));
  EXPECT_TRUE(std::isnan(mean_t_ci({}).mean));
}

TEST(LabReport, LinePlotDrawsEverySeriesAndSkipsNaN) {
  std::string svg =
      line_svg("t <1>", "x", "y", {{"a", {{0, 1}, {1, 2}}}, {"b", {{0, NAN}, {1, 3}, {2, 4}}}});
  EXPECT_NE(svg.find("t &lt;1&gt;"), std::string::npos);
  size_t lines = 0;
  for (size_t p = 0; (p = svg.find("<polyline", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 2u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

}  // namespace
}  // namespace rv::lab
