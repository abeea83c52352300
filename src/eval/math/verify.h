// TEMPORARY: the math answer checker's API (branch `math` owns this file and
// replaces it, with verify_placeholder.cpp dropped, when it merges).
//
// parse() extracts a final answer from a response or a gold string; verify()
// decides whether a prediction matches the gold answer (Math-Verify
// semantics); equivalent() is parse + parse + verify; strip_think() removes a
// reasoning model's <think>...</think> block.
#pragma once

#include <string>
#include <string_view>

namespace rv::eval::math {

struct ExtractConfig {
  bool latex = true;
  bool expr = true;
  int boxed_match_priority = 0;
};

struct VerifyConfig {
  int precision = 6;
  bool strict = true;
  bool allow_set_relation_comp = false;
};

class Answer {
 public:
  Answer() = default;
  explicit Answer(std::string text, std::string canonical)
      : text_(std::move(text)), canonical_(std::move(canonical)) {}
  bool empty() const { return canonical_.empty(); }
  std::string text() const { return text_; }
  std::string canonical() const { return canonical_; }

 private:
  std::string text_, canonical_;
};

Answer parse(std::string_view text, const ExtractConfig& cfg = {});
bool verify(const Answer& gold, const Answer& pred, const VerifyConfig& cfg = {});
bool equivalent(std::string_view gold, std::string_view pred, const ExtractConfig& = {},
                const VerifyConfig& = {});
std::string strip_think(std::string_view response, bool* unterminated = nullptr);

}  // namespace rv::eval::math
