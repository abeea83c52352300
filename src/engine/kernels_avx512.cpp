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

using x86::hsum8;
using x86::kExp2f;

constexpr int kF32 = 0, kBF16 = 2;

// Queries per register of scores: the lanes of one __m256.
constexpr int kLanes = 8;
// Most tokens attend_tokens takes at once (kernels.h).
constexpr int kMaxTokens = kAttendMaxTokens;

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
  return x86::exp_mend_special(x, _mm512_cvtpd_ps(_mm512_mul_pd(y, sc)));
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

// A block of B consecutive tokens of one sequence: token b sees rows
// [0, n0 + b). Its G <= 8 queries are lanes [8b, 8b + G) of each row of
// scores, sc[(j * B + b) * 8 + g]; lanes past G hold zeros.
struct Block {
  const float* q;  // query g of token b: q + b * q_tok + g * q_stride
  int64_t q_tok, q_stride;
  float* out;  // likewise with out_tok, out_stride
  int64_t out_tok, out_stride;
  int G, B, n0, hd;
  float scale;
};

// Scores and each lane's max in row order (max(s, mx) is `mx < s ? s :
// mx`, the scalar loop's step, NaN and signed zeros included). NB > 0: hd
// = 16 * NB, the key row's blocks held in registers across the queries;
// GC > 0: G = GC, so the group's sums stay in registers.
template <int DT, int NB, int GC>
void scores(const Block& k, const char* K, int64_t kstride, float* sc, __m256* mx) {
  const int G = GC > 0 ? GC : k.G;
  const __m256 vscale = _mm256_set1_ps(k.scale);
  __m256 acc[kLanes];
  for (int g = 0; g < kLanes; ++g) acc[g] = _mm256_setzero_ps();
  for (int b = 0; b < k.B; ++b) mx[b] = _mm256_set1_ps(-__builtin_inff());
  const int n_max = k.n0 + k.B - 1;
  for (int j = 0; j < n_max; ++j) {
    const char* kr = K + j * kstride;
    [[maybe_unused]] __m512 kv[NB > 0 ? NB : 1];
    if constexpr (NB > 0)
#pragma GCC unroll 8
      for (int i = 0; i < NB; ++i) kv[i] = load16<DT>(kr, 16 * i);
    const int b0 = j < k.n0 ? 0 : j - k.n0 + 1;  // tokens that see row j
    for (int b = b0; b < k.B; ++b) {
      const float* qb = k.q + b * k.q_tok;
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        const float* qg = qb + g * k.q_stride;
        if constexpr (NB > 0) {
          __m512 a = _mm512_setzero_ps();
#pragma GCC unroll 8
          for (int i = 0; i < NB; ++i) a = _mm512_fmadd_ps(_mm512_loadu_ps(qg + 16 * i), kv[i], a);
          const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
          acc[g] = _mm256_add_ps(_mm512_castps512_ps256(a), hi);
        } else {
          acc[g] = dot_acc<DT>(qg, kr, k.hd);
        }
      }
      const __m256 sv = _mm256_mul_ps(hsum8(acc), vscale);
      _mm256_storeu_ps(sc + (int64_t(j) * k.B + b) * kLanes, sv);
      mx[b] = _mm256_max_ps(sv, mx[b]);
    }
  }
}

// scores<DT, NB, G> for a runtime G in [1, N].
template <int DT, int NB, int N>
void scores_g(const Block& k, const char* K, int64_t kstride, float* sc, __m256* mx) {
  if (k.G == N) return scores<DT, NB, N>(k, K, kstride, sc, mx);
  if constexpr (N > 1) scores_g<DT, NB, N - 1>(k, K, kstride, sc, mx);
}

// The queries of one value pass: NQ consecutive (token, head) pairs of the
// block, query q's weight for row j at p[j * prow + q], its rows [0,
// rows[q]) and its output row out[q].
struct Queries {
  const float* p;
  int64_t prow;
  int rows[kLanes * kMaxTokens];
  float* out[kLanes * kMaxTokens];
};

// out_q[d0 .. d0 + 16 * W) = sum over rows j < rows_q of p_q[j] * V_j[...],
// accumulated in row order from zero (axpy's one fused multiply-add per
// element and row). Rows below n_all are summed by every query, the rest
// up to n_max by those that see them. The last of the W blocks takes only
// the elements in `last`.
template <int DT, int NQ, int W>
void values(const Queries& qs, int n_all, int n_max, const char* V, int64_t vstride, int d0,
            __mmask16 last) {
  __m512 acc[NQ][W];
#pragma GCC unroll 32
  for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) acc[q][w] = _mm512_setzero_ps();
  const float* pj = qs.p;
  for (int j = 0; j < n_max; ++j, pj += qs.prow) {
    const char* vr = V + j * vstride;
    __m512 v[W];
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) v[w] = load16<DT>(vr, d0 + 16 * w, w == W - 1 ? last : 0xffff);
    const bool all = j < n_all;
#pragma GCC unroll 32
    for (int q = 0; q < NQ; ++q) {
      if (!all && j >= qs.rows[q]) continue;
      const __m512 pq = _mm512_set1_ps(pj[q]);
#pragma GCC unroll 4
      for (int w = 0; w < W; ++w) acc[q][w] = _mm512_fmadd_ps(pq, v[w], acc[q][w]);
    }
  }
#pragma GCC unroll 32
  for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w)
      _mm512_mask_storeu_ps(qs.out[q] + d0 + 16 * w, w == W - 1 ? last : 0xffff, acc[q][w]);
}

// values<DT, nq, W> for a runtime nq in [1, N].
template <int DT, int W, int N>
void values_n(int nq, const Queries& qs, int n_all, int n_max, const char* V, int64_t vstride,
              int d0, __mmask16 last) {
  if (nq == N) return values<DT, N, W>(qs, n_all, n_max, V, vstride, d0, last);
  if constexpr (N > 1) values_n<DT, W, N - 1>(nq, qs, n_all, n_max, V, vstride, d0, last);
}

// Most accumulators a value pass keeps in registers (of 32), and so the
// most queries of a 16-element pass: no more than a block has.
constexpr int kMaxAcc = 28;
constexpr int kMaxPass = kMaxAcc < kLanes * kMaxTokens ? kMaxAcc : kLanes * kMaxTokens;

template <int DT>
void attend_block(const Block& k, const char* K, const char* V, int64_t ld, float* sc) {
  const int64_t stride = ld * (DT == kF32 ? 4 : 2);
  __m256 mx[kMaxTokens];
  if (k.hd == 64)
    scores_g<DT, 4, kLanes>(k, K, stride, sc, mx);
  else if (k.hd == 128)
    scores_g<DT, 8, kLanes>(k, K, stride, sc, mx);
  else
    scores<DT, 0, 0>(k, K, stride, sc, mx);

  // exp(s - max) and the sum in double, per lane in row order; the tokens'
  // independent chains interleave, and the exps of later rows overlap them.
  // (Loops over b run to the constant kMaxTokens so the sums stay in
  // registers.)
  const bool vexp = exp8_matches_libm();
  __m512d sum[kMaxTokens];
#pragma GCC unroll 4
  for (int b = 0; b < kMaxTokens; ++b) sum[b] = _mm512_setzero_pd();
  const int n_max = k.n0 + k.B - 1;
  const int64_t srow = int64_t(k.B) * kLanes;
  for (int j = 0; j < n_max; ++j) {
    const int b0 = j < k.n0 ? 0 : j - k.n0 + 1;  // tokens that see row j
    float* s = sc + j * srow;
#pragma GCC unroll 4
    for (int b = 0; b < kMaxTokens; ++b) {
      if (b < b0 || b >= k.B) continue;
      __m256 e = _mm256_sub_ps(_mm256_loadu_ps(s + b * kLanes), mx[b]);
      e = x86::exp8_or_scalar(
          vexp, [](__m256 v) { return exp8(v); }, e);
      _mm256_storeu_ps(s + b * kLanes, e);
      sum[b] = _mm512_add_pd(sum[b], _mm512_cvtps_pd(e));
    }
  }
  // inv = float(1 / sum) per lane; the weights scaled once and packed for
  // the value pass, row j's G * B weights at sc + j * prow in (token, head)
  // order. Packing in place is safe: row j's packed weights end before row
  // j + 1 starts, and all of row j is loaded before any of it is stored.
  __m256 inv[kMaxTokens];
#pragma GCC unroll 4
  for (int b = 0; b < kMaxTokens; ++b)
    inv[b] = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0), sum[b]));
  const int64_t prow = int64_t(k.B - 1) * k.G + kLanes;
  for (int j = 0; j < n_max; ++j) {
    const int b0 = j < k.n0 ? 0 : j - k.n0 + 1;
    const float* s = sc + j * srow;
    __m256 w[kMaxTokens];
#pragma GCC unroll 4
    for (int b = 0; b < kMaxTokens; ++b)
      if (b >= b0 && b < k.B) w[b] = _mm256_mul_ps(_mm256_loadu_ps(s + b * kLanes), inv[b]);
#pragma GCC unroll 4
    for (int b = 0; b < kMaxTokens; ++b)
      if (b >= b0 && b < k.B) _mm256_storeu_ps(sc + j * prow + b * k.G, w[b]);
  }

  // Values: every (token, query) of the block in as few passes as the
  // registers allow: 64 output elements at a time for up to 7 queries,
  // else 16 at a time for up to kMaxPass, the queries split evenly.
  const int nq = k.G * k.B;
  const bool wide = nq <= kMaxAcc / 4;
  const int parts = wide ? 1 : (nq + kMaxPass - 1) / kMaxPass;
  for (int part = 0, q0 = 0; part < parts; ++part) {
    const int cnt = (nq - q0) / (parts - part);
    Queries qs;
    qs.p = sc + q0;
    qs.prow = prow;
    for (int i = 0; i < cnt; ++i) {
      const int b = (q0 + i) / k.G, g = (q0 + i) % k.G;
      qs.rows[i] = k.n0 + b;
      qs.out[i] = k.out + b * k.out_tok + g * k.out_stride;
    }
    int d = 0;
    if (wide)
      for (; d + 64 <= k.hd; d += 64)
        values_n<DT, 4, kMaxAcc / 4>(cnt, qs, k.n0, n_max, V, stride, d, 0xffff);
    for (; d + 16 <= k.hd; d += 16)
      values_n<DT, 1, kMaxPass>(cnt, qs, k.n0, n_max, V, stride, d, 0xffff);
    if (d < k.hd) values_n<DT, 1, kMaxPass>(cnt, qs, k.n0, n_max, V, stride, d, 0xff);
    q0 += cnt;
  }
}

template <int DT>
void attend_impl(Block k, const void* K, const void* V, int64_t ld, float* sc) {
  // Queries are independent: groups larger than 8 go 8 at a time.
  const int G = k.G;
  for (int g0 = 0; g0 < G; g0 += kLanes) {
    Block c = k;
    c.q += g0 * k.q_stride;
    c.out += g0 * k.out_stride;
    c.G = G - g0 < kLanes ? G - g0 : kLanes;
    attend_block<DT>(c, static_cast<const char*>(K), static_cast<const char*>(V), ld, sc);
  }
}

}  // namespace

bool exp_vector_ok() {
  return exp8_matches_libm();
}

void exp_n(const float* x, float* y, int64_t n) {
  x86::exp_n_with([](__m256 v) { return exp8(v); }, x, y, n);
}

void attend_tokens(const float* q, int64_t q_tok, int64_t q_stride, int G, int B, const void* K,
                   const void* V, bool kv_bf16, int64_t ld, int n0, int hd, float scale, float* out,
                   int64_t out_tok, int64_t out_stride, float* sc) {
  const Block k{q, q_tok, q_stride, out, out_tok, out_stride, G, B, n0, hd, scale};
  if (kv_bf16)
    attend_impl<kBF16>(k, K, V, ld, sc);
  else
    attend_impl<kF32>(k, K, V, ld, sc);
}

}  // namespace rv::engine::kern::avx512
