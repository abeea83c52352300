// The checker construct by construct, think stripping, and inputs built to
// make a naive parser hang or crash.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>

#include "eval/math/math_verify.h"

namespace rv::eval::math {
namespace {

bool eq(const std::string& g, const std::string& p, VerifyConfig v = {}) {
  return equivalent(g, p, {}, v);
}
bool eqb(const std::string& g, const std::string& p, VerifyConfig v = {}) {
  return equivalent("\\boxed{" + g + "}", "\\boxed{" + p + "}", {}, v);
}

TEST(MathVerify, Fractions) {
  EXPECT_TRUE(eqb("\\frac{1}{2}", "0.5"));
  EXPECT_TRUE(eqb("\\dfrac{1}{2}", "1/2"));
  EXPECT_TRUE(eqb("\\tfrac12", "\\frac{2}{4}"));
  EXPECT_TRUE(eqb("\\frac{3}{4}", "0.75"));
  EXPECT_FALSE(eqb("\\frac{1}{3}", "0.33"));
  EXPECT_TRUE(eqb("\\frac{1}{3}", "0.3333333"));
  EXPECT_FALSE(eqb("\\frac{1}{2}", "\\frac{1}{3}"));
  EXPECT_TRUE(eqb("-\\frac{10}{9}", "\\frac{-10}{9}"));
}

TEST(MathVerify, Radicals) {
  EXPECT_TRUE(eqb("\\sqrt{12}", "2\\sqrt3"));
  EXPECT_TRUE(eqb("2\\sqrt{3}", "\\sqrt{12}"));
  EXPECT_TRUE(eqb("\\sqrt[3]{8}", "2"));
  EXPECT_TRUE(eqb("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"));
  EXPECT_FALSE(eqb("\\sqrt{12}", "3\\sqrt2"));
  EXPECT_TRUE(eqb("2^{1/2}", "\\sqrt{2}"));
}

TEST(MathVerify, PlainExpressions) {
  EXPECT_TRUE(eqb("np.arcsin(10/13)", "\\arcsin\\left(\\frac{10}{13}\\right)"));
  EXPECT_TRUE(eqb("sqrt(2)", "\\sqrt{2}"));
  EXPECT_TRUE(eqb("2^(1/2)", "\\sqrt{2}"));
  EXPECT_TRUE(eqb("4.5e33", "4.5 \\times 10^{33}"));
  EXPECT_TRUE(eqb("1.2 \\times 10^{5}", "120000"));
  EXPECT_TRUE(eq("The answer is 1/2", "$\\frac{1}{2}$"));
}

TEST(MathVerify, ConstantsAndFunctions) {
  EXPECT_TRUE(eqb("\\pi", "3.14159265"));
  EXPECT_TRUE(eqb("\\frac{9}{4}\\pi", "\\frac94\\pi"));
  EXPECT_TRUE(eqb("2\\sin b \\cos a", "2 \\cos a \\sin b"));
  EXPECT_TRUE(eqb("\\ln(e^2)", "2"));
  EXPECT_TRUE(eqb("\\log_2 8", "3"));
  EXPECT_TRUE(eqb("e^{i\\pi}", "-1"));
  EXPECT_TRUE(eqb("(x+1)^2", "x^2+2x+1"));
  EXPECT_FALSE(eqb("(x+1)^2", "x^2+1"));
}

TEST(MathVerify, Intervals) {
  EXPECT_TRUE(eqb("[0,1)", "[0, 1)"));
  EXPECT_FALSE(eqb("[0,1)", "(0,1)"));
  EXPECT_FALSE(eqb("[0,1]", "[0,1)"));
  EXPECT_TRUE(eqb("(-\\infty, 3] \\cup (5, \\infty)", "(5,\\infty)\\cup(-\\infty,3]"));
  EXPECT_TRUE(eqb("(-2, 7)", "x \\in (-2,7)"));
  EXPECT_TRUE(eqb("-2 < x < 7", "(-2, 7)"));
}

TEST(MathVerify, TuplesAndSets) {
  EXPECT_TRUE(eqb("(1,2,3)", "(1, 2, 3)"));
  EXPECT_FALSE(eqb("(1,2,3)", "(3,2,1)"));
  EXPECT_TRUE(eqb("\\{1,2,3\\}", "\\{3,2,1\\}"));
  EXPECT_TRUE(eqb("1,2,3", "3, 1, 2"));
  EXPECT_FALSE(eqb("1,2,3", "1,2"));
  EXPECT_TRUE(eq("$1$ and $2$", "\\boxed{2, 1}"));
  // math_verify's asymmetry: a gold tuple reads a predicted set in written order; a gold set
  // ignores order; "(a,b)" is an open interval that also stands for the pair
  EXPECT_TRUE(eqb("(1,2,3)", "\\{1,2,3\\}"));
  EXPECT_FALSE(eqb("(1,2,3)", "\\{3,2,1\\}"));
  EXPECT_TRUE(eqb("\\{3,2,1\\}", "(1,2,3)"));
  EXPECT_TRUE(eqb("(1,3)", "\\{3,1\\}"));
  EXPECT_TRUE(eqb("(1,2),(3,4)", "(3,4),(1,2)"));
  EXPECT_FALSE(eqb("(1,2),(3,4)", "(2,1),(3,4)"));
}

TEST(MathVerify, Matrices) {
  EXPECT_TRUE(eqb("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
                  "\\begin{bmatrix}1 & 2 \\\\ 3 & 4\\end{bmatrix}"));
  EXPECT_FALSE(eqb("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
                   "\\begin{pmatrix}1 & 2 \\\\ 4 & 3\\end{pmatrix}"));
  EXPECT_TRUE(eqb("\\begin{pmatrix}\\frac12 \\\\ 2\\end{pmatrix}",
                  "\\begin{pmatrix}0.5 \\\\ 2\\end{pmatrix}"));
}

TEST(MathVerify, PlusMinus) {
  EXPECT_TRUE(eqb("3 \\pm 2\\sqrt{2}", "3+2\\sqrt2, 3-2\\sqrt2"));
  EXPECT_TRUE(eqb("\\pm 2", "\\{-2, 2\\}"));
  EXPECT_FALSE(eqb("\\pm 2", "2"));
}

TEST(MathVerify, PercentDegreesUnits) {
  EXPECT_TRUE(eq("$28\\%$", "28 %"));
  EXPECT_TRUE(eq("$28\\%$", "$\\boxed{28 percent}$"));
  EXPECT_TRUE(eqb("90^\\circ", "90"));
  EXPECT_TRUE(eqb("90^{\\circ}", "90"));
  EXPECT_TRUE(eqb("15", "15\\text{ cm}^2"));
  EXPECT_TRUE(eqb("125", "125\\textnormal{ miles}"));
  EXPECT_TRUE(eqb("5", "\\$5"));
  EXPECT_TRUE(eqb("\\frac{1}{3}", "\\frac{1}{3} \\text{meters}"));
}

TEST(MathVerify, NumbersAndSeparators) {
  EXPECT_TRUE(eq("1000.99", "1,000.99"));
  EXPECT_TRUE(eq("1000.99", "1000,99"));
  EXPECT_TRUE(eq("0.4", ".4"));
  EXPECT_TRUE(eqb("11111111100", "11,\\! 111,\\! 111,\\! 100"));
  EXPECT_TRUE(eqb("10455", "10,455"));
  EXPECT_TRUE(eq("25", "$025$"));
  EXPECT_TRUE(eq("27.0", "$27$"));
  EXPECT_FALSE(eq("2", "AZYUK2A"));
  EXPECT_TRUE(eq("5", "The answer is 5."));
  EXPECT_TRUE(eqb("5", "5."));
  EXPECT_TRUE(eqb("\\{1\\}", "\\{1\\}."));
}

TEST(MathVerify, Equations) {
  EXPECT_TRUE(eqb("x = 5", "5"));
  EXPECT_TRUE(eqb("5", "x = 5"));
  EXPECT_TRUE(eqb("x^2/4 + y^2/3 = 1", "x^2/16 + y^2/12 = 1/4"));
  EXPECT_TRUE(eqb("34x+45y-20z+100=0", "-34x-45y+20z-100=0"));
  EXPECT_FALSE(eqb("a + 3z = 0", "0"));
  EXPECT_FALSE(eqb("x = 5", "y = 5"));
  EXPECT_TRUE(eqb("x \\geq 5", "5 \\leq x"));
  EXPECT_FALSE(eqb("x \\geq 5", "x \\leq 5"));
  EXPECT_TRUE(eqb("x < 1", "-x > -1"));
}

TEST(MathVerify, StrictAndNonStrict) {
  VerifyConfig lax;
  lax.strict = false;
  EXPECT_FALSE(eq("$f(x)$", "$f(y)$"));
  EXPECT_TRUE(eq("$f(x)$", "$f(y)$", lax));
  EXPECT_FALSE(eqb("x + 1", "y + 1"));
  EXPECT_TRUE(eqb("x + 1", "y + 1", lax));
  EXPECT_TRUE(eqb("\\text{E}", "E"));
  EXPECT_TRUE(eqb("\\text{(C)}", "C"));
  EXPECT_FALSE(eqb("d", "\\text{E}"));
}

TEST(MathVerify, Precision) {
  VerifyConfig p2;
  p2.precision = 2;
  EXPECT_TRUE(eq("$\\frac{1}{3}$", "$0.33$", p2));
  EXPECT_FALSE(eq("$\\frac{1}{3}$", "$0.33$"));
}

TEST(MathVerify, ExtractionPriorities) {
  // the last boxed wins over earlier LaTeX
  EXPECT_TRUE(eq("$7$", "We get $x = 3$, so the answer is $\\boxed{7}$."));
  // nested braces inside the box
  EXPECT_TRUE(eq("$\\frac{1}{2}$", "so \\boxed{\\frac{1}{\\left(2\\right)}}"));
  EXPECT_TRUE(eq("$3$", "\\fbox{3}"));
  Answer a = parse("Final answer: the final answer is $\\frac{2}{3}$. I hope it is correct.");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a.canonical(), "2*3**(-1)");
  EXPECT_TRUE(parse("no numbers here").empty());
}

TEST(MathVerify, StripThink) {
  bool unterminated = true;
  EXPECT_EQ(strip_think("<think>hmm 3</think> so \\boxed{4}", &unterminated), " so \\boxed{4}");
  EXPECT_FALSE(unterminated);
  EXPECT_EQ(strip_think("<think>still thinking \\boxed{4}", &unterminated), "");
  EXPECT_TRUE(unterminated);
  EXPECT_EQ(strip_think("plain \\boxed{4}", &unterminated), "plain \\boxed{4}");
  EXPECT_FALSE(unterminated);
  // parse() ignores what was thought before </think>
  EXPECT_TRUE(eq("$4$", "<think>\\boxed{3}</think>The answer is \\boxed{4}"));
  EXPECT_FALSE(eq("$3$", "<think>\\boxed{3}</think>The answer is \\boxed{4}"));
}

// Generous bound (sanitizer builds are slow): the point is "no hang", not speed.
constexpr double kBoundSeconds = 2.0;

double seconds_for(const std::string& pred, bool* result) {
  auto t0 = std::chrono::steady_clock::now();
  *result = equivalent("$1$", pred);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(MathVerifyPathological, NestedBraces10MB) {
  std::string s = "\\boxed{" + std::string(5 << 20, '{') + std::string(5 << 20, '}') + "}";
  bool r = true;
  EXPECT_LT(seconds_for(s, &r), kBoundSeconds);
  EXPECT_FALSE(r);
}

TEST(MathVerifyPathological, HugePowerTower) {
  bool r = true;
  EXPECT_LT(seconds_for("$\\boxed{10^{10^{10}}}$", &r), kBoundSeconds);
  EXPECT_FALSE(r);
  EXPECT_LT(seconds_for("$\\boxed{10^{10^{10^{10}}} - 10^{10^{10^{10}}} + 1}$", &r), kBoundSeconds);
  EXPECT_FALSE(eqb("10^{10^{10}}", "10^{10^{10}}+1"));
  EXPECT_FALSE(eqb("9^{9^{9}}!", "1"));
}

TEST(MathVerifyPathological, DeepParentheses) {
  std::string s = "$" + std::string(100000, '(') + "1" + std::string(100000, ')') + "$";
  bool r = true;
  EXPECT_LT(seconds_for(s, &r), kBoundSeconds);
  std::string t = "\\boxed{" + std::string(300, '(') + "1" + std::string(300, ')') + "}";
  EXPECT_LT(seconds_for(t, &r), kBoundSeconds);
}

TEST(MathVerifyPathological, ManyDollarsAndBoxes) {
  bool r = true;
  std::string dollars(1 << 20, '$');
  EXPECT_LT(seconds_for(dollars, &r), kBoundSeconds);
  EXPECT_FALSE(r);
  std::string boxes;
  for (int i = 0; i < 20000; ++i) boxes += "\\boxed{1} and ";
  EXPECT_LT(seconds_for(boxes, &r), kBoundSeconds);
  std::string frac;
  for (int i = 0; i < 2000; ++i) frac += "\\frac{";
  EXPECT_LT(seconds_for("$" + frac + "$", &r), kBoundSeconds);
  EXPECT_FALSE(r);
}

TEST(MathVerifyPathological, GarbageNeverThrows) {
  const char* inputs[] = {"",         "$",           "$$",
                          "\\boxed{", "\\boxed",     "}}}{{{",
                          "\\frac",   "\\sqrt[",     "\\begin{pmatrix}",
                          "1/0",      "0^{-1}",      "\\left(",
                          "x = = =",  "\xff\xfe$1$", "\\text{",
                          "a_",       "2^",          "\\log_",
                          "((((",     "$\\pm$",      "1,,,,2",
                          "\\\\\\\\"};
  for (const char* g : inputs)
    for (const char* p : inputs) {
      EXPECT_NO_THROW(equivalent(g, p));
    }
  EXPECT_FALSE(eqb("1/0", "1/0 + 1"));
}

// A small in-process fuzz pass (runs in every build, including the sanitizer one): random
// strings of LaTeX fragments must never throw, and an answer always verifies against itself
// or is empty.
TEST(MathVerifyPathological, RandomFragments) {
  const char* frags[] = {"\\frac",
                         "{",
                         "}",
                         "(",
                         ")",
                         "[",
                         "]",
                         "\\{",
                         "\\}",
                         "1",
                         "23",
                         ".5",
                         "x",
                         "y",
                         "e",
                         "i",
                         "\\pi",
                         "^",
                         "_",
                         "+",
                         "-",
                         "*",
                         "/",
                         "=",
                         "<",
                         "\\le",
                         ",",
                         ";",
                         " ",
                         "$",
                         "\\boxed{",
                         "\\sqrt",
                         "\\pm",
                         "\\%",
                         "\\text{",
                         "and",
                         "\\cup",
                         "\\infty",
                         "!",
                         "|",
                         "&",
                         "\\\\",
                         "\\begin{pmatrix}",
                         "\\end{pmatrix}",
                         "\\left(",
                         "\\right)",
                         "\\sin",
                         "\\log_",
                         "f(",
                         ":",
                         "0",
                         "e5",
                         "'",
                         "\\circ",
                         "\\in",
                         "<think>",
                         "</think>",
                         "answer is",
                         "\n",
                         "%"};
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> pick(0, sizeof frags / sizeof *frags - 1);
  std::uniform_int_distribution<int> len(1, 40);
  for (int it = 0; it < 3000; ++it) {
    std::string a, b;
    for (int k = len(rng); k > 0; --k) a += frags[pick(rng)];
    for (int k = len(rng); k > 0; --k) b += frags[pick(rng)];
    Answer ga, gb;
    ASSERT_NO_THROW(ga = parse(a)) << a;
    ASSERT_NO_THROW(gb = parse(b)) << b;
    ASSERT_NO_THROW((void)verify(ga, gb)) << a << " vs " << b;
    if (ga.parsed()) {
      EXPECT_TRUE(verify(ga, ga)) << a;
    }
  }
}

}  // namespace
}  // namespace rv::eval::math
