// LaTeX normalization, following latex2sympy2_extended's normalize_latex as
// math_verify configures it, so that the same answers reach the parser in the
// same shape.
#include "eval/math/normalize.h"

#include <cctype>
#include <string>
#include <vector>

#include "eval/math/re.h"

namespace rv::eval::math::detail {

namespace {

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::string strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out.append(to);
    i = j + from.size();
  }
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

// Words that are units when they end an answer ("5 cm", "3 \text{ miles}"):
// latex2sympy2_extended's list, kept verbatim so the same answers lose their unit.
const char* const kUnits[] = {"integerpoint",
                              "feet",
                              "sue",
                              "digit",
                              "pound",
                              "meal",
                              "edge",
                              "student",
                              "children ticket",
                              "multiple",
                              "east",
                              "degree",
                              "mph",
                              "kmph",
                              "ft",
                              "m square",
                              " m east",
                              "sq m",
                              "deg",
                              "mile",
                              "q .",
                              "monkey",
                              "prime",
                              "ratio",
                              "profit of rs",
                              "rd",
                              "o",
                              "gm",
                              "p . m",
                              "lb",
                              "tile",
                              "per",
                              "dm",
                              "lt",
                              "gain",
                              "ab",
                              "way",
                              "west",
                              "a .",
                              "b .",
                              "c .",
                              "d .",
                              "e .",
                              "f .",
                              "g .",
                              "h .",
                              "t",
                              "h",
                              "no change",
                              "men",
                              "soldier",
                              "pie",
                              "bc",
                              "excess",
                              "st",
                              "inches",
                              "noon",
                              "cent",
                              "by",
                              "gal",
                              "kmh",
                              "c",
                              "acre",
                              "rise",
                              "a . m",
                              "th",
                              "π r 2",
                              "sq",
                              "mark",
                              "l",
                              "toy",
                              "coin",
                              "sq . m",
                              "gallon",
                              "° f",
                              "profit",
                              "minw",
                              "yr",
                              "women",
                              "am",
                              "pm",
                              "hr",
                              "cu cm",
                              "square",
                              "v â € ™",
                              "are",
                              "rupee",
                              "rounds",
                              "cubic",
                              "cc",
                              "mtr",
                              "s",
                              "ohm",
                              "number",
                              "kmph",
                              "day",
                              "hour",
                              "minute",
                              "min",
                              "second",
                              "man",
                              "woman",
                              "sec",
                              "cube",
                              "mt",
                              "sq inch",
                              "mp",
                              "∏ cm ³",
                              "hectare",
                              "more",
                              "sec",
                              "unit",
                              "cu . m",
                              "cm 2",
                              "rs .",
                              "rs",
                              "kg",
                              "g",
                              "month",
                              "km",
                              "m",
                              "cm",
                              "mm",
                              "apple",
                              "liter",
                              "loss",
                              "yard",
                              "pure",
                              "year",
                              "increase",
                              "decrease",
                              "d",
                              "less",
                              "Surface",
                              "litre",
                              "pi sq m",
                              "s .",
                              "metre",
                              "meter",
                              "inch"};

std::string units_pattern() {
  std::string alt;
  for (const char* u : kUnits) {
    if (!alt.empty()) alt += "|";
    std::string w = u;
    // The list is used as a regex upstream, where "." matches any character.
    alt += w;
  }
  return "(\\d|\\}|\\s)\\s*(?:(?:" + alt + ")(?:s|es)?)\\s*$";
}

struct Rules {
  Re left{
      R"(\\m?left(\\\{|\{|\\\||\||\[|\(|\\rbracl|\\lgroup|\\lbrace|\\lbrack|\\vert|\\lvert|\\lceil|\\lfloor|\\langle|\\llcorner|\\ulcorner|\.))"};
  Re right{
      R"(\\m?right(\\\}|\}|\\\||\||\]|\)|\\rbrack|\\rgroup|\\rbrace|\\vert|\\rvert|\\rceil|\\rfloor|\\rangle|\\lrcorner|\\urcorner|\.))"};
  // Thousands separators written "12,\!000" or "1{,}000": one number, not a list.
  Re thousands{R"((\d)(?:,\\!\s*|\{,\})(?=\d{3}(?!\d)))"};
  Re remove{R"(\\mathrm\{th\}|\\!\s*|\\text\s*\{\s*\}|\\\$|\$|(?<!\\)["']|\\displaystyle)"};
  Re replace{
      R"((\\math(?:rm|it|bf)(?![a-zA-Z]))|(\\text(?:normal|bf|it|rm))|(\\(?:d|t|c)frac)|(\s\.(?=\d))|(\{\.)|(\~\=)|(\s*\{\s*,\s*\})|((?<![a-zA-Z])(?:,?\s*(?:and|or))(?![a-zA-Z]))|(,?\s*\\text\{\s*(?:and|or)\s*\})|((?<!\\)\\\s)|(infinity)|(,?\\ldots)|(\s*\bpercentage\b)|(\s*\bpercent\b)|(\s*\bpct\b)|(\\text\{percent\})|(\\text\{pct\})|(\\text\{percentage\})|((?<!\\)inf(?!inity))|( sqrt))"};
  Re slash_fix{R"(\\\\(?=[a-zA-Z]))"};
  Re unit_sup{R"((\\(?:text|mbox)\{.*?\})(\^\d|\{\^\d\})?$)"};
  Re units{units_pattern()};
  std::vector<std::pair<Re, std::string>> malformed;
  Rules() {
    malformed.emplace_back(Re(R"(\^\s?\((.*?)\))"), "^{\\1}");
    malformed.emplace_back(Re(R"(\\?sqrt\s?\((.*?)\))"), "\\\\sqrt{\\1}");
    malformed.emplace_back(Re(R"(\\frac\s?(\d)\s?(\d+))"), "\\\\frac{\\1}{\\2}");
    malformed.emplace_back(Re(R"(\\log_\s?(\d)\s?(\d+))"), "\\\\log_{\\1}{\\2}");
    malformed.emplace_back(Re(R"(\\frac\s?\{(.*?)\}\s?(\d))"), "\\\\frac{\\1}{\\2}");
    malformed.emplace_back(Re(R"(\\frac\s?(\d)\s?\{(.*?)\})"), "\\\\frac{\\1}{\\2}");
    malformed.emplace_back(Re(R"(\\sqrt\s?(\d))"), "\\\\sqrt{\\1}");
  }
};

const Rules& rules() {
  static const Rules r;
  return r;
}

std::string fix_sqrt(const std::string& text) {
  if (text.find("\\sqrt") == std::string::npos) return text;
  std::vector<std::string> parts;
  size_t i = 0;
  while (true) {
    size_t j = text.find("\\sqrt", i);
    parts.push_back(text.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 5;
  }
  std::string out = parts[0];
  for (size_t k = 1; k < parts.size(); ++k) {
    std::string s = parts[k];
    size_t b = 0;
    while (b < s.size() && is_space(s[b])) ++b;
    s = s.substr(b);
    if (!s.empty() && s[0] != '{' && s[0] != '[')
      out += "\\sqrt{" + s.substr(0, 1) + "}" + s.substr(1);
    else
      out += "\\sqrt" + s;
  }
  return out;
}

std::string fix_fracs(const std::string& text) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (true) {
    size_t j = text.find("\\frac", i);
    parts.push_back(text.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 5;
  }
  std::string out = parts[0];
  for (size_t k = 1; k < parts.size(); ++k) {
    std::string s = parts[k];
    size_t b = 0;
    while (b < s.size() && is_space(s[b])) ++b;
    s = s.substr(b);
    out += "\\frac";
    if (!s.empty() && s[0] == '{') {
      out += s;
    } else if (s.size() < 2) {
      return text;
    } else if (s[1] != '{') {
      out += "{" + s.substr(0, 1) + "}{" + s.substr(1, 1) + "}" + s.substr(2);
    } else {
      out += "{" + s.substr(0, 1) + "}" + s.substr(1);
    }
  }
  return out;
}

std::string fix_a_slash_b(const std::string& text) {
  size_t k = text.find('/');
  if (k == std::string::npos || text.find('/', k + 1) != std::string::npos) return text;
  auto is_int = [](const std::string& s) {
    size_t b = (!s.empty() && s[0] == '-') ? 1 : 0;
    if (s.size() == b || s.size() > 40) return false;
    if (s.size() > b + 1 && s[b] == '0') return false;
    for (size_t i = b; i < s.size(); ++i)
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
  };
  std::string a = text.substr(0, k), b = text.substr(k + 1);
  if (!is_int(a) || !is_int(b)) return text;
  return "\\frac{" + a + "}{" + b + "}";
}

}  // namespace

std::string extract_boxed(std::string_view text, BoxedMode mode) {
  static const Re sep(R"(\b(and|or)\b|,|;)");
  std::vector<std::string> results;
  size_t current = text.size();
  size_t max_pos = text.size();
  bool have_last = false;
  size_t last_start = 0;
  auto rfind_before = [&](std::string_view needle, size_t end) -> size_t {
    if (end < needle.size()) return std::string_view::npos;
    return text.rfind(needle, end - needle.size());
  };
  while (true) {
    size_t bi = rfind_before("\\boxed", current);
    size_t fi = rfind_before("\\fbox", current);
    if (bi == std::string_view::npos && fi == std::string_view::npos) break;
    size_t start;
    size_t cmd_end;
    if (fi == std::string_view::npos || (bi != std::string_view::npos && bi > fi)) {
      start = bi;
      cmd_end = bi + 6;
    } else {
      start = fi;
      cmd_end = fi + 5;
    }
    size_t p = cmd_end;
    while (p < max_pos && is_space(text[p])) ++p;
    if (p >= max_pos) break;
    if (text[p] != '{') {
      if (results.empty()) results.emplace_back(text.substr(p));
      break;
    }
    // matching brace, not past max_pos
    int depth = 1;
    size_t i = p, close = std::string_view::npos;
    while (i + 1 < max_pos) {
      ++i;
      if (text[i] == '{')
        ++depth;
      else if (text[i] == '}' && --depth == 0) {
        close = i;
        break;
      }
    }
    if (close == std::string_view::npos) {
      if (results.empty()) results.emplace_back(text.substr(p));
      break;
    }
    std::string content = strip(text.substr(p + 1, close - p - 1));
    if (mode == BoxedMode::Last && have_last) {
      std::string_view between = close + 1 <= last_start
                                     ? text.substr(close + 1, last_start - close - 1)
                                     : std::string_view();
      bool ok = between.size() < 10;
      // upstream compares against the previous result here
      const std::string& prev = results.empty() ? std::string() : results.back();
      if (!ok && prev != content && between.size() < 70 && sep.search(between)) ok = true;
      if (!ok) break;
    }
    if (results.empty() || results.back() != content) results.push_back(content);
    have_last = true;
    last_start = start;
    max_pos = start;
    current = start;
  }
  if (results.empty()) return std::string(text);
  std::string out;
  for (size_t k = results.size(); k-- > 0;) {
    out += results[k];
    if (k) out += ",";
  }
  return out;
}

std::string normalize_latex(std::string_view input, BoxedMode mode) {
  const Rules& r = rules();
  std::string text = extract_boxed(input, mode);

  // basic_latex
  replace_all(text, "\\mathrm{T}", "T");
  replace_all(text, "\\mathrm{d}", "d");
  replace_all(text, "{\\rm d}", "d");
  replace_all(text, "\\left[\\begin{matrix}", "\\begin{bmatrix}");
  replace_all(text, "\\end{matrix}\\right]", "\\end{bmatrix}");
  text = r.left.sub(text, [](const ReMatch& m) {
    std::string d(m.group(1));
    return d == "." ? std::string() : d;
  });
  text = r.right.sub(text, [](const ReMatch& m) {
    std::string d(m.group(1));
    return d == "." ? std::string() : d;
  });
  text = r.thousands.sub(text, "\\1");
  text = r.remove.sub(text, [](const ReMatch&) { return std::string(); });
  static const char* const repl[] = {
      "\\text",  "\\text", "\\frac", " 0.", "{0.", "\\approx", ",", ",", ",",       " ",
      "\\infty", " ",      "%",      "%",   "%",   "%",        "%", "%", "\\infty", "\\sqrt"};
  text = r.replace.sub(text, [](const ReMatch& m) {
    for (int g = 1; g <= 20; ++g)
      if (m.has(g)) return std::string(repl[g - 1]);
    return std::string(m.group(0));
  });
  for (char& c : text)
    if (c == '\n' || c == '\t') c = ' ';
  if (text.find("matrix") == std::string::npos) text = r.slash_fix.sub(text, "\\\\");

  // units
  {
    // A trailing \text{unit} (with an optional ^2) goes, but only one at brace
    // depth 0: upstream's regex would also eat the "\text{e}}" closing a \frac.
    std::string t = strip(r.unit_sup.sub(text, [&](const ReMatch& m) {
      int depth = 0;
      for (size_t i = 0; i < m.start(); ++i) depth += text[i] == '{' ? 1 : text[i] == '}' ? -1 : 0;
      int d = 0;
      bool balanced = true;
      for (char c : m.group(1)) {
        d += c == '{' ? 1 : c == '}' ? -1 : 0;
        if (d < 0) balanced = false;
      }
      if (depth != 0 || d != 0 || !balanced) return std::string(m.group(0));
      return std::string();
    }));
    if (!t.empty() && t != text) text = t;
    for (int k = 0; k < 2; ++k) {
      std::string u = r.units.sub(text, "\\1");
      if (!u.empty() && u != text) text = u;
    }
  }
  // nits
  if (!text.empty() && text[0] == '.') text = "0" + text;
  if (text == "0.5") text = "\\frac{1}{2}";
  // malformed operators
  for (const auto& [re, rep] : r.malformed) text = re.sub(text, rep);
  replace_all(text, " sqrt", "\\sqrt");
  text = fix_sqrt(text);
  text = fix_fracs(text);
  text = fix_a_slash_b(text);
  return strip(text);
}

}  // namespace rv::eval::math::detail
