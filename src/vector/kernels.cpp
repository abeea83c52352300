#include "vector/kernels.h"

#include <immintrin.h>

#include <cstring>

#include "formats/bf16_avx2.h"

namespace rv::vec::detail {
namespace {

bool fast(DType t) {
  return t == DType::BF16 || t == DType::F32;
}

bool has_avx2() {
  static const bool v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  return v;
}

// Eight elements of a bf16 or f32 array starting at element i.
__attribute__((target("avx2"))) inline __m256 load8(DType t, const uint8_t* p, size_t i) {
  return t == DType::BF16 ? simd::bf16x8_to_f32(p + 2 * i)
                          : _mm256_loadu_ps(reinterpret_cast<const float*>(p + 4 * i));
}

__attribute__((target("avx2"))) inline void store16(DType t, uint8_t* p, size_t i, __m256 lo,
                                                    __m256 hi) {
  if (t == DType::BF16) {
    simd::store_bf16x16(p + 2 * i, lo, hi);
  } else {
    _mm256_storeu_ps(reinterpret_cast<float*>(p + 4 * i), lo);
    _mm256_storeu_ps(reinterpret_cast<float*>(p + 4 * i + 32), hi);
  }
}

// The tail (fewer than 16 elements) goes through the scalar conversions.
float load1(DType t, const uint8_t* p, size_t i) {
  float x;
  to_f32(t, p + i * dtype_size(t), &x, 1);
  return x;
}
uint64_t store1(DType t, uint8_t* p, size_t i, float x) {
  from_f32(t, &x, p + i * dtype_size(t), 1);
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return (u & 0x7f800000u) == 0x7f800000u;
}

// Software prefetch distance in elements. The inputs are mapped page cache
// that the hardware prefetcher follows poorly across pages, so the loops
// prefetch 16-32 KiB ahead themselves.
constexpr size_t kAhead = 8192;

// The 16 elements at p span 32 (bf16) or 64 (f32) bytes: one or two lines.
inline void prefetch_line(const uint8_t* p, size_t elem_size) {
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
  if (elem_size == 4) _mm_prefetch(reinterpret_cast<const char*>(p + 32), _MM_HINT_T0);
}

// Op maps (x, y) to the result on eight lanes (AVX2) and on one float; the
// dtype branches are loop-invariant, so the compiler hoists them.
template <class Op>
__attribute__((target("avx2,popcnt"))) uint64_t binary(DType xt, const uint8_t* x, DType yt,
                                                       const uint8_t* y, DType ot, uint8_t* out,
                                                       size_t n, Op op) {
  uint64_t bad = 0;
  size_t i = 0;
  const size_t xs = dtype_size(xt), ys = dtype_size(yt);
  for (; i + 16 <= n; i += 16) {
    if (i + kAhead < n) {
      prefetch_line(x + (i + kAhead) * xs, xs);
      prefetch_line(y + (i + kAhead) * ys, ys);
    }
    const __m256 lo = op(load8(xt, x, i), load8(yt, y, i));
    const __m256 hi = op(load8(xt, x, i + 8), load8(yt, y, i + 8));
    bad += simd::count_nonfinite8(lo) + simd::count_nonfinite8(hi);
    store16(ot, out, i, lo, hi);
  }
  for (; i < n; ++i) bad += store1(ot, out, i, op(load1(xt, x, i), load1(yt, y, i)));
  return bad;
}

struct Sub {  // x - y
  __attribute__((target("avx2"))) __m256 operator()(__m256 x, __m256 y) const {
    return _mm256_sub_ps(x, y);
  }
  float operator()(float x, float y) const { return x - y; }
};

// x + alpha * y, the product rounded to f32 before the sum: the AVX2 lanes
// use a separate multiply and add (no FMA) and -ffp-contract=off keeps the
// scalar form unfused, both like the generic path.
struct Axpy {
  float alpha;
  __attribute__((target("avx2"))) __m256 operator()(__m256 x, __m256 y) const {
    return _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(alpha), y));
  }
  float operator()(float x, float y) const { return x + alpha * y; }
};

}  // namespace

bool has_fused(DType x, DType y, DType out) {
  return fast(x) && fast(y) && fast(out) && has_avx2();
}

bool fused_diff(DType at, const uint8_t* a, DType bt, const uint8_t* b, DType ot, uint8_t* out,
                size_t n, uint64_t* nonfinite) {
  if (!fast(at) || !fast(bt) || !fast(ot) || !has_avx2()) return false;
  *nonfinite += binary(bt, b, at, a, ot, out, n, Sub{});
  return true;
}

bool fused_axpy(DType tt, const uint8_t* t, float alpha, DType vt, const uint8_t* v, DType ot,
                uint8_t* out, size_t n, uint64_t* nonfinite) {
  if (!fast(tt) || !fast(vt) || !fast(ot) || !has_avx2()) return false;
  *nonfinite += binary(tt, t, vt, v, ot, out, n, Axpy{alpha});
  return true;
}

}  // namespace rv::vec::detail
