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
