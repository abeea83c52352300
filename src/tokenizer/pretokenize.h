// A hand-written matcher for the two pre-tokenizer regexes our models ship,
// kQwen2PreTokenizer and kLlama3PreTokenizer (formats/arch.h):
//
//   Qwen2 / Qwen2.5 / Qwen3:
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//     \s*[\r\n]+|\s+(?!\S)|\s+
//   Llama-3: the same with \p{N}{1,3} in place of \p{N}.
//
// Why: running the regex through PCRE2's JIT is the largest single cost of
// encoding. This matcher returns exactly the piece PCRE2 (UTF + UCP) returns
// at each position: its character classes (\p{L}, \p{N}, \s) are read from
// PCRE2 itself, one 256-code-point block at a time on first use, and the
// alternatives are walked in the regex's order with its backtracking worked
// out by hand. tests/tokenizer/pretokenize_test.cpp checks it against PCRE2
// on the whole benchmark corpus and on randomized strings of tricky
// characters. Any other pattern keeps using PCRE2.
#pragma once

#include <cstddef>
#include <string_view>

namespace rv::pretok {

enum class Pattern {
  kNone,    // not one we know: use the regex engine
  kQwen2,   // \p{N}: digits one by one
  kLlama3,  // \p{N}{1,3}: digits in groups of up to three
};

// Which known pattern `regex` is (compared byte for byte with the text in
// tokenizer.json), or kNone.
Pattern recognise(std::string_view regex);

// End (byte offset) of the piece that starts at `pos` < text.size(). `text`
// must be valid UTF-8 and `pos` on a character boundary; `p` is not kNone.
// Every position starts a piece under these patterns, so the pieces are
// [0, e1), [e1, e2), ... until text.size(). Thread-safe.
size_t next_piece(Pattern p, std::string_view text, size_t pos);

}  // namespace rv::pretok
