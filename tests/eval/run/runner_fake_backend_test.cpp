// run_eval on real task definitions and real data with scripted backends
// whose right/wrong pattern we choose: accuracy must be exactly the chosen
// fraction, the cache must answer a second run completely, and streaming
// and plain backends must agree.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "eval/backend/backend.h"
#include "eval/run/results.h"
#include "eval/run/runner.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace rv::eval;

namespace {

const fs::path kFakeData = fs::path(RV_SHARED_DIR) / "data";

// Question text -> (row index, gold answer string) from the raw files.
std::map<std::string, std::pair<size_t, std::string>> gsm8k_golds() {
  std::map<std::string, std::pair<size_t, std::string>> m;
  std::ifstream in(kFakeData / "gsm8k/test.jsonl");
  std::string line;
  size_t i = 0;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    std::string a = j["answer"];
    m[j["question"]] = {i++, a.substr(a.rfind("#### ") + 5)};
  }
  return m;
}

std::string between_last(const std::string& s, const std::string& a, const std::string& b) {
  size_t p = s.rfind(a);
  if (p == std::string::npos) return "";
  p += a.size();
  size_t q = s.find(b, p);
  return s.substr(p, q == std::string::npos ? std::string::npos : q - p);
}

// Answers GSM8K questions right when their row index is even.
struct ScriptedGen {
  std::map<std::string, std::pair<size_t, std::string>> golds = gsm8k_golds();
  GenResponse answer(const GenRequest& r) const {
    std::string q = between_last(r.prompt, "Question: ", "\nAnswer:");
    auto it = golds.find(q);
    if (it == golds.end()) return {"I do not know", "stop"};
    bool right = it->second.first % 2 == 0;
    return {" Some reasoning.\n#### " + (right ? it->second.second : std::string("-1")), "stop"};
  }
};

// SciQ: the correct answer gets the highest log-prob when the row index is
// divisible by 3.
struct ScriptedLL {
  std::map<std::string, std::pair<size_t, std::string>> rows;
  ScriptedLL() {
    json arr = json::parse(std::ifstream(kFakeData / "sciq/sciq_test.json"));
    for (size_t i = 0; i < arr.size(); ++i)
      rows[arr[i]["question"]] = {i, arr[i]["correct_answer"]};
  }
  LoglikResponse answer(const LoglikRequest& r) const {
    auto it = rows.find(between_last(r.context, "Question: ", "\nAnswer:"));
    if (it == rows.end()) return {-100, false};
    bool is_gold = r.continuation == " " + it->second.second;
    bool right = it->second.first % 3 == 0;
    return {is_gold == right ? -1.0 : -2.0 - r.continuation.size() * 0.001, false};
  }
};

class Streaming : public Backend {
 public:
  std::atomic<int> calls{0};
  ScriptedGen gen;
  ScriptedLL ll;
  std::string fingerprint() const override { return "scripted"; }
  std::string describe() const override { return "scripted streaming"; }
  void generate_stream(const std::vector<GenRequest>& reqs, const GenResultFn& f) override {
    for (size_t i = reqs.size(); i-- > 0;) {  // out of order on purpose
      ++calls;
      f(i, gen.answer(reqs[i]));
    }
  }
  void loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                            const LoglikResultFn& f) override {
    for (size_t i = 0; i < reqs.size(); ++i) {
      ++calls;
      f(i, ll.answer(reqs[i]));
    }
  }
};

fs::path tmpdir(const std::string& n) {
  fs::path p = fs::temp_directory_path() / ("rv_runner_" + n + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace

TEST(Runner, ScoresExactlyTheScriptedPatternAndResumesFromCache) {
  fs::path d = tmpdir("cache");
  RunOptions o;
  o.tasks = {"gsm8k", "sciq"};
  o.task.data_dir = kFakeData;
  o.task.limit = 12;
  o.cache_path = d / "cache.sqlite";
  Streaming b;
  RunResult r = run_eval(b, o);
  ASSERT_EQ(r.tasks.size(), 2u);
  const TaskRun& g = r.tasks[0];
  EXPECT_EQ(g.instances.size(), 12u);
  EXPECT_EQ(g.n_original, 1319u);
  // Rows 0..11: even ones right -> 6/12.
  EXPECT_DOUBLE_EQ(g.summary["exact_match,strict-match"].get<double>(), 0.5);
  const TaskRun& s = r.tasks[1];
  // Rows 0..11 divisible by 3: 0, 3, 6, 9 -> 4/12.
  EXPECT_DOUBLE_EQ(s.summary["acc,none"].get<double>(), 4.0 / 12);
  EXPECT_EQ(s.requests, 48u);  // 4 choices each
  EXPECT_EQ(r.cache_misses, 60u);
  EXPECT_EQ(r.cache_hits, 0u);
  EXPECT_EQ(b.calls.load(), 60);

  // Second run: everything from the cache, nothing sent, same numbers.
  Streaming b2;
  RunResult r2 = run_eval(b2, o);
  EXPECT_EQ(b2.calls.load(), 0);
  EXPECT_EQ(r2.cache_hits, 60u);
  EXPECT_EQ(r2.cache_misses, 0u);
  EXPECT_EQ(r2.tasks[0].summary.dump(), g.summary.dump());
  EXPECT_EQ(r2.tasks[1].summary.dump(), s.summary.dump());

  // A larger limit only sends the new documents.
  o.task.limit = 15;
  Streaming b3;
  RunResult r3 = run_eval(b3, o);
  EXPECT_EQ(b3.calls.load(), 3 + 12);
  EXPECT_EQ(r3.cache_hits, 60u);

  // Results on disk agree with the summaries.
  write_results(d / "out", r2);
  json j = json::parse(std::ifstream(d / "out" / "results.json"));
  EXPECT_DOUBLE_EQ(j["results"]["gsm8k"]["exact_match,strict-match"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["results"]["sciq"]["acc,none"].get<double>(), 4.0 / 12);
  EXPECT_EQ(j["cache"]["hits"], 60);
  fs::remove_all(d);
}

TEST(Runner, UnknownTaskFailsBeforeAnyRequest) {
  RunOptions o;
  o.tasks = {"gsm8k", "nope"};
  o.task.data_dir = kFakeData;
  Streaming b;
  EXPECT_THROW(run_eval(b, o), rv::Error);
  EXPECT_EQ(b.calls.load(), 0);
}
