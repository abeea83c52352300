// AVX2 + FMA + F16C kernels. This file is compiled with -mavx2 -mfma -mf16c
// and is only entered after a runtime CPU check (kernels.cpp), so it must not
// define or instantiate anything another translation unit could share
// (inline functions, templates from std headers): the linker could otherwise
// pick this file's AVX2 copy for the whole program. Hence: intrinsics and
// file-local templates only.
#include <immintrin.h>
#include <math.h>  // expf: the C function, not an inline C++ overload

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/kernels.h"
#include "engine/kernels_x86.h"

namespace rv::engine::kern::avx2 {
namespace {

using x86::exp_or_zero;
using x86::hsum8;
using x86::kC0;
using x86::kC1;
using x86::kC2;
using x86::kExp2f;
using x86::kInvLn2N;
using x86::kShift;

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

// ---------------------------------------------------------------------------
// Attention of a group of query heads sharing one cached K/V head. Each
// query's result is exactly what Model's per-head loop gets from dot(),
// expf() and axpy() row by row (the same operations on every element in the
// same order); the speed comes from sharing loads between queries and keys
// and from reducing eight dot products at once.

namespace rv::engine::kern::avx2 {
namespace {

// dot()'s accumulation for one query and one key row, before the hsum:
// s0 over 16-element steps (low half), s1 (high half), one 8-step into s0.
template <int DT>
inline __m256 dot_acc(const float* q, const void* k, int hd) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= hd; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8<DT>(k, i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load8<DT>(k, i + 8), s1);
  }
  for (; i + 8 <= hd; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8<DT>(k, i), s0);
  return _mm256_add_ps(s0, s1);
}

// Eight expf() at once, bit for bit those of glibc (see x86::kExp2f).
inline __m128 exp4_fast(__m128 x) {
  const __m256d xd = _mm256_cvtps_pd(x);
  const __m256d inv = _mm256_set1_pd(kInvLn2N), shift = _mm256_set1_pd(kShift);
  __m256d kd = _mm256_fmadd_pd(inv, xd, shift);
  const __m256i ki = _mm256_castpd_si256(kd);
  kd = _mm256_sub_pd(kd, shift);
  const __m256d r = _mm256_fmsub_pd(inv, xd, kd);
  const __m256i idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
  const __m256i t = _mm256_add_epi64(
      _mm256_i64gather_epi64(reinterpret_cast<const long long*>(kExp2f.tab), idx, 8),
      _mm256_slli_epi64(ki, 47));
  const __m256d sc = _mm256_castsi256_pd(t);
  const __m256d z = _mm256_fmadd_pd(r, _mm256_set1_pd(kC0), _mm256_set1_pd(kC1));
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d y = _mm256_fmadd_pd(r, _mm256_set1_pd(kC2), _mm256_set1_pd(1.0));
  y = _mm256_fmadd_pd(z, r2, y);
  return _mm256_cvtpd_ps(_mm256_mul_pd(y, sc));
}

inline __m256 exp8(__m256 x) {
  const __m256 y =
      _mm256_set_m128(exp4_fast(_mm256_extractf128_ps(x, 1)), exp4_fast(_mm256_castps256_ps128(x)));
  return x86::exp_mend_special(x, y);
}

// Whether exp8 equals this process's expf; decided once.
bool exp8_matches_libm() {
  static const bool ok = x86::exp_matches_libm(
      [](const float* x, float* y) { _mm256_storeu_ps(y, exp8(_mm256_loadu_ps(x))); });
  return ok;
}

// out_g[0 .. 8 * W) = sum over rows i of p[i * 8 + g0 + g] * V_i[0 .. 8 *
// W), for GN queries from g0 (weights key-major, eight lanes per row),
// accumulated in row order from zero.
template <int DT, int GN, int W>
void values(const float* p, int g0, int n, const char* V, int64_t vstride, float* out,
            int64_t out_stride) {
  __m256 acc[GN][W];
  for (int g = 0; g < GN; ++g)
    for (int w = 0; w < W; ++w) acc[g][w] = _mm256_setzero_ps();
  for (int i = 0; i < n; ++i) {
    const char* vr = V + i * vstride;
    __m256 v[W];
    for (int w = 0; w < W; ++w) v[w] = load8<DT>(vr, 8 * w);
    const float* pi = p + int64_t(i) * 8 + g0;
    for (int g = 0; g < GN; ++g) {
      const __m256 pg = _mm256_broadcast_ss(pi + g);
      for (int w = 0; w < W; ++w) acc[g][w] = _mm256_fmadd_ps(pg, v[w], acc[g][w]);
    }
  }
  for (int g = 0; g < GN; ++g)
    for (int w = 0; w < W; ++w) _mm256_storeu_ps(out + (g0 + g) * out_stride + 8 * w, acc[g][w]);
}

template <int DT, int W>
void values_n(int gn, const float* p, int g0, int n, const char* V, int64_t vstride, float* out,
              int64_t out_stride) {
  switch (gn) {
    case 1:
      return values<DT, 1, W>(p, g0, n, V, vstride, out, out_stride);
    case 2:
      return values<DT, 2, W>(p, g0, n, V, vstride, out, out_stride);
    case 3:
      return values<DT, 3, W>(p, g0, n, V, vstride, out, out_stride);
    case 4:
      return values<DT, 4, W>(p, g0, n, V, vstride, out, out_stride);
    case 5:
      return values<DT, 5, W>(p, g0, n, V, vstride, out, out_stride);
    default:
      return values<DT, 6, W>(p, g0, n, V, vstride, out, out_stride);
  }
}

// Up to eight queries of one group. Scores are stored key-major, the
// queries in the lanes of one register (sc[j * 8 + g], lanes past G zero),
// so the row-order max, the exps and the serial double sums run for all
// queries at once; each lane sees exactly one query's sequence of
// operations.
template <int DT>
void attend8(const float* q, int64_t q_stride, int G, const char* K, const char* V, int64_t ld,
             int n, int hd, float scale, float* out, int64_t out_stride, float* sc) {
  const int64_t esz = DT == kF32 ? 4 : 2;
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 acc[8];
  for (int g = 0; g < 8; ++g) acc[g] = _mm256_setzero_ps();
  __m256 mx = _mm256_set1_ps(-__builtin_inff());
  for (int j = 0; j < n; ++j) {
    const char* k = K + j * ld * esz;
    for (int g = 0; g < G; ++g) acc[g] = dot_acc<DT>(q + g * q_stride, k, hd);
    const __m256 s = _mm256_mul_ps(hsum8(acc), vscale);
    _mm256_storeu_ps(sc + int64_t(j) * 8, s);
    // max(s, mx) is `mx < s ? s : mx`, the scalar loop's step, NaN and
    // signed zeros included.
    mx = _mm256_max_ps(s, mx);
  }
  // exp(s - max) and the sum in double (two registers of four lanes).
  const bool vexp = exp8_matches_libm();
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  for (int64_t i = 0; i < int64_t(n) * 8; i += 8) {
    __m256 e = _mm256_sub_ps(_mm256_loadu_ps(sc + i), mx);
    e = x86::exp8_or_scalar(
        vexp, [](__m256 v) { return exp8(v); }, e);
    _mm256_storeu_ps(sc + i, e);
    sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  // inv = float(1 / sum) per lane, then the weights scaled once.
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256 inv = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_div_pd(one, sum_hi)),
                                     _mm256_cvtpd_ps(_mm256_div_pd(one, sum_lo)));
  for (int64_t i = 0; i < int64_t(n) * 8; i += 8)
    _mm256_storeu_ps(sc + i, _mm256_mul_ps(_mm256_loadu_ps(sc + i), inv));
  // Values: 16 output elements (or a last 8) of up to six queries in
  // registers while the rows stream by, each element updated in row order
  // as axpy does.
  for (int d = 0; d < hd; d += 16)
    for (int g0 = 0; g0 < G; g0 += 6) {
      const int gn = G - g0 < 6 ? G - g0 : 6;
      const char* vd = V + d * esz;
      if (d + 16 <= hd)
        values_n<DT, 2>(gn, sc, g0, n, vd, ld * esz, out + d, out_stride);
      else
        values_n<DT, 1>(gn, sc, g0, n, vd, ld * esz, out + d, out_stride);
    }
}

template <int DT>
void attend_impl(const float* q, int64_t q_stride, int G, const void* K, const void* V, int64_t ld,
                 int n, int hd, float scale, float* out, int64_t out_stride, float* sc) {
  // Queries are independent: groups larger than eight go eight at a time.
  for (int g0 = 0; g0 < G; g0 += 8)
    attend8<DT>(q + g0 * q_stride, q_stride, G - g0 < 8 ? G - g0 : 8, static_cast<const char*>(K),
                static_cast<const char*>(V), ld, n, hd, scale, out + g0 * out_stride, out_stride,
                sc);
}
}  // namespace

bool exp_vector_ok() {
  return exp8_matches_libm();
}

void exp_n(const float* x, float* y, int64_t n) {
  x86::exp_n_with([](__m256 v) { return exp8(v); }, x, y, n);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_xor_ps(g, sign));
    _mm256_storeu_ps(
        out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + exp_or_zero(-gate[i])) * up[i];
}

void attend(const float* q, int64_t q_stride, int G, const void* K, const void* V, bool kv_bf16,
            int64_t ld, int n, int hd, float scale, float* out, int64_t out_stride, float* sc) {
  if (kv_bf16)
    attend_impl<kBF16>(q, q_stride, G, K, V, ld, n, hd, scale, out, out_stride, sc);
  else
    attend_impl<kF32>(q, q_stride, G, K, V, ld, n, hd, scale, out, out_stride, sc);
}

}  // namespace rv::engine::kern::avx2
