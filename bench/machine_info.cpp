// The machine a benchmark ran on, measured: the header `make bench` prints
// first, and the peak FLOP/s and memory bandwidth other benchmarks divide by
// to report what fraction of the machine a workload reaches.
//
// Prints: CPU model, logical CPUs this process may run on and physical cores,
// the ISA flags the engine cares about, the kernel ISA the engine picks, and
//   peak f32 FLOP/s   FMA (vfmadd231ps, 512-bit with AVX-512F, else 256-bit
//                     with AVX2+FMA) on 16 independent accumulators, 1 thread
//                     and all threads at once
//   peak bf16 FLOP/s  vdpbf16ps (AVX-512 BF16, counted as 2 FLOP per bf16
//                     pair: 64 per 512-bit instruction), same layout; absent
//                     where the CPU lacks it
//   read bandwidth    all threads summing disjoint parts of a buffer far
//                     larger than the last-level cache (default 1 GiB, huge
//                     pages requested) with the widest loads the CPU has,
//                     best of 5 passes, 1 thread and all threads
// Each microkernel is compiled for its ISA with a per-function target
// attribute and only called after a run-time CPU check, so the binary runs on
// any x86-64. The peaks are what the instructions sustain from registers with
// no loads: an upper bound no real kernel reaches; fractions against them
// say how far a workload is from that bound.
//
// usage: bench_machine_info [--json] [--json-out FILE] [--threads N] [--mib M]
//   --json        print only the JSON object
//   --json-out F  print the text header and also write the JSON object to F
// The header also gives the load average and memory when it ran: other work
// on the machine makes every timing after it noisy.
#include <immintrin.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/kernels.h"

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Logical CPUs this process may run on (what nproc prints).
int logical_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

struct CpuInfo {
  std::string model;
  int physical_cores = 0;
  std::set<std::string> flags;
};

CpuInfo read_cpuinfo() {
  CpuInfo c;
  std::ifstream f("/proc/cpuinfo");
  std::string line, phys = "0";
  std::set<std::pair<std::string, std::string>> cores;
  auto value = [](const std::string& l) {
    size_t p = l.find(':');
    if (p == std::string::npos) return std::string();
    size_t b = l.find_first_not_of(" \t", p + 1);
    return b == std::string::npos ? std::string() : l.substr(b);
  };
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0 && c.model.empty()) c.model = value(line);
    if (line.rfind("physical id", 0) == 0) phys = value(line);
    if (line.rfind("core id", 0) == 0) cores.insert({phys, value(line)});
    if (line.rfind("flags", 0) == 0 && c.flags.empty()) {
      std::string v = value(line);
      size_t i = 0;
      while (i < v.size()) {
        size_t j = v.find(' ', i);
        if (j == std::string::npos) j = v.size();
        if (j > i) c.flags.insert(v.substr(i, j - i));
        i = j + 1;
      }
    }
  }
  c.physical_cores = static_cast<int>(cores.size());
  return c;
}

// --- peak arithmetic -------------------------------------------------------
// 16 independent accumulator chains: enough to cover latency x pipes on
// current x86 cores (4-cycle FMA, 2 pipes needs 8). Inputs stay in registers.

__attribute__((target("avx512f"))) double fma512_flops(int64_t iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"))) double fma256_flops(int64_t iters) {
  __m256 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
  __m256 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * 16 * 8 * 2;
}

__attribute__((target("avx512f,avx512bf16"))) double dpbf16_flops(int64_t iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  // bf16 pairs of small values: the sums stay finite over any run length.
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3380);  // ~6e-8
  const __m512bh y = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, y);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  // 16 lanes x 2 bf16 pairs x (multiply + add).
  return static_cast<double>(iters) * 16 * 16 * 2 * 2;
}

// Runs fn(thread index) on `threads` threads at once, released together;
// returns the work they report in total / wall time, best of `rounds`.
double best_rate(int threads, int rounds, const std::function<double(int)>& fn) {
  double best = 0;
  for (int r = 0; r < rounds; ++r) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<double> work(threads, 0);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        work[t] = fn(t);
      });
    while (ready.load() < threads) {
    }
    auto t0 = Clock::now();
    go.store(true, std::memory_order_release);
    for (auto& th : ts) th.join();
    double total = 0;
    for (double w : work) total += w;
    best = std::max(best, total / secs(t0, Clock::now()));
  }
  return best;
}

// Iterations that take roughly 0.1 s on one core at ~4 GHz: short rounds,
// best of several, so a busy machine still shows its quiet moments.
constexpr int64_t kIters = 25'000'000;

// --- memory bandwidth -------------------------------------------------------

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), a0);
  return out[0] + out[1] + out[2] + out[3];
}

__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
  }
  uint64_t out[8];
  _mm512_storeu_si512(out, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  uint64_t s = 0;
  for (uint64_t v : out) s += v;
  return s;
}

uint64_t sum_plain(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s += v;
  }
  return s;
}

// Bytes per second read by `threads` threads summing disjoint equal parts
// of buf, best of `rounds` passes.
double read_bandwidth(const uint8_t* buf, size_t bytes, int threads, int rounds, bool avx512,
                      bool avx2) {
  std::atomic<uint64_t> sink{0};
  const size_t part = bytes / threads / 256 * 256;
  return best_rate(threads, rounds, [&](int t) {
    const uint8_t* p = buf + static_cast<size_t>(t) * part;
    sink.fetch_add(avx512 ? sum_avx512(p, part) : avx2 ? sum_avx2(p, part) : sum_plain(p, part));
    return static_cast<double>(part);
  });
}

}  // namespace

int main(int argc, char** argv) {
  bool json_only = false;
  std::string json_out;
  int threads = 0;
  size_t mib = 1024;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json")
      json_only = true;
    else if (a == "--json-out" && i + 1 < argc)
      json_out = argv[++i];
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--mib" && i + 1 < argc)
      mib = std::strtoull(argv[++i], nullptr, 10);
    else {
      fprintf(stderr, "usage: %s [--json] [--json-out FILE] [--threads N] [--mib M]\n", argv[0]);
      return 2;
    }
  }
  const CpuInfo cpu = read_cpuinfo();
  const int nproc = logical_cpus();
  if (threads <= 0) threads = nproc;
  const int physical = cpu.physical_cores > 0 ? cpu.physical_cores : nproc;

  static const char* kFlags[] = {"avx2",        "fma",      "f16c",        "avx512f",
                                 "avx512bw",    "avx512vl", "avx512_bf16", "avx512_fp16",
                                 "avx512_vnni", "amx_tile", "amx_bf16",    "amx_int8"};
  std::vector<std::string> flags;
  for (const char* f : kFlags)
    if (cpu.flags.count(f)) flags.push_back(f);

  const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool has_avx512 = __builtin_cpu_supports("avx512f");
  // The engine's own check (AVX-512 F/BW/VL/BF16 and OS state): the bf16
  // kernel runs only where it says the engine's bf16 kernel can.
  const bool has_bf16 = rv::engine::kern::cpu_has_avx512bf16();
  std::string engine_isa;
  try {
    engine_isa = rv::engine::kern::isa_name(rv::engine::kern::isa());
  } catch (const std::exception& e) {
    engine_isa = std::string("error: ") + e.what();
  }

  std::string loadavg;
  {
    std::ifstream f("/proc/loadavg");
    double a = 0, b = 0, c = 0;
    if (f >> a >> b >> c) {
      char buf[64];
      snprintf(buf, sizeof buf, "%.2f %.2f %.2f", a, b, c);
      loadavg = buf;
    }
  }
  double mem_total = 0, mem_avail = 0;
  {
    std::ifstream f("/proc/meminfo");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("MemTotal:", 0) == 0) mem_total = std::atof(line.c_str() + 9) * 1024;
      if (line.rfind("MemAvailable:", 0) == 0) mem_avail = std::atof(line.c_str() + 13) * 1024;
    }
  }

  json j;
  j["cpu_model"] = cpu.model;
  j["loadavg"] = loadavg;
  j["mem_total_bytes"] = mem_total;
  j["mem_available_bytes"] = mem_avail;
  j["nproc"] = nproc;
  j["physical_cores"] = physical;
  j["flags"] = flags;
  j["engine_isa"] = engine_isa;
  j["threads"] = threads;

  auto peak = [&](const char* name, const char* insn, double (*fn)(int64_t)) {
    const double one = best_rate(1, 5, [&](int) { return fn(kIters); });
    const double all = best_rate(threads, 5, [&](int) { return fn(kIters); });
    j["peak"][name] = {{"instruction", insn}, {"flops_1t", one}, {"flops_all", all}};
  };
  if (has_avx512)
    peak("f32", "vfmadd231ps zmm", fma512_flops);
  else if (has_avx2)
    peak("f32", "vfmadd231ps ymm", fma256_flops);
  if (has_bf16) peak("bf16", "vdpbf16ps zmm", dpbf16_flops);

  {
    // Anonymous memory with transparent huge pages requested (as the
    // engine's own buffers): fewer TLB misses, so closer to what DRAM gives.
    const size_t bytes = mib << 20;
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      fprintf(stderr, "bench_machine_info: cannot map %zu MiB\n", mib);
      return 1;
    }
    madvise(mem, bytes, MADV_HUGEPAGE);
    auto* buf = static_cast<uint8_t*>(mem);
    // Distinct pages, all faulted in before timing.
    for (size_t i = 0; i < bytes; i += 4096) buf[i] = static_cast<uint8_t>(i >> 12);
    const double one = read_bandwidth(buf, bytes, 1, 5, has_avx512, has_avx2);
    const double all = read_bandwidth(buf, bytes, threads, 5, has_avx512, has_avx2);
    munmap(mem, bytes);
    j["read_bandwidth"] = {{"buffer_bytes", bytes},
                           {"loads", has_avx512 ? "zmm"
                                     : has_avx2 ? "ymm"
                                                : "64-bit"},
                           {"bytes_per_s_1t", one},
                           {"bytes_per_s_all", all}};
  }

  if (json_only) {
    printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  if (!json_out.empty()) {
    std::ofstream f(json_out);
    f << j.dump(2) << "\n";
    if (!f) {
      fprintf(stderr, "bench_machine_info: cannot write %s\n", json_out.c_str());
      return 1;
    }
  }
  std::string fl;
  for (const auto& f : flags) fl += (fl.empty() ? "" : " ") + f;
  printf("machine: %s\n", cpu.model.c_str());
  printf("cores: %d logical (nproc), %d physical\n", nproc, physical);
  printf("ISA flags: %s\n", fl.empty() ? "(none of avx2/fma/f16c/avx512*/amx*)" : fl.c_str());
  printf("engine kernel ISA: %s\n", engine_isa.c_str());
  printf("memory: %.1f GB total, %.1f GB available; load average %s (1/5/15 min) at start\n",
         mem_total / 1e9, mem_avail / 1e9, loadavg.c_str());
  for (const char* k : {"bf16", "f32"}) {
    if (!j.contains("peak") || !j["peak"].contains(k)) continue;
    const auto& p = j["peak"][k];
    printf("peak %s: %.0f GFLOP/s 1 thread, %.0f GFLOP/s %d threads (%s, 16 accumulators)\n", k,
           p["flops_1t"].get<double>() / 1e9, p["flops_all"].get<double>() / 1e9, threads,
           p["instruction"].get<std::string>().c_str());
  }
  const auto& bw = j["read_bandwidth"];
  printf(
      "memory read bandwidth: %.1f GB/s 1 thread, %.1f GB/s %d threads (%zu MiB buffer, %s loads, "
      "best of 5)\n",
      bw["bytes_per_s_1t"].get<double>() / 1e9, bw["bytes_per_s_all"].get<double>() / 1e9, threads,
      mib, bw["loads"].get<std::string>().c_str());
  return 0;
}
