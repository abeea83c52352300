// Internal to the Jinja interpreter (jinja*.cpp): runtime values with
// Python semantics, and the Python-compatible string/number helpers they
// need. Not part of the public API; include jinja.h instead.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace rv::jinja::detail {

// Errors raised while rendering; Template::render adds the template name and
// the line being executed.
struct RuntimeError {
  std::string msg;
};
[[noreturn]] void fail(std::string msg);

struct Value;
struct Func;
using List = std::vector<Value>;

// Insertion-ordered mapping, as Python dicts are.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

enum class T : uint8_t {
  Undefined,
  None,
  Bool,
  Int,
  Float,
  Str,
  List,
  Tuple,
  Dict,
  Namespace,
  Func
};

struct Value {
  T t = T::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                   // Str; for Undefined, what was undefined (for messages)
  std::shared_ptr<const List> l;   // List, Tuple (never mutated once built)
  std::shared_ptr<Dict> d;         // Dict (never mutated once built), Namespace (mutable)
  std::shared_ptr<const Func> fn;  // Func

  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value str(std::string v);
  static Value list(List v, bool tuple = false);
  static Value dict(Dict v);
  static Value ns(Dict v);
  static Value func(std::string name, std::function<Value(struct CallArgs&)> fn);

  bool is_undefined() const { return t == T::Undefined; }
  bool is_seq() const { return t == T::List || t == T::Tuple; }
  bool is_num() const { return t == T::Int || t == T::Float || t == T::Bool; }
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Argument `idx` by position, else by keyword `name`, else nullptr.
  const Value* get(size_t idx, std::string_view name) const;
  // Fails when more than `max_pos` positional arguments or unknown keywords.
  void check(const char* fname, size_t max_pos, std::initializer_list<const char*> names) const;
};

struct Func {
  std::string name;
  std::function<Value(CallArgs&)> call;
};

// Python-ish type name for messages ("str", "int", "list", "undefined", ...).
const char* type_name(const Value& v);
bool truthy(const Value& v);
bool equal(const Value& a, const Value& b);
// str(v) / repr(v) as Python prints them (Undefined prints as "").
std::string to_str(const Value& v);
std::string repr(const Value& v);
std::string py_float_repr(double d);
double as_double(const Value& v);  // Int/Float/Bool

Value from_json(const nlohmann::ordered_json& j);
// transformers' tojson: json.dumps(x, ensure_ascii, indent, separators, sort_keys).
// indent < 0 means None. Separators default as in Python (", "/": ", or ","/": " with indent).
std::string to_json(const Value& v, int indent, bool ensure_ascii, bool sort_keys,
                    const std::string* item_sep = nullptr, const std::string* key_sep = nullptr);

// Python str.replace (the other str methods come from common/text.h).
std::string py_replace(std::string_view s, std::string_view from, std::string_view to,
                       int64_t count);

}  // namespace rv::jinja::detail
