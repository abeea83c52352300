#include "engine/kernels.h"

#include <atomic>
#include <vector>

#include "common/error.h"

namespace rv::engine::kern {
namespace {

bool detect_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

std::atomic<Isa>& current() {
  static std::atomic<Isa> isa{detect_avx2() ? Isa::kAvx2 : Isa::kScalar};
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

Isa isa() {
  return current().load(std::memory_order_relaxed);
}

void set_isa(Isa i) {
  if (i == Isa::kAvx2 && !cpu_has_avx2()) throw Error("engine: this CPU lacks AVX2/FMA/F16C");
  current().store(i);
}

const char* isa_name(Isa i) {
  return i == Isa::kAvx2 ? "avx2" : "scalar";
}

void row_to_f32(const WeightView& W, int64_t row, float* out) {
  const size_t es = dtype_size(W.dtype);
  to_f32(W.dtype, static_cast<const uint8_t*>(W.data) + row * W.cols * es, out,
         static_cast<size_t>(W.cols));
}

void matmul_rows(const float* X, int64_t ldx, int T, const WeightView& W, int64_t n0, int64_t n1,
                 float* Y, int64_t ldy) {
  if (isa() == Isa::kAvx2) {
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

float dot(const float* a, const float* b, int n) {
  if (isa() == Isa::kAvx2) return avx2::dot(a, b, n);
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int n) {
  if (isa() == Isa::kAvx2) return avx2::axpy(a, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace rv::engine::kern
