// AVX2 building blocks for bf16 <-> f32, shared by the bulk conversions and
// the fused vector kernels (internal; callers check for AVX2 at run time).
// Results are bit for bit those of bf16_to_f32 / f32_to_bf16 in dtype.h.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace rv::simd {

// Eight bf16 (16 unaligned bytes) -> eight f32: bf16 is the top half of an f32.
__attribute__((target("avx2"))) inline __m256 bf16x8_to_f32(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Eight f32 -> eight bf16 in the low halves of 32-bit lanes, rounded to
// nearest even, NaN quieted.
__attribute__((target("avx2"))) inline __m256i f32x8_to_bf16_lanes(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  // Both sides are non-negative as int32, so the signed compare is exact.
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(rounded, quiet, nan);
}

// Sixteen f32 (lo then hi) -> sixteen bf16 stored to 32 unaligned bytes.
__attribute__((target("avx2"))) inline void store_bf16x16(uint8_t* p, __m256 lo, __m256 hi) {
  // packus works per 128-bit lane; the permute puts the quarters back in order.
  const __m256i packed = _mm256_packus_epi32(f32x8_to_bf16_lanes(lo), f32x8_to_bf16_lanes(hi));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permute4x64_epi64(packed, 0xd8));
}

// How many of the eight lanes hold NaN or Inf.
__attribute__((target("avx2,popcnt"))) inline unsigned count_nonfinite8(__m256 x) {
  const __m256i e = _mm256_set1_epi32(0x7f800000);
  const __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(x), e), e);
  return static_cast<unsigned>(__builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(m))));
}

}  // namespace rv::simd
