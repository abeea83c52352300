// TEMPORARY placeholder for the math checker (branch `math` replaces it):
// the answer is the content of the last \boxed{...} (else the whole text)
// with spaces and '$' removed; two answers match when those strings are
// equal or both parse completely as the same number.
#include <cstdlib>

#include "eval/math/verify.h"

namespace rv::eval::math {

namespace {

std::string last_boxed(std::string_view t) {
  size_t p = t.rfind("\\boxed{");
  if (p == std::string_view::npos) return std::string(t);
  size_t i = p + 7;
  int depth = 1;
  size_t j = i;
  for (; j < t.size() && depth > 0; ++j) {
    if (t[j] == '{') ++depth;
    if (t[j] == '}') --depth;
  }
  return depth == 0 ? std::string(t.substr(i, j - 1 - i)) : std::string(t.substr(i));
}

bool as_number(const std::string& s, double* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

Answer parse(std::string_view text, const ExtractConfig&) {
  std::string inner = last_boxed(text), canon;
  for (char c : inner)
    if (c != ' ' && c != '\n' && c != '\t' && c != '$') canon += c;
  return Answer(inner, canon);
}

bool verify(const Answer& gold, const Answer& pred, const VerifyConfig&) {
  if (gold.empty() || pred.empty()) return false;
  if (gold.canonical() == pred.canonical()) return true;
  double a = 0, b = 0;
  return as_number(gold.canonical(), &a) && as_number(pred.canonical(), &b) && a == b;
}

bool equivalent(std::string_view gold, std::string_view pred, const ExtractConfig& ec,
                const VerifyConfig& vc) {
  return verify(parse(gold, ec), parse(pred, ec), vc);
}

std::string strip_think(std::string_view response, bool* unterminated) {
  if (unterminated) *unterminated = false;
  size_t e = response.find("</think>");
  if (e != std::string_view::npos) return std::string(response.substr(e + 8));
  if (response.find("<think>") != std::string_view::npos) {
    if (unterminated) *unterminated = true;
    return "";
  }
  return std::string(response);
}

}  // namespace rv::eval::math
