// Reading checker settings from the JSON of a verify case, in the format of
// shared/data/math/verify-cases.jsonl: "config": {"extraction_config": [{"type":
// "LatexExtractionConfig", "boxed_match_priority": 0}, {"type":
// "ExprExtractionConfig"}], "verify": {"float_rounding", "strict",
// "allow_set_relation_comp"}}, then top-level "precision", "strict" and
// "allow_set_relation_comp" when present (they win). Shared by the CLI and tests.
#pragma once

#include <nlohmann/json.hpp>

#include "eval/math/math_verify.h"

namespace rv::eval::math {

// Updates e and v from `j`; fields that are absent keep their values.
// Throws rv::Error("...") for a field of the wrong type.
void configs_from_json(const nlohmann::json& j, ExtractConfig& e, VerifyConfig& v);

}  // namespace rv::eval::math
