// Competition math end to end over real loopback HTTP: an OpenAI-compatible
// server (cpp-httplib, in this process) answers each problem with that
// document's reference solution, and run_eval through HttpBackend must score
// it >= 98% on every math task; answering with the solution of the next
// document whose answer is not equivalent must score <= 2%. What the server
// sends, built from the data files here (not from the task code):
//   math500, minerva_math: `solution` as is (it ends in \boxed{answer});
//   aime24: `solution` as is (AoPS text: some box "\textbf{(113) }", one has
//     no \boxed at all and gets "\n\nThe answer is $\boxed{<answer>}$."
//     appended);
//   olympiadbench: the `solution` list joined by "\n\n", plus
//     "\n\nThe answer is $\boxed{<final_answer[0] without $>}$." when the last
//     part has no \boxed (true for every row of this file);
//   aime25, amc23 (no solutions): "We compute carefully. The answer is
//     $\boxed{<answer>}$." with amc23's float written as an integer (27.0 ->
//     27).
// Under RV_SANITIZER_RUN the first 40 documents of each task are used.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "eval/backend/http.h"
#include "eval/math/math_verify.h"
#include "eval/run/runner.h"
#include "eval/tasks/task.h"
#include "support/llamacpp_oracle.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace rv::eval;

namespace {

const fs::path kMathData = fs::path(RV_SHARED_DIR) / "data";

using rv_test::sanitizer_run;

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> v;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(json::parse(line));
  return v;
}

std::string boxed_sentence(const std::string& answer) {
  return "The answer is $\\boxed{" + answer + "}$.";
}

std::string strip_dollar_ends(std::string s) {
  while (!s.empty() && s.front() == '$') s.erase(s.begin());
  while (!s.empty() && s.back() == '$') s.pop_back();
  return s;
}

// The content of the last \boxed{...} (balanced braces), "" when none.
std::string last_boxed(const std::string& s) {
  size_t p = s.rfind("\\boxed{");
  if (p == std::string::npos) return "";
  size_t i = p + 7, j = i;
  for (int depth = 1; j < s.size() && depth > 0; ++j)
    depth += s[j] == '{' ? 1 : s[j] == '}' ? -1 : 0;
  return s.substr(i, j - 1 - i);
}

struct Ref {
  std::string problem;   // as the task sends it
  std::string response;  // what the server answers
  std::string answer;    // the dataset's answer text, to tell documents apart
};

std::vector<Ref> oracle(const std::string& task) {
  std::vector<Ref> out;
  for (const auto& d : read_jsonl(kMathData / "math" / task / "test.jsonl")) {
    if (task == "math500") {
      out.push_back({d["problem"], d["solution"], d["answer"]});
    } else if (task == "minerva_math") {
      out.push_back({d["problem"], d["solution"], last_boxed(d["solution"])});
    } else if (task == "aime24") {
      std::string s = d["solution"];
      if (s.find("\\boxed") == std::string::npos)
        s += "\n\n" + boxed_sentence(d["answer"].get<std::string>());
      out.push_back({d["problem"], s, d["answer"]});
    } else if (task == "olympiadbench") {
      std::string s;
      for (const auto& part : d["solution"])
        s += (s.empty() ? "" : "\n\n") + part.get<std::string>();
      const std::string gold = strip_dollar_ends(d["final_answer"][0]);
      if (d["solution"].back().get<std::string>().find("\\boxed") == std::string::npos)
        s += "\n\n" + boxed_sentence(gold);
      out.push_back({d["question"], s, gold});
    } else if (task == "amc23") {
      std::string n = std::to_string(std::llround(d["answer"].get<double>()));
      out.push_back({d["problem"], "We compute carefully. " + boxed_sentence(n), n});
    } else {  // aime25
      std::string a = d["answer"];
      out.push_back({d["problem"], "We compute carefully. " + boxed_sentence(a), a});
    }
  }
  return out;
}

const std::vector<std::string> kTasks = {"math500", "aime24",       "aime25",
                                         "amc23",   "minerva_math", "olympiadbench"};

// Answers chat requests by their last user message and completion requests
// by the problem between the last "Problem:\n" and "\n\nSolution:".
struct OracleServer {
  httplib::Server srv;
  std::thread th;
  int port = 0;
  std::map<std::string, std::string> answers;
  std::atomic<int> unknown{0};

  explicit OracleServer(std::map<std::string, std::string> a) : answers(std::move(a)) {
    auto reply = [this](const std::string& problem) {
      auto it = answers.find(problem);
      if (it != answers.end()) return it->second;
      ++unknown;
      return std::string("I do not know.");
    };
    srv.Post("/v1/chat/completions", [=](const httplib::Request& req, httplib::Response& res) {
      json q = json::parse(req.body);
      std::string text = reply(q["messages"].back()["content"].get<std::string>());
      json choice = {{"index", 0},
                     {"message", {{"role", "assistant"}, {"content", text}}},
                     {"finish_reason", "stop"}};
      res.set_content(json{{"choices", json::array({choice})}}.dump(), "application/json");
    });
    srv.Post("/v1/completions", [=](const httplib::Request& req, httplib::Response& res) {
      json q = json::parse(req.body);
      std::string p = q["prompt"];
      size_t b = p.rfind("Problem:\n"), e = p.rfind("\n\nSolution:");
      std::string problem = b != std::string::npos && e != std::string::npos && e > b + 9
                                ? p.substr(b + 9, e - b - 9)
                                : std::string();
      json choice = {{"index", 0}, {"text", " " + reply(problem)}, {"finish_reason", "stop"}};
      res.set_content(json{{"choices", json::array({choice})}}.dump(), "application/json");
    });
    port = srv.bind_to_any_port("127.0.0.1");
    th = std::thread([this] { srv.listen_after_bind(); });
    while (!srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~OracleServer() {
    srv.stop();
    th.join();
  }
};

bool have_math_data() {
  for (const auto& t : kTasks)
    if (!fs::exists(kMathData / "math" / t / "test.jsonl")) return false;
  return true;
}

// shift = false: each document gets its own solution; true: the solution of
// the next document (cyclically) whose answer is not equivalent to its own,
// so that equal answers of neighbours (amc23 has 7, 7, 7; math500 has the
// same value written two ways) are not counted.
std::map<std::string, double> run(bool shift, bool chat, const std::vector<std::string>& tasks,
                                  int limit, int* unknown) {
  std::map<std::string, std::string> answers;
  for (const auto& t : tasks) {
    auto o = oracle(t);
    for (size_t i = 0; i < o.size(); ++i) {
      size_t j = i;
      if (shift) {
        j = (i + 1) % o.size();
        while (j != i &&
               math::equivalent("\\boxed{" + o[j].answer + "}", "\\boxed{" + o[i].answer + "}"))
          j = (j + 1) % o.size();
      }
      answers[o[i].problem] = o[j].response;
    }
  }
  OracleServer server(std::move(answers));
  HttpOptions ho;
  ho.base_url = "http://127.0.0.1:" + std::to_string(server.port) + "/v1";
  ho.model = "oracle";
  ho.concurrency = 8;
  ho.max_retries = 0;
  HttpBackend backend(ho);
  RunOptions ro;
  ro.tasks = tasks;
  ro.task.data_dir = kMathData;
  ro.task.limit = limit;
  ro.task.apply_chat_template = chat;
  RunResult r = run_eval(backend, ro);
  std::map<std::string, double> acc;
  for (const auto& t : r.tasks) acc[t.name] = t.summary["math_verify"].get<double>();
  *unknown = server.unknown.load();
  return acc;
}

}  // namespace

TEST(MathE2E, ReferenceSolutionsScoreHighAndShiftedOnesLow) {
  if (!have_math_data()) GTEST_SKIP() << "no math data under " << kMathData;
  const int limit = sanitizer_run() ? 40 : 0;
  int unknown = 0;
  auto good = run(false, true, kTasks, limit, &unknown);
  EXPECT_EQ(unknown, 0) << "prompts the server did not recognise";
  auto bad = run(true, true, kTasks, limit, &unknown);
  EXPECT_EQ(unknown, 0);
  for (const auto& t : kTasks) {
    std::cout << "[math e2e] " << t << ": own solution " << good[t] << ", shifted " << bad[t]
              << "\n";
    EXPECT_GE(good[t], 0.98) << t;
    EXPECT_LE(bad[t], 0.02) << t;
  }
}

TEST(MathE2E, RawMinervaPromptsOverCompletions) {
  if (!have_math_data()) GTEST_SKIP() << "no math data under " << kMathData;
  int unknown = 0;
  auto good = run(false, false, {"math500"}, 40, &unknown);
  EXPECT_EQ(unknown, 0);
  EXPECT_GE(good["math500"], 0.98);
}
