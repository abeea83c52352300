// AVX-512 BF16 kernel: BF16 weights times activations rounded to bf16, with
// vdpbf16ps (two bf16 products per f32 lane, f32 accumulation). This file is
// compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 and only entered
// after a runtime CPU check (kernels.cpp); like kernels_avx2.cpp it must not
// define or instantiate anything another translation unit could share
// (inline functions, templates from std headers), or the linker could pick
// this file's AVX-512 copy for the whole program. Hence: intrinsics and
// file-local templates only; the caller owns the scratch buffer.
//
// Numerics: activations are rounded to bf16 to nearest, ties to even, bit
// for bit as rv::f32_to_bf16 does (integer arithmetic here, not
// vcvtne2ps2bf16, which flushes denormals). vdpbf16ps itself treats bf16
// denormals as zero and rounds to nearest-even regardless of MXCSR.
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized through their
// _mm512_undefined_*() idiom (GCC bug 105593); the warnings point into the
// header, so silence them for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstddef>
#include <cstdint>

#include "engine/kernels.h"

namespace rv::engine::kern::avx512bf16 {
namespace {

// 16 f32 -> 16 bf16, round to nearest even; NaN stays a (quiet) NaN.
inline __m256i to_bf16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

// Token rows of X -> bf16 rows of Kp (K rounded up to 32) elements, the
// padding zero so the K tail needs no special case.
void convert_rows(const float* X, int64_t ldx, int T, int64_t K, int64_t Kp, uint16_t* xb) {
  for (int t = 0; t < T; ++t) {
    const float* x = X + t * ldx;
    uint16_t* o = xb + t * Kp;
    for (int64_t k = 0; k < Kp; k += 16) {
      const int64_t left = K - k;
      const __mmask16 m = left >= 16  ? static_cast<__mmask16>(0xffff)
                          : left <= 0 ? static_cast<__mmask16>(0)
                                      : static_cast<__mmask16>((1u << left) - 1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + k),
                          to_bf16(_mm512_maskz_loadu_ps(m, x + k)));
    }
  }
}

// Sixteen _mm512_reduce_add_ps at once with GCC's pairing for each input
// (lanes i and i+8, then i and i+4 of those, then 0/2 and 1/3, then 0 and
// 1): input i's sum ends in lane 4 * (i % 4) + i / 4. Stores quarter m of
// that vector to Y + m * ldy + n (four consecutive floats).
inline void reduce16(const __m512* v, float* Y, int64_t ldy, int64_t n) {
  __m512 c[8], d[4], f[2];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k)  // [v2k lanes i + i+8 | v2k+1 lanes i + i+8]
    c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k)  // quarter j: v(4k + j) lanes j + j+4
    d[k] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
  for (int k = 0; k < 2; ++k)  // pairs (0, 2) and (1, 3) within each quarter
    f[k] = _mm512_add_ps(_mm512_shuffle_ps(d[2 * k], d[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(d[2 * k], d[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 g = _mm512_add_ps(_mm512_shuffle_ps(f[0], f[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(f[0], f[1], _MM_SHUFFLE(3, 1, 3, 1)));
  _mm_storeu_ps(Y + n, _mm512_castps512_ps128(g));
  _mm_storeu_ps(Y + ldy + n, _mm512_extractf32x4_ps(g, 1));
  _mm_storeu_ps(Y + 2 * ldy + n, _mm512_extractf32x4_ps(g, 2));
  _mm_storeu_ps(Y + 3 * ldy + n, _mm512_extractf32x4_ps(g, 3));
}

// One register tile: MR tokens x NR weight rows, dot products along K, 32
// elements a step, over the steps in [k0, k1) (k0 and, below K, k1 multiples
// of 32). The accumulators start at zero when k0 == 0, else from `part`
// (MR * NR * 16 floats); when k1 < K they are stored back there, otherwise
// reduced into Y. Splitting K this way keeps every lane's sequence of
// vdpbf16ps exactly that of one pass, so the result is bit-identical. The
// last step loads only the weights that exist (masked, so nothing past the
// row is read); their zeros meet the zero padding of xb.
template <int MR, int NR>
inline void tile(const uint16_t* xb, int64_t Kp, const uint16_t* w, int64_t K, int64_t n, float* Y,
                 int64_t ldy, int64_t k0, int64_t k1, float* part) {
  __m512 acc[MR][NR];
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r)
      acc[m][r] = k0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(part + (m * NR + r) * 16);
  int64_t k = k0;
  for (; k + 32 <= k1; k += 32) {
    __m512i wv[NR];
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) wv[r] = _mm512_loadu_si512(w + (n + r) * K + k);
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      const __m512i x = _mm512_loadu_si512(xb + m * Kp + k);
#pragma GCC unroll 16
      for (int r = 0; r < NR; ++r)
        acc[m][r] = _mm512_dpbf16_ps(acc[m][r], (__m512bh)x, (__m512bh)wv[r]);
    }
  }
  if (k < k1) {
    const __mmask32 mask = static_cast<__mmask32>((1ull << (k1 - k)) - 1);
    __m512i wv[NR];
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) wv[r] = _mm512_maskz_loadu_epi16(mask, w + (n + r) * K + k);
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      const __m512i x = _mm512_loadu_si512(xb + m * Kp + k);
#pragma GCC unroll 16
      for (int r = 0; r < NR; ++r)
        acc[m][r] = _mm512_dpbf16_ps(acc[m][r], (__m512bh)x, (__m512bh)wv[r]);
    }
  }
  if (k1 < K) {
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) _mm512_storeu_ps(part + (m * NR + r) * 16, acc[m][r]);
    return;
  }
  if constexpr (MR == 4 && NR == 4) {
    // All sixteen sums at once, each with _mm512_reduce_add_ps's pairing;
    // input i = 4 r + m lands in lane 4 m + r, so quarter m is row m's four.
    __m512 v[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) v[i] = acc[i % 4][i / 4];
    reduce16(v, Y, ldy, n);
  } else {
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) Y[m * ldy + n + r] = _mm512_reduce_add_ps(acc[m][r]);
  }
}

// Floats of partial accumulators one tile needs (MR, NR <= 4).
constexpr int kPartFloats = 4 * 4 * 16;

// Steps [k0, k1) of NR weight rows against T tokens, in tiles of 4 tokens;
// `part` holds kPartFloats per tile (ceil(T / 4) tiles).
template <int NR>
inline void tokens(const uint16_t* xb, int64_t Kp, int T, const uint16_t* w, int64_t K, int64_t n,
                   float* Y, int64_t ldy, int64_t k0, int64_t k1, float* part) {
  int t = 0;
  for (; t + 4 <= T; t += 4, part += kPartFloats)
    tile<4, NR>(xb + t * Kp, Kp, w, K, n, Y + t * ldy, ldy, k0, k1, part);
  switch (T - t) {
    case 3:
      tile<3, NR>(xb + t * Kp, Kp, w, K, n, Y + t * ldy, ldy, k0, k1, part);
      break;
    case 2:
      tile<2, NR>(xb + t * Kp, Kp, w, K, n, Y + t * ldy, ldy, k0, k1, part);
      break;
    case 1:
      tile<1, NR>(xb + t * Kp, Kp, w, K, n, Y + t * ldy, ldy, k0, k1, part);
      break;
    default:
      break;
  }
}

// K is split into blocks of at most this many elements, so that the block
// of four weight rows (16 KiB of bf16) stays in L1 while a token chunk's
// activations stream past it from L2. Without the split, a long row (the
// down projection: K = 4864 on Qwen2.5-0.5B, 8960 on 1.5B) made the four
// weight rows and four token rows together overflow L1, and the token chunk
// that fits L2 was so short that the weights were re-read from memory for
// every 24 tokens.
constexpr int64_t kMaxBlock = 2048;
// Token chunks hold at most this many tokens (see the partial sums below).
constexpr int64_t kMaxChunk = 128;
// One token (decode) reads rows of at most this many elements one after
// another, so the matrix streams through memory in address order. Eight
// short rows interleaved are eight short streams the hardware prefetchers
// follow poorly (on Zen 5 about half the bandwidth at K = 896, two thirds
// at 1536); from about 8960 on, one row's dependent chain of vdpbf16ps is too
// long for the out-of-order window to overlap the next row's loads, and
// eight rows in flight read faster. bench/matmul_kernels --tokens 1 --cold
// measures both sides.
constexpr int64_t kSequentialMaxK = 6144;

}  // namespace

void matmul_rows_bf16(const float* X, int64_t ldx, int T, const void* w, int64_t K, int64_t n0,
                      int64_t n1, float* Y, int64_t ldy, uint16_t* xb) {
  const int64_t Kp = (K + 31) / 32 * 32;
  convert_rows(X, ldx, T, K, Kp, xb);
  const uint16_t* W = static_cast<const uint16_t*>(w);
  if (T == 1) {  // decode: memory-bound
    int64_t n = n0;
    if (K > kSequentialMaxK)
      for (; n + 8 <= n1; n += 8) tile<1, 8>(xb, Kp, W, K, n, Y, ldy, 0, K, nullptr);
    for (; n < n1; ++n) tile<1, 1>(xb, Kp, W, K, n, Y, ldy, 0, K, nullptr);
    return;
  }
  // Token chunks whose activations (one K block of them) stay in L2 while
  // the weight rows stream.
  const int64_t blocks = (K + kMaxBlock - 1) / kMaxBlock;
  const int64_t kc = blocks == 1 ? Kp : ((K + blocks - 1) / blocks + 31) / 32 * 32;
  int64_t tc = (256 * 1024) / (kc * 2);
  tc = tc < 8 ? 8 : (tc / 4) * 4;
  // Partial sums of the current weight rows for every tile of the chunk
  // between K blocks; kc >= 1024 when K is split, so tc <= kMaxChunk then.
  if (blocks > 1 && tc > kMaxChunk) tc = kMaxChunk;
  alignas(64) float part[kMaxChunk / 4 * kPartFloats];
  for (int64_t t0 = 0; t0 < T; t0 += tc) {
    const int tn = static_cast<int>(T - t0 < tc ? T - t0 : tc);
    const uint16_t* xc = xb + t0 * Kp;
    float* Yc = Y + t0 * ldy;
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4)
      for (int64_t k0 = 0; k0 < K; k0 += kc)
        tokens<4>(xc, Kp, tn, W, K, n, Yc, ldy, k0, k0 + kc < K ? k0 + kc : K, part);
    for (; n < n1; ++n)
      for (int64_t k0 = 0; k0 < K; k0 += kc)
        tokens<1>(xc, Kp, tn, W, K, n, Yc, ldy, k0, k0 + kc < K ? k0 + kc : K, part);
  }
}

}  // namespace rv::engine::kern::avx512bf16
