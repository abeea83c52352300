// Answer extraction with Python `re` semantics (what lm-evaluation-harness
// uses), implemented on PCRE2.
//
// Patterns are compiled with UTF + UCP so \d, \w, \s and case folding cover
// Unicode as Python's str patterns do, NEWLINE_LF so `.` and `$` treat only
// "\n" as a line end (Python's rule), and MATCH_INVALID_UTF so model output
// that is not valid UTF-8 never throws at match time. Iteration over matches
// (findall / sub) follows Python >= 3.7: after an empty match the next match
// may not be empty at the same position.
//
// Known differences from Python `re` that cannot matter for the task
// patterns: possessive/atomic syntax and \z are accepted by PCRE2 but not by
// Python 3.10; Python's `\Z` is PCRE2's `\z`.
//
// Thread-safety: a compiled Regex is immutable and may be used from any
// number of threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rv::eval {

class Regex {
 public:
  // Throws rv::Error("regex '<pattern>': <PCRE2 message> at offset N").
  explicit Regex(std::string pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  const std::string& pattern() const { return pattern_; }
  int group_count() const { return groups_; }

  // One element per match, like Python's re.findall: the whole match when
  // the pattern has no groups, else every group ("" for an unmatched group).
  std::vector<std::vector<std::string>> findall(std::string_view text) const;
  // re.sub(pattern, repl, text) with a literal replacement (no backrefs).
  std::string sub(std::string_view text, std::string_view repl) const;
  // re.search: true when the pattern matches anywhere.
  bool search(std::string_view text) const;

 private:
  struct Impl;
  std::string pattern_;
  int groups_ = 0;
  std::unique_ptr<Impl> impl_;
};

// lm-evaluation-harness's RegexFilter followed by take_first, on one
// response: findall; pick match[group_select] (negative counts from the end);
// when that match has groups, take the first non-empty one; strip whitespace.
// No match (or an out-of-range group_select) gives `fallback`.
std::string regex_extract(const Regex& re, std::string_view text, int group_select = 0,
                          std::string_view fallback = "[invalid]");

// Python's str.strip() with no argument on ASCII/Unicode whitespace.
std::string py_strip(std::string_view s);

}  // namespace rv::eval
