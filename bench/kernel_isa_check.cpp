// kernel_isa_check: the engine's matmul / dot / axpy kernels under every
// instruction set the CPU supports (scalar, AVX2, AVX-512 BF16), against a
// double-precision reference. Statically linked and depending only on the
// kernel sources (bench/CMakeLists.txt), so it can be copied to a bare
// x86-64 Linux host that has an ISA the development machine lacks.
//
// For each ISA, weight dtype and shape (T tokens, K columns, odd row ranges,
// strided X and Y) it reports the largest |y - ref| / sum_k |x_k w_k|:
//   - against the reference on the activations the ISA really multiplies
//     (f32 for scalar/AVX2, bf16-rounded for AVX-512 BF16 with bf16
//     weights): bound 1e-5 (f32 accumulation of a few hundred terms: the
//     observed values are ~1e-7; a dropped or doubled element shows as
//     >= 1e-4 even at K = 4864);
//   - against the f32-activation reference: bound 2^-8 + 1e-5 for the
//     AVX-512 BF16 path (rounding x to bf16 moves each x_k by at most 2^-8
//     relative), 1e-5 otherwise.
// It also checks the f32 -> bf16 activation rounding bit for bit (ties to
// even, overflow to Inf, NaN), that rows outside [n0, n1) stay untouched and
// that attention equals its contract bit for bit (the dot / expf / axpy
// composition under the same ISA), then times one decode-sized matmul per
// ISA (single thread), in cache and streamed from memory against a plain
// read of the same bytes.
//
// Exit status 0 when every check passes, 1 otherwise. An ISA the CPU lacks
// is reported as "not supported on this CPU, skipped". RV_ISA is ignored
// for the checks (every supported ISA is run), but reported.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/kernels.h"
#include "formats/dtype.h"

using namespace rv;
using namespace rv::engine;

namespace {

int failures = 0;

std::string cpu_model() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) return "?";
  char line[512];
  std::string r = "?";
  while (std::fgets(line, sizeof line, f))
    if (!std::strncmp(line, "model name", 10)) {
      const char* c = std::strchr(line, ':');
      r = c ? c + 2 : line;
      if (!r.empty() && r.back() == '\n') r.pop_back();
      break;
    }
  std::fclose(f);
  return r;
}

void print_features() {
  std::printf("CPU: %s\nfeatures:", cpu_model().c_str());
#if defined(__x86_64__)
  __builtin_cpu_init();
  struct {
    const char* name;
    int has;
  } fs[] = {{"avx2", __builtin_cpu_supports("avx2")},
            {"fma", __builtin_cpu_supports("fma")},
            {"f16c", __builtin_cpu_supports("f16c")},
            {"avx512f", __builtin_cpu_supports("avx512f")},
            {"avx512bw", __builtin_cpu_supports("avx512bw")},
            {"avx512vl", __builtin_cpu_supports("avx512vl")},
            {"avx512bf16", __builtin_cpu_supports("avx512bf16")}};
  for (const auto& f : fs) std::printf(" %s=%s", f.name, f.has ? "yes" : "no");
#endif
  std::printf("\n");
}

// Weights of `dt` from f32 values (rounded as the files would hold them).
std::vector<uint8_t> make_weights(DType dt, const std::vector<float>& w) {
  std::vector<uint8_t> out(w.size() * dtype_size(dt));
  from_f32(dt, w.data(), out.data(), w.size());
  return out;
}

float round_bf16(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

bool rounds_activations(kern::Isa isa, DType dt) {
  return isa == kern::Isa::kAvx512Bf16 && dt == DType::BF16;
}

struct Shape {
  int T;
  int64_t K;
};

// One matmul_rows call checked against both references. Returns false on failure.
void check_matmul(kern::Isa isa, DType dt, const Shape& sh, std::mt19937& rng) {
  const int T = sh.T;
  const int64_t K = sh.K, N = 41, n0 = 3, n1 = 38;  // odd bounds, 35 rows
  const int64_t ldx = K + 5, ldy = N + 3;           // strided rows
  std::normal_distribution<float> nd;
  std::vector<float> X(size_t(T) * ldx), wf(size_t(N) * K);
  for (auto& x : X) x = nd(rng) * (1 + 3 * std::abs(nd(rng)));  // a few large ones
  for (auto& w : wf) w = nd(rng) * 0.05f;
  auto wb = make_weights(dt, wf);
  std::vector<float> W(wf.size());  // what the kernel sees, widened
  to_f32(dt, wb.data(), W.data(), W.size());
  const float sentinel = -12345.5f;
  std::vector<float> Y(size_t(T) * ldy, sentinel);
  kern::WeightView view{wb.data(), dt, N, K};
  kern::matmul_rows(X.data(), ldx, T, view, n0, n1, Y.data(), ldy);

  const bool rounded = rounds_activations(isa, dt);
  const double tight = 1e-5, loose = rounded ? std::ldexp(1.0, -8) + 1e-5 : 1e-5;
  double e_own = 0, e_f32 = 0;
  bool untouched = true;
  for (int t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const float y = Y[t * ldy + n];
      if (n < n0 || n >= n1) {
        untouched = untouched && y == sentinel;
        continue;
      }
      double exact = 0, own = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double x = X[t * ldx + k], w = W[n * K + k];
        exact += x * w;
        own += (rounded ? double(round_bf16(X[t * ldx + k])) : x) * w;
        mag += std::abs(x * w);
      }
      e_own = std::max(e_own, std::abs(y - own) / mag);
      e_f32 = std::max(e_f32, std::abs(y - exact) / mag);
      if (!std::isfinite(y)) e_own = e_f32 = INFINITY;
    }
  const bool ok = e_own <= tight && e_f32 <= loose && untouched;
  if (!ok) ++failures;
  std::printf("%-11s %-5s %3d %5lld  %9.2e %8.1e  %9.2e %8.1e  %-9s %s\n", kern::isa_name(isa),
              std::string(dtype_name(dt)).c_str(), T, static_cast<long long>(K), e_own, tight,
              e_f32, loose, untouched ? "yes" : "NO", ok ? "ok" : "FAIL");
}

// The activation rounding, bit for bit: one weight 1.0 at column j, the rest
// zero, so y equals the (rounded) activation x_j exactly.
void check_rounding(kern::Isa isa) {
  const float ties[] = {1.0f + std::ldexp(1.0f, -8),      // halfway: to even (1.0)
                        1.0f + 3 * std::ldexp(1.0f, -8),  // halfway: to even (up)
                        -2.5e-3f,
                        3.4028235e38f,  // rounds up to Inf
                        -0.0f,
                        std::nanf("")};
  const int64_t K = 33;
  bool ok = true;
  for (int64_t j : {int64_t(5), int64_t(32)}) {  // main loop and masked tail
    std::vector<float> wf(K, 0.0f);
    wf[j] = 1.0f;
    auto wb = make_weights(DType::BF16, wf);
    for (float x : ties) {
      std::vector<float> X(K, 0.0f);
      X[j] = x;
      float y = 0;
      kern::WeightView view{wb.data(), DType::BF16, 1, K};
      kern::matmul_rows(X.data(), K, 1, view, 0, 1, &y, 1);
      const float want = rounds_activations(isa, DType::BF16) ? round_bf16(x) : x;
      const bool same = (std::isnan(want) && std::isnan(y)) || (y == want);
      if (!same) {
        std::printf("  rounding: x=%a at column %lld gave %a, want %a\n", x,
                    static_cast<long long>(j), y, want);
        ok = false;
      }
    }
  }
  if (!ok) ++failures;
  std::printf("%-11s activation rounding (ties to even, Inf, NaN, tail): %s\n", kern::isa_name(isa),
              ok ? "ok" : "FAIL");
}

void check_vector_ops(kern::Isa isa, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  double worst = 0;
  for (int n : {1, 7, 16, 33, 64, 100, 128}) {
    std::vector<float> a(n), b(n), y(n), y0(n);
    std::vector<uint16_t> bb(n);
    for (int i = 0; i < n; ++i) {
      a[i] = nd(rng);
      bb[i] = f32_to_bf16(nd(rng));
      b[i] = bf16_to_f32(bb[i]);
      y0[i] = nd(rng);
    }
    double ref = 0, mag = 0;
    for (int i = 0; i < n; ++i) {
      ref += double(a[i]) * b[i];
      mag += std::abs(double(a[i]) * b[i]);
    }
    worst = std::max(worst, std::abs(kern::dot(a.data(), b.data(), n) - ref) / mag);
    worst = std::max(worst, std::abs(kern::dot_bf16(a.data(), bb.data(), n) - ref) / mag);
    for (int pass = 0; pass < 2; ++pass) {
      y = y0;
      if (pass == 0)
        kern::axpy(0.3f, b.data(), y.data(), n);
      else
        kern::axpy_bf16(0.3f, bb.data(), y.data(), n);
      for (int i = 0; i < n; ++i) {
        const double r = y0[i] + 0.3 * b[i];
        worst = std::max(worst, std::abs(y[i] - r) / (std::abs(y0[i]) + std::abs(0.3 * b[i])));
      }
    }
  }
  const bool ok = worst <= 1e-6;
  if (!ok) ++failures;
  std::printf("%-11s dot / axpy / dot_bf16 / axpy_bf16: max rel err %.2e (bound 1e-6): %s\n",
              kern::isa_name(isa), worst, ok ? "ok" : "FAIL");
}

// Single-thread time of one decode-shaped product (1 token x 4864 rows of 896, bf16).
// attend / attend_tokens against their contract under this ISA, bit for
// bit: per query, dot (or dot_bf16) times scale, the row-order max, expf, the
// sum in double, axpy (or axpy_bf16) of the weights into zeros.
void check_attention(kern::Isa isa, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int shapes = 0, bad = 0;
  for (int hd : {64, 72, 128})
    for (int G : {1, 7, 12})
      for (int n0 : {1, 9, 300})
        for (int B = 1; B <= kern::kAttendMaxTokens; ++B)
          for (bool bf16 : {false, true}) {
            const int n = n0 + B - 1;
            const int64_t ld = 2 * hd + 8;
            std::vector<float> q(size_t(B) * G * hd), k32(size_t(n) * ld), v32(size_t(n) * ld);
            for (auto& x : q) x = nd(rng) * 4.0f;
            for (auto& x : k32) x = nd(rng);
            for (auto& x : v32) x = nd(rng);
            std::vector<uint16_t> k16(k32.size()), v16(v32.size());
            for (size_t i = 0; i < k32.size(); ++i) {
              k16[i] = f32_to_bf16(k32[i]);
              v16[i] = f32_to_bf16(v32[i]);
            }
            const void* K = bf16 ? static_cast<const void*>(k16.data()) : k32.data();
            const void* V = bf16 ? static_cast<const void*>(v16.data()) : v32.data();
            const float scale = 1.0f / std::sqrt(float(hd));
            std::vector<float> out(q.size()), want(q.size()), sc(size_t(std::max(G, 8)) * B * n);
            kern::attend_tokens(q.data(), int64_t(G) * hd, hd, G, B, K, V, bf16, ld, n0, hd, scale,
                                out.data(), int64_t(G) * hd, hd, sc.data());
            for (int b = 0; b < B; ++b)
              for (int g = 0; g < G; ++g) {
                const float* qg = q.data() + (size_t(b) * G + g) * hd;
                const int rows = n0 + b;
                std::vector<float> s(rows);
                float mx = -INFINITY;
                for (int j = 0; j < rows; ++j) {
                  s[j] = (bf16 ? kern::dot_bf16(qg, k16.data() + j * ld, hd)
                               : kern::dot(qg, k32.data() + j * ld, hd)) *
                         scale;
                  mx = std::max(mx, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < rows; ++j) sum += (s[j] = std::exp(s[j] - mx));
                const float inv = static_cast<float>(1.0 / sum);
                float* o = want.data() + (size_t(b) * G + g) * hd;
                std::fill(o, o + hd, 0.0f);
                for (int j = 0; j < rows; ++j) {
                  if (bf16)
                    kern::axpy_bf16(s[j] * inv, v16.data() + j * ld, o, hd);
                  else
                    kern::axpy(s[j] * inv, v32.data() + j * ld, o, hd);
                }
              }
            ++shapes;
            if (std::memcmp(out.data(), want.data(), out.size() * sizeof(float)) != 0) ++bad;
          }
  if (bad) ++failures;
  std::printf("%-11s attention (%d shapes, blocks of 1-%d tokens): %d not bit-identical: %s\n",
              kern::isa_name(isa), shapes, kern::kAttendMaxTokens, bad, bad ? "FAILED" : "ok");
}

void time_decode(kern::Isa isa) {
  const int64_t K = 896, N = 4864;
  std::vector<float> wf(size_t(N) * K), X(K), Y(N);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& w : wf) w = nd(rng) * 0.05f;
  for (auto& x : X) x = nd(rng);
  auto wb = make_weights(DType::BF16, wf);
  kern::WeightView view{wb.data(), DType::BF16, N, K};
  for (int T : {1, 16}) {
    std::vector<float> XT(size_t(T) * K), YT(size_t(T) * N);
    for (int t = 0; t < T; ++t) std::memcpy(&XT[size_t(t) * K], X.data(), K * 4);
    int reps = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    do {
      kern::matmul_rows(XT.data(), K, T, view, 0, N, YT.data(), N);
      ++reps;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < 0.3);
    std::printf("%-11s timing: T=%-2d %4lldx%lld bf16  %8.1f us/call  %6.1f GFLOP/s\n",
                kern::isa_name(isa), T, static_cast<long long>(N), static_cast<long long>(K),
                el / reps * 1e6, 2.0 * T * N * K * reps / el * 1e-9);
  }
  // The product above stays in the last-level cache between calls; real
  // decode streams every weight from memory once per token. So: T=1 over
  // ~1 GiB of distinct copies of that matrix, against a plain read of the
  // same bytes (what bounds decode).
  const size_t mat = wb.size(), copies = (size_t(1) << 30) / mat + 1;
  std::vector<uint8_t> big(mat * copies);
  for (size_t c = 0; c < copies; ++c) std::memcpy(&big[c * mat], wb.data(), mat);
  auto best_of = [](auto&& fn) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  const double t_mm = best_of([&] {
    for (size_t c = 0; c < copies; ++c) {
      kern::WeightView v{&big[c * mat], DType::BF16, N, K};
      kern::matmul_rows(X.data(), K, 1, v, 0, N, Y.data(), N);
    }
  });
  volatile uint64_t sink = 0;
  const double t_rd = best_of([&] {
    uint64_t a = 0, b = 0;
    const uint64_t* p = reinterpret_cast<const uint64_t*>(big.data());
    for (size_t i = 0; i + 2 <= big.size() / 8; i += 2) {
      a += p[i];
      b ^= p[i + 1];
    }
    sink = a + b;
  });
  std::printf("%-11s timing: T=1  %zu MB streamed   %6.2f GB/s  (plain read %.2f GB/s: %.0f %%)\n",
              kern::isa_name(isa), big.size() >> 20, big.size() / t_mm * 1e-9,
              big.size() / t_rd * 1e-9, 100 * t_rd / t_mm);
}

}  // namespace

int main(int argc, char** argv) {
  bool timing = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-timing")) {
      timing = false;
    } else {
      std::fprintf(stderr, "usage: %s [--no-timing]\n", argv[0]);
      return 2;
    }
  }
  print_features();
  const char* env = std::getenv("RV_ISA");
  try {
    std::printf("default ISA: %s%s%s\n", kern::isa_name(kern::isa()), env ? " (RV_ISA=" : "",
                env ? (std::string(env) + ")").c_str() : "");
  } catch (const Error& e) {
    std::printf("default ISA: RV_ISA rejected: %s\n", e.what());
    ++failures;
  }
  // From here on every supported ISA is set explicitly; a rejected RV_ISA
  // must not fail those calls too.
  unsetenv("RV_ISA");
  const Shape shapes[] = {{1, 896}, {3, 4864}, {16, 100},  {64, 33},  {1, 33},
                          {3, 100}, {16, 896}, {64, 4864}, {1, 4864}, {64, 896}};
  std::printf("\n%-11s %-5s %3s %5s  %9s %8s  %9s %8s  %-9s %s\n", "isa", "dtype", "T", "K",
              "err/own", "bound", "err/f32", "bound", "untouched", "result");
  std::vector<kern::Isa> run;
  for (auto isa : {kern::Isa::kScalar, kern::Isa::kAvx2, kern::Isa::kAvx512Bf16}) {
    if (!kern::isa_supported(isa)) {
      std::printf("%-11s not supported on this CPU, skipped\n", kern::isa_name(isa));
      continue;
    }
    run.push_back(isa);
    kern::set_isa(isa);
    std::mt19937 rng(42);
    for (DType dt : {DType::BF16, DType::F16, DType::F32})
      for (const Shape& sh : shapes) {
        if (dt != DType::BF16 && sh.K == 4864 && sh.T == 64) continue;  // keep it quick
        check_matmul(isa, dt, sh, rng);
      }
  }
  std::printf("\n");
  for (auto isa : run) {
    kern::set_isa(isa);
    std::mt19937 rng(7);
    check_rounding(isa);
    check_vector_ops(isa, rng);
    check_attention(isa, rng);
  }
  if (timing) {
    std::printf("\n");
    for (auto isa : run) {
      kern::set_isa(isa);
      time_decode(isa);
    }
  }
  std::printf("\n%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
