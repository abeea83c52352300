// The six competition-math datasets' gold answers: each must verify against
// itself, and against the last \boxed{} of its own reference solution.
#include <gtest/gtest.h>

#include <cstdlib>

#include "math_cases.h"

namespace rv::eval::math {
namespace {

using namespace testing;

TEST(MathDatasets, GoldAgainstItselfAndSolution) {
  if (!std::filesystem::exists(math_data() / "math500" / "test.jsonl"))
    GTEST_SKIP() << "no " << math_data() << " (shared data absent)";
  for (const std::string& name : dataset_names()) {
    std::vector<GoldRow> rows = load_dataset(name);
    ASSERT_FALSE(rows.empty()) << name;
    size_t self_ok = 0, parsed = 0, sol_total = 0, sol_ok = 0, no_box = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const GoldRow& r = rows[i];
      Answer g = parse_gold(r.answer);
      parsed += g.parsed();
      if (!g.parsed() && std::getenv("RV_MATH_SHOW_UNPARSED"))
        std::printf("  unparsed %s row %zu: %s\n", name.c_str(), i + 1, r.answer.c_str());
      bool self = verify(g, g);
      self_ok += self;
      EXPECT_TRUE(self) << name << " row " << i + 1 << ": " << r.answer;
      if (!r.has_solution) continue;
      if (r.solution_boxed.empty()) {
        ++no_box;
        continue;
      }
      ++sol_total;
      bool ok = verify(g, parse_gold(r.solution_boxed));
      sol_ok += ok;
      if (!ok)
        std::printf("  %s row %zu: gold [%s] solution box [%s]\n", name.c_str(), i + 1,
                    r.answer.c_str(), r.solution_boxed.c_str());
    }
    std::printf(
        "%s: gold vs itself %zu/%zu (%zu parsed as math, the rest compared as text); "
        "gold vs solution's last box %zu/%zu (%zu solutions without a box)\n",
        name.c_str(), self_ok, rows.size(), parsed, sol_ok, sol_total, no_box);
    EXPECT_EQ(self_ok, rows.size()) << name;
    EXPECT_EQ(sol_ok, sol_total) << name;
  }
}

}  // namespace
}  // namespace rv::eval::math
