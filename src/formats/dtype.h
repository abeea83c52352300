// Element types of tensors on disk and exact conversions between them.
//
// Only F32, F16 and BF16 take part in arithmetic; the other safetensors
// dtypes are recognised so files holding them can be read and copied as
// opaque bytes. All conversions to narrower floats round to nearest, ties to
// even, keep Inf, and keep NaN a NaN (quieted) — the same bits PyTorch
// produces. Conversion functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace rv {

enum class DType : uint8_t { F32, F16, BF16, F64, I8, I16, I32, I64, U8, U16, U32, U64, BOOL };

size_t dtype_size(DType t);             // bytes per element
std::string_view dtype_name(DType t);   // safetensors spelling: "F32", "BF16", ...
std::optional<DType> parse_dtype(std::string_view s);  // safetensors spelling
bool is_float_dtype(DType t);           // F32, F16 or BF16: usable in arithmetic
// Lower-case user spelling ("f32", "bf16", "f16"), also accepting torch's
// "float32", "bfloat16", "float16". Returns nullopt otherwise.
std::optional<DType> parse_user_dtype(std::string_view s);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even; overflow correctly becomes Inf
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Bulk conversions between a float dtype's bytes and f32. `src`/`dst` need
// no particular alignment. REQUIRES: is_float_dtype(t).
void to_f32(DType t, const void* src, float* dst, size_t n);
void from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace rv
