// Math answer checker throughput: every gold answer of the six competition
// datasets in shared/data/math, parsed and verified against itself.
//
// Gold answers as Qwen2.5-Math reads them (shared/data/math/SOURCES.md):
// math500/aime24/aime25 `answer`, amc23 `answer` (a JSON float), minerva_math
// the single \boxed{} of `solution`, olympiadbench `final_answer[0]` without
// its `$`s. Each is wrapped in \boxed{} so LaTeX extraction takes all of it.
//
// Usage: bench_math_verify_bench [--rounds N] [--data DIR]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/math/math_verify.h"

namespace fs = std::filesystem;
namespace m = rv::eval::math;

namespace {

std::string last_boxed(const std::string& s) {
  size_t b = s.rfind("\\boxed{");
  if (b == std::string::npos) return "";
  int depth = 1;
  for (size_t k = b + 7; k < s.size(); ++k) {
    if (s[k] == '{') ++depth;
    if (s[k] == '}' && --depth == 0) return s.substr(b + 7, k - b - 7);
  }
  return "";
}

std::string strip_dollars(const std::string& s) {
  size_t b = s.find_first_not_of('$');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of('$') - b + 1);
}

std::vector<std::string> golds(const fs::path& dir, const std::string& name) {
  std::vector<std::string> out;
  std::ifstream f(dir / name / "test.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (name == "minerva_math")
      out.push_back(last_boxed(j["solution"].get<std::string>()));
    else if (name == "olympiadbench")
      out.push_back(strip_dollars(j["final_answer"][0].get<std::string>()));
    else
      out.push_back(j["answer"].is_string() ? j["answer"].get<std::string>() : j["answer"].dump());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  fs::path dir = fs::path(RV_SHARED_DIR) / "data" / "math";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--data"))
      dir = argv[i + 1];
  }
  if (!fs::exists(dir / "math500" / "test.jsonl")) {
    fprintf(stderr, "no datasets under %s\n", dir.c_str());
    return 1;
  }
  printf("%-14s %7s %9s %12s %12s\n", "dataset", "answers", "verified", "answers/s", "us/answer");
  size_t all_n = 0;
  double all_s = 0;
  for (const char* name :
       {"math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench"}) {
    std::vector<std::string> g = golds(dir, name);
    size_t ok = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < rounds; ++r)
      for (const std::string& a : g) {
        // parse twice (as gold and as prediction) and verify, as a scorer would
        m::Answer x = m::parse("\\boxed{" + a + "}"), y = m::parse("\\boxed{" + a + "}");
        ok += m::verify(x, y);
      }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    size_t n = g.size() * rounds;
    all_n += n;
    all_s += s;
    printf("%-14s %7zu %9zu %12.0f %12.1f\n", name, g.size(), ok / rounds, n / s, 1e6 * s / n);
  }
  printf("%-14s %7zu %9s %12.0f %12.1f\n", "all", all_n / rounds, "", all_n / all_s,
         1e6 * all_s / all_n);
  return 0;
}
