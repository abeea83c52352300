// Extraction (math_verify's regexes and priorities), and the public API.
#include "eval/math/math_verify.h"

#include <algorithm>
#include <map>
#include <set>

#include "eval/math/expr.h"
#include "eval/math/normalize.h"
#include "eval/math/re.h"

namespace rv::eval::math {

using detail::BoxedMode;
using detail::Kind;
using detail::NodeP;
using detail::Re;
using detail::ReMatch;

namespace {

// ---------------------------------------------------------------------------
// Patterns. They mirror math_verify's (parser.py): the same alternatives,
// group names and priorities, so the same part of a response is extracted.

std::string env_pattern(const std::string& prefix, bool boxed) {
  std::string dd = R"((?:[^$]|\$(?!\$)))";
  std::string db = R"((?:[^\\]|\\(?!\])))";
  std::string id = R"((?:\\[$]|[^\n$]))";
  std::string ip = R"((?:[^\\\n]|\\(?!\))))";
  std::string ib = R"([^\n\]\[])";
  auto wrap = [&](const std::string& x) {
    return boxed ? x + "*?\\\\boxed\\{" + x + "+?\\}" + x + "*?" : x + "+?";
  };
  std::vector<std::string> alts = {
      R"((?<!\\)\$\$(?P<)" + prefix + "latexDisplayDollar>" + wrap(dd) + R"()(?<!\\)\$\$)",
      R"((?<!\\)\\\[(?P<)" + prefix + "latexDisplayBracket>" + wrap(db) + R"()(?<!\\)\\\])",
      R"((?<!\\|\d)\$(?P<)" + prefix + "latexInlineDollar>" + wrap(id) + R"()(?<!\\)\$)",
      R"((?<!\\)\\\((?P<)" + prefix + "latexInlineParenthesis>" + wrap(ip) + R"()(?<!\\)\\\))",
      R"(\s\[(?P<)" + prefix + "latexInlineBracket>" + wrap(ib) + R"()\]\s)",
  };
  if (!boxed) {
    std::string num = R"(-?\d+(?:[.,]\d+)?)";
    alts.push_back("(?P<" + prefix + "latexFraction>-?\\\\frac\\{" + num + "\\}\\{" + num + "\\})");
  }
  std::string joined;
  for (const std::string& a : alts) joined += (joined.empty() ? "" : "|") + a;
  return "(?:(?:" + joined + R"()\s*(?P<)" + prefix +
         R"(percent>(?:\\?%|[Pp]ercent|[Pp]ercentage|[Pp]ct))?))";
}

struct Pattern {
  Re re;
  int priority;
  bool latex;  // else expr
};

std::vector<Pattern> latex_patterns(int boxed_priority) {
  std::vector<Pattern> out;
  std::string first = env_pattern("first_", false);
  std::string next;
  for (int i = 1; i <= 5; ++i)
    next += R"((?:\s*(?:,?and|,?or|,)\s*)" + env_pattern("next" + std::to_string(i) + "_", false) +
            ")?";
  std::string envs = "(?:" + first + next + ")";
  auto add = [&](const std::string& p, int prio) {
    out.push_back({Re(p, /*dotall=*/true), prio, true});
  };
  add(R"((?i:final answer is)\:?\s*)" + envs + R"(\.?\s?I hope)", 0);
  add(R"((?i:final answer.{0,100}?)\s+is\:?\s*)" + envs, 50);
  add(R"((?i:answer):.{0,50}?)" + envs, 100);
  add(R"((?i:answer).{0,50}?)" + envs, 200);
  add(envs, 300);
  if (boxed_priority >= 0) {
    std::string b = env_pattern("first_", true);
    for (int i = 1; i <= 5; ++i)
      b += R"(\s*(?:\s*(?:,?and|,?or|,)\s*)" + env_pattern("next" + std::to_string(i) + "_", true) +
           ")?";
    add(b, boxed_priority);
    // Also \fbox (math_verify only anchors on \boxed; its normalization reads both).
    add(R"((?P<first_latexBoxed>\\(?:boxed|fbox)\{.+\}))", boxed_priority);
  }
  return out;
}

std::vector<Pattern> expr_patterns() {
  std::string number =
      R"((?<!\d)(?:(?P<integer1>-?[1-9]\d{0,2}(?:[ ,]\d{3})+)(?P<decimal1>\.\d+)?|)"
      R"((?P<integer2>-?\d+)(?P<decimal2>[.,]\d+)|(?P<decimal3>\.\d+)|(?P<integer3>-?\d+))"
      R"()(?P<percent>\s*(?:%|[Pp]ercent|\s*[Pp]ercentage|\s*[Pp]ct))?)";
  std::string ops = R"(\+\-\*\×\/\^\(\)\÷)";
  std::string chars = R"([\d\.\s)" + ops + "]";
  std::string expr = R"((?P<expr>-?\(?-?\d)" + chars + "*[" + ops + "]" + chars + R"(+\)?))";
  std::string currency =
      "$€£¥₹₽₪₩₫฿₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₴₵₶₷₸₹₺₻₼"
      "₽"
      "₾"
      "₿";
  std::string prefix = R"((?:^|\s|\=)(?:\*\*)?)";
  std::string suffix = R"((?:\*\*)?(?:\.|,|:|\s|\)|\$|$))";
  std::string expr_anch = "(?:" + prefix + expr + suffix + ")";
  std::string num_anch = "(?:" + prefix + "[\\" + currency + "]?" + number + ")";
  std::string either = "(?:" + expr_anch + "|" + num_anch + ")";
  std::vector<Pattern> out;
  auto add = [&](const std::string& p, int prio) { out.push_back({Re(p), prio, false}); };
  add(R"((?i:final answer is)\:?\s*)" + either + R"(\.?\s?I hope)", 0);
  add(R"((?i:final answer.{0,100}?)\s+is\:?)" + either, 50);
  add(R"((?i:answer):(?:.{0,100}=\s*|.{0,50}?))" + either + R"((?!\s*=))", 100);
  add(R"((?i:answer)(?:.{0,100}=\s*|.{0,50}?))" + either + R"((?!\s*=))", 200);
  add(expr_anch, 300);
  add(num_anch, 300);
  return out;
}

struct Compiled {
  std::vector<Pattern> latex0, latex50, expr;
};
const Compiled& compiled() {
  static const Compiled c{latex_patterns(0), latex_patterns(50), expr_patterns()};
  return c;
}

// ---------------------------------------------------------------------------
// Post-parse shaping: "±" becomes the set of both values, and finite sets
// drop duplicates, as SymPy's FiniteSet does.

constexpr size_t kMaxVariants = 16;

std::vector<NodeP> expand_pm(const NodeP& n, int depth = 0) {
  if (depth > detail::kMaxDepth) return {n};
  if (n->k == Kind::Pm) {
    std::vector<NodeP> out;
    if (n->a.size() == 1) {
      for (const NodeP& x : expand_pm(n->a[0], depth + 1)) {
        out.push_back(x);
        auto m = std::make_shared<detail::Node>();
        m->k = Kind::Mul;
        m->a = {detail::make_num(-1), x};
        out.push_back(m);
      }
    } else {
      for (const NodeP& x : expand_pm(n->a[0], depth + 1))
        for (const NodeP& y : expand_pm(n->a[1], depth + 1)) {
          auto p = std::make_shared<detail::Node>();
          p->k = Kind::Add;
          p->a = {x, y};
          auto m = std::make_shared<detail::Node>();
          m->k = Kind::Add;
          auto ny = std::make_shared<detail::Node>();
          ny->k = Kind::Mul;
          ny->a = {detail::make_num(-1), y};
          m->a = {x, ny};
          out.push_back(p);
          out.push_back(m);
          if (out.size() >= kMaxVariants) return out;
        }
    }
    return out;
  }
  if (n->k == Kind::Set) return {n};  // handled by finalize
  std::vector<std::vector<NodeP>> kids;
  bool any = false;
  for (const NodeP& c : n->a) {
    kids.push_back(expand_pm(c, depth + 1));
    if (kids.back().size() > 1) any = true;
  }
  if (!any) return {n};
  std::vector<NodeP> out;
  std::vector<size_t> idx(kids.size(), 0);
  while (out.size() < kMaxVariants) {
    auto c = std::make_shared<detail::Node>(*n);
    for (size_t i = 0; i < kids.size(); ++i) c->a[i] = kids[i][idx[i]];
    out.push_back(c);
    size_t i = 0;
    for (; i < kids.size(); ++i) {
      if (++idx[i] < kids[i].size()) break;
      idx[i] = 0;
    }
    if (i == kids.size()) break;
  }
  return out;
}

NodeP finalize(const NodeP& n, int depth = 0) {
  if (depth > detail::kMaxDepth) return n;
  if (n->k == Kind::Set) {
    auto s = std::make_shared<detail::Node>(*n);
    s->a.clear();
    std::set<std::string> seen;
    for (const NodeP& c : n->a)
      for (const NodeP& v : expand_pm(finalize(c, depth + 1)))
        if (seen.insert(detail::to_string(v)).second) s->a.push_back(v);
    return s;
  }
  std::vector<NodeP> v = expand_pm(n);
  if (v.size() == 1) {
    if (v[0]->a.empty()) return v[0];
    auto c = std::make_shared<detail::Node>(*v[0]);
    for (NodeP& x : c->a) x = finalize(x, depth + 1);
    return c;
  }
  auto s = std::make_shared<detail::Node>();
  s->k = Kind::Set;
  std::set<std::string> seen;
  for (const NodeP& x : v)
    if (seen.insert(detail::to_string(x)).second) s->a.push_back(x);
  return s;
}

NodeP pct(const NodeP& x) {
  auto m = std::make_shared<detail::Node>();
  m->k = Kind::Mul;
  m->a = {x, detail::make_num(mpq_class(1, 100))};
  return m;
}

// latex2sympy, then (math_verify's retry) only the last part of an "a = b = c" chain.
NodeP parse_latex(const std::string& latex) {
  try {
    return finalize(detail::parse_math(latex));
  } catch (const detail::ParseError&) {
  }
  if (latex.find(',') != std::string::npos || latex.find(';') != std::string::npos) return nullptr;
  std::vector<std::string> parts;
  std::string cur;
  for (size_t i = 0; i < latex.size(); ++i) {
    char c = latex[i];
    char prev = i ? latex[i - 1] : '\0';
    if (c == '=' && prev != '\\' && prev != '<' && prev != '!' && prev != '>') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  if (parts.size() <= 2) return nullptr;
  try {
    return finalize(detail::parse_math(parts.back()));
  } catch (const detail::ParseError&) {
    return nullptr;
  }
}

struct Extracted {
  NodeP expr;
  std::string str;
};

Extracted extract_latex(const Re& re, const ReMatch& m) {
  const auto& names = re.names();
  std::vector<std::pair<int, std::string>> groups;  // group index, prefix
  auto find_prefix = [&](const std::string& prefix) {
    for (size_t g = 1; g < names.size(); ++g)
      if (names[g].rfind(prefix + "latex", 0) == 0 && m.has(static_cast<int>(g)) &&
          !m.group(static_cast<int>(g)).empty())
        return static_cast<int>(g);
    return -1;
  };
  std::vector<std::string> prefixes = {"first_"};
  for (int i = 1; i <= 5; ++i) prefixes.push_back("next" + std::to_string(i) + "_");
  std::vector<NodeP> exprs;
  std::vector<std::string> strs;
  for (const std::string& pre : prefixes) {
    int g = find_prefix(pre);
    if (g < 0) continue;
    int pg = re.group_index(pre + "percent");
    bool is_pct = pg >= 0 && m.has(pg) && !m.group(pg).empty();
    bool boxed_group = names[g] == pre + "latexBoxed";
    std::string norm =
        detail::normalize_latex(m.group(g), boxed_group ? BoxedMode::Last : BoxedMode::All);
    strs.push_back(norm);
    NodeP e = parse_latex(norm);
    if (e && is_pct) e = pct(e);
    exprs.push_back(e);
  }
  if (exprs.empty()) return {};
  if (exprs.size() > 1 &&
      std::all_of(exprs.begin(), exprs.end(), [](const NodeP& e) { return e != nullptr; })) {
    auto s = std::make_shared<detail::Node>();
    s->k = Kind::Set;
    std::set<std::string> seen;
    for (const NodeP& e : exprs) {
      std::vector<NodeP> elems = e->k == Kind::Set ? e->a : std::vector<NodeP>{e};
      for (const NodeP& x : elems)
        if (seen.insert(detail::to_string(x)).second) s->a.push_back(x);
    }
    std::string joined;
    for (size_t i = 0; i < strs.size(); ++i) joined += (i ? " and " : "") + strs[i];
    return {s, joined};
  }
  return {exprs[0], strs[0]};
}

Extracted extract_expr(const Re& re, const ReMatch& m) {
  auto grp = [&](const char* prefix) -> std::string {
    const auto& names = re.names();
    for (size_t g = 1; g < names.size(); ++g)
      if (names[g].rfind(prefix, 0) == 0 && m.has(static_cast<int>(g)) &&
          !m.group(static_cast<int>(g)).empty())
        return std::string(m.group(static_cast<int>(g)));
    return "";
  };
  std::string integer = grp("integer"), decimal = grp("decimal");
  int pg = re.group_index("percent");
  bool is_pct = pg >= 0 && m.has(pg) && !m.group(pg).empty();
  if (!integer.empty() || !decimal.empty()) {
    std::string i;
    for (char c : integer)
      if (c != ',' && c != ' ') i += c;
    bool negative = !i.empty() && i[0] == '-';
    if (negative) i.erase(0, 1);
    size_t z = i.find_first_not_of('0');
    i = z == std::string::npos ? "" : i.substr(z);
    if (i.empty()) i = "0";
    std::replace(decimal.begin(), decimal.end(), ',', '.');
    std::string s = (negative ? "-" : "") + i + decimal;
    NodeP n;
    try {
      n = detail::parse_math(s);
    } catch (const detail::ParseError&) {
      return {nullptr, s};
    }
    if (is_pct) n = pct(n);
    return {n, s};
  }
  std::string e = grp("expr");
  if (e.empty()) return {};
  std::string plain = e;
  std::replace(plain.begin(), plain.end(), '\n', ' ');
  try {
    return {finalize(detail::parse_math(plain)), e};
  } catch (const detail::ParseError&) {
    return {nullptr, e};
  }
}

std::string tail(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t b = s.size() - max;
  while (b < s.size() && (static_cast<unsigned char>(s[b]) & 0xc0) == 0x80) ++b;
  return std::string(s.substr(b));
}

}  // namespace

std::string Answer::canonical() const {
  if (expr_) return detail::to_string(expr_);
  return fallback_;
}

std::string strip_think(std::string_view response, bool* unterminated) {
  if (unterminated) *unterminated = false;
  size_t close = response.rfind("</think>");
  if (close != std::string_view::npos) return std::string(response.substr(close + 8));
  if (response.find("<think>") != std::string_view::npos) {
    if (unterminated) *unterminated = true;
    return "";
  }
  return std::string(response);
}

Answer parse(std::string_view input, const ExtractConfig& cfg) {
  Answer ans;
  try {
    size_t close = input.rfind("</think>");
    std::string text =
        tail(close != std::string_view::npos ? input.substr(close + 8) : input, kMaxInput);
    struct Cand {
      const Pattern* p;
      ReMatch m;
    };
    std::vector<const Pattern*> pats;
    const Compiled& c = compiled();
    if (cfg.latex) {
      // boxed_match_priority only moves the boxed patterns; build those on demand
      // for priorities other than the two math_verify uses.
      static thread_local std::map<int, std::vector<Pattern>> other;
      const std::vector<Pattern>* lp = cfg.boxed_match_priority == 0    ? &c.latex0
                                       : cfg.boxed_match_priority == 50 ? &c.latex50
                                                                        : nullptr;
      if (!lp) {
        auto it = other.find(cfg.boxed_match_priority);
        if (it == other.end())
          it = other.emplace(cfg.boxed_match_priority, latex_patterns(cfg.boxed_match_priority))
                   .first;
        lp = &it->second;
      }
      for (const Pattern& p : *lp) pats.push_back(&p);
    }
    if (cfg.expr)
      for (const Pattern& p : c.expr) pats.push_back(&p);
    std::stable_sort(pats.begin(), pats.end(),
                     [](const Pattern* a, const Pattern* b) { return a->priority < b->priority; });
    std::vector<std::string> fallbacks;
    std::vector<std::pair<size_t, size_t>> failed_spans;
    NodeP found;
    std::string found_text;
    for (size_t i = 0; i < pats.size() && !found;) {
      size_t j = i;
      std::vector<Cand> cands;
      while (j < pats.size() && pats[j]->priority == pats[i]->priority) {
        for (ReMatch& m : pats[j]->re.finditer(text)) cands.push_back({pats[j], std::move(m)});
        ++j;
      }
      i = j;
      // rightmost end first, then leftmost start (math_verify's order)
      std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
        if (a.m.end() != b.m.end()) return a.m.end() > b.m.end();
        return a.m.start() < b.m.start();
      });
      for (const Cand& cand : cands) {
        const auto& names = cand.p->re.names();
        if (!cand.p->latex && !failed_spans.empty()) {
          bool overlap = false;
          for (size_t g = 1; g < names.size() && !overlap; ++g) {
            const std::string& nm = names[g];
            if (!(nm == "expr" || nm.rfind("integer", 0) == 0 || nm.rfind("decimal", 0) == 0))
              continue;
            if (!cand.m.has(static_cast<int>(g)) || cand.m.group(static_cast<int>(g)).empty())
              continue;
            auto [s, e] = cand.m.spans[g];
            for (auto [lo, hi] : failed_spans)
              if (s < hi && e > lo) overlap = true;
          }
          if (overlap) continue;
        }
        Extracted ex =
            cand.p->latex ? extract_latex(cand.p->re, cand.m) : extract_expr(cand.p->re, cand.m);
        if (!ex.expr && cand.p->latex) {
          for (size_t g = 1; g < names.size(); ++g)
            if (names[g].rfind("first_latex", 0) == 0 && cand.m.has(static_cast<int>(g)) &&
                !cand.m.group(static_cast<int>(g)).empty())
              failed_spans.push_back(cand.m.spans[g]);
        }
        if (!ex.str.empty()) fallbacks.push_back(ex.str);
        if (ex.expr) {
          found = ex.expr;
          found_text = ex.str;
          break;
        }
      }
    }
    ans.expr_ = found;
    if (!fallbacks.empty()) ans.fallback_ = fallbacks[0];
    ans.text_ = found ? found_text : ans.fallback_;
  } catch (const std::exception&) {
    return Answer();
  }
  return ans;
}

namespace {
std::string py_strip(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}
}  // namespace

bool verify(const Answer& gold, const Answer& pred, const VerifyConfig& cfg) {
  detail::CompareOpts o{cfg.precision, cfg.strict, cfg.allow_set_relation_comp};
  try {
    // Candidates: [parsed expression, first extracted string], as math_verify's parse() list.
    if (gold.expr_ && pred.expr_ && detail::expr_eq(gold.expr_, pred.expr_, o)) return true;
    if (!gold.fallback_.empty() && !pred.fallback_.empty()) {
      std::string g = py_strip(gold.fallback_), p = py_strip(pred.fallback_);
      if (!g.empty() && g == p) return true;
    }
  } catch (const std::exception&) {
  }
  return false;
}

bool equivalent(std::string_view gold, std::string_view pred, const ExtractConfig& ecfg,
                const VerifyConfig& vcfg) {
  return verify(parse(gold, ecfg), parse(pred, ecfg), vcfg);
}

}  // namespace rv::eval::math
