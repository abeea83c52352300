// Conversions are checked against definitions computed independently in
// double precision, over every 16-bit pattern where that is feasible.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "formats/dtype.h"

namespace {

float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Value of a binary16 pattern by the IEEE definition.
double half_value(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(double(m), -24)
             : e == 31 ? (m ? NAN : INFINITY)
                       : std::ldexp(1.0 + m / 1024.0, e - 15);
  return s ? -v : v;
}

// Reference round-to-nearest-even onto a finite grid of candidate patterns:
// choose the closer neighbour; on a tie the one with an even last bit.
template <typename Value>
uint16_t nearest_even(double x, uint16_t lo, uint16_t hi, Value value) {
  double dl = std::fabs(x - value(lo)), dh = std::fabs(value(hi) - x);
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}

}  // namespace

TEST(DType, NamesRoundTrip) {
  for (auto t : {rv::DType::F32, rv::DType::F16, rv::DType::BF16, rv::DType::F64, rv::DType::I32,
                 rv::DType::I64, rv::DType::BOOL, rv::DType::U8}) {
    auto p = rv::parse_dtype(rv::dtype_name(t));
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(*p, t);
  }
  EXPECT_FALSE(rv::parse_dtype("F8_E4M3").has_value());
  EXPECT_EQ(rv::dtype_size(rv::DType::BF16), 2u);
  EXPECT_EQ(rv::dtype_size(rv::DType::I64), 8u);
}

TEST(DType, Bf16AllPatternsRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = rv::bf16_to_f32(uint16_t(h));
    EXPECT_EQ(f32_bits(f), h << 16);
    if (std::isnan(f)) EXPECT_TRUE(std::isnan(rv::bf16_to_f32(rv::f32_to_bf16(f))));
    else ASSERT_EQ(rv::f32_to_bf16(f), h) << h;
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  std::mt19937 rng(7);
  auto bval = [](uint16_t h) { return double(rv::bf16_to_f32(h)); };
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = rng();
    float f = bits_f32(u);
    if (!std::isfinite(f)) continue;
    uint16_t got = rv::f32_to_bf16(f);
    // Truncation and the next pattern away from zero bracket the value.
    uint16_t lo = uint16_t(u >> 16), hi = uint16_t(lo + 1);
    if ((lo & 0x7fff) == 0x7f7f) continue;  // next pattern is Inf: covered below
    ASSERT_EQ(got, nearest_even(double(f), lo, hi, bval)) << std::hexfloat << f;
  }
  // Exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7.
  EXPECT_EQ(rv::f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(rv::f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(rv::f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(rv::f32_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(rv::f32_to_bf16(3.4e38f), 0x7f80);  // rounds up past the largest finite bf16
  EXPECT_TRUE(std::isnan(rv::bf16_to_f32(rv::f32_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(rv::bf16_to_f32(rv::f32_to_bf16(bits_f32(0x7f800001)))));  // sNaN stays NaN
}

TEST(DType, F16AllPatternsRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = rv::f16_to_f32(uint16_t(h));
    double want = half_value(uint16_t(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(std::isnan(rv::f16_to_f32(rv::f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(double(f), want) << h;
    ASSERT_EQ(rv::f32_to_f16(f), h) << h;
  }
}

TEST(DType, F16RoundsToNearestEvenIncludingSubnormals) {
  auto hval = [](uint16_t h) { return half_value(h); };
  // Every midpoint between adjacent finite halves (exact in f32) and points
  // just either side of it.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    double a = half_value(uint16_t(h)), b = half_value(uint16_t(h + 1));
    float mid = float((a + b) / 2);
    ASSERT_EQ(double(mid), (a + b) / 2);
    ASSERT_EQ(rv::f32_to_f16(mid), nearest_even(mid, uint16_t(h), uint16_t(h + 1), hval)) << h;
    ASSERT_EQ(rv::f32_to_f16(-mid), 0x8000 | nearest_even(mid, uint16_t(h), uint16_t(h + 1), hval));
    float below = std::nextafter(mid, 0.0f), above = std::nextafter(mid, 1e9f);
    ASSERT_EQ(rv::f32_to_f16(below), h) << h;
    ASSERT_EQ(rv::f32_to_f16(above), h + 1) << h;
  }
  EXPECT_EQ(rv::f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(rv::f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(rv::f32_to_f16(65520.0f), 0x7c00);  // the tie above the largest half goes to Inf
  EXPECT_EQ(rv::f32_to_f16(1e-9f), 0x0000);
  EXPECT_EQ(rv::f32_to_f16(-INFINITY), 0xfc00);
}

TEST(DType, BulkConversionsMatchScalar) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 3);
  std::vector<float> src(1037);
  for (auto& x : src) x = nd(rng);
  src[5] = NAN;
  src[6] = INFINITY;
  for (auto t : {rv::DType::F32, rv::DType::F16, rv::DType::BF16}) {
    std::vector<uint8_t> bytes(src.size() * rv::dtype_size(t) + 1);
    // Unaligned destination on purpose: tensor data in files is not aligned.
    rv::from_f32(t, src.data(), bytes.data() + 1, src.size());
    std::vector<float> back(src.size());
    rv::to_f32(t, bytes.data() + 1, back.data(), src.size());
    for (size_t i = 0; i < src.size(); ++i) {
      float want = t == rv::DType::F32   ? src[i]
                   : t == rv::DType::F16 ? rv::f16_to_f32(rv::f32_to_f16(src[i]))
                                         : rv::bf16_to_f32(rv::f32_to_bf16(src[i]));
      if (std::isnan(want)) EXPECT_TRUE(std::isnan(back[i]));
      else ASSERT_EQ(back[i], want) << i;
    }
  }
}

// The bulk bf16 paths are vectorised where the CPU allows; they must give the
// scalar conversions' bits (checked against the IEEE definition above) for
// every sign/exponent/high-mantissa combination with the low halves that
// decide rounding: ties, just above and below them, and NaN payloads.
TEST(DType, BulkBf16IsBitExactOverAllHighHalves) {
  const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x4000, 0xc000};
  std::vector<float> src;
  for (uint32_t hi = 0; hi < 65536; ++hi)
    for (uint32_t lo : lows) src.push_back(bits_f32(hi << 16 | lo));
  std::vector<uint8_t> bytes(src.size() * 2 + 1);
  rv::from_f32(rv::DType::BF16, src.data(), bytes.data() + 1, src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    uint16_t got;
    std::memcpy(&got, bytes.data() + 1 + 2 * i, 2);
    ASSERT_EQ(got, rv::f32_to_bf16(src[i])) << std::hex << f32_bits(src[i]);
  }
  std::vector<float> back(src.size());
  rv::to_f32(rv::DType::BF16, bytes.data() + 1, back.data(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 1 + 2 * i, 2);
    ASSERT_EQ(f32_bits(back[i]), uint32_t(h) << 16) << i;
  }
}
