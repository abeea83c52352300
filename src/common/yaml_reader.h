// Reading hand-written YAML configuration (experiment files, task files)
// with errors that name the file, the line and the key:
//   "exp.yaml:4: alphas: expected a non-empty list of numbers".
//
// A YamlReader is the typed accessors over yaml-cpp nodes that every such
// parser needs; the parsers add their own schema on top (derive from it).
// Every accessor throws rv::Error via fail() on a node of the wrong kind or
// a scalar that does not convert; none returns a partial value.
//
// Thread-safety: stateless apart from the two fields; const methods only.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace rv {

struct YamlReader {
  std::string src;            // the file, as messages show it
  std::filesystem::path dir;  // relative paths are relative to this

  // Throws rv::Error("<src>:<line>", "<key>: <what>"); the line is omitted
  // for nodes without a position (a missing key's parent may be given).
  [[noreturn]] void fail(const YAML::Node& n, const std::string& key,
                         const std::string& what) const;
  // "<src>:<line>" of a node (or just src).
  std::string where(const YAML::Node& n) const;
  // Fails on a non-mapping or on a key outside `allowed` (listing them).
  void only_keys(const YAML::Node& m, const std::string& key,
                 const std::set<std::string>& allowed) const;

  std::string str(const YAML::Node& n, const std::string& key) const;
  bool boolean(const YAML::Node& n, const std::string& key) const;
  // A scalar converted to T (int, double, ...); `what` names the expected
  // value in the message ("a positive integer", "seconds").
  template <typename T>
  T num(const YAML::Node& n, const std::string& key, const char* what) const {
    if (!n.IsScalar()) fail(n, key, std::string("expected ") + what);
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      fail(n, key, std::string("expected ") + what + ", got '" + n.Scalar() + "'");
    }
  }
  int integer(const YAML::Node& n, const std::string& key) const {
    return num<int>(n, key, "an integer");
  }
  double real(const YAML::Node& n, const std::string& key) const {
    return num<double>(n, key, "a number");
  }
  // One string or a list of strings.
  std::vector<std::string> str_list(const YAML::Node& n, const std::string& key) const;
  // A path: "~" expands to $HOME, relative paths are taken relative to dir.
  std::filesystem::path path(const YAML::Node& n, const std::string& key) const;
};

}  // namespace rv
