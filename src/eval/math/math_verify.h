// Native math answer checker: a C++ counterpart of Hugging Face math_verify
// (parse + verify), for scoring competition-math answers without Python.
//
// parse() extracts the final answer from a model response or a gold answer
// the way math_verify does (the last \boxed{...}, "final answer is ...",
// "answer: ...", LaTeX environments, plain numbers and expressions, with the
// same priorities), normalizes the LaTeX and parses it into an expression.
// verify() decides whether two parsed answers are mathematically equivalent:
// exactly over the rationals where both are rational (GMP), otherwise by
// numeric evaluation; sets compare without order, tuples in order, intervals
// with their bracket kinds, equations up to sides and a constant factor.
// docs/math-verify.md lists the rules, the tolerances and where we differ
// from math_verify.
//
// Robustness contract: no function here throws on any input or takes more
// than bounded time and memory: inputs are truncated (kMaxInput), nesting is
// capped, exact arithmetic is size-capped (10^{10^{10}} is simply not equal
// to anything), and an answer that cannot be parsed just does not match.
//
// Thread-safety: all functions are re-entrant; Answer is an immutable value.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rv::eval::math {

// Which extractors parse() runs: math_verify's extraction_config.
struct ExtractConfig {
  bool latex = true;             // LatexExtractionConfig
  bool expr = true;              // ExprExtractionConfig
  int boxed_match_priority = 0;  // as math_verify: 0 = \boxed first; 50 = after "final answer is"
                                 // patterns; < 0 = boxed patterns off
};

// How verify() compares: math_verify's verify() arguments.
struct VerifyConfig {
  int precision = 6;   // float_rounding: decimal places both sides are rounded to when a float
                       // (a decimal literal) is involved
  bool strict = true;  // false: variables are matched by position, so f(x) equals f(y)
  bool allow_set_relation_comp = false;  // also read a predicted relation as a set (x<2 vs (-oo,2))
};

// Responses longer than this are cut to their last kMaxInput bytes before
// extraction (final answers sit at the end); this bounds extraction work.
constexpr size_t kMaxInput = 16 * 1024;

namespace detail {
struct Node;
}

// An extracted, parsed answer: up to two candidates like math_verify's parse()
// list, a parsed expression and the first extracted string (the fallback that
// math_verify compares as text when parsing fails).
class Answer {
 public:
  Answer() = default;
  // True when nothing was extracted: such an answer never verifies.
  bool empty() const { return !expr_ && fallback_.empty(); }
  // The extracted source text (normalized LaTeX or the matched number/expression).
  std::string text() const { return text_; }
  // Printable parsed form (SymPy-like), or the fallback string when nothing parsed.
  std::string canonical() const;
  // Whether an expression was parsed (else only the fallback string is compared).
  bool parsed() const { return expr_ != nullptr; }

 private:
  friend Answer parse(std::string_view, const ExtractConfig&);
  friend bool verify(const Answer&, const Answer&, const VerifyConfig&);
  std::shared_ptr<const detail::Node> expr_;
  std::string fallback_;
  std::string text_;
};

// Extracts and parses the answer in `text` (a model response or a gold
// answer). <think>...</think> is removed first (with an unterminated <think>,
// the whole text is searched, as math_verify would). Never throws.
Answer parse(std::string_view text, const ExtractConfig& cfg = {});

// Whether `pred` is equivalent to `gold` (gold first: the relation is not
// symmetric, e.g. a gold "x = 5" accepts "5" and vice versa, but a gold
// equation only matches a predicted equation). Never throws.
bool verify(const Answer& gold, const Answer& pred, const VerifyConfig& cfg = {});

// parse() both with the same configuration, then verify().
bool equivalent(std::string_view gold, std::string_view pred, const ExtractConfig& ecfg = {},
                const VerifyConfig& vcfg = {});

// The part of a reasoning model's response after its thinking: everything
// after the last "</think>". Without any <think> tag, the response unchanged.
// With an unterminated "<think>" (the model ran out of tokens while thinking)
// the result is "" and *unterminated is set: there is no final answer.
std::string strip_think(std::string_view response, bool* unterminated = nullptr);

}  // namespace rv::eval::math
