// The lab pipeline end to end at toy size: every stage's output, the
// report's structure, caching (a rerun runs nothing; a GRPO change reruns
// only GRPO and what follows).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "convert/gguf_export.h"
#include "engine/model.h"
#include "lab/pipeline.h"
#include "lab/task.h"
#include "support/llamacpp_oracle.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace rv::lab {
namespace {

const char* kTiny = R"(preset: quick
seed: 5
task: {min_ops: 1, max_ops: 2, max_operand: 9, max_value: 50}
tokenizer: {vocab_size: 300, corpus_docs: 300}
model: {hidden: 32, layers: 1, heads: 2, kv_heads: 1, intermediate: 64, max_position: 192}
pretrain: {steps: 12, rows: 4, seq_len: 128, warmup: 2, docs: 300}
instruct: {steps: 4, rows: 4, seq_len: 128, warmup: 1, problems: 40, skills: 40}
sft: {steps: 4, rows: 4, seq_len: 128, warmup: 1, problems: 60}
grpo: {init: both, steps: 2, warmup: 0, prompts: 4, group: 4, max_tokens: 40}
eval: {n: 8, splits: [test_id, test_distractor], alphas: [-1, 0, 1]}
)";

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("rv_lab_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

size_t lines_of(const fs::path& p) {
  std::ifstream in(p);
  size_t n = 0;
  std::string l;
  while (std::getline(in, l)) n += !l.empty();
  return n;
}

TEST(LabPipeline, TrainsEveryStageReportsAndCaches) {
  const fs::path out = fresh_dir("e2e");
  LabConfig c = parse_lab_config(kTiny, "tiny.yaml");
  c.threads = 2;
  LabOptions o;
  o.out_dir = out;
  LabResult r = run_lab(c, o);
  EXPECT_GT(r.stages_run, 0);

  const fs::path seed_dir = out / "seed-5";
  std::map<std::string, fs::path> stages;
  for (const auto& e : fs::directory_iterator(seed_dir)) {
    const std::string n = e.path().filename().string();
    for (const char* s :
         {"base-", "target-", "sft-", "grpo-sft-", "grpo-base-", "tokenizer-", "tasks-"})
      if (n.rfind(s, 0) == 0) stages[s] = e.path();
  }
  ASSERT_EQ(stages.size(), 7u) << "missing stage directories under " << seed_dir;
  for (const char* s : {"base-", "target-", "sft-", "grpo-sft-", "grpo-base-"}) {
    const fs::path d = stages[s];
    for (const char* f :
         {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
      EXPECT_TRUE(fs::exists(d / f)) << d / f;
    // The engine loads every trained checkpoint as it is.
    EXPECT_NO_THROW(engine::Model::load(d)) << d;
  }
  EXPECT_EQ(lines_of(stages["base-"] / "train_log.jsonl"), 12u);
  EXPECT_EQ(lines_of(stages["sft-"] / "train_log.jsonl"), 4u);
  EXPECT_EQ(lines_of(stages["grpo-sft-"] / "train_log.jsonl"), 2u);
  for (const char* f :
       {"test_id.jsonl", "test_id.yaml", "test_distractor.jsonl", "test_distractor.yaml"})
    EXPECT_TRUE(fs::exists(stages["tasks-"] / f)) << f;

  const json rep = json::parse(read_file(out / "lab_report.json"));
  EXPECT_EQ(rep, r.report);
  // grpo.init both: GRPO from the SFT model and from the base, each reported.
  ASSERT_TRUE(rep["grpo_init"].contains("base"));
  EXPECT_EQ(rep["grpo_init"]["base"]["transfer"].size(), 4u);
  EXPECT_NE(r.markdown.find("## GRPO from base"), std::string::npos);
  const json& R = rep["grpo_init"]["sft"];
  for (const char* split : {"test_id", "test_distractor"}) {
    const json& sib = R["siblings"][split]["per_seed"];
    ASSERT_EQ(sib.size(), 1u);
    EXPECT_TRUE(sib[0]["sft"].is_number());
    EXPECT_TRUE(sib[0]["grpo"].is_number());
    EXPECT_EQ(sib[0]["n"], 8);
    EXPECT_TRUE(R["target"][split]["accuracy"]["mean"].is_number());
  }
  // α = −1, +1 and the random control at ±1.
  std::set<std::string> variants;
  for (const auto& t : R["transfer"]) variants.insert(t["variant"].get<std::string>());
  EXPECT_TRUE(variants.count("v α=+1") && variants.count("v α=-1") && variants.count("random α=+1"))
      << R["transfer"].dump();
  for (const char* f : {"lab_report.md", "plots/training_loss.svg", "plots/grpo_reward.svg",
                        "plots/transfer_test_id.svg"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_NE(r.markdown.find("GRPO sibling"), std::string::npos);

  // llama.cpp (through our GGUF export) continues the lab's prompts as our
  // engine does, from the trained SFT sibling, with the same tokens.
  {
    const fs::path md = stages["sft-"];
    const fs::path gguf = out / "sft.gguf";
    GgufExportOptions go;
    go.dtype = DType::F32;
    export_gguf(md, gguf, go, true);
    std::vector<std::string> prompts;
    for (const auto& p :
         make_split(TaskSpec{1, 2, 9, 50, 0.1}, "test_id", rv_test::sanitizer_run() ? 2 : 6, 9))
      prompts.push_back("Q: " + p.question + "\nA:");
    const int n_greedy = 24;
    json res = rv_test::run_llama_ref({{"gguf", gguf.string()},
                                       {"threads", 1},
                                       {"prompts", prompts},
                                       {"top_k", 1},
                                       {"greedy", n_greedy}},
                                      out);
    const Tokenizer tk = Tokenizer::load(md);
    auto model = engine::Model::load(md, {.threads = 1});
    const size_t V = model->spec().vocab;
    size_t same = 0;
    for (size_t pi = 0; pi < prompts.size(); ++pi) {
      const json& rr = res["results"][pi];
      const auto eval = rr["eval"].get<std::vector<int32_t>>();
      EXPECT_EQ(tk.encode(prompts[pi], false), rr["tokens"].get<std::vector<int32_t>>())
          << prompts[pi];
      const auto theirs = rr["greedy"].get<std::vector<int32_t>>();
      const auto mine = model->generate_greedy(eval, n_greedy);
      // Compared while our top-1 margin is clear of f32 summation-order noise.
      std::vector<int32_t> path = eval;
      path.insert(path.end(), mine.begin(), mine.end());
      const std::vector<float> lg = model->forward_all(path);
      for (size_t g = 0; g < std::min(mine.size(), theirs.size()); ++g) {
        const float* row = lg.data() + (eval.size() - 1 + g) * V;
        if (rv_test::top1_margin(row, V) <= 1e-3) break;
        ASSERT_EQ(mine[g], theirs[g]) << prompts[pi] << " greedy step " << g;
        ++same;
      }
    }
    EXPECT_GT(same, prompts.size() * n_greedy / 4);
    std::printf("[ lab ] llama.cpp: %zu greedy tokens identical over %zu prompts\n", same,
                prompts.size());
  }

  // A rerun runs nothing.
  LabResult again = run_lab(c, o);
  EXPECT_EQ(again.stages_run, 0);
  EXPECT_EQ(again.report, r.report);

  // A GRPO change reruns GRPO and the experiments, not the supervised stages.
  if (!rv_test::sanitizer_run()) {
    c.grpo.lr *= 2;
    std::vector<std::string> ran;
    o.log = [&](const std::string& s) {
      if (s.rfind("[run   ] ", 0) == 0) ran.push_back(s);
    };
    run_lab(c, o);
    bool grpo = false;
    for (const auto& s : ran) {
      EXPECT_EQ(s.find("base (pretrain)"), std::string::npos) << s;
      EXPECT_EQ(s.find("sft sibling"), std::string::npos) << s;
      EXPECT_EQ(s.find("target (instruct"), std::string::npos) << s;
      grpo |= s.find("grpo from sft") != std::string::npos;
    }
    EXPECT_TRUE(grpo);
  }
  fs::remove_all(out);
}

}  // namespace
}  // namespace rv::lab
