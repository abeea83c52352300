#include "common/yaml_reader.h"

#include <cstdlib>

#include "common/error.h"

namespace rv {

void YamlReader::fail(const YAML::Node& n, const std::string& key, const std::string& what) const {
  throw Error(where(n), key + ": " + what);
}

std::string YamlReader::where(const YAML::Node& n) const {
  if (n.IsDefined() && n.Mark().line >= 0) return src + ":" + std::to_string(n.Mark().line + 1);
  return src;
}

void YamlReader::only_keys(const YAML::Node& m, const std::string& key,
                           const std::set<std::string>& allowed) const {
  if (!m.IsMap()) fail(m, key, "expected a mapping");
  for (const auto& kv : m) {
    std::string k = kv.first.as<std::string>();
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(kv.first, key.empty() ? k : key + "." + k,
           "unknown key (expected one of: " + list + ")");
    }
  }
}

std::string YamlReader::str(const YAML::Node& n, const std::string& key) const {
  if (!n.IsScalar()) fail(n, key, "expected a string");
  return n.as<std::string>();
}

bool YamlReader::boolean(const YAML::Node& n, const std::string& key) const {
  if (!n.IsScalar()) fail(n, key, "expected true or false");
  try {
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    fail(n, key, "expected true or false, got '" + n.Scalar() + "'");
  }
}

std::vector<std::string> YamlReader::str_list(const YAML::Node& n, const std::string& key) const {
  if (n.IsScalar()) return {n.as<std::string>()};
  if (!n.IsSequence()) fail(n, key, "expected a list of strings");
  std::vector<std::string> out;
  for (const auto& x : n) out.push_back(str(x, key));
  return out;
}

std::filesystem::path YamlReader::path(const YAML::Node& n, const std::string& key) const {
  std::string s = str(n, key);
  if (s.empty()) fail(n, key, "empty path");
  if (s[0] == '~' && std::getenv("HOME")) s = std::string(std::getenv("HOME")) + s.substr(1);
  std::filesystem::path p(s);
  return p.is_absolute() ? p : dir / p;
}

}  // namespace rv
