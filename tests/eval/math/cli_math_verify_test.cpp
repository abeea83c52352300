// `reasonvec math-verify`: exit codes of the one-pair mode and the JSON Lines mode.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "math_cases.h"

namespace rv::eval::math {
namespace {

struct CliRun {
  int status = -1;
  std::string out;
};

CliRun run(const std::string& args) {
  CliRun r;
  std::string cmd = std::string(RV_CLI_PATH) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(MathCli, PairExitCodes) {
  CliRun yes = run("math-verify --gold '\\frac{1}{2}' --pred 'so $\\boxed{0.5}$'");
  EXPECT_EQ(yes.status, 0);
  auto j = nlohmann::json::parse(yes.out);
  EXPECT_TRUE(j["equivalent"].get<bool>());
  EXPECT_EQ(j["pred_parsed"], "1*2**(-1)");
  EXPECT_EQ(run("math-verify --gold 1 --pred 2").status, 1);
  EXPECT_EQ(run("math-verify --gold '$x+1$' --pred '$y+1$'").status, 1);
  EXPECT_EQ(run("math-verify --no-strict --gold '$x+1$' --pred '$y+1$'").status, 0);
  EXPECT_EQ(run("math-verify --precision 2 --gold '$\\frac{1}{3}$' --pred '0.33'").status, 0);
  EXPECT_EQ(run("math-verify --gold 1").status, 2);
  EXPECT_EQ(run("math-verify --precision x --gold 1 --pred 1").status, 2);
}

TEST(MathCli, CasesFile) {
  auto f = testing::math_data() / "verify-cases.jsonl";
  if (!std::filesystem::exists(f)) GTEST_SKIP() << "no " << f;
  CliRun r = run("math-verify '" + f.string() + "'");
  EXPECT_EQ(r.status, 0);
  size_t lines = 0, agree = 0;
  size_t pos = 0;
  while (pos < r.out.size()) {
    size_t e = r.out.find('\n', pos);
    auto j = nlohmann::json::parse(r.out.substr(pos, e - pos));
    ++lines;
    agree += j["agree"].get<bool>();
    pos = e + 1;
  }
  EXPECT_EQ(lines, 191u);
  EXPECT_EQ(agree, 190u);  // the same one disagreement as the oracle test
}

}  // namespace
}  // namespace rv::eval::math
