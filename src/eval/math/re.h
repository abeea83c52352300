// Internal: a small PCRE2 wrapper for the math checker's extraction patterns,
// with what the checker needs and rv::eval::Regex does not offer: match
// positions, named groups and substitution through a callback.
//
// Patterns follow Python `re` conventions (the behaviour being mirrored is
// math_verify's, which is written with Python regexes): UTF + UCP, "\n" as the
// only newline, invalid UTF-8 tolerated. Every match call runs under a match
// and depth limit, so a pathological subject costs bounded work; hitting the
// limit ends iteration as if there were no further match.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rv::eval::math::detail {

struct ReMatch {
  // Byte spans per group number (group 0 is the whole match); {npos, npos} for an unset group.
  std::vector<std::pair<size_t, size_t>> spans;
  std::string_view subject;
  bool has(int g) const;
  std::string_view group(int g) const;
  size_t start() const { return spans[0].first; }
  size_t end() const { return spans[0].second; }
};

class Re {
 public:
  // Throws rv::Error for an invalid pattern (a programming error here).
  explicit Re(std::string_view pattern, bool dotall = false);
  ~Re();
  Re(Re&&) noexcept;
  // All non-overlapping matches, left to right (Python finditer), at most max_matches.
  std::vector<ReMatch> finditer(std::string_view s, size_t max_matches = 4096) const;
  bool search(std::string_view s) const;
  // re.sub with a callback.
  std::string sub(std::string_view s, const std::function<std::string(const ReMatch&)>& fn) const;
  // re.sub with a template supporting \1..\9 back references only.
  std::string sub(std::string_view s, std::string_view repl) const;
  // Group number for a name, or -1.
  int group_index(std::string_view name) const;
  // Group names in order of their numbers ("" for unnamed groups), index = group number.
  const std::vector<std::string>& names() const { return names_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> names_;
};

}  // namespace rv::eval::math::detail
