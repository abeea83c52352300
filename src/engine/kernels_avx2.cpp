// AVX2 + FMA + F16C kernels. This file is compiled with -mavx2 -mfma -mf16c
// and is only entered after a runtime CPU check (kernels.cpp), so it must not
// define or instantiate anything another translation unit could share
// (inline functions, templates from std headers): the linker could otherwise
// pick this file's AVX2 copy for the whole program. Hence: intrinsics and
// file-local templates only.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/kernels.h"

namespace rv::engine::kern::avx2 {
namespace {

constexpr int kF32 = 0, kF16 = 1, kBF16 = 2;

template <int DT>
inline __m256 load8(const void* w, int64_t i) {
  if constexpr (DT == kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (DT == kF16) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
  } else {
    __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <int DT>
inline float load1(const void* w, int64_t i) {
  if constexpr (DT == kF32) {
    return static_cast<const float*>(w)[i];
  } else if constexpr (DT == kF16) {
    return _cvtsh_ss(static_cast<const uint16_t*>(w)[i]);
  } else {
    uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int DT>
constexpr int64_t elem_bytes() {
  return DT == kF32 ? 4 : 2;
}

// One register tile: MR tokens x NR weight rows, dot products along K.
// With PF, the tile also prefetches the next NR rows, spread evenly over its
// K steps. Decode (MR = 1) reads each weight once, so it is bound by memory
// bandwidth. Left to the hardware prefetcher, NR interleaved row streams
// read well below a plain sequential read; one linear stream ahead closes
// the gap (bench/kernel_isa_check measures both). Prefetching leaves the
// arithmetic, and so the results, unchanged.
template <int MR, int NR, int DT, bool PF = false>
inline void tile(const float* X, int64_t ldx, const void* w, int64_t K, int64_t n, float* Y,
                 int64_t ldy) {
  // Only formed with PF, where the caller guarantees the next block exists.
  [[maybe_unused]] const char* next =
      PF ? static_cast<const char*>(w) + (n + NR) * K * elem_bytes<DT>() : nullptr;
  [[maybe_unused]] const int64_t next_bytes = NR * K * elem_bytes<DT>();
  [[maybe_unused]] const int64_t steps = K / 8 > 0 ? K / 8 : 1;
  [[maybe_unused]] const int64_t per_step = ((next_bytes + steps - 1) / steps + 63) / 64 * 64;
  [[maybe_unused]] int64_t fetched = 0;
  __m256 acc[MR][NR];
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    if constexpr (PF) {
      if (fetched < next_bytes) {
        const int64_t end = fetched + per_step < next_bytes ? fetched + per_step : next_bytes;
        for (int64_t o = fetched; o < end; o += 64) _mm_prefetch(next + o, _MM_HINT_T0);
        fetched = end;
      }
    }
    __m256 wv[NR];
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) wv[r] = load8<DT>(w, (n + r) * K + k);
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      __m256 x = _mm256_loadu_ps(X + m * ldx + k);
#pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_fmadd_ps(wv[r], x, acc[m][r]);
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      float s = hsum(acc[m][r]);
      for (int64_t kk = k; kk < K; ++kk) s += load1<DT>(w, (n + r) * K + kk) * X[m * ldx + kk];
      Y[m * ldy + n + r] = s;
    }
}

template <int NR, int DT>
inline void tokens(const float* X, int64_t ldx, int T, const void* w, int64_t K, int64_t n,
                   float* Y, int64_t ldy) {
  int t = 0;
  for (; t + 4 <= T; t += 4) tile<4, NR, DT>(X + t * ldx, ldx, w, K, n, Y + t * ldy, ldy);
  switch (T - t) {
    case 3:
      tile<3, NR, DT>(X + t * ldx, ldx, w, K, n, Y + t * ldy, ldy);
      break;
    case 2:
      tile<2, NR, DT>(X + t * ldx, ldx, w, K, n, Y + t * ldy, ldy);
      break;
    case 1:
      tile<1, NR, DT>(X + t * ldx, ldx, w, K, n, Y + t * ldy, ldy);
      break;
    default:
      break;
  }
}

template <int DT>
void matmul_impl(const float* X, int64_t ldx, int T, const void* w, int64_t K, int64_t n0,
                 int64_t n1, float* Y, int64_t ldy) {
  if (T == 1) {  // decode: memory-bound, more rows in flight
    int64_t n = n0;
    // Prefetch only rows this call owns: the next block must lie inside [n0, n1).
    for (; n + 8 <= n1; n += 4) tile<1, 4, DT, true>(X, ldx, w, K, n, Y, ldy);
    for (; n + 4 <= n1; n += 4) tile<1, 4, DT>(X, ldx, w, K, n, Y, ldy);
    for (; n < n1; ++n) tile<1, 1, DT>(X, ldx, w, K, n, Y, ldy);
    return;
  }
  // Token chunks small enough to stay in L2 while the weight rows stream.
  int64_t tc = (256 * 1024) / (K * 4);
  tc = tc < 8 ? 8 : (tc / 4) * 4;
  for (int64_t t0 = 0; t0 < T; t0 += tc) {
    int tn = static_cast<int>(T - t0 < tc ? T - t0 : tc);
    const float* Xc = X + t0 * ldx;
    float* Yc = Y + t0 * ldy;
    int64_t n = n0;
    for (; n + 3 <= n1; n += 3) tokens<3, DT>(Xc, ldx, tn, w, K, n, Yc, ldy);
    for (; n < n1; ++n) tokens<1, DT>(Xc, ldx, tn, w, K, n, Yc, ldy);
  }
}

}  // namespace

void matmul_rows(const float* X, int64_t ldx, int T, const void* w, int dtype, int64_t K,
                 int64_t n0, int64_t n1, float* Y, int64_t ldy) {
  switch (dtype) {
    case kF32:
      matmul_impl<kF32>(X, ldx, T, w, K, n0, n1, Y, ldy);
      break;
    case kF16:
      matmul_impl<kF16>(X, ldx, T, w, K, n0, n1, Y, ldy);
      break;
    default:
      matmul_impl<kBF16>(X, ldx, T, w, K, n0, n1, Y, ldy);
      break;
  }
}

float dot(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int n) {
  __m256 av = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// The bf16-row versions keep dot / axpy's order of operations exactly, so
// they equal them on the widened row.
float dot_bf16(const float* a, const uint16_t* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8<kBF16>(b, i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load8<kBF16>(b, i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8<kBF16>(b, i), s0);
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * load1<kBF16>(b, i);
  return s;
}

void axpy_bf16(float a, const uint16_t* x, float* y, int n) {
  __m256 av = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load8<kBF16>(x, i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * load1<kBF16>(x, i);
}

}  // namespace rv::engine::kern::avx2
