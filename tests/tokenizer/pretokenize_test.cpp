// The hand-written pre-tokenizer (src/tokenizer/pretokenize.cpp) against
// PCRE2 running the same regex with the flags the tokenizer uses (UTF + UCP):
// identical pieces on the whole benchmark corpus, the hard cases, and
// randomized strings built from the characters where the regexes are subtle
// (contraction letters and their Unicode case variants, every kind of white
// space, \r\n, digits of several scripts, marks, emoji, code points from
// anywhere in Unicode).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/llamacpp_oracle.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/text_corpus.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using Pieces = std::vector<std::pair<size_t, size_t>>;

// The regex's own pieces: repeated leftmost matches, as the tokenizer's
// PCRE2 path takes them.
class Pcre2Split {
 public:
  explicit Pcre2Split(const std::string& pattern) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    md_ = pcre2_match_data_create(8, nullptr);
  }
  ~Pcre2Split() {
    pcre2_match_data_free(md_);
    pcre2_code_free(code_);
  }
  Pieces operator()(const std::string& s) const {
    Pieces out;
    size_t pos = 0;
    while (pos < s.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md_,
                           nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
      if (ov[1] == ov[0]) break;  // these patterns never match empty; stop rather than loop
      out.emplace_back(ov[0], ov[1]);
      pos = ov[1];
    }
    return out;
  }
  bool ok() const { return code_ && md_; }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_data* md_ = nullptr;
};

Pieces fast_split(rv::pretok::Pattern p, const std::string& s) {
  Pieces out;
  for (size_t pos = 0; pos < s.size();) {
    size_t e = rv::pretok::next_piece(p, s, pos);
    if (e <= pos || e > s.size()) {
      out.emplace_back(pos, e);  // recorded so the comparison fails, then stop
      break;
    }
    out.emplace_back(pos, e);
    pos = e;
  }
  return out;
}

std::string show(const std::string& s, const Pieces& p) {
  std::string out;
  for (auto [b, e] : p) out += "[" + (e <= s.size() && b <= e ? s.substr(b, e - b) : "?") + "]";
  return out;
}

std::string regex_of(const std::string& model) {
  return rv::Tokenizer::load(rv_test::oracle_tokenizer_dir(model)).pre_tokenizer_regex();
}

struct PretokCase {
  const char* model;
  rv::pretok::Pattern pattern;
};
const PretokCase kPretokCases[] = {{"qwen2_5", rv::pretok::Pattern::kQwen2},
                                   {"qwen3", rv::pretok::Pattern::kQwen2},
                                   {"llama3_1", rv::pretok::Pattern::kLlama3}};

// Compares the two splitters on `texts`; returns the number of mismatches and
// reports the first few.
size_t compare(const PretokCase& c, const std::vector<std::string>& texts) {
  std::string regex = regex_of(c.model);
  Pcre2Split ref(regex);
  EXPECT_TRUE(ref.ok());
  size_t bad = 0;
  for (const auto& t : texts) {
    Pieces want = ref(t), got = fast_split(c.pattern, t);
    if (want != got && ++bad <= 5)
      ADD_FAILURE() << c.model << ": text " << ::testing::PrintToString(t)
                    << "\n  pcre2: " << show(t, want) << "\n  ours:  " << show(t, got);
  }
  return bad;
}

TEST(Pretokenize, RecognisesTheShippedPatternsAndNothingElse) {
  for (const auto& c : kPretokCases) EXPECT_EQ(rv::pretok::recognise(regex_of(c.model)), c.pattern);
  std::string q = regex_of("qwen2_5");
  EXPECT_EQ(rv::pretok::recognise(q + "|x"), rv::pretok::Pattern::kNone);
  EXPECT_EQ(rv::pretok::recognise(q.substr(1)), rv::pretok::Pattern::kNone);
  EXPECT_EQ(rv::pretok::recognise(""), rv::pretok::Pattern::kNone);
  // GPT-2's pattern is not one of ours: it stays with PCRE2.
  EXPECT_EQ(rv::pretok::recognise(
                R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"),
            rv::pretok::Pattern::kNone);
}

TEST(Pretokenize, SplitsLikePcre2OnTheCorpus) {
  std::vector<std::string> texts = rv_test::hard_texts();
  size_t n_hard = texts.size();
  auto data = rv_test::data_texts();
  size_t step = rv_test::sanitizer_run() ? 20 : 1;
  for (size_t i = 0; i < data.size(); i += step) texts.push_back(data[i]);
  ASSERT_GT(texts.size(), n_hard + 100);
  for (const auto& c : kPretokCases) EXPECT_EQ(compare(c, texts), 0u) << c.model;
}

TEST(Pretokenize, SplitsLikePcre2OnRandomTrickyStrings) {
  // Characters where the alternatives interact: the contraction letters in
  // both cases with U+017F (long s, which case-folds to 's') and U+212A
  // (Kelvin sign); white space of every kind; digits (Nd, No, Nl); marks,
  // format characters, symbols, letters of several scripts.
  const std::vector<uint32_t> tricky = {
      '\'',   '\'',   's',     'S',     0x17F,  't',      'T',     'r',    'R',    'e',    'E',
      'v',    'V',    'm',     'M',     'l',    'L',      'd',     'D',    'k',    0x212A, 'a',
      'Z',    ' ',    ' ',     ' ',     '\t',   '\n',     '\r',    '\v',   '\f',   0x85,   0xA0,
      0x1680, 0x2000, 0x2028,  0x2029,  0x202F, 0x3000,   0x200B,  0x200D, 0xFEFF, '0',    '7',
      0xB2,   0xBD,   0x663,   0x2167,  0x2460, 0x301,    0x20DD,  0xFE0F, '.',    ',',    '!',
      '-',    '(',    '"',     '_',     0x2019, 0xE9,     0x3B1,   0x436,  0x5D0,  0x627,  0x4F60,
      0xAC00, 0x2B0,  0x1F600, 0x1F3FD, 0xE000, 0x10FFFF, 0x1D518, 0x1D7D8};
  std::mt19937 rng(20261127);
  auto random_cp = [&]() -> uint32_t {
    if (rng() % 8 != 0) return tricky[rng() % tricky.size()];
    for (;;) {  // anywhere in Unicode, surrogates excepted
      uint32_t cp = rng() % 0x110000;
      if (cp < 0xD800 || cp > 0xDFFF) return cp;
    }
  };
  const int n = rv_test::sanitizer_run() ? 5000 : 100000;
  std::vector<std::string> texts;
  for (int i = 0; i < n; ++i) {
    std::string s;
    int len = static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) rv::unicode::append_utf8(s, random_cp());
    texts.push_back(std::move(s));
  }
  for (const auto& c : kPretokCases) EXPECT_EQ(compare(c, texts), 0u) << c.model;
}

TEST(Pretokenize, KnownPieces) {
  using rv::pretok::Pattern;
  auto pieces = [](Pattern p, const std::string& s) {
    std::vector<std::string> out;
    for (auto [b, e] : fast_split(p, s)) out.push_back(s.substr(b, e - b));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(Pattern::kQwen2, "I'M here, 12345!"),
            (V{"I", "'M", " here", ",", " ", "1", "2", "3", "4", "5", "!"}));
  EXPECT_EQ(pieces(Pattern::kLlama3, "I'M here, 12345!"),
            (V{"I", "'M", " here", ",", " ", "123", "45", "!"}));
  EXPECT_EQ(pieces(Pattern::kQwen2, "a  \n\n  b   "), (V{"a", "  \n\n", " ", " b", "   "}));
  EXPECT_EQ(pieces(Pattern::kQwen2, "x\r\n\r\n"), (V{"x", "\r\n\r\n"}));
  EXPECT_EQ(pieces(Pattern::kQwen2, " ...\n\nok"), (V{" ...\n\n", "ok"}));
  EXPECT_EQ(pieces(Pattern::kQwen2, "\tfoo 'sa"), (V{"\tfoo", " '", "sa"}));
  EXPECT_EQ(pieces(Pattern::kQwen2, ""), V{});
}

}  // namespace
