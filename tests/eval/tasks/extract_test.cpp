// Regex extraction: Python `re` semantics (checked against python3 itself)
// and golden cases for lm-eval's filters, including the ones where lm-eval's
// patterns give a wrong answer (kept on purpose: scores must match lm-eval).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "eval/tasks/extract.h"
#include "task_test_util.h"

namespace rv::eval {
namespace {

const char* kGsmStrict = "#### (\\-?[0-9\\.\\,]+)";
const char* kCotStrict = "The answer is (\\-?[0-9\\.\\,]+).";
const char* kFlex = "(-?[$0-9.,]{2,})|(-?[0-9]+)";
const char* kBbh = "(?<=the answer is )(.*)(?=.)";

TEST(ExtractGolden, Gsm8kStrict) {
  Regex re(kGsmStrict);
  EXPECT_EQ(regex_extract(re, "She makes 9 * 2 = $18.\n#### 18"), "18");
  EXPECT_EQ(regex_extract(re, "#### -3.5 apples"), "-3.5");
  EXPECT_EQ(regex_extract(re, "#### 1,200\n\n#### 7"), "1,200");  // take_first
  EXPECT_EQ(regex_extract(re, "The answer is 18"), "[invalid]");
  // lm-eval keeps a sentence-final period in the extraction; the metric's
  // "\.$" regex removes it later.
  EXPECT_EQ(regex_extract(re, "#### 18."), "18.");
}

TEST(ExtractGolden, CotStrictKnownLmEvalQuirks) {
  Regex re(kCotStrict);
  EXPECT_EQ(regex_extract(re, "So 21 - 15 = 6. The answer is 6."), "6");
  EXPECT_EQ(regex_extract(re, "The answer is 1,000.\n"), "1,000");
  // lm-eval's pattern ends in an unescaped "." that must consume a character:
  // at the very end of the output it steals the last digit (16 -> "1").
  EXPECT_EQ(regex_extract(re, "The answer is 16"), "1");
  // A single digit with nothing after it does not match at all.
  EXPECT_EQ(regex_extract(re, "The answer is 6"), "[invalid]");
  // Case-sensitive: lower-case "the answer is" is not strict-match.
  EXPECT_EQ(regex_extract(re, "the answer is 6."), "[invalid]");
}

TEST(ExtractGolden, FlexibleTakesLastNumber) {
  Regex re(kFlex);
  EXPECT_EQ(regex_extract(re, "5 + 4 = 9. The answer is 9.", -1), "9.");
  EXPECT_EQ(regex_extract(re, "It costs $18.00 in total", -1), "$18.00");
  EXPECT_EQ(regex_extract(re, "-7 degrees", -1), "-7");
  EXPECT_EQ(regex_extract(re, "no digits here", -1), "[invalid]");
  // {2,} means a lone digit only matches the second alternative.
  EXPECT_EQ(regex_extract(re, "x 3 y", -1), "3");
  // The first alternative also matches runs of punctuation: "..." counts as
  // a "number" and wins as the last match (an lm-eval false extraction).
  EXPECT_EQ(regex_extract(re, "The answer is 42...", -1), "42...");
  EXPECT_EQ(regex_extract(re, "42 and then ..", -1), "..");
}

TEST(ExtractGolden, BbhLookbehindAndTrailingSpacePitfall) {
  Regex re(kBbh);
  EXPECT_EQ(regex_extract(re, "So the answer is (B)."), "(B)");
  EXPECT_EQ(regex_extract(re, "So the answer is (B).\n"), "(B)");
  // Everything but the last character of the line: a trailing space after the
  // period keeps the period ("(B)." != "(B)") - the trailing-space pitfall.
  EXPECT_EQ(regex_extract(re, "So the answer is (B). "), "(B).");
  // Without a final period the last real character is dropped.
  EXPECT_EQ(regex_extract(re, "So the answer is True"), "Tru");
  // First match wins; '.' does not cross lines.
  EXPECT_EQ(regex_extract(re, "the answer is No.\nthe answer is Yes."), "No");
  EXPECT_EQ(regex_extract(re, "The answer is Yes."), "[invalid]");  // case-sensitive lookbehind
  // Exactly one character after the cue: an empty match, stripped to "".
  EXPECT_EQ(regex_extract(re, "the answer is ."), "");
}

TEST(ExtractRegex, BadPatternNamesIt) {
  try {
    Regex bad("(unclosed");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("regex '(unclosed'"), std::string::npos);
  }
}

TEST(ExtractRegex, InvalidUtf8DoesNotThrow) {
  Regex re(kFlex);
  std::string junk = "value \xff\xfe 12 \xc3";
  EXPECT_EQ(regex_extract(re, junk, -1), "12");
}

TEST(ExtractRegex, PyStripUnicodeWhitespace) {
  EXPECT_EQ(py_strip("\t x y \n"), "x y");
  EXPECT_EQ(py_strip("\xc2\xa0"
                     "42"
                     "\xe3\x80\x80"),
            "42");  // NBSP, ideographic space
  EXPECT_EQ(py_strip("   "), "");
}

// findall / sub semantics against python3's own `re` on tricky inputs:
// empty matches, groups, Unicode \d and \w, case-insensitive, $ before a
// final newline, lookbehind.
TEST(ExtractRegex, MatchesPythonReOracle) {
  nlohmann::json cases = nlohmann::json::array();
  auto add = [&](const std::string& p, const std::string& t) { cases.push_back({p, t}); };
  add(kGsmStrict, "a #### 12,5 b #### -3.\n#### x");
  add(kCotStrict, "The answer is 16 The answer is 2.3, The answer is 7");
  add(kFlex, "$1,234.50 and 7 and -2 and .. and 9");
  add(kBbh, "so the answer is (A).\nthe answer is valid.\nthe answer is x");
  add("x*", "abxd");
  add("^|\\w+", "two words");
  add("\\d+", "\xd9\xa3\xd9\xa4 and 56");  // Arabic-Indic digits are \d in Python
  add("(?i)caf\xc3\xa9", "CAF\xc3\x89 cafe caf\xc3\xa9");
  add("\\.$", "end.\n");
  add("(a)|(b)", "abba");
  add("(?s).*#### ", "line\n#### 3\n#### 4");
  add("\\w+", "na\xc3\xafve r\xc3\xa9sum\xc3\xa9");
  add("", "abc");
  std::string in = cases.dump();
  std::string script =
      "import json, re, sys\n"
      "cases = json.loads(" +
      nlohmann::json(in).dump() +
      ")\n"
      "out = []\n"
      "for p, t in cases:\n"
      "    r = re.compile(p)\n"
      "    fa = []\n"
      "    for m in r.findall(t):\n"
      "        fa.append(list(m) if isinstance(m, tuple) else [m])\n"
      "    out.append({'findall': fa, 'sub': r.sub('@', t)})\n"
      "print(json.dumps(out))\n";
  std::string res = testing::python_oracle(script);
  ASSERT_NE(res, "ORACLE FAILED");
  auto expected = nlohmann::json::parse(res);
  ASSERT_EQ(expected.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    Regex re(cases[i][0].get<std::string>());
    std::string text = cases[i][1].get<std::string>();
    nlohmann::json got = re.findall(text);
    EXPECT_EQ(got, expected[i]["findall"]) << "pattern " << re.pattern() << " on " << text;
    EXPECT_EQ(re.sub(text, "@"), expected[i]["sub"].get<std::string>()) << re.pattern();
  }
}

}  // namespace
}  // namespace rv::eval
