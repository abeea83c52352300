// Recursive-descent parser for the LaTeX subset that final answers use.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "eval/math/expr.h"

namespace rv::eval::math::detail {

namespace {

enum class T { Num, Letter, Cmd, Op, Raw, End };

struct Tok {
  T t = T::End;
  std::string s;
};

// Plain-text words that mean what the LaTeX command of the same name means
// ("sqrt(2)", "np.arcsin(x)", "pi").
const std::set<std::string>& plain_words() {
  static const std::set<std::string> w = {"sqrt", "sin",    "cos",    "tan",    "cot",  "sec",
                                          "csc",  "arcsin", "arccos", "arctan", "asin", "acos",
                                          "atan", "sinh",   "cosh",   "tanh",   "log",  "ln",
                                          "exp",  "pi",     "abs",    "inf",    "oo",   "infty"};
  return w;
}

const std::set<std::string>& greek() {
  static const std::set<std::string> g = {
      "alpha", "beta",     "gamma",   "delta",    "epsilon", "varepsilon", "zeta",   "eta",
      "theta", "vartheta", "iota",    "kappa",    "lambda",  "mu",         "nu",     "xi",
      "rho",   "varrho",   "sigma",   "varsigma", "tau",     "upsilon",    "phi",    "varphi",
      "chi",   "psi",      "omega",   "Gamma",    "Delta",   "Theta",      "Lambda", "Xi",
      "Pi",    "Sigma",    "Upsilon", "Phi",      "Psi",     "Omega",      "ell"};
  return g;
}

const std::map<std::string, std::string>& func_alias() {
  static const std::map<std::string, std::string> m = {
      {"sin", "sin"},     {"cos", "cos"},     {"tan", "tan"},     {"cot", "cot"},
      {"sec", "sec"},     {"csc", "csc"},     {"arcsin", "asin"}, {"arccos", "acos"},
      {"arctan", "atan"}, {"asin", "asin"},   {"acos", "acos"},   {"atan", "atan"},
      {"sinh", "sinh"},   {"cosh", "cosh"},   {"tanh", "tanh"},   {"ln", "log"},
      {"log", "log"},     {"exp", "exp"},     {"abs", "abs"},     {"arcsec", "asec"},
      {"arccsc", "acsc"}, {"arccot", "acot"}, {"lg", "log10"}};
  return m;
}

bool is_ident_char(char c) {
  return std::isalpha(static_cast<unsigned char>(c));
}

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  std::vector<Tok> run() {
    std::vector<Tok> out;
    while (true) {
      Tok t = next();
      if (t.t == T::End) break;
      out.push_back(std::move(t));
      if (out.size() > kMaxParseChars) throw ParseError("too many tokens");
    }
    return out;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
  std::string pending_letters_;  // rest of a "\quadx"-style fused command
  std::vector<Tok> queued_;

  Tok op(std::string s) { return Tok{T::Op, std::move(s)}; }

  Tok next() {
    if (!queued_.empty()) {
      Tok t = std::move(queued_.back());
      queued_.pop_back();
      return t;
    }
    if (!pending_letters_.empty()) {
      Tok t{T::Letter, std::string(1, pending_letters_[0])};
      pending_letters_.erase(0, 1);
      return t;
    }
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (std::isspace(c) || c == '~') {
        ++i_;
        continue;
      }
      if (std::isdigit(c) ||
          (c == '.' && i_ + 1 < s_.size() && std::isdigit((unsigned char)s_[i_ + 1])))
        return number();
      if (c == '.') {  // a sentence's period ("\\{1\\}.") is punctuation, not math
        ++i_;
        continue;
      }
      if (c == '\\') return command();
      if (std::isalpha(c)) return word();
      if (c >= 0x80) return unicode();
      ++i_;
      auto peek = [&](char d) { return i_ < s_.size() && s_[i_] == d; };
      switch (c) {
        case '<':
          if (peek('=')) return ++i_, op("<=");
          return op("<");
        case '>':
          if (peek('=')) return ++i_, op(">=");
          return op(">");
        case '!':
          if (peek('=')) return ++i_, op("!=");
          return op("!");
        case '=':
          if (peek('=')) ++i_;
          return op("=");
        case '*':
          if (peek('*')) return ++i_, op("^");
          return op("*");
        default:
          return op(std::string(1, static_cast<char>(c)));
      }
    }
    return Tok{};
  }

  Tok number() {
    size_t b = i_;
    while (i_ < s_.size() && std::isdigit((unsigned char)s_[i_])) ++i_;
    std::string grouped;
    // "10,455" is one number, as latex2sympy's NUMBER token reads it: 1-3
    // leading digits, then groups of exactly three.
    if (i_ - b <= 3 && s_[b] != '0') {
      size_t j = i_;
      std::string acc(s_.substr(b, i_ - b));
      while (j + 3 < s_.size() + 0 && s_[j] == ',' && std::isdigit((unsigned char)s_[j + 1]) &&
             std::isdigit((unsigned char)s_[j + 2]) && std::isdigit((unsigned char)s_[j + 3]) &&
             (j + 4 >= s_.size() || !std::isdigit((unsigned char)s_[j + 4]))) {
        acc.append(s_.substr(j + 1, 3));
        j += 4;
      }
      if (j != i_) {
        grouped = acc;
        i_ = j;
      }
    }
    if (!grouped.empty()) {
      size_t d = i_;
      if (i_ < s_.size() && s_[i_] == '.') {
        ++i_;
        while (i_ < s_.size() && std::isdigit((unsigned char)s_[i_])) ++i_;
      }
      return Tok{T::Num, grouped + std::string(s_.substr(d, i_ - d))};
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      while (i_ < s_.size() && std::isdigit((unsigned char)s_[i_])) ++i_;
    }
    // Scientific notation "4.5e33" / "1E-5": only when a digit follows the
    // exponent and no letter follows it (so "2e" stays 2*e).
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t j = i_ + 1;
      if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
      size_t d = j;
      while (j < s_.size() && std::isdigit((unsigned char)s_[j])) ++j;
      if (j > d && (j >= s_.size() || !is_ident_char(s_[j]))) i_ = j;
    }
    return Tok{T::Num, std::string(s_.substr(b, i_ - b))};
  }

  Tok command() {
    ++i_;
    if (i_ >= s_.size()) return op("\\");
    char c = s_[i_];
    if (!is_ident_char(c)) {
      ++i_;
      switch (c) {
        case ',':
        case ';':
        case ':':
        case '!':
        case ' ':
        case '$':
        case '\n':
        case '\t':
          return next();
        case '{':
          return op("\\{");
        case '}':
          return op("\\}");
        case '\\':
          return op("\\\\");
        case '%':
          return op("%");
        case '|':
          return op("|");
        default:
          return op(std::string(1, c));
      }
    }
    size_t b = i_;
    while (i_ < s_.size() && is_ident_char(s_[i_])) ++i_;
    std::string name(s_.substr(b, i_ - b));
    for (const char* sp : {"qquad", "quad"}) {
      std::string p = sp;
      if (name.size() > p.size() && name.compare(0, p.size(), p) == 0) {
        pending_letters_ = name.substr(p.size());
        return next();
      }
    }
    if (name == "quad" || name == "qquad") return next();
    // Commands whose argument is text, not math: keep it verbatim as one Raw token.
    static const std::set<std::string> raw = {
        "text",       "textbf",       "mbox",   "mathrm", "textrm", "textit", "mathit",
        "textnormal", "operatorname", "textsf", "mathsf", "texttt", "begin",  "end"};
    if (raw.count(name)) {
      size_t j = i_;
      while (j < s_.size() && s_[j] == ' ') ++j;
      if (j < s_.size() && s_[j] == '{') {
        int d = 0;
        size_t k = j;
        for (; k < s_.size(); ++k) {
          if (s_[k] == '{') ++d;
          if (s_[k] == '}' && --d == 0) break;
        }
        if (k < s_.size()) {
          queued_.push_back(Tok{T::Raw, std::string(s_.substr(j + 1, k - j - 1))});
          i_ = k + 1;
        }
      }
    }
    return Tok{T::Cmd, name};
  }

  Tok word() {
    size_t b = i_;
    while (i_ < s_.size() && is_ident_char(s_[i_])) ++i_;
    std::string w(s_.substr(b, i_ - b));
    // "np.arcsin", "math.sqrt", "sympy.pi": drop the module prefix.
    if ((w == "np" || w == "math" || w == "numpy" || w == "sympy" || w == "sp") &&
        i_ + 1 < s_.size() && s_[i_] == '.' && is_ident_char(s_[i_ + 1])) {
      ++i_;
      return word();
    }
    if (plain_words().count(w)) return Tok{T::Cmd, w};
    i_ = b + 1;
    return Tok{T::Letter, std::string(1, s_[b])};
  }

  Tok unicode() {
    static const std::map<std::string, Tok> m = {
        {"π", {T::Cmd, "pi"}},  {"√", {T::Cmd, "sqrt"}},   {"∞", {T::Cmd, "infty"}},
        {"×", {T::Op, "*"}},    {"÷", {T::Op, "/"}},       {"·", {T::Op, "*"}},
        {"⋅", {T::Op, "*"}},    {"−", {T::Op, "-"}},       {"≤", {T::Op, "<="}},
        {"≥", {T::Op, ">="}},   {"≠", {T::Op, "!="}},      {"±", {T::Cmd, "pm"}},
        {"∪", {T::Cmd, "cup"}}, {"≈", {T::Cmd, "approx"}}, {"∈", {T::Cmd, "in"}}};
    unsigned char c = static_cast<unsigned char>(s_[i_]);
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    len = std::min(len, s_.size() - i_);
    std::string u(s_.substr(i_, len));
    i_ += len;
    if (u == "°" || u == "\u00a0" || u == "\u2009" || u == "\u202f") return next();
    auto it = m.find(u);
    if (it != m.end()) return it->second;
    return Tok{T::Letter, u};
  }
};

NodeP mk_node(Kind k, std::vector<NodeP> a = {}) {
  auto n = std::make_shared<Node>();
  n->k = k;
  n->a = std::move(a);
  return n;
}
NodeP sym(std::string name) {
  auto n = std::make_shared<Node>();
  n->k = Kind::Sym;
  n->name = std::move(name);
  return n;
}
NodeP cnst(std::string name) {
  auto n = std::make_shared<Node>();
  n->k = Kind::Const;
  n->name = std::move(name);
  return n;
}
NodeP func(std::string name, std::vector<NodeP> a, bool undefined = false) {
  auto n = std::make_shared<Node>();
  n->k = Kind::Func;
  n->name = std::move(name);
  n->a = std::move(a);
  n->undefined = undefined;
  return n;
}
NodeP neg(const NodeP& x) {
  if (x->k == Kind::Num) return make_num(-x->q, x->is_float);
  return mk_node(Kind::Mul, {make_num(-1), x});
}
NodeP mul2(const NodeP& x, const NodeP& y) {
  std::vector<NodeP> a;
  for (const NodeP& p : {x, y}) {
    if (p->k == Kind::Mul)
      a.insert(a.end(), p->a.begin(), p->a.end());
    else
      a.push_back(p);
  }
  return mk_node(Kind::Mul, std::move(a));
}
NodeP add2(const NodeP& x, const NodeP& y) {
  std::vector<NodeP> a;
  for (const NodeP& p : {x, y}) {
    if (p->k == Kind::Add)
      a.insert(a.end(), p->a.begin(), p->a.end());
    else
      a.push_back(p);
  }
  return mk_node(Kind::Add, std::move(a));
}
NodeP powr(const NodeP& b, const NodeP& e) {
  return mk_node(Kind::Pow, {b, e});
}
NodeP inv(const NodeP& x) {
  return powr(x, make_num(-1));
}

NodeP parse_number(const std::string& s) {
  // Exact value of a decimal literal (with optional exponent).
  std::string mant = s, ex;
  size_t e = s.find_first_of("eE");
  if (e != std::string::npos) {
    mant = s.substr(0, e);
    ex = s.substr(e + 1);
  }
  bool is_float = mant.find('.') != std::string::npos || !ex.empty();
  std::string digits;
  long frac = 0;
  bool after = false;
  for (char c : mant) {
    if (c == '.') {
      after = true;
      continue;
    }
    digits += c;
    if (after) ++frac;
  }
  if (digits.empty()) digits = "0";
  long exp10 = -frac;
  if (!ex.empty()) {
    if (ex.size() > 6) throw ParseError("exponent too large");
    exp10 += std::stol(ex);
  }
  if (exp10 > 4000 || exp10 < -4000 || digits.size() > 4000) throw ParseError("number too large");
  mpz_class num(digits, 10), p10;
  mpz_ui_pow_ui(p10.get_mpz_t(), 10, static_cast<unsigned long>(exp10 < 0 ? -exp10 : exp10));
  mpq_class q = exp10 >= 0 ? mpq_class(num * p10) : mpq_class(num, p10);
  q.canonicalize();
  return make_num(q, is_float);
}

class Parser {
 public:
  explicit Parser(std::vector<Tok> toks) : t_(std::move(toks)) {}

  NodeP top() {
    NodeP n = list();
    if (!at_end()) throw ParseError("unexpected '" + cur().s + "'");
    return n;
  }

 private:
  std::vector<Tok> t_;
  size_t p_ = 0;
  int depth_ = 0;

  struct Guard {
    int& d;
    explicit Guard(int& d) : d(d) {
      if (++d > kMaxDepth) throw ParseError("nesting too deep");
    }
    ~Guard() { --d; }
  };

  const Tok& cur() const {
    static const Tok end;
    return p_ < t_.size() ? t_[p_] : end;
  }
  bool at_end() const { return p_ >= t_.size(); }
  bool is_op(const char* s) const { return cur().t == T::Op && cur().s == s; }
  bool is_cmd(const char* s) const { return cur().t == T::Cmd && cur().s == s; }
  void expect_op(const char* s) {
    if (!is_op(s)) throw ParseError(std::string("expected '") + s + "'");
    ++p_;
  }
  bool is_closer() const {
    return is_op(")") || is_op("]") || is_op("}") || is_op("\\}") || is_op("|") ||
           is_cmd("rangle") || is_cmd("rfloor") || is_cmd("rceil") || is_cmd("end") || is_op("&") ||
           is_op("\\\\");
  }

  // Comma/semicolon separated list at the current level, stopping at a closer.
  // One element is returned as itself; several become a set (latex2sympy's reading of "1,2").
  NodeP list() {
    std::vector<std::vector<NodeP>> parts(1);
    bool semicolon = false;
    while (true) {
      if (at_end() || is_closer()) break;
      if (is_op(",")) {  // tolerate empty items ("1,,2" after "and" rewriting)
        ++p_;
        continue;
      }
      if (is_op(";")) {
        ++p_;
        semicolon = true;
        parts.emplace_back();
        continue;
      }
      parts.back().push_back(relation());
      if (is_op(",")) continue;
      if (is_op(";")) continue;
      break;
    }
    std::vector<NodeP> all;
    if (semicolon) {
      // "p=5,q=2;p=7,q=2": each part a list of assignments becomes the tuple of its values.
      bool tuples = true;
      for (auto& part : parts)
        for (auto& e : part)
          if (!(e->k == Kind::Rel && e->ops.size() == 1 && e->ops[0] == kEq && part.size() > 1))
            tuples = false;
      for (auto& part : parts) {
        if (tuples) {
          std::vector<NodeP> vals;
          for (auto& e : part) vals.push_back(e->a.back());
          all.push_back(mk_node(Kind::Tuple, std::move(vals)));
        } else {
          all.insert(all.end(), part.begin(), part.end());
        }
      }
    } else {
      all = parts[0];
    }
    if (all.empty()) throw ParseError("empty expression");
    if (all.size() == 1) return all[0];
    return mk_node(Kind::Set, std::move(all));
  }

  // Comma-separated items inside brackets (no set wrapping).
  std::vector<NodeP> items() {
    std::vector<NodeP> v;
    while (!at_end() && !is_closer()) {
      v.push_back(relation());
      if (is_op(",") || is_op(";")) {
        ++p_;
        continue;
      }
      break;
    }
    return v;
  }

  int relop() const {
    const Tok& c = cur();
    if (c.t == T::Op) {
      if (c.s == "=") return kEq;
      if (c.s == "<") return kLt;
      if (c.s == "<=") return kLe;
      if (c.s == ">") return kGt;
      if (c.s == ">=") return kGe;
      if (c.s == "!=") return kNe;
    } else if (c.t == T::Cmd) {
      static const std::map<std::string, int> m = {
          {"le", kLe},       {"leq", kLe},    {"leqslant", kLe}, {"ge", kGe}, {"geq", kGe},
          {"geqslant", kGe}, {"lt", kLt},     {"gt", kGt},       {"ne", kNe}, {"neq", kNe},
          {"equiv", kEq},    {"approx", 100}, {"in", 101}};
      auto it = m.find(c.s);
      if (it != m.end()) return it->second;
    }
    return -1;
  }

  NodeP relation() {
    Guard g(depth_);
    std::vector<NodeP> xs{set_union()};
    std::vector<int> ops;
    bool saw_eq = false, cut = false;
    while (true) {
      int op = relop();
      if (op < 0) break;
      ++p_;
      if (op == 101) {  // "x \in S": the set is the answer
        NodeP s = set_union();
        if (ops.empty()) {
          xs[0] = s;
          continue;
        }
        xs.push_back(s);
        ops.push_back(kEq);
        continue;
      }
      if (op ==
          100) {  // \approx: after an "=", the approximation is dropped; alone it reads as "="
        if (saw_eq) cut = true;
        op = kEq;
      }
      NodeP rhs = set_union();
      if (cut) continue;
      if (op == kEq) saw_eq = true;
      ops.push_back(op);
      xs.push_back(rhs);
    }
    if (ops.empty()) return xs[0];
    auto n = std::make_shared<Node>();
    n->k = Kind::Rel;
    n->a = std::move(xs);
    n->ops = std::move(ops);
    return n;
  }

  NodeP set_union() {
    NodeP x = additive();
    if (!is_cmd("cup")) return x;
    std::vector<NodeP> parts{x};
    while (is_cmd("cup")) {
      ++p_;
      parts.push_back(additive());
    }
    return mk_node(Kind::Union, std::move(parts));
  }

  NodeP additive() {
    Guard g(depth_);
    NodeP x = term();
    while (true) {
      if (is_op("+")) {
        ++p_;
        x = add2(x, term());
      } else if (is_op("-")) {
        ++p_;
        x = add2(x, neg(term()));
      } else if (is_cmd("pm") || is_cmd("mp")) {
        bool mp = cur().s == "mp";
        ++p_;
        NodeP y = term();
        x = mk_node(Kind::Pm, {x, mp ? neg(y) : y});
      } else {
        break;
      }
    }
    return x;
  }

  bool starts_primary() const {
    const Tok& c = cur();
    if (c.t == T::Num || c.t == T::Letter) return true;
    if (c.t == T::Op) return c.s == "(" || c.s == "{" || c.s == "\\{" || c.s == "[";
    if (c.t == T::Cmd) {
      if (relop() >= 0) return false;
      static const std::set<std::string> no = {
          "cdot",       "times",      "div",     "pm",    "mp",  "cup",      "cap",
          "end",        "rangle",     "rfloor",  "rceil", "ast", "setminus", "to",
          "rightarrow", "Rightarrow", "implies", "iff",   "mid", "colon",    "quad"};
      return !no.count(c.s);
    }
    return false;
  }

  NodeP term() {
    Guard g(depth_);
    NodeP x = unary();
    while (true) {
      if (is_op("*") || is_cmd("cdot") || is_cmd("times") || is_cmd("ast")) {
        ++p_;
        x = mul2(x, unary());
      } else if (is_op("/") || is_cmd("div") || is_op(":")) {
        ++p_;
        x = mul2(x, inv(unary()));
      } else if (starts_primary()) {
        x = mul2(x, power());
      } else {
        break;
      }
    }
    return x;
  }

  NodeP unary() {
    Guard g(depth_);
    if (is_op("-")) {
      ++p_;
      return neg(unary());
    }
    if (is_op("+")) {
      ++p_;
      return unary();
    }
    if (is_cmd("pm") || is_cmd("mp")) {
      ++p_;
      return mk_node(Kind::Pm, {unary()});
    }
    return power();
  }

  NodeP exponent() {
    // "^{...}", "^(...)", "^2", "^-1", "^\circ" (degrees: dropped by the caller).
    if (is_op("-")) {
      ++p_;
      return neg(exponent());
    }
    if (cur().t == T::Num) {
      NodeP n = parse_number(cur().s);
      ++p_;
      return n;
    }
    return postfix(primary());
  }

  // "^\circ" / "^{\circ}" (degrees: dropped) and "^\prime" (a derivative's prime): 0 if neither,
  // else 1 (degree) or 2 (prime).
  int exponent_marker() {
    auto kind = [](const std::string& c) { return c == "circ" ? 1 : c == "prime" ? 2 : 0; };
    if (cur().t == T::Cmd && kind(cur().s)) return kind(t_[p_++].s);
    if (is_op("{") && p_ + 2 < t_.size() && t_[p_ + 1].t == T::Cmd && kind(t_[p_ + 1].s) &&
        t_[p_ + 2].t == T::Op && t_[p_ + 2].s == "}") {
      p_ += 3;
      return kind(t_[p_ - 2].s);
    }
    return 0;
  }

  NodeP power() {
    Guard g(depth_);
    NodeP b = postfix(primary());
    while (is_op("^")) {
      ++p_;
      if (int mark = exponent_marker()) {
        if (mark == 2) {
          if (b->k != Kind::Sym) throw ParseError("prime on an expression");
          b = sym(b->name + "'");
        }
        b = postfix(b);
        continue;
      }
      NodeP e = exponent();
      b = postfix(powr(b, e));
    }
    return b;
  }

  std::string raw_group() {
    // The source of one argument, for subscripts: "{...}" or one token.
    if (cur().t == T::Raw) return t_[p_++].s;
    if (is_op("{")) {
      ++p_;
      std::string s;
      int d = 1;
      while (!at_end()) {
        if (is_op("{")) ++d;
        if (is_op("}") && --d == 0) break;
        s += cur().t == T::Cmd ? "\\" + cur().s : cur().s;
        ++p_;
      }
      expect_op("}");
      return s;
    }
    if (at_end()) throw ParseError("missing subscript");
    std::string s = cur().t == T::Cmd ? "\\" + cur().s : cur().s;
    ++p_;
    return s;
  }

  NodeP postfix(NodeP x) {
    while (true) {
      if (is_op("!")) {
        ++p_;
        x = func("factorial", {x});
      } else if (is_op("%")) {
        ++p_;
        x = mul2(x, make_num(mpq_class(1, 100)));
      } else if (is_op("'")) {
        ++p_;
        if (x->k == Kind::Sym) x = sym(x->name + "'");
      } else if (is_op("_")) {
        ++p_;
        std::string sub = raw_group();
        if (x->k == Kind::Sym || x->k == Kind::Const) {
          std::string base = x->k == Kind::Sym ? x->name : (x->name == "E" ? "e" : x->name);
          x = sym(base + "_" + sub);
        } else if (x->k == Kind::Num && !x->is_float) {
          if (sub.empty() || sub.size() > 2 ||
              !std::all_of(sub.begin(), sub.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
            throw ParseError("bad number base");
          x = func("base", {x, make_num(mpq_class(std::stoi(sub)))});
        } else {
          throw ParseError("subscript on an expression");
        }
      } else {
        return x;
      }
    }
  }

  NodeP arg() {
    // One macro argument: "{...}" or a single primary ("\frac12" was normalized before).
    if (is_op("{")) {
      ++p_;
      NodeP n = list();
      expect_op("}");
      return n;
    }
    if (cur().t == T::Num) {
      // LaTeX takes one digit: \frac12 = 1/2 (normally fixed by normalization already).
      std::string s = cur().s;
      if (s.size() > 1 && s.find_first_of(".eE") == std::string::npos) {
        t_[p_].s = s.substr(1);
        return parse_number(s.substr(0, 1));
      }
      ++p_;
      return parse_number(s);
    }
    return primary();
  }

  NodeP bracket(const std::string& open) {
    // after "(" or "[": group, interval or tuple
    std::vector<NodeP> v = items();
    std::string close = cur().s;
    if (!(is_op(")") || is_op("]"))) throw ParseError("unclosed bracket");
    ++p_;
    if (v.empty()) throw ParseError("empty brackets");
    if (v.size() == 1) {
      if (open != "(" && close != ")" && v[0]->k == Kind::Matrix) return v[0];
      if (open == "(" && close == ")") return v[0];
      if (open == "[" && close == "]") return v[0];
      throw ParseError("half-open bracket around one value");
    }
    if (v.size() == 2) {
      auto n = std::make_shared<Node>();
      n->k = Kind::Interval;
      n->a = v;
      n->lopen = open == "(";
      n->ropen = close == ")";
      return n;
    }
    return mk_node(Kind::Tuple, std::move(v));
  }

  NodeP matrix_env(const std::string& env) {
    if (env == "array" && is_op("{")) raw_group();  // column spec
    std::vector<std::vector<NodeP>> rows(1);
    while (!at_end() && !is_cmd("end")) {
      if (is_op("&")) {
        ++p_;
        continue;
      }
      if (is_op("\\\\")) {
        ++p_;
        rows.emplace_back();
        continue;
      }
      if (is_cmd("hline")) {
        ++p_;
        continue;
      }
      rows.back().push_back(relation());
      if (!(is_op("&") || is_op("\\\\") || is_cmd("end"))) throw ParseError("bad matrix cell");
    }
    if (!is_cmd("end")) throw ParseError("unterminated environment");
    ++p_;
    raw_group();
    while (!rows.empty() && rows.back().empty()) rows.pop_back();
    if (rows.empty()) throw ParseError("empty matrix");
    size_t cols = rows[0].size();
    auto n = std::make_shared<Node>();
    n->k = Kind::Matrix;
    for (auto& r : rows) {
      if (r.size() != cols) throw ParseError("ragged matrix");
      n->a.insert(n->a.end(), r.begin(), r.end());
    }
    n->rows = static_cast<int>(rows.size());
    n->cols = static_cast<int>(cols);
    return n;
  }

  NodeP function_call(const std::string& fname) {
    // \sin^2 x, \log_2 8, \sin(x), \sin x y (argument: implicit product of simple factors)
    NodeP pw, base;
    if (fname == "log" && is_op("_")) {
      ++p_;
      base = arg();
    }
    if (is_op("^")) {
      ++p_;
      pw = exponent();
    }
    NodeP x;
    if (is_op("(")) {
      ++p_;
      std::vector<NodeP> v = items();
      expect_op(")");
      if (v.size() != 1) throw ParseError("function of several arguments");
      x = v[0];
    } else if (is_op("{")) {
      x = arg();
    } else {
      x = power();
      while (cur().t == T::Num || cur().t == T::Letter) x = mul2(x, power());
    }
    NodeP f = base ? mul2(func("log", {x}), inv(func("log", {base}))) : func(fname, {x});
    return pw ? powr(f, pw) : f;
  }

  NodeP text_arg() {
    // \text{...}: a word becomes a symbol, "(C)" or "13" parse as math.
    std::string s = raw_group_text();
    std::string t = s;
    while (!t.empty() && std::isspace((unsigned char)t.back())) t.pop_back();
    size_t b = 0;
    while (b < t.size() && std::isspace((unsigned char)t[b])) ++b;
    t = t.substr(b);
    if (t.empty()) return nullptr;
    bool word = std::all_of(t.begin(), t.end(),
                            [](char c) { return std::isalpha((unsigned char)c) || c == ' '; });
    if (word) {
      if (t == "e") return cnst("E");
      return sym(t);
    }
    try {
      return parse_math(t);
    } catch (const ParseError&) {
      return sym(t);
    }
  }

  std::string raw_group_text() {
    if (cur().t == T::Raw) return t_[p_++].s;
    // Re-serializes the tokens of a "{...}" group.
    if (!is_op("{")) {
      if (at_end()) throw ParseError("missing argument");
      std::string s = cur().s;
      ++p_;
      return s;
    }
    ++p_;
    std::string s;
    int d = 1;
    while (!at_end()) {
      if (is_op("{")) ++d;
      if (is_op("}") && --d == 0) break;
      const Tok& c = cur();
      s += c.t == T::Cmd ? "\\" + c.s : c.s;
      ++p_;
    }
    expect_op("}");
    return s;
  }

  NodeP primary() {
    Guard g(depth_);
    const Tok c = cur();
    if (c.t == T::End) throw ParseError("unexpected end");
    if (c.t == T::Num) {
      ++p_;
      return parse_number(c.s);
    }
    if (c.t == T::Letter) {
      ++p_;
      if (c.s == "e") return cnst("E");
      if (c.s == "i") return cnst("I");
      // f(x), g(x), h(x): user functions, as latex2sympy reads them.
      if ((c.s == "f" || c.s == "g" || c.s == "h") && is_op("(")) {
        ++p_;
        std::vector<NodeP> v = items();
        expect_op(")");
        if (v.empty()) throw ParseError("empty call");
        return func(c.s, std::move(v), true);
      }
      return sym(c.s);
    }
    if (c.t == T::Op) {
      ++p_;
      if (c.s == "(" || c.s == "[") return bracket(c.s);
      if (c.s == "{") {
        std::vector<NodeP> v = items();
        expect_op("}");
        if (v.empty()) return mk_node(Kind::Empty);
        if (v.size() == 1) return v[0];
        return mk_node(Kind::Set, std::move(v));
      }
      if (c.s == "\\{") {
        std::vector<NodeP> v = items();
        expect_op("\\}");
        if (v.empty()) return mk_node(Kind::Empty);
        return mk_node(Kind::Set, std::move(v));
      }
      if (c.s == "|") {
        NodeP x = additive();
        expect_op("|");
        return func("abs", {x});
      }
      throw ParseError("unexpected '" + c.s + "'");
    }
    // commands
    ++p_;
    const std::string& n = c.s;
    if (n == "frac" || n == "dfrac" || n == "tfrac" || n == "cfrac") {
      NodeP a = arg();
      NodeP b = arg();
      return mul2(a, inv(b));
    }
    if (n == "binom" || n == "dbinom" || n == "tbinom") {
      NodeP a = arg();
      NodeP b = arg();
      return func("binom", {a, b});
    }
    if (n == "sqrt") {
      NodeP idx;
      if (is_op("[")) {
        ++p_;
        idx = additive();
        expect_op("]");
      }
      NodeP x = is_op("(") ? primary() : arg();
      return powr(x, idx ? inv(idx) : make_num(mpq_class(1, 2)));
    }
    auto fa = func_alias().find(n);
    if (fa != func_alias().end()) return function_call(fa->second);
    if (n == "pi") return cnst("pi");
    if (n == "infty" || n == "inf" || n == "oo" || n == "infin") return cnst("oo");
    if (n == "emptyset" || n == "varnothing") return mk_node(Kind::Empty);
    if (n == "imath") return cnst("I");
    if (greek().count(n)) return sym(n);
    if (n == "text" || n == "textbf" || n == "mbox" || n == "mathrm" || n == "textrm" ||
        n == "textit" || n == "mathit" || n == "textnormal" || n == "operatorname" ||
        n == "mathbf" || n == "boldsymbol" || n == "mathbb" || n == "mathcal" || n == "bm" ||
        n == "textsf" || n == "mathsf" || n == "texttt") {
      if (n == "operatorname") {
        std::string fn = raw_group_text();
        auto it = func_alias().find(fn);
        if (it != func_alias().end()) return function_call(it->second);
        return sym(fn);
      }
      NodeP x = text_arg();
      if (!x) {
        if (at_end() || is_closer()) throw ParseError("empty text");
        return primary();
      }
      return x;
    }
    if (n == "overline" || n == "vec" || n == "hat" || n == "bar" || n == "tilde" ||
        n == "overrightarrow" || n == "widehat" || n == "underline" || n == "mathring" ||
        n == "dot" || n == "ddot") {
      return arg();
    }
    if (n == "left" || n == "right" || n == "big" || n == "Big" || n == "bigl" || n == "bigr" ||
        n == "Bigl" || n == "Bigr" || n == "bigg" || n == "Bigg" || n == "displaystyle" ||
        n == "limits" || n == "circ" || n == "prime" || n == "degree" || n == "mathstrut" ||
        n == "textstyle" || n == "cdots" || n == "ldots" || n == "dots" || n == "angle" ||
        n == "measuredangle" || n == "triangle") {
      if (at_end() || is_closer()) throw ParseError("dangling " + n);
      return primary();
    }
    if (n == "lfloor" || n == "lceil") {
      NodeP x = additive();
      if (!(is_cmd("rfloor") || is_cmd("rceil"))) throw ParseError("unclosed floor");
      ++p_;
      return func(n == "lfloor" ? "floor" : "ceiling", {x});
    }
    if (n == "langle") {
      std::vector<NodeP> v = items();
      if (!is_cmd("rangle")) throw ParseError("unclosed angle");
      ++p_;
      return mk_node(Kind::Tuple, std::move(v));
    }
    if (n == "lvert" || n == "vert") {
      NodeP x = additive();
      if (!(is_cmd("rvert") || is_cmd("vert") || is_op("|"))) throw ParseError("unclosed abs");
      ++p_;
      return func("abs", {x});
    }
    if (n == "begin") {
      std::string env = raw_group_text();
      static const std::set<std::string> mats = {"pmatrix",     "bmatrix", "matrix",  "array",
                                                 "smallmatrix", "Bmatrix", "vmatrix", "Vmatrix"};
      if (!mats.count(env)) throw ParseError("environment " + env);
      NodeP m = matrix_env(env);
      if (env == "vmatrix" || env == "Vmatrix") return func("det", {m});
      return m;
    }
    if (n == "exp") return function_call("exp");
    static const std::set<std::string> unsupported = {"sum",  "int",   "prod",    "lim",   "iint",
                                                      "oint", "iiint", "partial", "nabla", "end"};
    if (unsupported.count(n)) throw ParseError("unsupported \\" + n);
    // Any other command names a quantity (\hbar, \Delta, \ell): a symbol of that name.
    return sym(n);
  }
};

}  // namespace

NodeP make_num(const mpq_class& q, bool is_float) {
  auto n = std::make_shared<Node>();
  n->k = Kind::Num;
  n->q = q;
  n->is_float = is_float;
  return n;
}

NodeP parse_math(std::string_view text) {
  if (text.size() > kMaxParseChars) throw ParseError("expression too long");
  Parser p(Lexer(text).run());
  return p.top();
}

}  // namespace rv::eval::math::detail
