#include "eval/math/config_json.h"

#include "common/error.h"

namespace rv::eval::math {

void configs_from_json(const nlohmann::json& j, ExtractConfig& e, VerifyConfig& v) {
  try {
    if (j.contains("config") && j["config"].is_object()) {
      const auto& c = j["config"];
      if (c.contains("extraction_config") && c["extraction_config"].is_array()) {
        e.latex = e.expr = false;
        for (const auto& x : c["extraction_config"]) {
          std::string t = x.value("type", "");
          if (t == "LatexExtractionConfig") {
            e.latex = true;
            // math_verify's LatexExtractionConfig() default is 50
            e.boxed_match_priority = x.value("boxed_match_priority", 50);
          } else if (t == "ExprExtractionConfig") {
            e.expr = true;
          } else {
            throw Error("config.extraction_config: unsupported type '" + t + "'");
          }
        }
      }
      if (c.contains("verify") && c["verify"].is_object()) {
        const auto& vj = c["verify"];
        v.precision = vj.value("float_rounding", v.precision);
        v.strict = vj.value("strict", v.strict);
        v.allow_set_relation_comp = vj.value("allow_set_relation_comp", v.allow_set_relation_comp);
      }
    }
    if (j.contains("precision") && !j["precision"].is_null())
      v.precision = j["precision"].get<int>();
    if (j.contains("strict") && !j["strict"].is_null()) v.strict = j["strict"].get<bool>();
    if (j.contains("allow_set_relation_comp") && !j["allow_set_relation_comp"].is_null())
      v.allow_set_relation_comp = j["allow_set_relation_comp"].get<bool>();
  } catch (const nlohmann::json::exception& ex) {
    throw Error("config", ex.what());
  }
}

}  // namespace rv::eval::math
