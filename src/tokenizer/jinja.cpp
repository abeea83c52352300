// Jinja interpreter: evaluates the AST from jinja_parse.cpp with Python
// Jinja2 semantics (see jinja.h for the contract and the deviations).
//
// Filters: abs capitalize count d default dictsort e escape first float indent
//   int items join last length list lower map reject rejectattr replace
//   reverse safe select selectattr sort string title tojson trim unique upper
// Tests: boolean callable defined divisibleby eq equalto even false float ge gt
//   in integer iterable le lower lt mapping ne none number odd sameas sequence
//   string true undefined upper
// Globals: namespace dict range raise_exception strftime_now
// str methods: startswith endswith strip lstrip rstrip split rsplit splitlines
//   upper lower title capitalize replace find count join isdigit isspace
//   isalpha isalnum; dict methods: items keys values get
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "common/error.h"
#include "common/text.h"
#include "tokenizer/jinja.h"
#include "tokenizer/jinja_parse.h"

namespace rv::jinja {

using namespace detail;

namespace {

constexpr int kMaxCallDepth = 200;
constexpr int64_t kMaxRange = 100000;  // Jinja2 sandbox MAX_RANGE

[[noreturn]] void fail_undefined(const Value& v) {
  fail(v.s.empty() ? std::string("undefined value") : v.s);
}

std::string type_obj(const Value& v) {
  return std::string(type_name(v)) + " object";
}

// --- small Python string helpers built on jinja_value -----------------------

// Whether a character has a case mapping (what isalpha/isalnum accept beyond ASCII).
bool has_case(std::string_view ch) {
  return text::upper(ch) != ch || text::lower(ch) != ch;
}

// Jinja2's title filter: words start after runs of "-", whitespace, "(", "{",
// "[", "<"; each word becomes word[0].upper() + word[1:].lower().
std::string jinja_title(std::string_view s) {
  std::string out;
  auto is_sep = [](std::string_view ch) {
    size_t len = 0;
    int32_t cp = text::decode_utf8(ch, 0, len);
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' ||
           (cp >= 0 && text::is_space(static_cast<uint32_t>(cp)));
  };
  auto chars = text::chars(s);
  for (size_t k = 0; k < chars.size();) {
    if (is_sep(chars[k])) {
      out += chars[k++];
      continue;
    }
    size_t e = k + 1;
    while (e < chars.size() && !is_sep(chars[e])) ++e;
    const char* rest = chars[k].data() + chars[k].size();
    out += text::upper(chars[k]);
    out += text::lower(std::string_view(rest, chars[e - 1].data() + chars[e - 1].size() - rest));
    k = e;
  }
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  auto chars = text::chars(s);
  std::string line;
  for (size_t k = 0; k < chars.size(); ++k) {
    auto ch = chars[k];
    bool brk = ch == "\n" || ch == "\r" || ch == "\v" || ch == "\f" || ch == "\x1c" ||
               ch == "\x1d" || ch == "\x1e" || ch == "\xc2\x85" || ch == "\xe2\x80\xa8" ||
               ch == "\xe2\x80\xa9";
    if (!brk) {
      line += ch;
      continue;
    }
    std::string end(ch);
    if (ch == "\r" && k + 1 < chars.size() && chars[k + 1] == "\n") {
      end += "\n";
      ++k;
    }
    if (keepends) line += end;
    out.push_back(std::move(line));
    line.clear();
  }
  if (!line.empty()) out.push_back(std::move(line));
  return out;
}

int64_t to_int_arg(const Value& v, const char* what) {
  if (v.t == T::Int) return v.i;
  if (v.t == T::Bool) return v.b;
  fail(std::string(what) + " must be an integer, not " + type_name(v));
}

const std::string& to_str_arg(const Value& v, const char* what) {
  if (v.t != T::Str) fail(std::string(what) + " must be a string, not " + type_name(v));
  return v.s;
}

// Python ordering for sort/comparisons: numbers, strings, sequences.
int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_num() && b.is_num()) {
    if (a.t != T::Float && b.t != T::Float) {
      int64_t x = a.t == T::Int ? a.i : a.b, y = b.t == T::Int ? b.i : b.b;
      return x < y ? -1 : x > y ? 1 : 0;
    }
    double x = as_double(a), y = as_double(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.t == T::Str && b.t == T::Str) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  if (a.t == b.t && a.is_seq()) {
    for (size_t k = 0; k < a.l->size() && k < b.l->size(); ++k) {
      if (equal((*a.l)[k], (*b.l)[k])) continue;
      return compare((*a.l)[k], (*b.l)[k], op);
    }
    return a.l->size() < b.l->size() ? -1 : a.l->size() > b.l->size() ? 1 : 0;
  }
  fail(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
       type_name(b) + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.t) {
    case T::Undefined:
      return false;
    case T::Str:
      if (item.t != T::Str)
        fail(std::string("'in <string>' requires string as left operand, not ") + type_name(item));
      return container.s.find(item.s) != std::string::npos;
    case T::List:
    case T::Tuple:
      for (const auto& x : *container.l)
        if (equal(x, item)) return true;
      return false;
    case T::Dict:
      return item.t == T::Str && container.d->find(item.s) != nullptr;
    default:
      fail(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

// Items a for loop / list() / join() iterates.
std::vector<Value> iterate(const Value& v) {
  std::vector<Value> out;
  switch (v.t) {
    case T::Undefined:
      break;
    case T::List:
    case T::Tuple:
      out = *v.l;
      break;
    case T::Dict:
      for (const auto& kv : v.d->items) out.push_back(Value::str(kv.first));
      break;
    case T::Str:
      for (auto ch : text::chars(v.s)) out.push_back(Value::str(std::string(ch)));
      break;
    default:
      fail(std::string("'") + type_name(v) + "' object is not iterable");
  }
  return out;
}

int64_t length(const Value& v) {
  switch (v.t) {
    case T::Undefined:
      return 0;
    case T::Str:
      return static_cast<int64_t>(text::length(v.s));
    case T::List:
    case T::Tuple:
      return static_cast<int64_t>(v.l->size());
    case T::Dict:
      return static_cast<int64_t>(v.d->items.size());
    default:
      fail(std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

Value arith(const std::string& op, const Value& l, const Value& r) {
  if (op == "~") return Value::str(to_str(l) + to_str(r));
  if (l.is_undefined()) fail_undefined(l);
  if (r.is_undefined()) fail_undefined(r);
  auto type_error = [&]() -> Value {
    fail("unsupported operand type(s) for " + op + ": '" + type_name(l) + "' and '" + type_name(r) +
         "'");
  };
  if (l.is_num() && r.is_num()) {
    bool ints = l.t != T::Float && r.t != T::Float;
    int64_t a = l.t == T::Int ? l.i : l.b, b = r.t == T::Int ? r.i : r.b;
    double x = as_double(l), y = as_double(r);
    int64_t res = 0;
    if (op == "+") {
      if (!ints) return Value::number(x + y);
      if (__builtin_add_overflow(a, b, &res)) fail("integer overflow");
      return Value::integer(res);
    }
    if (op == "-") {
      if (!ints) return Value::number(x - y);
      if (__builtin_sub_overflow(a, b, &res)) fail("integer overflow");
      return Value::integer(res);
    }
    if (op == "*") {
      if (!ints) return Value::number(x * y);
      if (__builtin_mul_overflow(a, b, &res)) fail("integer overflow");
      return Value::integer(res);
    }
    if (op == "/") {
      if (y == 0) fail("division by zero");
      return Value::number(x / y);
    }
    if (op == "//" || op == "%") {
      if (ints ? b == 0 : y == 0)
        fail(op == "//" ? "integer division or modulo by zero" : "modulo by zero");
      if (ints) {
        if (a == INT64_MIN && b == -1) fail("integer overflow");
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) {
          --q;
          m += b;
        }
        return Value::integer(op == "//" ? q : m);
      }
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      if (op == "%") return Value::number(m);
      return Value::number(std::floor(x / y));
    }
    if (op == "**") {
      if (ints && b >= 0) {
        int64_t acc = 1, base = a;
        for (int64_t e = b; e > 0; e >>= 1) {
          if ((e & 1) && __builtin_mul_overflow(acc, base, &acc)) fail("integer overflow");
          if (e > 1 && __builtin_mul_overflow(base, base, &base)) fail("integer overflow");
        }
        return Value::integer(acc);
      }
      if (x == 0 && y < 0) fail("0.0 cannot be raised to a negative power");
      return Value::number(std::pow(x, y));
    }
    return type_error();
  }
  if (op == "+") {
    if (l.t == T::Str && r.t == T::Str) return Value::str(l.s + r.s);
    if (l.is_seq() && l.t == r.t) {
      List out = *l.l;
      out.insert(out.end(), r.l->begin(), r.l->end());
      return Value::list(std::move(out), l.t == T::Tuple);
    }
    if (l.t == T::Str && r.t != T::Str)
      fail(std::string("can only concatenate str (not \"") + type_name(r) + "\") to str");
    return type_error();
  }
  if (op == "*") {
    const Value* seq = l.t == T::Str || l.is_seq() ? &l : &r;
    const Value* n = seq == &l ? &r : &l;
    if ((seq->t == T::Str || seq->is_seq()) && (n->t == T::Int || n->t == T::Bool)) {
      int64_t times = n->t == T::Int ? n->i : n->b;
      if (times > 0 && static_cast<double>(length(*seq)) * static_cast<double>(times) > 1e7)
        fail("repetition result too large");
      if (seq->t == T::Str) {
        std::string out;
        for (int64_t k = 0; k < times; ++k) out += seq->s;
        return Value::str(out);
      }
      List out;
      for (int64_t k = 0; k < times; ++k) out.insert(out.end(), seq->l->begin(), seq->l->end());
      return Value::list(std::move(out), seq->t == T::Tuple);
    }
    return type_error();
  }
  if (op == "%" && l.t == T::Str)
    fail("unsupported Jinja construct: printf-style string formatting ('%')");
  return type_error();
}

// Python slice of a sequence of n items.
std::vector<size_t> slice_indices(int64_t n, const Value* start, const Value* stop,
                                  const Value* step) {
  auto opt = [](const Value* v, const char* what) -> std::optional<int64_t> {
    if (!v || v->t == T::None || v->is_undefined()) return std::nullopt;
    return to_int_arg(*v, what);
  };
  int64_t st = opt(step, "slice step").value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  int64_t lower = st > 0 ? 0 : -1, upper = st > 0 ? n : n - 1;
  auto adjust = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  int64_t b = adjust(opt(start, "slice start"), st > 0 ? lower : upper);
  int64_t e = adjust(opt(stop, "slice stop"), st > 0 ? upper : lower);
  std::vector<size_t> out;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(static_cast<size_t>(k));
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Parses a Python int() literal (optional sign, underscores, surrounding whitespace).
std::optional<int64_t> parse_int(const std::string& s, int base) {
  std::string t = text::strip(s);
  std::string digits;
  for (size_t k = 0; k < t.size(); ++k) {
    if (t[k] == '_' && k > 0 && k + 1 < t.size() &&
        std::isalnum(static_cast<unsigned char>(t[k - 1])) &&
        std::isalnum(static_cast<unsigned char>(t[k + 1])))
      continue;
    digits += t[k];
  }
  if (digits.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(digits.c_str(), &end, base);
  if (errno || *end || std::isspace(static_cast<unsigned char>(digits[0]))) return std::nullopt;
  return v;
}

std::optional<double> parse_float(const std::string& s) {
  std::string t = text::strip(s);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (*end) return std::nullopt;
  return v;
}

struct Scope {
  Scope* parent = nullptr;
  std::vector<std::pair<std::string, Value>> vars;

  explicit Scope(Scope* p) : parent(p) {}
  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent)
      for (auto it = s->vars.rbegin(); it != s->vars.rend(); ++it)
        if (it->first == name) return &it->second;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};

enum class Flow { Normal, Break, Continue };

// Jinja tests by name: one table answers both "is this test known" (the
// parser rejects unknown ones) and "run it".
using TestFn = bool (*)(const std::string& name, const Value& v, const std::vector<Value>& args);

const Value& test_arg(const std::string& name, const std::vector<Value>& args, size_t k) {
  if (k >= args.size()) fail("test '" + name + "' needs an argument");
  return args[k];
}

const std::unordered_map<std::string, TestFn>& tests() {
  struct Entry {
    std::initializer_list<const char*> names;
    TestFn fn;
  };
  static const std::unordered_map<std::string, TestFn> table = [] {
    const Entry entries[] = {
        {{"defined"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return !v.is_undefined(); }},
        {{"undefined"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.is_undefined(); }},
        {{"none"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::None; }},
        {{"boolean"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Bool; }},
        {{"true"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Bool && v.b; }},
        {{"false"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Bool && !v.b; }},
        {{"integer"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Int; }},
        {{"float"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Float; }},
        {{"number"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.is_num(); }},
        {{"string"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Str; }},
        {{"mapping"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Dict; }},
        {{"iterable", "sequence"},
         [](const std::string& /*name*/, const Value& v, const std::vector<Value>& /*args*/)
             -> bool { return v.t == T::Str || v.is_seq() || v.t == T::Dict || v.is_undefined(); }},
        {{"callable"},
         [](const std::string& /*name*/, const Value& v,
            const std::vector<Value>& /*args*/) -> bool { return v.t == T::Func; }},
        {{"odd", "even", "divisibleby"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           int64_t x = to_int_arg(v, name.c_str());
           if (name == "divisibleby") {
             int64_t d = to_int_arg(test_arg(name, args, 0), "divisibleby argument");
             if (d == 0) fail("integer division or modulo by zero");
             return x % d == 0;
           }
           return (((x % 2) + 2) % 2 == 1) == (name == "odd");
         }},
        {{"eq", "equalto"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           return equal(v, test_arg(name, args, 0));
         }},
        {{"ne"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           return !equal(v, test_arg(name, args, 0));
         }},
        {{"lt", "lessthan"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           return compare(v, test_arg(name, args, 0), "<") < 0;
         }},
        {{"le"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           return compare(v, test_arg(name, args, 0), "<=") <= 0;
         }},
        {{"gt", "greaterthan"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           return compare(v, test_arg(name, args, 0), ">") > 0;
         }},
        {{"ge"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           return compare(v, test_arg(name, args, 0), ">=") >= 0;
         }},
        {{"in"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           return contains(test_arg(name, args, 0), v);
         }},
        {{"lower"},
         [](const std::string& /*name*/, const Value& v, const std::vector<Value>& /*args*/)
             -> bool { return v.t == T::Str && text::lower(v.s) == v.s; }},
        {{"upper"},
         [](const std::string& /*name*/, const Value& v, const std::vector<Value>& /*args*/)
             -> bool { return v.t == T::Str && text::upper(v.s) == v.s; }},
        {{"sameas"},
         [](const std::string& name, const Value& v, const std::vector<Value>& args) -> bool {
           const Value& o = test_arg(name, args, 0);
           if (v.t != o.t) return false;
           switch (v.t) {
             case T::None:
             case T::Undefined:
               return true;
             case T::Bool:
               return v.b == o.b;
             case T::Int:
               return v.i == o.i;
             case T::Str:
               return v.s == o.s;
             case T::List:
             case T::Tuple:
               return v.l == o.l;
             case T::Dict:
             case T::Namespace:
               return v.d == o.d;
             case T::Func:
               return v.fn == o.fn;
             default:
               return false;
           }
         }},
    };
    std::unordered_map<std::string, TestFn> t;
    for (const auto& e : entries)
      for (const char* n : e.names) t.emplace(n, e.fn);
    return t;
  }();
  return table;
}

class Interp {
 public:
  Interp(const RenderOptions& ro, Scope* root) : ro_(ro), root_(root) {}
  int line = 0;

  Flow exec(const Body& body, Scope& sc, std::string& out) {
    for (const auto& sp : body) {
      const Stmt& s = *sp;
      line = s.line;
      switch (s.k) {
        case SK::Text:
          out += s.text;
          break;
        case SK::Print:
          out += to_str(eval(*s.e, sc));
          break;
        case SK::If: {
          bool taken = false;
          for (const auto& [cond, b] : s.branches) {
            line = cond->line;
            if (truthy(eval(*cond, sc))) {
              taken = true;
              Flow f = exec(b, sc, out);
              if (f != Flow::Normal) return f;
              break;
            }
          }
          if (!taken) {
            Flow f = exec(s.else_body, sc, out);
            if (f != Flow::Normal) return f;
          }
          break;
        }
        case SK::For:
          exec_for(s, sc, out);
          break;
        case SK::Set: {
          Value v = eval(*s.e, sc);
          line = s.line;
          assign(s, v, sc);
          break;
        }
        case SK::SetAttr: {
          Value v = eval(*s.e, sc);
          line = s.line;
          const Value* ns = sc.find(s.names[0]);
          if (!ns || ns->t != T::Namespace)
            fail("cannot assign attribute '" + s.names[1] + "' on '" + s.names[0] +
                 "': it is not a namespace() object");
          ns->d->set(s.names[1], std::move(v));
          break;
        }
        case SK::SetBlock: {
          std::string o;
          exec(s.body, sc, o);
          sc.set(s.names[0], Value::str(std::move(o)));
          break;
        }
        case SK::Macro:
          sc.set(s.names[0], make_macro(s));
          break;
        case SK::Break:
          return Flow::Break;
        case SK::Continue:
          return Flow::Continue;
        case SK::Block: {
          Flow f = exec(s.body, sc, out);
          if (f != Flow::Normal) return f;
          break;
        }
      }
    }
    return Flow::Normal;
  }

 private:
  void bind_targets(const Stmt& s, const Value& item, Scope& sc) {
    if (!s.tuple_target) {
      sc.set(s.names[0], item);
      return;
    }
    std::vector<Value> parts = iterate(item);
    if (parts.size() != s.names.size())
      fail(parts.size() > s.names.size()
               ? "too many values to unpack (expected " + std::to_string(s.names.size()) + ")"
               : "not enough values to unpack (expected " + std::to_string(s.names.size()) +
                     ", got " + std::to_string(parts.size()) + ")");
    for (size_t k = 0; k < parts.size(); ++k) sc.set(s.names[k], parts[k]);
  }

  void assign(const Stmt& s, const Value& v, Scope& sc) { bind_targets(s, v, sc); }

  void exec_for(const Stmt& s, Scope& sc, std::string& out) {
    Value seq = eval(*s.e, sc);
    line = s.line;
    std::vector<Value> items = iterate(seq);
    if (s.cond) {
      std::vector<Value> kept;
      for (auto& it : items) {
        Scope tmp(&sc);
        bind_targets(s, it, tmp);
        if (truthy(eval(*s.cond, tmp))) kept.push_back(std::move(it));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      Scope es(&sc);
      exec(s.else_body, es, out);
      return;
    }
    int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      Scope is(&sc);
      Dict loop;
      loop.items.reserve(12);
      loop.items.emplace_back("index", Value::integer(k + 1));
      loop.items.emplace_back("index0", Value::integer(k));
      loop.items.emplace_back("revindex", Value::integer(n - k));
      loop.items.emplace_back("revindex0", Value::integer(n - k - 1));
      loop.items.emplace_back("first", Value::boolean(k == 0));
      loop.items.emplace_back("last", Value::boolean(k == n - 1));
      loop.items.emplace_back("length", Value::integer(n));
      loop.items.emplace_back("depth", Value::integer(1));
      loop.items.emplace_back("depth0", Value::integer(0));
      loop.items.emplace_back("previtem",
                              k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined());
      loop.items.emplace_back("nextitem",
                              k + 1 < n ? items[static_cast<size_t>(k + 1)] : Value::undefined());
      loop.items.emplace_back("cycle", Value::func("loop.cycle", [k](CallArgs& a) {
                                if (a.pos.empty()) fail("no items for cycling given");
                                return a.pos[static_cast<size_t>(k) % a.pos.size()];
                              }));
      is.set("loop", Value::dict(std::move(loop)));
      bind_targets(s, items[static_cast<size_t>(k)], is);
      Flow f = exec(s.body, is, out);
      if (f == Flow::Break) break;
    }
  }

  Value make_macro(const Stmt& s) {
    const Stmt* sp = &s;
    return Value::func(s.names[0], [this, sp](CallArgs& a) {
      if (depth_ >= kMaxCallDepth) fail("maximum macro recursion depth exceeded");
      if (a.pos.size() > sp->params.size())
        fail("macro '" + sp->names[0] + "' takes not more than " +
             std::to_string(sp->params.size()) + " argument(s)");
      Scope ms(root_);
      for (const auto& [k, v] : a.kw) {
        bool ok = false;
        for (const auto& p : sp->params) ok = ok || p.first == k;
        if (!ok) fail("macro '" + sp->names[0] + "' takes no keyword argument '" + k + "'");
      }
      for (size_t k = 0; k < sp->params.size(); ++k) {
        const auto& [pname, def] = sp->params[k];
        const Value* v = a.get(k, pname);
        if (v)
          ms.set(pname, *v);
        else if (def)
          ms.set(pname, eval(*def, ms));
        else
          ms.set(pname, Value::undefined("parameter '" + pname + "' was not provided"));
      }
      int saved_line = line;
      ++depth_;
      std::string o;
      exec(sp->body, ms, o);
      --depth_;
      line = saved_line;
      return Value::str(std::move(o));
    });
  }

  CallArgs eval_args(const Expr& e, size_t first, Scope& sc) {
    CallArgs a;
    for (size_t k = first; k < e.a.size(); ++k) a.pos.push_back(eval(*e.a[k], sc));
    for (const auto& [k, v] : e.kw) a.kw.emplace_back(k, eval(*v, sc));
    return a;
  }

  Value get_attr(const Value& obj, const std::string& name) {
    switch (obj.t) {
      case T::Undefined:
        return obj;
      case T::Dict: {
        if (name == "items" || name == "keys" || name == "values" || name == "get")
          return dict_method(obj, name);
        if (const Value* v = obj.d->find(name)) return *v;
        return Value::undefined("'dict object' has no attribute '" + name + "'");
      }
      case T::Namespace:
        if (const Value* v = obj.d->find(name)) return *v;
        return Value::undefined("'Namespace object' has no attribute '" + name + "'");
      case T::Str: {
        Value m = str_method(obj, name);
        if (!m.is_undefined()) return m;
        break;
      }
      default:
        break;
    }
    return Value::undefined("'" + type_obj(obj) + "' has no attribute '" + name + "'");
  }

  Value get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) return obj;
    if ((obj.is_seq() || obj.t == T::Str) && (key.t == T::Int || key.t == T::Bool)) {
      int64_t n = length(obj), k = key.t == T::Int ? key.i : key.b;
      if (k < 0) k += n;
      if (k < 0 || k >= n)
        return Value::undefined("'" + type_obj(obj) + "' has no element " + std::to_string(key.i));
      if (obj.t == T::Str)
        return Value::str(std::string(text::chars(obj.s)[static_cast<size_t>(k)]));
      return (*obj.l)[static_cast<size_t>(k)];
    }
    if ((obj.t == T::Dict || obj.t == T::Namespace) && key.t == T::Str) {
      if (const Value* v = obj.d->find(key.s)) return *v;
    }
    if (key.t == T::Str) return get_attr(obj, key.s);
    return Value::undefined("'" + type_obj(obj) + "' has no element " + repr(key));
  }

  Value dict_method(const Value& obj, const std::string& name) {
    auto d = obj.d;
    if (name == "items")
      return Value::func("items", [d](CallArgs& a) {
        a.check("items", 0, {});
        List out;
        for (const auto& [k, v] : d->items) out.push_back(Value::list({Value::str(k), v}, true));
        return Value::list(std::move(out));
      });
    if (name == "keys")
      return Value::func("keys", [d](CallArgs& a) {
        a.check("keys", 0, {});
        List out;
        for (const auto& kv : d->items) out.push_back(Value::str(kv.first));
        return Value::list(std::move(out));
      });
    if (name == "values")
      return Value::func("values", [d](CallArgs& a) {
        a.check("values", 0, {});
        List out;
        for (const auto& kv : d->items) out.push_back(kv.second);
        return Value::list(std::move(out));
      });
    return Value::func("get", [d](CallArgs& a) {
      a.check("get", 2, {});
      if (a.pos.empty()) fail("get expected at least 1 argument, got 0");
      if (a.pos[0].t == T::Str)
        if (const Value* v = d->find(a.pos[0].s)) return *v;
      return a.pos.size() > 1 ? a.pos[1] : Value::none();
    });
  }

  Value str_method(const Value& obj, const std::string& name) {
    std::string s = obj.s;
    auto strip_fn = [s](text::Side side, const char* n) {
      return Value::func(n, [s, side, n](CallArgs& a) {
        a.check(n, 1, {});
        const Value* c = a.get(0, "");
        if (c && c->t != T::None)
          return Value::str(text::strip(s, to_str_arg(*c, "strip chars"), side));
        return Value::str(text::strip(s, side));
      });
    };
    if (name == "strip") return strip_fn(text::Side::kBoth, "strip");
    if (name == "lstrip") return strip_fn(text::Side::kLeft, "lstrip");
    if (name == "rstrip") return strip_fn(text::Side::kRight, "rstrip");
    if (name == "startswith" || name == "endswith") {
      bool start = name == "startswith";
      return Value::func(name, [s, start](CallArgs& a) {
        a.check(start ? "startswith" : "endswith", 1, {});
        if (a.pos.empty()) fail("startswith/endswith takes exactly one argument (0 given)");
        auto test = [&](const Value& p) {
          const std::string& x = to_str_arg(p, "startswith/endswith argument");
          if (x.size() > s.size()) return false;
          return start ? s.compare(0, x.size(), x) == 0
                       : s.compare(s.size() - x.size(), x.size(), x) == 0;
        };
        if (a.pos[0].is_seq()) {
          for (const auto& p : *a.pos[0].l)
            if (test(p)) return Value::boolean(true);
          return Value::boolean(false);
        }
        return Value::boolean(test(a.pos[0]));
      });
    }
    if (name == "split" || name == "rsplit") {
      bool right = name == "rsplit";
      return Value::func(name, [s, right](CallArgs& a) {
        a.check("split", 2, {"sep", "maxsplit"});
        const Value* sep = a.get(0, "sep");
        const Value* mx = a.get(1, "maxsplit");
        int64_t maxsplit = mx ? to_int_arg(*mx, "maxsplit") : -1;
        const std::string* sp = sep && sep->t != T::None ? &to_str_arg(*sep, "sep") : nullptr;
        std::vector<std::string> parts;
        if (right && maxsplit >= 0) {
          if (!sp) fail("unsupported Jinja construct: rsplit() on whitespace with maxsplit");
          if (sp->empty()) fail("empty separator");
          // Split from the right, then restore order.
          size_t end = s.size();
          while (static_cast<int64_t>(parts.size()) < maxsplit) {
            size_t k = end >= sp->size() ? s.rfind(*sp, end - sp->size()) : std::string::npos;
            if (k == std::string::npos) break;
            parts.push_back(s.substr(k + sp->size(), end - k - sp->size()));
            end = k;
          }
          parts.push_back(s.substr(0, end));
          std::reverse(parts.begin(), parts.end());
        } else {
          if (sp && sp->empty()) fail("empty separator");
          parts = sp ? text::split(s, *sp, maxsplit) : text::split(s, maxsplit);
        }
        List out;
        for (auto& p : parts) out.push_back(Value::str(std::move(p)));
        return Value::list(std::move(out));
      });
    }
    if (name == "splitlines")
      return Value::func(name, [s](CallArgs& a) {
        a.check("splitlines", 1, {"keepends"});
        const Value* ke = a.get(0, "keepends");
        List out;
        for (auto& p : py_splitlines(s, ke && truthy(*ke))) out.push_back(Value::str(std::move(p)));
        return Value::list(std::move(out));
      });
    auto unary = [&](const char* n, std::string (*f)(std::string_view)) {
      return Value::func(n, [s, f, n](CallArgs& a) {
        a.check(n, 0, {});
        return Value::str(f(s));
      });
    };
    if (name == "upper") return unary("upper", text::upper);
    if (name == "lower") return unary("lower", text::lower);
    if (name == "title") return unary("title", text::title);
    if (name == "capitalize") return unary("capitalize", text::capitalize);
    if (name == "replace")
      return Value::func(name, [s](CallArgs& a) {
        a.check("replace", 3, {"count"});
        if (a.pos.size() < 2) fail("replace expected at least 2 arguments");
        const Value* c = a.get(2, "count");
        return Value::str(py_replace(s, to_str_arg(a.pos[0], "replace old"),
                                     to_str_arg(a.pos[1], "replace new"),
                                     c ? to_int_arg(*c, "count") : -1));
      });
    if (name == "find" || name == "count")
      return Value::func(name, [s, name](CallArgs& a) {
        a.check(name.c_str(), 1, {});
        if (a.pos.empty()) fail(name + "() takes exactly one argument (0 given)");
        const std::string& sub = to_str_arg(a.pos[0], "substring");
        if (name == "find") {
          size_t k = s.find(sub);
          return Value::integer(
              k == std::string::npos ? -1 : static_cast<int64_t>(text::length(s.substr(0, k))));
        }
        if (sub.empty()) return Value::integer(static_cast<int64_t>(text::length(s)) + 1);
        int64_t n = 0;
        for (size_t k = s.find(sub); k != std::string::npos; k = s.find(sub, k + sub.size())) ++n;
        return Value::integer(n);
      });
    if (name == "join")
      return Value::func(name, [s](CallArgs& a) {
        a.check("join", 1, {});
        if (a.pos.empty()) fail("join() takes exactly one argument (0 given)");
        std::string out;
        bool first = true;
        for (const auto& x : iterate(a.pos[0])) {
          if (x.t != T::Str)
            fail(std::string("sequence item: expected str instance, ") + type_name(x) + " found");
          if (!first) out += s;
          first = false;
          out += x.s;
        }
        return Value::str(out);
      });
    if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum")
      return Value::func(name, [s, name](CallArgs& a) {
        a.check(name.c_str(), 0, {});
        if (s.empty()) return Value::boolean(false);
        for (auto ch : text::chars(s)) {
          unsigned char c = static_cast<unsigned char>(ch[0]);
          size_t len = 0;
          int32_t cp = text::decode_utf8(ch, 0, len);
          bool ok = name == "isdigit"   ? ch.size() == 1 && std::isdigit(c)
                    : name == "isspace" ? cp >= 0 && text::is_space(static_cast<uint32_t>(cp))
                    : name == "isalpha" ? (ch.size() == 1 ? std::isalpha(c) != 0 : has_case(ch))
                                        : (ch.size() == 1 ? std::isalnum(c) != 0 : has_case(ch));
          if (!ok) return Value::boolean(false);
        }
        return Value::boolean(true);
      });
    return Value::undefined();
  }

  Value call_global(const Expr& e, Scope& sc) {
    Value callee;
    const Expr& ce = *e.a[0];
    callee = eval(ce, sc);
    CallArgs args = eval_args(e, 1, sc);
    line = e.line;
    if (callee.t == T::Func) return callee.fn->call(args);
    if (callee.is_undefined()) {
      if (ce.k == EK::Attr && !callee.s.empty()) {
        Value obj = eval(*ce.a[0], sc);
        if (obj.t == T::Str || obj.is_seq())
          fail("unsupported Jinja construct: method '" + ce.name + "' of " + type_name(obj) +
               " objects");
      }
      fail_undefined(callee);
    }
    fail(std::string("'") + type_name(callee) + "' object is not callable");
  }

  Value attr_path(const Value& item, const std::string& path) {
    Value v = item;
    size_t start = 0;
    for (;;) {
      size_t dot = path.find('.', start);
      std::string part =
          path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      bool numeric = !part.empty() && std::all_of(part.begin(), part.end(),
                                                  [](char c) { return c >= '0' && c <= '9'; });
      v = numeric ? get_item(v, Value::integer(std::stoll(part))) : get_item(v, Value::str(part));
      if (dot == std::string::npos) return v;
      start = dot + 1;
    }
  }

  bool run_test(const std::string& name, const Value& v, const std::vector<Value>& args) {
    auto it = tests().find(name);
    if (it == tests().end()) fail("unsupported Jinja test '" + name + "'");
    return it->second(name, v, args);
  }

 public:
  // Jinja filters by name: one table answers both "is this filter known"
  // (the parser rejects unknown ones) and "apply it".
  using FilterFn = Value (*)(Interp& in, const std::string& name, const Value& v, CallArgs& a,
                             Scope& sc);
  static const std::unordered_map<std::string, FilterFn>& filters() {
    struct Entry {
      std::initializer_list<const char*> names;
      FilterFn fn;
    };
    static const std::unordered_map<std::string, FilterFn> table = [] {
      const Entry entries[] = {
          {{"default", "d"},
           [](Interp& /*in*/, const std::string& name, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check(name.c_str(), 2, {"default_value", "boolean"});
             const Value* dv = a.get(0, "default_value");
             const Value* b = a.get(1, "boolean");
             bool use = v.is_undefined() || (b && truthy(*b) && !truthy(v));
             return use ? (dv ? *dv : Value::str("")) : v;
           }},
          {{"tojson"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None,
             // sort_keys=False)
             a.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
             const Value* ea = a.get(0, "ensure_ascii");
             const Value* ind = a.get(1, "indent");
             const Value* seps = a.get(2, "separators");
             const Value* sk = a.get(3, "sort_keys");
             int indent = -1;
             std::string indent_str;
             if (ind && ind->t != T::None) {
               if (ind->t == T::Str)
                 fail("unsupported Jinja construct: tojson with a string indent");
               int64_t n = to_int_arg(*ind, "indent");
               indent = static_cast<int>(std::clamp<int64_t>(n, 0, 1000));
             }
             std::string isep, ksep;
             bool have_seps = seps && seps->t != T::None;
             if (have_seps) {
               if (!seps->is_seq() || seps->l->size() != 2)
                 fail("separators must be a (item_separator, key_separator) pair");
               isep = to_str_arg((*seps->l)[0], "item separator");
               ksep = to_str_arg((*seps->l)[1], "key separator");
             }
             return Value::str(to_json(v, indent, ea && truthy(*ea), sk && truthy(*sk),
                                       have_seps ? &isep : nullptr, have_seps ? &ksep : nullptr));
           }},
          {{"length", "count"},
           [](Interp& /*in*/, const std::string& name, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check(name.c_str(), 0, {});
             return Value::integer(length(v));
           }},
          {{"trim"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("trim", 1, {"chars"});
             const Value* c = a.get(0, "chars");
             std::string s = to_str(v);
             if (c && c->t != T::None) return Value::str(text::strip(s, to_str_arg(*c, "chars")));
             return Value::str(text::strip(s));
           }},
          {{"upper", "lower", "title", "capitalize"},
           [](Interp& /*in*/, const std::string& name, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check(name.c_str(), 0, {});
             std::string s = to_str(v);
             if (name == "upper") return Value::str(text::upper(s));
             if (name == "lower") return Value::str(text::lower(s));
             if (name == "title") return Value::str(jinja_title(s));
             return Value::str(text::capitalize(s));
           }},
          {{"string"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("string", 0, {});
             return Value::str(to_str(v));
           }},
          {{"safe"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& /*a*/,
              Scope& /*sc*/) -> Value { return v; }},
          {{"e", "escape"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& /*a*/,
              Scope& /*sc*/) -> Value { return Value::str(html_escape(to_str(v))); }},
          {{"replace"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("replace", 3, {"old", "new", "count"});
             const Value* o = a.get(0, "old");
             const Value* n = a.get(1, "new");
             const Value* c = a.get(2, "count");
             if (!o || !n) fail("replace filter needs 'old' and 'new'");
             return Value::str(py_replace(to_str(v), to_str(*o), to_str(*n),
                                          c && c->t != T::None ? to_int_arg(*c, "count") : -1));
           }},
          {{"int"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("int", 2, {"default", "base"});
             const Value* dv = a.get(0, "default");
             const Value* bv = a.get(1, "base");
             Value def = dv ? *dv : Value::integer(0);
             if (v.t == T::Int) return v;
             if (v.t == T::Bool) return Value::integer(v.b);
             if (v.t == T::Float) {
               if (!std::isfinite(v.f)) return def;
               return Value::integer(static_cast<int64_t>(std::trunc(v.f)));
             }
             if (v.t == T::Str) {
               if (auto i = parse_int(v.s, bv ? static_cast<int>(to_int_arg(*bv, "base")) : 10))
                 return Value::integer(*i);
               if (auto f = parse_float(v.s); f && std::isfinite(*f))
                 return Value::integer(static_cast<int64_t>(std::trunc(*f)));
             }
             return def;
           }},
          {{"float"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("float", 1, {"default"});
             const Value* dv = a.get(0, "default");
             Value def = dv ? *dv : Value::number(0.0);
             if (v.is_num()) return Value::number(as_double(v));
             if (v.t == T::Str)
               if (auto f = parse_float(v.s)) return Value::number(*f);
             return def;
           }},
          {{"abs"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("abs", 0, {});
             if (v.t == T::Float) return Value::number(std::fabs(v.f));
             if (v.t == T::Int || v.t == T::Bool) {
               int64_t x = v.t == T::Int ? v.i : v.b;
               if (x == INT64_MIN) fail("integer overflow");
               return Value::integer(x < 0 ? -x : x);
             }
             fail(std::string("bad operand type for abs(): '") + type_name(v) + "'");
           }},
          {{"list"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("list", 0, {});
             return Value::list(iterate(v));
           }},
          {{"items"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("items", 0, {});
             if (v.is_undefined()) return Value::list({});
             if (v.t != T::Dict)
               fail(std::string("items filter: can only get item pairs from a mapping, not ") +
                    type_name(v));
             List out;
             for (const auto& [k, x] : v.d->items)
               out.push_back(Value::list({Value::str(k), x}, true));
             return Value::list(std::move(out));
           }},
          {{"dictsort"},
           [](Interp& in, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("dictsort", 3, {"case_sensitive", "by", "reverse"});
             if (v.t != T::Dict) fail("dictsort filter: expected a mapping");
             const Value* cs = a.get(0, "case_sensitive");
             const Value* by = a.get(1, "by");
             const Value* rev = a.get(2, "reverse");
             bool by_value = by && to_str(*by) == "value";
             if (by && !by_value && to_str(*by) != "key")
               fail("You can only sort by either \"key\" or \"value\"");
             List out;
             for (const auto& [k, x] : v.d->items)
               out.push_back(Value::list({Value::str(k), x}, true));
             in.sort_values(out, cs && truthy(*cs), rev && truthy(*rev),
                            [&](const Value& p) { return (*p.l)[by_value ? 1 : 0]; });
             return Value::list(std::move(out));
           }},
          {{"join"},
           [](Interp& in, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("join", 2, {"d", "attribute"});
             const Value* sep = a.get(0, "d");
             const Value* attr = a.get(1, "attribute");
             std::string out, s = sep ? to_str(*sep) : "";
             bool first = true;
             for (const auto& x : iterate(v)) {
               if (!first) out += s;
               first = false;
               out += to_str(attr ? in.attr_path(x, to_str(*attr)) : x);
             }
             return Value::str(out);
           }},
          {{"first", "last"},
           [](Interp& /*in*/, const std::string& name, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check(name.c_str(), 0, {});
             if (v.t == T::Dict && name == "last")
               fail("'dict' object is not reversible in this interpreter");
             std::vector<Value> items = iterate(v);
             if (items.empty())
               return Value::undefined("No " + name + " item, sequence was empty.");
             return name == "first" ? items.front() : items.back();
           }},
          {{"reverse"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("reverse", 0, {});
             if (v.t == T::Str) {
               auto chars = text::chars(v.s);
               std::string out;
               for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
               return Value::str(out);
             }
             std::vector<Value> items = iterate(v);
             std::reverse(items.begin(), items.end());
             return Value::list(std::move(items));
           }},
          {{"sort"},
           [](Interp& in, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("sort", 3, {"reverse", "case_sensitive", "attribute"});
             const Value* rev = a.get(0, "reverse");
             const Value* cs = a.get(1, "case_sensitive");
             const Value* attr = a.get(2, "attribute");
             std::vector<Value> items = iterate(v);
             std::string path = attr && attr->t != T::None ? to_str(*attr) : "";
             in.sort_values(items, cs && truthy(*cs), rev && truthy(*rev), [&](const Value& x) {
               return path.empty() ? x : in.attr_path(x, path);
             });
             return Value::list(std::move(items));
           }},
          {{"unique"},
           [](Interp& in, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("unique", 2, {"case_sensitive", "attribute"});
             const Value* cs = a.get(0, "case_sensitive");
             const Value* attr = a.get(1, "attribute");
             bool case_sensitive = cs && truthy(*cs);
             List out, keys;
             for (const auto& x : iterate(v)) {
               Value key = attr ? in.attr_path(x, to_str(*attr)) : x;
               if (!case_sensitive && key.t == T::Str) key = Value::str(text::lower(key.s));
               bool seen = false;
               for (const auto& k : keys) seen = seen || equal(k, key);
               if (!seen) {
                 keys.push_back(key);
                 out.push_back(x);
               }
             }
             return Value::list(std::move(out));
           }},
          {{"indent"},
           [](Interp& /*in*/, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             a.check("indent", 3, {"width", "first", "blank"});
             const Value* w = a.get(0, "width");
             const Value* fi = a.get(1, "first");
             const Value* bl = a.get(2, "blank");
             std::string ind = w && w->t == T::Str
                                   ? w->s
                                   : std::string(static_cast<size_t>(std::clamp<int64_t>(
                                                     w ? to_int_arg(*w, "width") : 4, 0, 1000)),
                                                 ' ');
             std::string s = to_str(v) + "\n";
             auto lines = py_splitlines(s, false);
             std::string rv;
             if (bl && truthy(*bl)) {
               for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k];
             } else {
               rv = lines.empty() ? "" : lines[0];
               for (size_t k = 1; k < lines.size(); ++k)
                 rv += "\n" + (lines[k].empty() ? "" : ind + lines[k]);
             }
             if (fi && truthy(*fi)) rv = ind + rv;
             return Value::str(rv);
           }},
          {{"map"},
           [](Interp& in, const std::string& /*name*/, const Value& v, CallArgs& a,
              Scope& sc) -> Value {
             std::vector<Value> items = iterate(v);
             List out;
             const Value* attr = nullptr;
             for (const auto& [k, x] : a.kw)
               if (k == "attribute") attr = &x;
             if (attr) {
               const Value* def = nullptr;
               for (const auto& [k, x] : a.kw)
                 if (k == "default")
                   def = &x;
                 else if (k != "attribute")
                   fail("map filter: unexpected keyword argument '" + k + "'");
               for (const auto& x : items) {
                 Value r = in.attr_path(x, to_str(*attr));
                 out.push_back(r.is_undefined() && def ? *def : r);
               }
               return Value::list(std::move(out));
             }
             if (a.pos.empty()) fail("map filter needs a filter name or attribute=");
             std::string fname = to_str_arg(a.pos[0], "map filter name");
             if (!is_known_filter(fname) || fname == "map")
               fail("unsupported Jinja filter '" + fname + "'");
             CallArgs rest;
             rest.pos.assign(a.pos.begin() + 1, a.pos.end());
             rest.kw = a.kw;
             for (const auto& x : items) {
               CallArgs copy = rest;
               out.push_back(in.apply_filter(fname, x, copy, sc));
             }
             return Value::list(std::move(out));
           }},
          {{"select", "reject", "selectattr", "rejectattr"},
           [](Interp& in, const std::string& name, const Value& v, CallArgs& a,
              Scope& /*sc*/) -> Value {
             bool by_attr = name == "selectattr" || name == "rejectattr";
             bool keep_if = name == "select" || name == "selectattr";
             if (!a.kw.empty()) fail(name + " filter takes no keyword arguments");
             size_t k = 0;
             std::string attr;
             if (by_attr) {
               if (a.pos.empty()) fail(name + " filter needs an attribute name");
               attr = to_str_arg(a.pos[k++], "attribute");
             }
             std::string test;
             if (k < a.pos.size()) {
               test = to_str_arg(a.pos[k++], "test name");
               if (!is_known_test(test)) fail("unsupported Jinja test '" + test + "'");
             }
             std::vector<Value> targs(a.pos.begin() + static_cast<long>(k), a.pos.end());
             List out;
             for (const auto& x : iterate(v)) {
               Value subject = by_attr ? in.attr_path(x, attr) : x;
               bool ok = test.empty() ? truthy(subject) : in.run_test(test, subject, targs);
               if (ok == keep_if) out.push_back(x);
             }
             return Value::list(std::move(out));
           }},
      };
      std::unordered_map<std::string, FilterFn> t;
      for (const auto& e : entries)
        for (const char* n : e.names) t.emplace(n, e.fn);
      return t;
    }();
    return table;
  }

 private:
  Value apply_filter(const std::string& name, const Value& v, CallArgs& a, Scope& sc) {
    auto it = filters().find(name);
    if (it == filters().end()) fail("unsupported Jinja filter '" + name + "'");
    return it->second(*this, name, v, a, sc);
  }

  template <class Key>
  void sort_values(std::vector<Value>& items, bool case_sensitive, bool reverse, Key key) {
    auto norm = [&](const Value& x) {
      Value k = key(x);
      if (!case_sensitive && k.t == T::Str) return Value::str(text::lower(k.s));
      return k;
    };
    std::vector<std::pair<Value, size_t>> keyed;
    for (size_t k = 0; k < items.size(); ++k) keyed.emplace_back(norm(items[k]), k);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
      int c = compare(x.first, y.first, "<");
      return reverse ? c > 0 : c < 0;
    });
    std::vector<Value> out;
    for (const auto& kv : keyed) out.push_back(items[kv.second]);
    items = std::move(out);
  }

 public:
  Value eval(const Expr& e, Scope& sc) {
    switch (e.k) {
      case EK::Const:
        return e.v;
      case EK::Name: {
        if (const Value* v = sc.find(e.name)) return *v;
        return Value::undefined("'" + e.name + "' is undefined");
      }
      case EK::List:
      case EK::Tuple: {
        List out;
        for (const auto& x : e.a) out.push_back(eval(*x, sc));
        return Value::list(std::move(out), e.k == EK::Tuple);
      }
      case EK::Dict: {
        Dict d;
        for (size_t k = 0; k + 1 < e.a.size(); k += 2) {
          Value key = eval(*e.a[k], sc);
          line = e.line;
          if (key.t != T::Str)
            fail(std::string("dict literal keys must be strings, not ") + type_name(key));
          d.set(key.s, eval(*e.a[k + 1], sc));
        }
        return Value::dict(std::move(d));
      }
      case EK::Attr:
        return get_attr(eval(*e.a[0], sc), e.name);
      case EK::Item: {
        Value obj = eval(*e.a[0], sc);
        return get_item(obj, eval(*e.a[1], sc));
      }
      case EK::Slice: {
        Value obj = eval(*e.a[0], sc);
        Value parts[3];
        for (int k = 0; k < 3; ++k)
          if (e.a[static_cast<size_t>(k) + 1])
            parts[k] = eval(*e.a[static_cast<size_t>(k) + 1], sc);
        line = e.line;
        if (obj.is_undefined()) return obj;
        if (obj.t != T::Str && !obj.is_seq())
          fail(std::string("'") + type_name(obj) + "' object is not subscriptable");
        auto idx = slice_indices(length(obj), e.a[1] ? &parts[0] : nullptr,
                                 e.a[2] ? &parts[1] : nullptr, e.a[3] ? &parts[2] : nullptr);
        if (obj.t == T::Str) {
          auto chars = text::chars(obj.s);
          std::string out;
          for (size_t k : idx) out += chars[k];
          return Value::str(out);
        }
        List out;
        for (size_t k : idx) out.push_back((*obj.l)[k]);
        return Value::list(std::move(out), obj.t == T::Tuple);
      }
      case EK::Call:
        return call_global(e, sc);
      case EK::Filter: {
        Value v = eval(*e.a[0], sc);
        CallArgs args = eval_args(e, 1, sc);
        line = e.line;
        return apply_filter(e.name, v, args, sc);
      }
      case EK::Test: {
        Value v = eval(*e.a[0], sc);
        CallArgs args = eval_args(e, 1, sc);
        line = e.line;
        if (!args.kw.empty()) fail("tests take no keyword arguments");
        return Value::boolean(run_test(e.name, v, args.pos) != e.negate);
      }
      case EK::Neg:
      case EK::Pos: {
        Value v = eval(*e.a[0], sc);
        line = e.line;
        if (v.is_undefined()) fail_undefined(v);
        if (v.t == T::Float) return Value::number(e.k == EK::Neg ? -v.f : v.f);
        if (v.t == T::Int || v.t == T::Bool) {
          int64_t x = v.t == T::Int ? v.i : v.b;
          if (e.k == EK::Neg && x == INT64_MIN) fail("integer overflow");
          return Value::integer(e.k == EK::Neg ? -x : x);
        }
        fail(std::string("bad operand type for unary ") + (e.k == EK::Neg ? "-" : "+") + ": '" +
             type_name(v) + "'");
      }
      case EK::Not:
        return Value::boolean(!truthy(eval(*e.a[0], sc)));
      case EK::And: {
        Value l = eval(*e.a[0], sc);
        return truthy(l) ? eval(*e.a[1], sc) : l;
      }
      case EK::Or: {
        Value l = eval(*e.a[0], sc);
        return truthy(l) ? l : eval(*e.a[1], sc);
      }
      case EK::Binary: {
        Value l = eval(*e.a[0], sc);
        Value r = eval(*e.a[1], sc);
        line = e.line;
        return arith(e.name, l, r);
      }
      case EK::Compare: {
        Value l = eval(*e.a[0], sc);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value r = eval(*e.a[k + 1], sc);
          line = e.line;
          const std::string& op = e.ops[k];
          bool ok;
          if (op == "==")
            ok = equal(l, r);
          else if (op == "!=")
            ok = !equal(l, r);
          else if (op == "in")
            ok = contains(r, l);
          else if (op == "not in")
            ok = !contains(r, l);
          else {
            int c = compare(l, r, op.c_str());
            ok = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
          }
          if (!ok) return Value::boolean(false);
          l = std::move(r);
        }
        return Value::boolean(true);
      }
      case EK::Cond: {
        if (truthy(eval(*e.a[0], sc))) return eval(*e.a[1], sc);
        return e.a[2] ? eval(*e.a[2], sc)
                      : Value::undefined("the inline if-expression had no else branch");
      }
    }
    fail("internal error: unknown expression kind");
  }

 private:
  const RenderOptions& ro_;
  Scope* root_;
  int depth_ = 0;
};

void add_globals(Scope& g, const RenderOptions& ro) {
  g.set("namespace", Value::func("namespace", [](CallArgs& a) {
          if (a.pos.size() > 1) fail("namespace() takes at most 1 positional argument");
          Dict d;
          if (!a.pos.empty()) {
            if (a.pos[0].t != T::Dict) fail("namespace() positional argument must be a mapping");
            d = *a.pos[0].d;
          }
          for (auto& [k, v] : a.kw) d.set(k, v);
          return Value::ns(std::move(d));
        }));
  g.set("dict", Value::func("dict", [](CallArgs& a) {
          if (a.pos.size() > 1) fail("dict() takes at most 1 positional argument");
          Dict d;
          if (!a.pos.empty()) {
            if (a.pos[0].t != T::Dict) fail("dict() positional argument must be a mapping");
            d = *a.pos[0].d;
          }
          for (auto& [k, v] : a.kw) d.set(k, v);
          return Value::dict(std::move(d));
        }));
  g.set("range", Value::func("range", [](CallArgs& a) {
          a.check("range", 3, {});
          if (a.pos.empty()) fail("range expected at least 1 argument, got 0");
          int64_t start = 0, stop, step = 1;
          if (a.pos.size() == 1) {
            stop = to_int_arg(a.pos[0], "range() argument");
          } else {
            start = to_int_arg(a.pos[0], "range() argument");
            stop = to_int_arg(a.pos[1], "range() argument");
            if (a.pos.size() > 2) step = to_int_arg(a.pos[2], "range() argument");
          }
          if (step == 0) fail("range() arg 3 must not be zero");
          List out;
          for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
            if (static_cast<int64_t>(out.size()) >= kMaxRange)
              fail("range too big: the sandbox blocks ranges larger than 100000 items");
            out.push_back(Value::integer(k));
          }
          return Value::list(std::move(out));
        }));
  g.set(
      "raise_exception", Value::func("raise_exception", [](CallArgs& a) -> Value {
        fail("template raised an exception: " + (a.pos.empty() ? std::string() : to_str(a.pos[0])));
      }));
  const RenderOptions* rop = &ro;
  g.set("strftime_now", Value::func("strftime_now", [rop](CallArgs& a) {
          a.check("strftime_now", 1, {});
          if (a.pos.empty()) fail("strftime_now() takes exactly one argument");
          const std::string& fmt = to_str_arg(a.pos[0], "strftime_now format");
          std::time_t t = rop->now ? rop->now() : std::time(nullptr);
          std::tm tm{};
          localtime_r(&t, &tm);
          if (fmt.empty()) return Value::str("");
          std::string buf(64 + fmt.size() * 8, '\0');
          size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
          if (n == 0) fail("strftime_now: format too long or empty result");
          buf.resize(n);
          return Value::str(buf);
        }));
}

}  // namespace

namespace detail {

bool is_known_filter(const std::string& n) {
  return Interp::filters().count(n) > 0;
}

bool is_known_test(const std::string& n) {
  return tests().count(n) > 0;
}

}  // namespace detail

Template::Template(std::string_view source, std::string name, const Options& opts)
    : name_(std::move(name)) {
  try {
    prog_ = parse_template(source, opts);
  } catch (const SyntaxError& e) {
    throw Error(name_ + " line " + std::to_string(e.line), e.msg);
  }
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context,
                             const RenderOptions& ropts) const {
  Scope globals(nullptr);
  Scope root(&globals);
  Interp in(ropts, &root);
  std::string out;
  try {
    add_globals(globals, ropts);
    if (context.is_object()) {
      for (auto it = context.begin(); it != context.end(); ++it)
        root.set(it.key(), from_json(it.value()));
    } else if (!context.is_null()) {
      fail("template context must be a JSON object");
    }
    in.exec(prog_->body, root, out);
  } catch (const RuntimeError& e) {
    throw Error(name_ + " line " + std::to_string(in.line), e.msg);
  }
  return out;
}

std::string python_json_dumps(const nlohmann::ordered_json& value, int indent, bool ensure_ascii,
                              bool sort_keys) {
  try {
    return to_json(from_json(value), indent, ensure_ascii, sort_keys);
  } catch (const RuntimeError& e) {
    throw Error("json", e.msg);
  }
}

}  // namespace rv::jinja
