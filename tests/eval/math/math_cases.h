// Shared helpers for the math checker tests: the oracle cases file and the
// mapping of its configuration to ExtractConfig / VerifyConfig.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/math/config_json.h"
#include "eval/math/math_verify.h"

namespace rv::eval::math::testing {

inline std::filesystem::path math_data() {
  return std::filesystem::path(RV_SHARED_DIR) / "data" / "math";
}

struct Case {
  int lineno = 0;     // line in verify-cases.jsonl (1-based)
  std::string where;  // "test_all.py:62"
  std::string gold, pred;
  int expected = 0;
  ExtractConfig ecfg;
  VerifyConfig vcfg;
};

inline std::vector<Case> load_cases() {
  std::vector<Case> out;
  std::ifstream f(math_data() / "verify-cases.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    auto j = nlohmann::json::parse(line);
    Case c;
    c.lineno = n;
    c.where = j["file"].get<std::string>() + ":" + std::to_string(j["line"].get<int>());
    c.gold = j["gold"];
    c.pred = j["pred"];
    c.expected = j["expected"];
    configs_from_json(j, c.ecfg, c.vcfg);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace rv::eval::math::testing

namespace rv::eval::math::testing {

// The content of the last \boxed{...} (nested braces allowed), or "" if none.
inline std::string last_boxed(const std::string& s) {
  size_t b = s.rfind("\\boxed{");
  if (b == std::string::npos) return "";
  size_t i = b + 7;
  int depth = 1;
  for (size_t k = i; k < s.size(); ++k) {
    if (s[k] == '{') ++depth;
    if (s[k] == '}' && --depth == 0) return s.substr(i, k - i);
  }
  return "";
}

// One benchmark row: the gold answer as Qwen2.5-Math's parse_ground_truth
// reads it (SOURCES.md), and the solution's last \boxed{} when there is one.
struct GoldRow {
  std::string answer;
  std::string solution_boxed;  // "" when the row has no solution or no box in it
  bool has_solution = false;
};

inline std::string py_strip_dollars(std::string s) {
  size_t b = s.find_first_not_of('$');
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of('$');
  return s.substr(b, e - b + 1);
}

inline std::vector<GoldRow> load_dataset(const std::string& name) {
  std::vector<GoldRow> rows;
  std::ifstream f(math_data() / name / "test.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    GoldRow r;
    if (name == "minerva_math") {
      r.answer = last_boxed(j["solution"].get<std::string>());
      r.solution_boxed = r.answer;
      r.has_solution = true;
    } else if (name == "olympiadbench") {
      r.answer = py_strip_dollars(j["final_answer"][0].get<std::string>());
      r.has_solution = !j["solution"].empty();
      if (r.has_solution) r.solution_boxed = last_boxed(j["solution"].back().get<std::string>());
    } else {
      const auto& a = j["answer"];
      r.answer = a.is_string() ? a.get<std::string>() : a.dump();
      if (j.contains("solution") && j["solution"].is_string()) {
        r.has_solution = true;
        r.solution_boxed = last_boxed(j["solution"].get<std::string>());
      }
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

inline const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> n = {"math500", "aime24",       "aime25",
                                             "amc23",   "minerva_math", "olympiadbench"};
  return n;
}

// A gold answer as an Answer: wrapped in \boxed{} so that LaTeX extraction takes all of it.
inline Answer parse_gold(const std::string& answer) {
  return parse("\\boxed{" + answer + "}");
}

}  // namespace rv::eval::math::testing
