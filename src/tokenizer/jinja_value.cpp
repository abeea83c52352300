// Runtime values of the Jinja interpreter with Python semantics: truthiness,
// equality, str()/repr(), json.dumps, and the str methods templates call.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_value.h"

#include "common/text.h"

namespace rv::jinja::detail {

void fail(std::string msg) {
  throw RuntimeError{std::move(msg)};
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  for (auto& [k, old] : items)
    if (k == key) {
      old = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

Value Value::undefined(std::string hint) {
  Value v;
  v.s = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.t = T::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.t = T::Bool;
  v.b = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.t = T::Int;
  v.i = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.t = T::Float;
  v.f = f;
  return v;
}
Value Value::str(std::string s) {
  Value v;
  v.t = T::Str;
  v.s = std::move(s);
  return v;
}
Value Value::list(List l, bool tuple) {
  Value v;
  v.t = tuple ? T::Tuple : T::List;
  v.l = std::make_shared<const List>(std::move(l));
  return v;
}
Value Value::dict(Dict d) {
  Value v;
  v.t = T::Dict;
  v.d = std::make_shared<Dict>(std::move(d));
  return v;
}
Value Value::ns(Dict d) {
  Value v;
  v.t = T::Namespace;
  v.d = std::make_shared<Dict>(std::move(d));
  return v;
}
Value Value::func(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.t = T::Func;
  v.fn = std::make_shared<const Func>(Func{std::move(name), std::move(fn)});
  return v;
}

const Value* CallArgs::get(size_t idx, std::string_view name) const {
  if (idx < pos.size()) return &pos[idx];
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

void CallArgs::check(const char* fname, size_t max_pos,
                     std::initializer_list<const char*> names) const {
  if (pos.size() > max_pos)
    fail(std::string(fname) + "() takes at most " + std::to_string(max_pos) +
         " positional argument" + (max_pos == 1 ? "" : "s") + " (" + std::to_string(pos.size()) +
         " given)");
  for (const auto& [k, v] : kw) {
    bool ok = false;
    for (const char* n : names) ok = ok || k == n;
    if (!ok) fail(std::string(fname) + "() got an unexpected keyword argument '" + k + "'");
  }
}

const char* type_name(const Value& v) {
  switch (v.t) {
    case T::Undefined:
      return "undefined";
    case T::None:
      return "NoneType";
    case T::Bool:
      return "bool";
    case T::Int:
      return "int";
    case T::Float:
      return "float";
    case T::Str:
      return "str";
    case T::List:
      return "list";
    case T::Tuple:
      return "tuple";
    case T::Dict:
      return "dict";
    case T::Namespace:
      return "Namespace";
    case T::Func:
      return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.t) {
    case T::Undefined:
    case T::None:
      return false;
    case T::Bool:
      return v.b;
    case T::Int:
      return v.i != 0;
    case T::Float:
      return v.f != 0;
    case T::Str:
      return !v.s.empty();
    case T::List:
    case T::Tuple:
      return !v.l->empty();
    case T::Dict:
      return !v.d->items.empty();
    case T::Namespace:
    case T::Func:
      return true;
  }
  return false;
}

double as_double(const Value& v) {
  if (v.t == T::Float) return v.f;
  if (v.t == T::Int) return static_cast<double>(v.i);
  return v.b ? 1.0 : 0.0;
}

bool equal(const Value& a, const Value& b) {
  if (a.is_num() && b.is_num()) {
    if (a.t != T::Float && b.t != T::Float) {
      int64_t x = a.t == T::Int ? a.i : a.b, y = b.t == T::Int ? b.i : b.b;
      return x == y;
    }
    return as_double(a) == as_double(b);
  }
  if (a.t != b.t) return false;
  switch (a.t) {
    case T::Undefined:
    case T::None:
      return true;
    case T::Str:
      return a.s == b.s;
    case T::List:
    case T::Tuple:
      if (a.l->size() != b.l->size()) return false;
      for (size_t k = 0; k < a.l->size(); ++k)
        if (!equal((*a.l)[k], (*b.l)[k])) return false;
      return true;
    case T::Dict:
      if (a.d->items.size() != b.d->items.size()) return false;
      for (const auto& [k, v] : a.d->items) {
        const Value* o = b.d->find(k);
        if (!o || !equal(v, *o)) return false;
      }
      return true;
    case T::Namespace:
      return a.d == b.d;
    case T::Func:
      return a.fn == b.fn;
    default:
      return false;
  }
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout rule: positional when
  // -4 <= exponent < 16, otherwise d.ddde+XX.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (size_t k = 0; k < e; ++k)
    if (sci[k] != '.') digits += sci[k];
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp) + 1) + "." +
             digits.substr(static_cast<size_t>(exp) + 1);
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  }
  return out;
}

namespace {

std::string repr_str(const std::string& s) {
  bool has_sq = s.find('\'') != std::string::npos, has_dq = s.find('"') != std::string::npos;
  char q = has_sq && !has_dq ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == static_cast<unsigned char>(q))
      out += std::string("\\") + q;
    else if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20 || c == 0x7F) {
      char b[8];
      snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + q;
}

void json_str(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t k = 0; k < s.size();) {
    auto c = static_cast<unsigned char>(s[k]);
    if (c == '"')
      out += "\\\"";
    else if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\b')
      out += "\\b";
    else if (c == '\f')
      out += "\\f";
    else if (c < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else if (c >= 0x80 && ensure_ascii) {
      size_t n = 0;
      int32_t dec = text::decode_utf8(s, k, n);
      uint32_t cp = dec < 0 ? 0xFFFD : static_cast<uint32_t>(dec);
      char b[16];
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        snprintf(b, sizeof b, "\\u%04x", cp);
      }
      out += b;
      k += n;
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++k;
  }
  out += '"';
}

void json_rec(std::string& out, const Value& v, int indent, int depth, bool ensure_ascii,
              bool sort_keys, const std::string& isep, const std::string& ksep) {
  auto newline = [&](int d) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(d), ' ');
  };
  switch (v.t) {
    case T::None:
      out += "null";
      return;
    case T::Bool:
      out += v.b ? "true" : "false";
      return;
    case T::Int:
      out += std::to_string(v.i);
      return;
    case T::Float:
      if (std::isnan(v.f))
        out += "NaN";
      else if (std::isinf(v.f))
        out += v.f < 0 ? "-Infinity" : "Infinity";
      else
        out += py_float_repr(v.f);
      return;
    case T::Str:
      json_str(out, v.s, ensure_ascii);
      return;
    case T::List:
    case T::Tuple: {
      if (v.l->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.l->size(); ++k) {
        if (k) out += isep;
        if (indent >= 0) newline(depth + 1);
        json_rec(out, (*v.l)[k], indent, depth + 1, ensure_ascii, sort_keys, isep, ksep);
      }
      if (indent >= 0) newline(depth);
      out += ']';
      return;
    }
    case T::Dict: {
      if (v.d->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.d->items) items.push_back(&kv);
      if (sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += isep;
        if (indent >= 0) newline(depth + 1);
        json_str(out, items[k]->first, ensure_ascii);
        out += ksep;
        json_rec(out, items[k]->second, indent, depth + 1, ensure_ascii, sort_keys, isep, ksep);
      }
      if (indent >= 0) newline(depth);
      out += '}';
      return;
    }
    default:
      fail(std::string("Object of type ") + (v.t == T::Undefined ? "Undefined" : type_name(v)) +
           " is not JSON serializable");
  }
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.t) {
    case T::Undefined:
      return "";
    case T::Str:
      return v.s;
    default:
      return repr(v);
  }
}

std::string repr(const Value& v) {
  switch (v.t) {
    case T::Undefined:
      return "Undefined";
    case T::None:
      return "None";
    case T::Bool:
      return v.b ? "True" : "False";
    case T::Int:
      return std::to_string(v.i);
    case T::Float:
      return py_float_repr(v.f);
    case T::Str:
      return repr_str(v.s);
    case T::List:
    case T::Tuple: {
      bool tup = v.t == T::Tuple;
      std::string out = tup ? "(" : "[";
      for (size_t k = 0; k < v.l->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.l)[k]);
      }
      if (tup && v.l->size() == 1) out += ",";
      return out + (tup ? ")" : "]");
    }
    case T::Dict:
    case T::Namespace: {
      std::string out = v.t == T::Namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : v.d->items) {
        if (!first) out += ", ";
        first = false;
        out += repr_str(k) + ": " + repr(x);
      }
      return out + (v.t == T::Namespace ? "}>" : "}");
    }
    case T::Func:
      return "<function " + v.fn->name + ">";
  }
  return "";
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (const auto& x : j) l.push_back(from_json(x));
      return Value::list(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.items.emplace_back(it.key(), from_json(it.value()));
      return Value::dict(std::move(d));
    }
    default:
      fail("unsupported JSON value (binary or discarded)");
  }
}

std::string to_json(const Value& v, int indent, bool ensure_ascii, bool sort_keys,
                    const std::string* item_sep, const std::string* key_sep) {
  std::string isep = item_sep ? *item_sep : indent >= 0 ? "," : ", ";
  std::string ksep = key_sep ? *key_sep : ": ";
  std::string out;
  json_rec(out, v, indent, 0, ensure_ascii, sort_keys, isep, ksep);
  return out;
}

std::string py_replace(std::string_view s, std::string_view from, std::string_view to,
                       int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` around every character.
    auto chars = text::chars(s);
    int64_t done = 0;
    for (size_t k = 0; k <= chars.size(); ++k) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (k < chars.size()) out += chars[k];
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t k = s.find(from, start);
    if (k == std::string_view::npos) break;
    out.append(s.substr(start, k - start));
    out.append(to);
    start = k + from.size();
    ++done;
  }
  out.append(s.substr(start));
  return out;
}

}  // namespace rv::jinja::detail
