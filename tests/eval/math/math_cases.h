// Shared helpers for the math checker tests: the oracle cases file and the
// mapping of its configuration to ExtractConfig / VerifyConfig.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

// config.extraction_config / verify of one cases-file line.
inline void configs_from_json(const nlohmann::json& j, ExtractConfig& e, VerifyConfig& v) {
  if (j.contains("config") && j["config"].is_object()) {
    const auto& c = j["config"];
    if (c.contains("extraction_config")) {
      e.latex = e.expr = false;
      for (const auto& x : c["extraction_config"]) {
        std::string t = x.value("type", "");
        if (t == "LatexExtractionConfig") {
          e.latex = true;
          e.boxed_match_priority = x.value("boxed_match_priority", 50);
        } else if (t == "ExprExtractionConfig") {
          e.expr = true;
        }
      }
    }
    if (c.contains("verify")) {
      const auto& vj = c["verify"];
      v.precision = vj.value("float_rounding", v.precision);
      v.strict = vj.value("strict", v.strict);
      v.allow_set_relation_comp = vj.value("allow_set_relation_comp", v.allow_set_relation_comp);
    }
  }
}

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
