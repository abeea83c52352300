#include "formats/dtype.h"

#include <cpuid.h>
#include <immintrin.h>

#include <cmath>

#include "formats/bf16_avx2.h"

namespace rv {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

namespace {
struct Name {
  DType t;
  std::string_view s;
};
constexpr Name kNames[] = {{DType::F32, "F32"},   {DType::F16, "F16"}, {DType::BF16, "BF16"},
                           {DType::F64, "F64"},   {DType::I8, "I8"},   {DType::I16, "I16"},
                           {DType::I32, "I32"},   {DType::I64, "I64"}, {DType::U8, "U8"},
                           {DType::U16, "U16"},   {DType::U32, "U32"}, {DType::U64, "U64"},
                           {DType::BOOL, "BOOL"}};
}  // namespace

std::string_view dtype_name(DType t) {
  for (auto& n : kNames)
    if (n.t == t) return n.s;
  return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
  for (auto& n : kNames)
    if (n.s == s) return n.t;
  return std::nullopt;
}

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

std::optional<DType> parse_user_dtype(std::string_view s) {
  if (s == "f32" || s == "float32" || s == "F32") return DType::F32;
  if (s == "f16" || s == "float16" || s == "F16") return DType::F16;
  if (s == "bf16" || s == "bfloat16" || s == "BF16") return DType::BF16;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // Inf / NaN (payload kept)
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: value = man * 2^-24, exact in f32
    float f = std::ldexp(static_cast<float>(man), -24);
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((a >> 13) & 0x3ff);  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: Inf
  if (a >= 0x38800000u) {                       // normal f16 range
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u) - (112u << 23);
    return sign | static_cast<uint16_t>(r >> 13);
  }
  // Subnormal or zero: scale so the f16 subnormal unit (2^-24) becomes 1 and
  // let the FPU's round-to-nearest-even do the rest.
  float v;
  std::memcpy(&v, &a, 4);
  float scaled = v * 16777216.0f;  // exact: power of two, no overflow here
  uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
  return sign | static_cast<uint16_t>(m);
}

namespace {

__attribute__((target("avx2,f16c"))) void f16_to_f32_f16c(const uint16_t* s, float* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  for (; i < n; ++i) d[i] = f16_to_f32(s[i]);
}

__attribute__((target("avx2,f16c"))) void f32_to_f16_f16c(const float* s, uint16_t* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) d[i] = f32_to_f16(s[i]);
}

__attribute__((target("avx2"))) void bf16_to_f32_avx2(const uint8_t* s, float* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, simd::bf16x8_to_f32(s + 2 * i));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    d[i] = bf16_to_f32(h);
  }
}

__attribute__((target("avx2"))) void f32_to_bf16_avx2(const float* s, uint8_t* d, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    simd::store_bf16x16(d + 2 * i, _mm256_loadu_ps(s + i), _mm256_loadu_ps(s + i + 8));
  for (; i < n; ++i) {
    uint16_t h = f32_to_bf16(s[i]);
    std::memcpy(d + 2 * i, &h, 2);
  }
}

bool has_avx2() {
  static const bool v = __builtin_cpu_supports("avx2");
  return v;
}

bool has_f16c() {
  // cpuid directly: clang's __builtin_cpu_supports does not know "f16c".
  static const bool v = [] {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && __builtin_cpu_supports("avx2");
  }();
  return v;
}

}  // namespace

void to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      if (has_avx2()) return bf16_to_f32_avx2(s, dst, n);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    }
    case DType::F16:
      if (has_f16c() && reinterpret_cast<uintptr_t>(src) % 2 == 0) {
        f16_to_f32_f16c(static_cast<const uint16_t*>(src), dst, n);
      } else {
        const uint8_t* s = static_cast<const uint8_t*>(src);
        for (size_t i = 0; i < n; ++i) {
          uint16_t h;
          std::memcpy(&h, s + 2 * i, 2);
          dst[i] = f16_to_f32(h);
        }
      }
      return;
    default:
      return;
  }
}

void from_f32(DType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      uint8_t* d = static_cast<uint8_t*>(dst);
      if (has_avx2()) return f32_to_bf16_avx2(src, d, n);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    }
    case DType::F16:
      if (has_f16c() && reinterpret_cast<uintptr_t>(dst) % 2 == 0) {
        f32_to_f16_f16c(src, static_cast<uint16_t*>(dst), n);
      } else {
        uint8_t* d = static_cast<uint8_t*>(dst);
        for (size_t i = 0; i < n; ++i) {
          uint16_t h = f32_to_f16(src[i]);
          std::memcpy(d + 2 * i, &h, 2);
        }
      }
      return;
    default:
      return;
  }
}

}  // namespace rv
