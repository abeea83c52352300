// Engine throughput on a Qwen2.5-0.5B-shaped random bf16 model (hidden 896,
// 24 layers, 14/2 heads, intermediate 4864, vocab 151936, tied), through the
// synchronous Model API:
//   prefill   one 512-token prompt in one forward
//   decode-1  128 tokens of one sequence after a 16-token prompt
//   decode-N  N sequences (16, 64) decoded together, 32 steps each
// Usage: bench_engine_kernels [--model DIR] [--threads N] [--isa scalar|avx2|avx512bf16]
//                             [--scalar] [--kv-bf16] [--quick] [--prompt N] [--prefill-only]
//                             [--no-mmap-ab ROUNDS]
// (--scalar = --isa scalar; the default ISA is the best the CPU has, or $RV_ISA.)
// --no-mmap-ab R: instead of the workloads above, single-stream decode of the
// model read from its mapped file against the same model with its weights
// copied into RAM (ModelOptions::copy_weights, `--no-mmap`), both loaded in
// this one process and taking turns every 32 tokens for R rounds (the first
// alternating), so the machine's drift over minutes falls on both alike.
// Prints each round's pair, the median of the per-round ratios with their
// range, the copy's load time, whether the two gave the same logits, and
// how much of each was mapped in 2 MiB pages.
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
#include "lib/proc_kb.h"

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
  return peak_rss_kb() / 1024;
}

// One sequence's greedy decode, continued `n` tokens at a time.
struct Stream {
  Model& m;
  KVCache kv;
  std::vector<float> logits;
  int pos = 0;
  Stream(Model& model, int context, bool kv_bf16)
      : m(model), kv(model.spec(), 1, context, kv_bf16) {
    const int V = m.spec().vocab;
    std::vector<BatchToken> b;
    for (int t = 0; t < 16; ++t) b.push_back({(t * 31) % V, 0, t, t == 15});
    m.forward(b, kv, logits);
    pos = 16;
  }
  double decode(int n) {  // tokens per second
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i, ++pos) {
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      m.forward({{next, 0, pos, true}}, kv, logits);
    }
    return n / secs(t0);
  }
};

static int no_mmap_ab(Model& mapped, const std::filesystem::path& dir, int threads, bool kv_bf16,
                      int rounds) {
  constexpr int kTokens = 32;
  auto t0 = Clock::now();
  auto copied = Model::load(dir, {.threads = threads, .copy_weights = true});
  const double load_s = secs(t0);
  const int context = 16 + rounds * kTokens + 1;
  Stream a(mapped, context, kv_bf16), b(*copied, context, kv_bf16);
  printf("single-stream decode, %d rounds of %d tokens each, the two taking turns\n", rounds,
         kTokens);
  printf("%-6s %14s %14s %8s\n", "round", "mapped tok/s", "copied tok/s", "ratio");
  std::vector<double> ratios, ta, tb;
  for (int r = 0; r < rounds; ++r) {
    double x, y;
    if (r % 2 == 0) {
      x = a.decode(kTokens);
      y = b.decode(kTokens);
    } else {
      y = b.decode(kTokens);
      x = a.decode(kTokens);
    }
    ta.push_back(x);
    tb.push_back(y);
    ratios.push_back(y / x);
    printf("%-6d %14.1f %14.1f %7.2fx\n", r + 1, x, y, y / x);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  printf("median %14.1f %14.1f %7.2fx  (per-round ratios %.2f-%.2fx)\n", median(ta), median(tb),
         median(ratios), *lo, *hi);
  printf("copying the weights took %.2f s (%.1f GiB); same logits: %s; peak RSS %ld MiB\n", load_s,
         copied->owned_bytes() / double(1 << 30), a.logits == b.logits ? "yes" : "NO",
         peak_rss_mb());
  // Which page sizes the two read: the file's page-cache folios as mapped
  // (shared with any other process that maps it), and the copy's own pages.
  printf("mapped in 2 MiB pages: %ld kB\ncopy in 2 MiB pages:   %ld kB\n", file_huge_kb(),
         anon_huge_kb());
  return a.logits == b.logits ? 0 : 1;
}

int main(int argc, char** argv) {
  std::filesystem::path dir = "/tmp/rv_bench_qwen05b";
  int threads = 2;
  bool quick = false, kv_bf16 = false, prefill_only = false;
  int prompt = 0, ab_rounds = 0;
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
    else if (a == "--no-mmap-ab" && i + 1 < argc)
      ab_rounds = std::stoi(argv[++i]);
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
  if (ab_rounds > 0) return no_mmap_ab(*m, dir, threads, kv_bf16, ab_rounds);
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
    Stream s(*m, 16 + N + 1, kv_bf16);
    const double c0 = cpu_now();
    const double tps = s.decode(N);
    printf("decode 1 stream %6s %12.1f %14.1f   logits fnv1a %016llx\n", "", tps,
           N / (cpu_now() - c0), (unsigned long long)fnv1a(s.logits));
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
