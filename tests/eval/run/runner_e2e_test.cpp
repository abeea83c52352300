// End to end through the CLI on a synthesized model with the real Qwen2.5
// tokenizer: the built-in engine and `reasonvec serve` + HTTP backend must
// give the same scores; a run killed with SIGKILL resumes without
// recomputing anything; `report` reproduces the per-run numbers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/file.h"
#include "formats/synth.h"
#include "support/llamacpp_oracle.h"
#include "support/st_checker.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const fs::path kE2eData = fs::path(RV_SHARED_DIR) / "data";

struct Fixture {
  fs::path dir, model;
  Fixture() {
    dir = fs::temp_directory_path() / ("rv_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    model = dir / "tiny-qwen";
    rv::SynthOptions o;
    o.arch = "qwen2";
    o.layers = 2;
    o.hidden = 64;
    o.heads = 4;
    o.kv_heads = 2;
    o.intermediate = 128;
    o.init_scale = 0.2f;
    o.seed = 11;
    o.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
    rv::synth_model(o, model, true);
  }
  ~Fixture() { fs::remove_all(dir); }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

int run_cli(const std::string& args, std::string* out = nullptr) {
  std::string log = (fx().dir / "cli.log").string();
  std::string cmd = std::string(RV_CLI_PATH) + " -q " + args + " > " + log + " 2>&1";
  int rc = std::system(cmd.c_str());
  if (out) *out = rv::read_file(log);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

pid_t spawn_cli(const std::vector<std::string>& args, const fs::path& log) {
  return rvtest::spawn_cli(args, log.string());
}

json read_json(const fs::path& p) {
  return json::parse(rv::read_file(p));
}

std::vector<json> read_samples(const fs::path& p) {
  std::vector<json> v;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(json::parse(line));
  return v;
}

int64_t cache_rows(const fs::path& db) {
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return -1;
  }
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM responses", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

// Scoring over HTTP echoes every prompt position through the 151k-row LM
// head; instrumented, that is minutes per sciq document, so the sanitizer
// run compares one document per task.
const char* limit_arg() {
  return rv_test::sanitizer_run() ? "1" : "4";
}

}  // namespace

// Our own server on a free port; *port stays 0 when it did not come up.
pid_t start_server(const fs::path& log, int* port) {
  pid_t srv = spawn_cli({"serve", "--model", fx().model.string(), "--port", "0"}, log);
  for (int i = 0; i < 600 && *port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::string s = fs::exists(log) ? rv::read_file(log) : "";
    size_t p = s.find("listening on http://");
    if (p != std::string::npos) {
      size_t colon = s.find(':', p + 20);
      *port = std::atoi(s.c_str() + colon + 1);
    }
  }
  return srv;
}

TEST(EvalE2E, EngineAndServerBackendsAgreeAndReportMatches) {
  Fixture& f = fx();
  const std::string common = " --tasks gsm8k,sciq --limit " + std::string(limit_arg()) +
                             " --data-dir " + kE2eData.string();
  std::string out;
  ASSERT_EQ(run_cli("eval --model " + f.model.string() + common + " --cache " +
                        (f.dir / "c1.sqlite").string() + " -o " + (f.dir / "engine").string(),
                    &out),
            0)
      << out;

  int port = 0;
  pid_t srv = start_server(f.dir / "serve.log", &port);
  ASSERT_GT(port, 0) << rv::read_file(f.dir / "serve.log");
  int rc = run_cli("eval --base-url http://127.0.0.1:" + std::to_string(port) +
                       " --model tiny-qwen --concurrency 4" + common + " --cache " +
                       (f.dir / "c2.sqlite").string() + " -o " + (f.dir / "http").string(),
                   &out);
  kill(srv, SIGTERM);
  int st;
  waitpid(srv, &st, 0);
  ASSERT_EQ(rc, 0) << out;

  json a = read_json(f.dir / "engine/results.json"), b = read_json(f.dir / "http/results.json");
  EXPECT_EQ(a["results"]["gsm8k"]["exact_match,strict-match"],
            b["results"]["gsm8k"]["exact_match,strict-match"]);
  EXPECT_EQ(a["results"]["sciq"]["acc,none"], b["results"]["sciq"]["acc,none"]);
  EXPECT_EQ(a["results"]["sciq"]["acc_norm,none"], b["results"]["sciq"]["acc_norm,none"]);
  // Sample by sample: identical greedy text, log-probs equal to rounding.
  auto ga = read_samples(f.dir / "engine/samples_gsm8k.jsonl"),
       gb = read_samples(f.dir / "http/samples_gsm8k.jsonl");
  const size_t n = std::stoul(limit_arg());
  ASSERT_EQ(ga.size(), n);
  ASSERT_EQ(gb.size(), n);
  for (size_t i = 0; i < ga.size(); ++i) EXPECT_EQ(ga[i]["output"], gb[i]["output"]) << i;
  auto sa = read_samples(f.dir / "engine/samples_sciq.jsonl"),
       sb = read_samples(f.dir / "http/samples_sciq.jsonl");
  ASSERT_EQ(sa.size(), n);
  for (size_t i = 0; i < sa.size(); ++i) {
    ASSERT_EQ(sa[i]["output"].size(), 4u);
    for (size_t c = 0; c < 4; ++c) {
      double x = sa[i]["output"][c]["logprob"], y = sb[i]["output"][c]["logprob"];
      EXPECT_NEAR(x, y, 1e-3 * std::max(1.0, std::abs(x))) << i << "/" << c;
      EXPECT_LT(x, 0);
    }
  }

  // report: per-run numbers equal results.json.
  ASSERT_EQ(run_cli("report " + (f.dir / "engine").string() + " " + (f.dir / "http").string() +
                        " -o " + (f.dir / "cmp.md").string(),
                    &out),
            0)
      << out;
  json rep = read_json(f.dir / "cmp.json");
  int checked = 0;
  for (const auto& row : rep["rows"]) {
    for (const auto& cell : row["runs"]) {
      ASSERT_TRUE(cell.contains("results_value")) << row.dump();
      EXPECT_NEAR(cell["accuracy"].get<double>(), cell["results_value"].get<double>(), 1e-12);
      ++checked;
    }
    EXPECT_EQ(row["runs"][1]["mcnemar"]["b"], 0);
    EXPECT_EQ(row["runs"][1]["mcnemar"]["c"], 0);
  }
  EXPECT_EQ(checked, 4);
  EXPECT_TRUE(fs::exists(f.dir / "cmp.svg"));
}

TEST(EvalE2E, HumanEvalInstructPrefillsTheAnswerOnBothBackends) {
  // lm-eval's gen_prefix: the engine renders it with continue_final_message,
  // the HTTP backend asks our server for the same; greedy answers must match.
  Fixture& f = fx();
  const std::string common = " --tasks humaneval_instruct --limit 2 --max-gen-toks 16 --data-dir " +
                             kE2eData.string() + " --no-cache";
  std::string out;
  ASSERT_EQ(
      run_cli("eval --model " + f.model.string() + common + " -o " + (f.dir / "he-engine").string(),
              &out),
      0)
      << out;
  int port = 0;
  pid_t srv = start_server(f.dir / "serve-he.log", &port);
  ASSERT_GT(port, 0) << rv::read_file(f.dir / "serve-he.log");
  int rc = run_cli("eval --base-url http://127.0.0.1:" + std::to_string(port) +
                       " --model tiny-qwen" + common + " -o " + (f.dir / "he-http").string(),
                   &out);
  kill(srv, SIGTERM);
  int st;
  waitpid(srv, &st, 0);
  ASSERT_EQ(rc, 0) << out;

  json res = read_json(f.dir / "he-engine/results.json");
  EXPECT_EQ(res["configs"]["humaneval_instruct"]["generation_kwargs"]["max_gen_toks"], 16);
  auto a = read_samples(f.dir / "he-engine/samples_humaneval_instruct.jsonl"),
       b = read_samples(f.dir / "he-http/samples_humaneval_instruct.jsonl");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["output"], b[i]["output"]) << i;
    json msgs = json::parse(a[i]["prompt"].get<std::string>());
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(msgs[1]["role"], "assistant");
    EXPECT_EQ(msgs[1]["content"].get<std::string>().rfind("Here is the completed function:\n", 0),
              0u);
  }
}

TEST(EvalE2E, KilledRunResumesWithNothingRecomputed) {
  Fixture& f = fx();
  fs::path db = f.dir / "kill.sqlite";
  const int limit = 60;  // 240 log-likelihood requests
  std::vector<std::string> args = {"eval",        "-q",
                                   "--model",     f.model.string(),
                                   "--tasks",     "sciq",
                                   "--limit",     std::to_string(limit),
                                   "--data-dir",  kE2eData.string(),
                                   "--max-batch", "1",
                                   "--cache",     db.string(),
                                   "-o",          (f.dir / "killed").string()};
  pid_t pid = spawn_cli(args, f.dir / "kill.log");
  int64_t before = 0;
  for (int i = 0; i < 3000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    before = fs::exists(db) ? cache_rows(db) : 0;
    if (before >= 20) break;
  }
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the run finished before it could be killed; raise the limit";
  before = cache_rows(db);
  ASSERT_GT(before, 0);
  ASSERT_LT(before, 4 * limit);
  EXPECT_FALSE(fs::exists(f.dir / "killed/results.json"));

  std::string out;
  ASSERT_EQ(run_cli("eval --model " + f.model.string() + " --tasks sciq --limit " +
                        std::to_string(limit) + " --data-dir " + kE2eData.string() + " --cache " +
                        db.string() + " -o " + (f.dir / "killed").string(),
                    &out),
            0)
      << out;
  json r = read_json(f.dir / "killed/results.json");
  EXPECT_EQ(r["cache"]["hits"].get<int64_t>(), before);
  EXPECT_EQ(r["cache"]["misses"].get<int64_t>(), 4 * limit - before);
  EXPECT_EQ(cache_rows(db), 4 * limit);
  EXPECT_EQ(r["n-samples"]["sciq"]["effective"], limit);
}

TEST(EvalE2E, CliErrorsAreOneLine) {
  std::string out;
  EXPECT_EQ(run_cli("eval --model " + fx().model.string() + " --tasks nope --data-dir " +
                        kE2eData.string() + " --no-cache -o " + (fx().dir / "x").string(),
                    &out),
            1);
  EXPECT_NE(out.find("reasonvec: task 'nope': unknown"), std::string::npos) << out;
  EXPECT_EQ(run_cli("eval --model m --tasks gsm8k", &out), 2) << out;  // -o missing: usage error
  EXPECT_EQ(run_cli("data verify --data-dir " + kE2eData.string(), &out), 0) << out;
  EXPECT_NE(out.find("67 files"), std::string::npos) << out;
  EXPECT_EQ(run_cli("data verify --data-dir " + (fx().dir / "nodata").string(), &out), 1) << out;
  EXPECT_NE(out.find("67 file(s) missing or corrupt; run `reasonvec data fetch`"),
            std::string::npos)
      << out;
  EXPECT_EQ(run_cli("data list --data-dir " + kE2eData.string(), &out), 0) << out;
  EXPECT_NE(out.find("https://raw.githubusercontent.com/openai/grade-school-math/"),
            std::string::npos)
      << out;
}
