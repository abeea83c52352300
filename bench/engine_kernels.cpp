// Engine throughput on a Qwen2.5-0.5B-shaped random bf16 model (hidden 896,
// 24 layers, 14/2 heads, intermediate 4864, vocab 151936, tied), through the
// synchronous Model API:
//   prefill   one 512-token prompt in one forward
//   decode-1  128 tokens of one sequence after a 16-token prompt
//   decode-N  N sequences (16, 64) decoded together, 32 steps each
// Usage: bench_engine_kernels [--model DIR] [--threads N] [--isa scalar|avx2|avx512bf16]
//                             [--scalar] [--kv-bf16] [--quick] [--prompt N] [--prefill-only]
// (--scalar = --isa scalar; the default ISA is the best the CPU has, or $RV_ISA.)
// The model is synthesized into /tmp/rv_bench_qwen05b on first use; --model
// takes a model directory or a GGUF file instead (a missing path is
// synthesized there).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/kernels.h"
#include "engine/model.h"
#include "formats/gguf.h"
#include "formats/synth.h"
#include "lib/fnv1a.h"

using namespace rv;
using namespace rv::engine;
using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

// CPU seconds of the whole process: on a shared, oversubscribed machine
// tokens per CPU-second / threads approximates the unloaded rate.
static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long peak_rss_mb() {
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
  fclose(f);
  return kb / 1024;
}

int main(int argc, char** argv) {
  std::filesystem::path dir = "/tmp/rv_bench_qwen05b";
  int threads = 2;
  bool quick = false, kv_bf16 = false, prefill_only = false;
  int prompt = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--model" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--threads" && i + 1 < argc)
      threads = std::stoi(argv[++i]);
    else if (a == "--scalar")
      kern::set_isa(kern::Isa::kScalar);
    else if (a == "--isa" && i + 1 < argc) {
      const std::string n = argv[++i];
      bool found = false;
      for (auto isa : {kern::Isa::kScalar, kern::Isa::kAvx2, kern::Isa::kAvx512Bf16})
        if (n == kern::isa_name(isa)) {
          kern::set_isa(isa);  // throws where the CPU lacks it
          found = true;
        }
      if (!found) {
        fprintf(stderr, "--isa: unknown '%s' (scalar, avx2, avx512bf16)\n", n.c_str());
        return 2;
      }
    } else if (a == "--kv-bf16")
      kv_bf16 = true;
    else if (a == "--quick")
      quick = true;
    else if (a == "--prompt" && i + 1 < argc)
      prompt = std::stoi(argv[++i]);
    else if (a == "--prefill-only")
      prefill_only = true;
  }
  // Synthesize only where nothing exists: --model may name a model directory
  // or a GGUF file, and neither is ever replaced.
  if (std::filesystem::exists(dir) && !std::filesystem::exists(dir / "config.json") &&
      !gguf::is_gguf_path(dir)) {
    fprintf(stderr, "--model %s: neither a model directory (config.json) nor a GGUF file\n",
            dir.c_str());
    return 2;
  }
  if (!std::filesystem::exists(dir)) {
    SynthOptions o;
    o.arch = "qwen2";
    o.layers = 24;
    o.hidden = 896;
    o.heads = 14;
    o.kv_heads = 2;
    o.intermediate = 4864;
    o.vocab = 151936;
    o.tied = true;
    o.dtype = DType::BF16;
    o.init_scale = 0.2f;
    fprintf(stderr, "synthesizing %s ...\n", dir.c_str());
    synth_model(o, dir, true);
  }
  auto m = Model::load(dir, {threads});
  const int V = m->spec().vocab;
  printf("model %s, %d threads, kernels %s, KV cache %s\n", dir.c_str(), m->threads(),
         kern::isa_name(kern::isa()), kv_bf16 ? "bf16" : "f32");
  printf("%-22s %12s %14s\n", "workload", "tokens/s", "tokens/cpu-s");
  std::vector<float> logits;
  const int P = prompt > 0 ? prompt : quick ? 128 : 512;
  {  // prefill
    KVCache kv(m->spec(), 1, P + 1, kv_bf16);
    std::vector<BatchToken> b;
    for (int t = 0; t < P; ++t) b.push_back({(t * 7919) % V, 0, t, t == P - 1});
    auto t0 = Clock::now();
    double c0 = cpu_now();
    m->forward(b, kv, logits);
    printf("prefill %-14d %12.1f %14.1f   logits fnv1a %016llx\n", P, P / secs(t0),
           P / (cpu_now() - c0), (unsigned long long)fnv1a(logits));
  }
  if (prefill_only) return 0;
  {  // single-stream decode
    const int N = quick ? 32 : 128;
    KVCache kv(m->spec(), 1, 16 + N + 1, kv_bf16);
    std::vector<BatchToken> b;
    for (int t = 0; t < 16; ++t) b.push_back({(t * 31) % V, 0, t, t == 15});
    m->forward(b, kv, logits);
    auto t0 = Clock::now();
    double c0 = cpu_now();
    for (int i = 0; i < N; ++i) {
      int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      b = {{next, 0, 16 + i, true}};
      m->forward(b, kv, logits);
    }
    printf("decode 1 stream %6s %12.1f %14.1f   logits fnv1a %016llx\n", "", N / secs(t0),
           N / (cpu_now() - c0), (unsigned long long)fnv1a(logits));
  }
  for (int S : {16, 64}) {  // batched decode
    const int steps = quick ? 8 : 32;
    KVCache kv(m->spec(), S, 16 + steps + 1, kv_bf16);
    std::vector<BatchToken> b;
    for (int s = 0; s < S; ++s)
      for (int t = 0; t < 16; ++t) b.push_back({(t * 31 + s * 101) % V, s, t, t == 15});
    m->forward(b, kv, logits);
    auto t0 = Clock::now();
    double c0 = cpu_now();
    for (int i = 0; i < steps; ++i) {
      b.clear();
      for (int s = 0; s < S; ++s) {
        auto row = logits.begin() + size_t(s) * V;
        b.push_back({int32_t(std::max_element(row, row + V) - row), s, 16 + i, true});
      }
      m->forward(b, kv, logits);
    }
    printf("decode %2d streams %4s %12.1f %14.1f   logits fnv1a %016llx\n", S, "",
           S * steps / secs(t0), S * steps / (cpu_now() - c0), (unsigned long long)fnv1a(logits));
  }
  printf("peak RSS %ld MiB (weights %llu MiB)\n", peak_rss_mb(),
         (unsigned long long)(m->weight_bytes() >> 20));
  return 0;
}
