// AVX-512 attention: kern::attend with 16-lane registers, bit for bit the
// result of the AVX2 version (and so of the dot / expf / axpy composition
// that kernels.h specifies). Compiled with -mavx512f -mavx512bw -mavx512vl
// and only entered after a runtime CPU check (kernels.cpp); like the other
// ISA files it must not define or instantiate anything another translation
// unit could share (see kernels_avx2.cpp).
//
// Why it is exact: dot() keeps two 8-lane partial sums, s0 over elements
// 16i..16i+7 and s1 over 16i+8..16i+15, then adds s0 + s1 and reduces the
// eight lanes in a fixed pairing. One 16-lane register holds s0 in its low
// half and s1 in its high half, updated by the same fused multiply-adds in
// the same order; its halves are added and reduced like dot's. The softmax
// keeps each query's max, expf, double sum and scaling in row order; here
// the queries of the group sit in the lanes of one register (scores are
// stored key-major, [row][query]), so each lane's chain is the same
// sequence of operations, and the serial double sum runs for all queries at
// once instead of one query after another. The value pass updates each
// output element with one fused multiply-add per row in row order, as
// axpy() does.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstddef>
#include <cstdint>

#include "engine/kernels.h"
#include "engine/kernels_x86.h"

namespace rv::engine::kern::avx512 {
namespace {

using x86::exp_or_zero;
using x86::hsum8;
using x86::kExp2f;

constexpr int kF32 = 0, kBF16 = 2;

// Queries per register of scores: the lanes of one __m256.
constexpr int kLanes = 8;

// Eight expf() at once in one register of doubles, bit for bit glibc's
// (x86::kExp2f): the operations of avx2's exp8, with the table looked up by
// two-register permutes instead of a gather.
inline __m256 exp8(__m256 x) {
  const __m512d xd = _mm512_cvtps_pd(x);
  const __m512d inv = _mm512_set1_pd(x86::kInvLn2N), shift = _mm512_set1_pd(x86::kShift);
  __m512d kd = _mm512_fmadd_pd(inv, xd, shift);
  const __m512i ki = _mm512_castpd_si512(kd);
  kd = _mm512_sub_pd(kd, shift);
  const __m512d r = _mm512_fmsub_pd(inv, xd, kd);
  // Entry ki % 32: bits 0-3 pick within a 16-entry half, bit 4 the half.
  const __m512i* tab = reinterpret_cast<const __m512i*>(kExp2f.tab);
  const __m512i lo =
      _mm512_permutex2var_epi64(_mm512_load_si512(tab), ki, _mm512_load_si512(tab + 1));
  const __m512i hi =
      _mm512_permutex2var_epi64(_mm512_load_si512(tab + 2), ki, _mm512_load_si512(tab + 3));
  const __m512i t = _mm512_add_epi64(
      _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi),
      _mm512_slli_epi64(ki, 47));
  const __m512d sc = _mm512_castsi512_pd(t);
  const __m512d z = _mm512_fmadd_pd(r, _mm512_set1_pd(x86::kC0), _mm512_set1_pd(x86::kC1));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(r, _mm512_set1_pd(x86::kC2), _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(z, r2, y);
  __m256 out = _mm512_cvtpd_ps(_mm512_mul_pd(y, sc));
  // The lanes off glibc's fast path, as in avx2's exp8.
  const __m256i top =
      _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 20), _mm256_set1_epi32(0x7ff));
  const __mmask8 special = _mm256_cmpgt_epi32_mask(top, _mm256_set1_epi32(0x42a));
  if (special) {
    const __mmask8 zero = _mm256_cmp_ps_mask(x, _mm256_set1_ps(x86::kExpZero), _CMP_LT_OQ);
    const __mmask8 fast_neg = _mm256_cmp_ps_mask(x, _mm256_set1_ps(x86::kExpSub), _CMP_GE_OQ) &
                              _mm256_cmp_ps_mask(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    out = _mm256_maskz_mov_ps(static_cast<__mmask8>(~zero), out);
    const unsigned rest = special & ~(zero | fast_neg) & 0xffu;
    if (rest) {
      alignas(32) float xs[8], ys[8];
      _mm256_store_ps(xs, x);
      _mm256_store_ps(ys, out);
      for (int i = 0; i < 8; ++i)
        if (rest >> i & 1) ys[i] = exp_or_zero(xs[i]);
      out = _mm256_load_ps(ys);
    }
  }
  return out;
}

// Whether exp8 equals this process's expf; decided once.
bool exp8_matches_libm() {
  static const bool ok = x86::exp_matches_libm(
      [](const float* x, float* y) { _mm256_storeu_ps(y, exp8(_mm256_loadu_ps(x))); });
  return ok;
}

// Cache-row elements i..i+15 (or, with the mask, the first m of them, the
// rest zero), widened to f32; bf16 widens exactly.
template <int DT>
inline __m512 load16(const char* row, int i, __mmask16 m = 0xffff) {
  if constexpr (DT == kF32) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// dot()'s accumulation of one query and one key row, before the reduction:
// [s0 | s1] in one register, then s0 + s1. hd is a multiple of 8.
template <int DT>
inline __m256 dot_acc(const float* q, const char* k, int hd) {
  __m512 a = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= hd; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16<DT>(k, i), a);
  if (i < hd)  // dot's last 8-element step goes into s0 only
    a = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(0xff, q + i), load16<DT>(k, i, 0xff), a, 0xff);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
  return _mm256_add_ps(_mm512_castps512_ps256(a), hi);
}

// Scores of G <= 8 queries against rows [0, n): sc[j * 8 + g] = scale *
// dot(q_g, K_j), lanes g >= G zero; returns each lane's max in row order.
template <int DT>
__m256 scores(const float* q, int64_t q_stride, int G, const char* K, int64_t kstride, int n,
              int hd, float scale, float* sc) {
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 mx = _mm256_set1_ps(-__builtin_inff());
  __m256 acc[kLanes];
  for (int g = 0; g < kLanes; ++g) acc[g] = _mm256_setzero_ps();
  for (int j = 0; j < n; ++j) {
    const char* k = K + j * kstride;
    for (int g = 0; g < G; ++g) acc[g] = dot_acc<DT>(q + g * q_stride, k, hd);
    const __m256 s = _mm256_mul_ps(hsum8(acc), vscale);
    _mm256_storeu_ps(sc + int64_t(j) * kLanes, s);
    // max(s, mx) is `mx < s ? s : mx`, the scalar loop's step, NaN and
    // signed zeros included.
    mx = _mm256_max_ps(s, mx);
  }
  return mx;
}

// The same with the key row's blocks held in registers across the queries
// (hd = 16 * NB, no 8-element tail).
template <int DT, int NB>
__m256 scores_nb(const float* q, int64_t q_stride, int G, const char* K, int64_t kstride, int n,
                 float scale, float* sc) {
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 mx = _mm256_set1_ps(-__builtin_inff());
  __m256 acc[kLanes];
  for (int g = 0; g < kLanes; ++g) acc[g] = _mm256_setzero_ps();
  for (int j = 0; j < n; ++j) {
    const char* k = K + j * kstride;
    __m512 kv[NB];
    for (int b = 0; b < NB; ++b) kv[b] = load16<DT>(k, 16 * b);
    for (int g = 0; g < G; ++g) {
      const float* qg = q + g * q_stride;
      __m512 a = _mm512_setzero_ps();
      for (int b = 0; b < NB; ++b) a = _mm512_fmadd_ps(_mm512_loadu_ps(qg + 16 * b), kv[b], a);
      const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
      acc[g] = _mm256_add_ps(_mm512_castps512_ps256(a), hi);
    }
    const __m256 s = _mm256_mul_ps(hsum8(acc), vscale);
    _mm256_storeu_ps(sc + int64_t(j) * kLanes, s);
    mx = _mm256_max_ps(s, mx);
  }
  return mx;
}

// out_g[d0 .. d0 + 16 * W) = sum over rows j of p[j * 8 + g] * V_j[...],
// for GN queries from g0, accumulated in row order from zero. The last of
// the W blocks takes only the elements in `last` (a partial 8-block).
template <int DT, int GN, int W>
void values(const float* p, int g0, int n, const char* V, int64_t vstride, int d0, __mmask16 last,
            float* out, int64_t out_stride) {
  __m512 acc[GN][W];
  for (int g = 0; g < GN; ++g)
    for (int w = 0; w < W; ++w) acc[g][w] = _mm512_setzero_ps();
  for (int j = 0; j < n; ++j) {
    const char* vr = V + j * vstride;
    __m512 v[W];
    for (int w = 0; w < W; ++w) v[w] = load16<DT>(vr, d0 + 16 * w, w == W - 1 ? last : 0xffff);
    const float* pj = p + int64_t(j) * kLanes + g0;
    for (int g = 0; g < GN; ++g) {
      const __m512 pg = _mm512_set1_ps(pj[g]);
      for (int w = 0; w < W; ++w) acc[g][w] = _mm512_fmadd_ps(pg, v[w], acc[g][w]);
    }
  }
  for (int g = 0; g < GN; ++g) {
    float* o = out + (g0 + g) * out_stride + d0;
    for (int w = 0; w < W; ++w)
      _mm512_mask_storeu_ps(o + 16 * w, w == W - 1 ? last : 0xffff, acc[g][w]);
  }
}

template <int DT, int W>
void values_gn(int gn, const float* p, int g0, int n, const char* V, int64_t vstride, int d0,
               __mmask16 last, float* out, int64_t out_stride) {
  switch (gn) {
    case 1:
      return values<DT, 1, W>(p, g0, n, V, vstride, d0, last, out, out_stride);
    case 2:
      return values<DT, 2, W>(p, g0, n, V, vstride, d0, last, out, out_stride);
    case 3:
      return values<DT, 3, W>(p, g0, n, V, vstride, d0, last, out, out_stride);
    case 4:
      return values<DT, 4, W>(p, g0, n, V, vstride, d0, last, out, out_stride);
    case 5:
      return values<DT, 5, W>(p, g0, n, V, vstride, d0, last, out, out_stride);
    default:
      return values<DT, 6, W>(p, g0, n, V, vstride, d0, last, out, out_stride);
  }
}

// Up to 8 queries of one group: scores, softmax, values. sc: 8 * n floats.
template <int DT>
void attend8(const float* q, int64_t q_stride, int G, const char* K, const char* V, int64_t ld,
             int n, int hd, float scale, float* out, int64_t out_stride, float* sc) {
  const int64_t stride = ld * (DT == kF32 ? 4 : 2);
  __m256 mx;
  if (hd == 64)
    mx = scores_nb<DT, 4>(q, q_stride, G, K, stride, n, scale, sc);
  else if (hd == 128)
    mx = scores_nb<DT, 8>(q, q_stride, G, K, stride, n, scale, sc);
  else
    mx = scores<DT>(q, q_stride, G, K, stride, n, hd, scale, sc);

  // exp(s - max) and the sum in double, per lane in row order (the exps of
  // later rows overlap the serial sum).
  __m512d sum = _mm512_setzero_pd();
  const bool vexp = exp8_matches_libm();
  for (int64_t i = 0; i < int64_t(n) * kLanes; i += kLanes) {
    __m256 e = _mm256_sub_ps(_mm256_loadu_ps(sc + i), mx);
    if (vexp) {
      e = exp8(e);
    } else {
      alignas(32) float t[kLanes];
      _mm256_store_ps(t, e);
      for (float& v : t) v = exp_or_zero(v);
      e = _mm256_load_ps(t);
    }
    _mm256_storeu_ps(sc + i, e);
    sum = _mm512_add_pd(sum, _mm512_cvtps_pd(e));
  }
  // inv = float(1 / sum) per lane; the weights scaled once for the value pass.
  const __m256 inv = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0), sum));
  for (int64_t i = 0; i < int64_t(n) * kLanes; i += kLanes)
    _mm256_storeu_ps(sc + i, _mm256_mul_ps(_mm256_loadu_ps(sc + i), inv));

  // Values: blocks of 64 output elements (then 16, then a last 8) for up to
  // six queries at a time, the group split into near-equal parts.
  const int parts = (G + 5) / 6;
  for (int part = 0, g0 = 0; part < parts; ++part) {
    const int gn = (G - g0) / (parts - part);
    int d = 0;
    for (; d + 64 <= hd; d += 64)
      values_gn<DT, 4>(gn, sc, g0, n, V, stride, d, 0xffff, out, out_stride);
    for (; d + 16 <= hd; d += 16)
      values_gn<DT, 1>(gn, sc, g0, n, V, stride, d, 0xffff, out, out_stride);
    if (d < hd) values_gn<DT, 1>(gn, sc, g0, n, V, stride, d, 0xff, out, out_stride);
    g0 += gn;
  }
}

template <int DT>
void attend_impl(const float* q, int64_t q_stride, int G, const void* K, const void* V, int64_t ld,
                 int n, int hd, float scale, float* out, int64_t out_stride, float* sc) {
  // Queries are independent: groups larger than 8 go 8 at a time.
  for (int g0 = 0; g0 < G; g0 += kLanes)
    attend8<DT>(q + g0 * q_stride, q_stride, G - g0 < kLanes ? G - g0 : kLanes,
                static_cast<const char*>(K), static_cast<const char*>(V), ld, n, hd, scale,
                out + g0 * out_stride, out_stride, sc);
}

}  // namespace

bool exp_vector_ok() {
  return exp8_matches_libm();
}

void exp_n(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = exp_or_zero(x[i]);
}

void attend(const float* q, int64_t q_stride, int G, const void* K, const void* V, bool kv_bf16,
            int64_t ld, int n, int hd, float scale, float* out, int64_t out_stride, float* sc) {
  if (kv_bf16)
    attend_impl<kBF16>(q, q_stride, G, K, V, ld, n, hd, scale, out, out_stride, sc);
  else
    attend_impl<kF32>(q, q_stride, G, K, V, ld, n, hd, scale, out, out_stride, sc);
}

}  // namespace rv::engine::kern::avx512
