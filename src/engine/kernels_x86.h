// Helpers shared by the x86 kernel files (kernels_avx2.cpp,
// kernels_avx512.cpp), which must not share code with any other translation
// unit (see kernels_avx2.cpp): everything here has internal linkage, so each
// file that includes it compiles its own copy with its own ISA flags. Include
// it only from files compiled with at least -mavx2 -mfma.
#pragma once

#include <immintrin.h>
#include <math.h>  // expf: the C function, not an inline C++ overload

#include <cstdint>
#include <cstring>

namespace rv::engine::kern::x86 {
namespace {

// Eight vectors -> their eight hsum()s, each with hsum's exact pairing
// (lanes i and i+4, then 0/2 and 1/3, then 0 and 1), returned in the order
// v0, v1, ..., v7.
inline __m256 hsum8(const __m256* v) {
  // Level 1: [v_a lanes i + i+4 (4 lanes) | v_b lanes i + i+4 (4 lanes)].
  const __m256 t01 = _mm256_add_ps(_mm256_permute2f128_ps(v[0], v[1], 0x20),
                                   _mm256_permute2f128_ps(v[0], v[1], 0x31));
  const __m256 t23 = _mm256_add_ps(_mm256_permute2f128_ps(v[2], v[3], 0x20),
                                   _mm256_permute2f128_ps(v[2], v[3], 0x31));
  const __m256 t45 = _mm256_add_ps(_mm256_permute2f128_ps(v[4], v[5], 0x20),
                                   _mm256_permute2f128_ps(v[4], v[5], 0x31));
  const __m256 t67 = _mm256_add_ps(_mm256_permute2f128_ps(v[6], v[7], 0x20),
                                   _mm256_permute2f128_ps(v[6], v[7], 0x31));
  // Level 2: [a0+a2, a1+a3, c0+c2, c1+c3 | b0+b2, b1+b3, d0+d2, d1+d3].
  const __m256 u0 = _mm256_add_ps(_mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 u1 = _mm256_add_ps(_mm256_shuffle_ps(t45, t67, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(t45, t67, _MM_SHUFFLE(3, 2, 3, 2)));
  // Level 3: [v0 v2 v4 v6 | v1 v3 v5 v7].
  const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// expf(x), skipping glibc's error-reporting path where it returns +0:
// below log(2^-150) expf rounds to +0 (and sets errno/FE_UNDERFLOW, which
// nobody reads here). Softmax inputs are often far below it.
inline float exp_or_zero(float x) {
  return x < -0x1.9fe368p6f ? 0.0f : expf(x);
}

// The vector expf of these files, bit for bit that of glibc (2.28 and
// later) on an FMA machine: exp(x) = 2^(k/32) * 2^(r/32), k = round(x * 32
// / ln 2), the 2^(k/32) from a 32-entry table, 2^(r/32) by a cubic, all in
// double with the same fused operations in the same order, then one
// rounding to float. Lanes glibc does not send down that path (NaN, x >= 88,
// x below log(2^-149)) are +0 below log(2^-150) and exp_or_zero() otherwise.
// exp_matches_libm() checks a vector version against the expf this process
// links before it is ever used.
struct Exp2fTable {
  alignas(64) uint64_t tab[32];  // bits of 2^(i/32) minus i << 47
};
// Filled by exp_matches_libm() (not a dynamic initialiser: an ISA file's
// code may only run after the CPU check).
Exp2fTable kExp2f;
inline void fill_table() {
  for (int i = 0; i < 32; ++i) {
    const double v = static_cast<double>(exp2l(static_cast<long double>(i) / 32));
    uint64_t u;
    std::memcpy(&u, &v, 8);
    kExp2f.tab[i] = u - (static_cast<uint64_t>(i) << 47);
  }
}
// glibc's constants: 32 / ln 2, the rounding shifter 1.5 * 2^52 and the
// cubic's coefficients (scaled by 1/32 per power of r).
constexpr double kInvLn2N = 0x1.71547652b82fep+5, kShift = 0x1.8p+52;
constexpr double kC0 = 0x1.c6af84b912394p-20, kC1 = 0x1.ebfce50fac4f3p-13,
                 kC2 = 0x1.62e42ff0c52d6p-6;
// Bounds of glibc's special cases: below kExpZero expf is +0; from
// kExpZero up to kExpSub it may take an error-reporting path.
constexpr float kExpZero = -0x1.9fe368p6f, kExpSub = -0x1.9d1d9ep6f;

// y = the fast path's exps of x, with the lanes glibc does not send down
// that path mended: +0 below kExpZero, the fast path kept from kExpSub to
// -88, exp_or_zero() for the rest (NaN, x >= 88, [kExpZero, kExpSub)).
inline __m256 exp_mend_special(__m256 x, __m256 y) {
  // The fast path: top 12 bits of |x| (exponent, first mantissa bit) <= 0x42a.
  const __m256i top =
      _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 20), _mm256_set1_epi32(0x7ff));
  const __m256 special = _mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x42a)));
  if (!_mm256_movemask_ps(special)) return y;
  const __m256 zero = _mm256_cmp_ps(x, _mm256_set1_ps(kExpZero), _CMP_LT_OQ);
  const __m256 fast_neg = _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(kExpSub), _CMP_GE_OQ),
                                        _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
  y = _mm256_andnot_ps(zero, y);
  const int rest = _mm256_movemask_ps(_mm256_andnot_ps(_mm256_or_ps(zero, fast_neg), special));
  if (rest) {
    alignas(32) float xs[8], ys[8];
    _mm256_store_ps(xs, x);
    _mm256_store_ps(ys, y);
    for (int i = 0; i < 8; ++i)
      if (rest >> i & 1) ys[i] = exp_or_zero(xs[i]);
    y = _mm256_load_ps(ys);
  }
  return y;
}

// exp8(x) when the file's vector exp matched libm (`vexp`, from
// exp_matches_libm), else exp_or_zero() lane by lane.
template <class Exp8>
inline __m256 exp8_or_scalar(bool vexp, Exp8 exp8, __m256 x) {
  if (vexp) return exp8(x);
  alignas(32) float t[8];
  _mm256_store_ps(t, x);
  for (float& v : t) v = exp_or_zero(v);
  return _mm256_load_ps(t);
}

// y[i] = exp(x[i]) for i < n with a file's eight-wide exp8, the tail by
// exp_or_zero().
template <class Exp8>
inline void exp_n_with(Exp8 exp8, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = exp_or_zero(x[i]);
}

// Whether exp8(x, y) (eight expf at once) equals this process's expf on a
// spread of inputs: every table entry, both rounding directions, the
// subnormal range, the fast path's edges and the special lanes. Fills the
// table first.
template <class Exp8>
bool exp_matches_libm(Exp8 exp8) {
  fill_table();
  float xs[8], ys[8];
  uint32_t state = 12345;
  for (int it = 0; it < 4096; ++it) {
    for (int i = 0; i < 8; ++i) {
      state = state * 1664525u + 1013904223u;
      const float u = static_cast<float>(state >> 8) * 0x1p-24f;  // [0, 1)
      xs[i] = it < 4000 ? -105.0f * u : (it % 2 ? 1.0f : -1.0f) * 90.0f * u;
    }
    if (it == 4095) {
      xs[0] = 0.0f;
      xs[1] = -0.0f;
      xs[2] = kExpZero;
      xs[3] = kExpSub;
      xs[4] = -87.9f;
      xs[5] = -88.1f;
      xs[6] = -__builtin_inff();
      xs[7] = __builtin_nanf("");
    }
    if (it == 4094) {  // each side of both bounds, and of 88
      xs[0] = __builtin_nextafterf(kExpZero, 0.0f);
      xs[1] = __builtin_nextafterf(kExpZero, -200.0f);
      xs[2] = __builtin_nextafterf(kExpSub, 0.0f);
      xs[3] = __builtin_nextafterf(kExpSub, -200.0f);
      xs[4] = 88.0f;
      xs[5] = -88.0f;
      xs[6] = __builtin_inff();
      xs[7] = 0x1.62e42ep6f;
    }
    exp8(xs, ys);
    for (int i = 0; i < 8; ++i) {
      const float want = expf(xs[i]);
      if (std::memcmp(&want, &ys[i], 4) != 0 && !(want != want && ys[i] != ys[i])) return false;
    }
  }
  return true;
}

}  // namespace
}  // namespace rv::engine::kern::x86
