// results.json / samples / results.md: lm-eval's shape, written from a
// hand-built RunResult (values chosen here, not produced by the harness).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "eval/run/results.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace rv::eval;

TEST(Results, KeyNamingFollowsLmEval) {
  EXPECT_EQ(lm_eval_metric_key("exact_match,strict-match"), "exact_match,strict-match");
  EXPECT_EQ(lm_eval_metric_key("acc"), "acc,none");
  EXPECT_EQ(lm_eval_stderr_key("exact_match,flexible-extract"),
            "exact_match_stderr,flexible-extract");
  EXPECT_EQ(lm_eval_stderr_key("acc_norm"), "acc_norm_stderr,none");
  EXPECT_EQ(group_entry_name("bbh_cot_fewshot", "boolean_expressions"),
            "bbh_cot_fewshot_boolean_expressions");
  EXPECT_EQ(group_entry_name("gsm_plus", "integer-decimal-fraction conversion"),
            "gsm_plus_integer_decimal_fraction_conversion");
}

TEST(Results, WritesAllFilesInLmEvalShape) {
  RunResult r;
  r.config = {{"model", "m"},
              {"backend", "fake"},
              {"limit", 3},
              {"seed", 5},
              {"transforms", {"typos:0.05"}}};
  TaskRun t;
  t.name = "toy";
  t.config = {{"version", "3.0"}, {"num_fewshot", 5}};
  t.metric_keys = {"exact_match,strict-match", "acc"};
  t.primary_metric = "exact_match,strict-match";
  t.n_original = 10;
  for (int i = 0; i < 3; ++i) {
    Instance in;
    in.doc_id = std::to_string(i);
    in.group = i < 2 ? "g one" : "g-two";
    in.gen.prompt = "Q" + std::to_string(i);
    in.gold = std::to_string(i);
    t.instances.push_back(in);
    t.gens.push_back({GenResponse{"out" + std::to_string(i), "stop"}});
    t.lls.push_back({});
    SampleScore s;
    s.metrics = {{"exact_match,strict-match", i == 1 ? 0.0 : 1.0}, {"acc", 0.5}};
    s.extracted = "x" + std::to_string(i);
    s.correct = i != 1;
    t.scores.push_back(s);
  }
  t.summary = {{"exact_match,strict-match", 2.0 / 3},
               {"exact_match_stderr,strict-match", 0.333},
               {"acc", 0.5},
               {"acc_stderr", 0.0},
               {"n-samples", 3},
               {"groups",
                {{"g one",
                  {{"exact_match,strict-match", 0.5},
                   {"exact_match_stderr,strict-match", 0.5},
                   {"n-samples", 2}}},
                 {"g-two", {{"exact_match,strict-match", 1.0}, {"n-samples", 1}}}}}};
  t.requests = 3;
  t.cache_hits = 1;
  t.cache_misses = 2;
  r.tasks.push_back(t);
  r.cache_hits = 1;
  r.cache_misses = 2;

  fs::path d = fs::temp_directory_path() / ("rv_results_" + std::to_string(::getpid()));
  fs::remove_all(d);
  write_results(d / "out", r);
  json j = json::parse(rv::read_file(d / "out" / "results.json"));
  EXPECT_DOUBLE_EQ(j["results"]["toy"]["exact_match,strict-match"].get<double>(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(j["results"]["toy"]["exact_match_stderr,strict-match"].get<double>(), 0.333);
  EXPECT_DOUBLE_EQ(j["results"]["toy"]["acc,none"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["results"]["toy"]["acc_stderr,none"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["results"]["toy_g_one"]["exact_match,strict-match"].get<double>(), 0.5);
  EXPECT_EQ(j["results"]["toy_g_one"]["group"], "g one");
  EXPECT_DOUBLE_EQ(j["results"]["toy_g_two"]["exact_match,strict-match"].get<double>(), 1.0);
  EXPECT_EQ(j["group_subtasks"]["toy"], json({"toy_g_one", "toy_g_two"}));
  EXPECT_TRUE(j["groups"].contains("toy"));
  EXPECT_EQ(j["versions"]["toy"], "3.0");
  EXPECT_EQ(j["n-shot"]["toy"], 5);
  EXPECT_EQ(j["n-samples"]["toy"]["original"], 10);
  EXPECT_EQ(j["n-samples"]["toy"]["effective"], 3);
  EXPECT_EQ(j["config"]["seed"], 5);
  EXPECT_EQ(j["config"]["transforms"][0], "typos:0.05");
  EXPECT_EQ(j["cache"]["tasks"]["toy"]["misses"], 2);
  EXPECT_EQ(j["primary_metric"]["toy"], "exact_match,strict-match");

  std::ifstream in(d / "out" / "samples_toy.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    json s = json::parse(line);
    EXPECT_EQ(s["doc_id"], std::to_string(n));
    EXPECT_EQ(s["prompt"], "Q" + std::to_string(n));
    EXPECT_EQ(s["output"], "out" + std::to_string(n));
    EXPECT_EQ(s["extracted"], "x" + std::to_string(n));
    EXPECT_EQ(s["gold"], std::to_string(n));
    EXPECT_EQ(s["correct"], n != 1);
    EXPECT_EQ(s["metrics"]["acc,none"], 0.5);
    ++n;
  }
  EXPECT_EQ(n, 3);
  std::string md = rv::read_file(d / "out" / "results.md");
  EXPECT_NE(md.find("| toy | exact_match | strict-match | 0.6667 | 0.3330 | 3 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("|  - toy_g_one | exact_match | strict-match | 0.5000 | 0.5000 | 2 |"),
            std::string::npos)
      << md;
  // No temporary files left behind.
  for (const auto& e : fs::directory_iterator(d / "out"))
    EXPECT_NE(e.path().filename().string()[0], '.');
  fs::remove_all(d);
}
