#include "engine/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.h"

namespace rv::engine::kern {
namespace {

bool detect_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // F16C is CPUID leaf 1, ECX bit 29, read directly: clang (14) has no
  // "f16c" name for __builtin_cpu_supports.
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1u);
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

bool detect_avx512bf16() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!(detect_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")))
    return false;
  // AVX512_BF16 is CPUID leaf 7, sub-leaf 1, EAX bit 5, read directly for
  // the same reason; the OS-state check for AVX-512 registers is part of
  // "avx512f" above.
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 5) & 1u;
#else
  return false;
#endif
}

Isa initial_isa() {
  if (const char* e = std::getenv("RV_ISA"); e && *e) {
    const std::string v = e;
    for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Bf16}) {
      if (v != isa_name(i)) continue;
      if (!isa_supported(i)) throw Error("RV_ISA", "this CPU cannot run " + v);
      return i;
    }
    throw Error("RV_ISA", "unknown instruction set '" + v + "' (scalar, avx2, avx512bf16)");
  }
  return cpu_has_avx512bf16() ? Isa::kAvx512Bf16 : cpu_has_avx2() ? Isa::kAvx2 : Isa::kScalar;
}

std::atomic<Isa>& current() {
  static std::atomic<Isa> isa{initial_isa()};
  return isa;
}

int dtype_code(DType t) {
  return t == DType::F32 ? 0 : t == DType::F16 ? 1 : 2;
}

}  // namespace

bool cpu_has_avx2() {
  static const bool has = detect_avx2();
  return has;
}

bool cpu_has_avx512bf16() {
  static const bool has = detect_avx512bf16();
  return has;
}

bool isa_supported(Isa i) {
  switch (i) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return cpu_has_avx2();
    case Isa::kAvx512Bf16:
      return cpu_has_avx512bf16();
  }
  return false;
}

Isa isa() {
  return current().load(std::memory_order_relaxed);
}

void set_isa(Isa i) {
  if (i == Isa::kAvx2 && !cpu_has_avx2()) throw Error("engine: this CPU lacks AVX2/FMA/F16C");
  if (i == Isa::kAvx512Bf16 && !cpu_has_avx512bf16())
    throw Error("engine: this CPU lacks AVX-512 BF16 (needs avx512f, bw, vl and bf16)");
  current().store(i);
}

const char* isa_name(Isa i) {
  return i == Isa::kAvx512Bf16 ? "avx512bf16" : i == Isa::kAvx2 ? "avx2" : "scalar";
}

void row_to_f32(const WeightView& W, int64_t row, float* out) {
  const size_t es = dtype_size(W.dtype);
  to_f32(W.dtype, static_cast<const uint8_t*>(W.data) + row * W.cols * es, out,
         static_cast<size_t>(W.cols));
}

void matmul_rows(const float* X, int64_t ldx, int T, const WeightView& W, int64_t n0, int64_t n1,
                 float* Y, int64_t ldy) {
  const Isa cur = isa();
  if (cur == Isa::kAvx512Bf16 && W.dtype == DType::BF16) {
    // The scratch lives here: the AVX-512 file may not instantiate std templates.
    thread_local std::vector<uint16_t> xb;
    xb.resize(static_cast<size_t>(T) * static_cast<size_t>((W.cols + 31) / 32 * 32));
    avx512bf16::matmul_rows_bf16(X, ldx, T, W.data, W.cols, n0, n1, Y, ldy, xb.data());
    return;
  }
  if (cur != Isa::kScalar) {
    avx2::matmul_rows(X, ldx, T, W.data, dtype_code(W.dtype), W.cols, n0, n1, Y, ldy);
    return;
  }
  // Portable path: convert one weight row, then dot it with every token.
  const int64_t K = W.cols;
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(K));
  for (int64_t n = n0; n < n1; ++n) {
    row_to_f32(W, n, row.data());
    for (int t = 0; t < T; ++t) {
      const float* x = X + t * ldx;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t k = 0;
      for (; k + 4 <= K; k += 4) {
        s0 += row[k] * x[k];
        s1 += row[k + 1] * x[k + 1];
        s2 += row[k + 2] * x[k + 2];
        s3 += row[k + 3] * x[k + 3];
      }
      for (; k < K; ++k) s0 += row[k] * x[k];
      Y[t * ldy + n] = (s0 + s1) + (s2 + s3);
    }
  }
}

// The vector helpers have no AVX-512 version (head_dim-long rows: AVX2 is
// already memory-bound there), so kAvx512Bf16 uses the AVX2 ones.
float dot(const float* a, const float* b, int n) {
  if (isa() != Isa::kScalar) return avx2::dot(a, b, n);
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int n) {
  if (isa() != Isa::kScalar) return avx2::axpy(a, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

float dot_bf16(const float* a, const uint16_t* b, int n) {
  if (isa() != Isa::kScalar) return avx2::dot_bf16(a, b, n);
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * bf16_to_f32(b[i]);
  return s;
}

void axpy_bf16(float a, const uint16_t* x, float* y, int n) {
  if (isa() != Isa::kScalar) return avx2::axpy_bf16(a, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += a * bf16_to_f32(x[i]);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  if (isa() != Isa::kScalar && avx2::exp_vector_ok()) return avx2::silu_mul(gate, up, out, n);
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void attend(const float* q, int64_t q_stride, int G, const void* K, const void* V, bool kv_bf16,
            int64_t ld, int n, int hd, float scale, float* out, int64_t out_stride,
            float* scratch) {
  if (isa() == Isa::kAvx512Bf16 && hd % 8 == 0)
    return avx512::attend_tokens(q, 0, q_stride, G, 1, K, V, kv_bf16, ld, n, hd, scale, out, 0,
                                 out_stride, scratch);
  if (isa() != Isa::kScalar && hd % 8 == 0)
    return avx2::attend(q, q_stride, G, K, V, kv_bf16, ld, n, hd, scale, out, out_stride, scratch);
  // The composition itself (the contract above), with this ISA's dot / axpy.
  const auto* K32 = static_cast<const float*>(K);
  const auto* V32 = static_cast<const float*>(V);
  const auto* K16 = static_cast<const uint16_t*>(K);
  const auto* V16 = static_cast<const uint16_t*>(V);
  for (int g = 0; g < G; ++g) {
    const float* qg = q + g * q_stride;
    float* sc = scratch + int64_t(g) * n;
    float mx = -INFINITY;
    for (int j = 0; j < n; ++j) {
      sc[j] = (kv_bf16 ? dot_bf16(qg, K16 + j * ld, hd) : dot(qg, K32 + j * ld, hd)) * scale;
      mx = std::max(mx, sc[j]);
    }
    double sum = 0;
    for (int j = 0; j < n; ++j) {
      sc[j] = std::exp(sc[j] - mx);
      sum += sc[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    float* o = out + g * out_stride;
    std::fill(o, o + hd, 0.0f);
    for (int j = 0; j < n; ++j) {
      if (kv_bf16)
        axpy_bf16(sc[j] * inv, V16 + j * ld, o, hd);
      else
        axpy(sc[j] * inv, V32 + j * ld, o, hd);
    }
  }
}

void attend_tokens(const float* q, int64_t q_tok, int64_t q_stride, int G, int B, const void* K,
                   const void* V, bool kv_bf16, int64_t ld, int n0, int hd, float scale, float* out,
                   int64_t out_tok, int64_t out_stride, float* scratch) {
  if (B < 1 || B > kAttendMaxTokens)
    throw Error("attend_tokens", "block of " + std::to_string(B) + " tokens");
  if (isa() == Isa::kAvx512Bf16 && hd % 8 == 0)
    return avx512::attend_tokens(q, q_tok, q_stride, G, B, K, V, kv_bf16, ld, n0, hd, scale, out,
                                 out_tok, out_stride, scratch);
  for (int b = 0; b < B; ++b)
    attend(q + b * q_tok, q_stride, G, K, V, kv_bf16, ld, n0 + b, hd, scale, out + b * out_tok,
           out_stride, scratch);
}

}  // namespace rv::engine::kern
