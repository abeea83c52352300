// The fused extract/apply kernels against a plain scalar loop written here:
// widen by the bf16 definition (top half of an f32), one f32 operation,
// round with the scalar f32_to_bf16 (itself checked against the IEEE
// definition in tests/formats). Every dtype pair, unaligned pointers,
// lengths around the 16-wide body and past the prefetch distance, and
// values whose results are NaN, Inf or overflow.
#include "vector/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using rv::DType;

// Element i of an array of dtype t at p, widened to f32.
float decode(DType t, const uint8_t* p, size_t i) {
  uint32_t u;
  if (t == DType::F32) {
    std::memcpy(&u, p + 4 * i, 4);
  } else {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    u = uint32_t(h) << 16;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Output bytes equal element by element, except that any NaN matches any
// NaN: when both operands are NaN, x86 returns the first one, and the
// compiler may order a commutative scalar add either way.
void expect_same_outputs(DType t, const uint8_t* got, const std::vector<uint8_t>& want,
                         const std::string& what) {
  const size_t es = rv::dtype_size(t);
  for (size_t i = 0; i < want.size() / es; ++i) {
    if (std::isnan(decode(t, want.data(), i)))
      ASSERT_TRUE(std::isnan(decode(t, got, i))) << what << " i=" << i;
    else
      ASSERT_EQ(0, std::memcmp(got + i * es, want.data() + i * es, es)) << what << " i=" << i;
  }
}

// n values of dtype t at byte offset 1 (unaligned on purpose).
struct Array {
  DType t;
  std::vector<uint8_t> bytes;
  const uint8_t* data() const { return bytes.data() + 1; }
  float at(size_t i) const { return decode(t, data(), i); }
};

Array random_array(DType t, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  Array a{t, std::vector<uint8_t>(1 + n * rv::dtype_size(t))};
  const float special[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 0.0f, -0.0f, 1e-40f};
  for (size_t i = 0; i < n; ++i) {
    float x = i % 97 == 5 ? special[(i / 97 + seed) % 8] : nd(rng);
    if (t == DType::F32) {
      std::memcpy(a.bytes.data() + 1 + 4 * i, &x, 4);
    } else {
      uint16_t h = rv::f32_to_bf16(x);
      std::memcpy(a.bytes.data() + 1 + 2 * i, &h, 2);
    }
  }
  return a;
}

// Expected output bytes and non-finite count for results r[i].
std::pair<std::vector<uint8_t>, uint64_t> encode(DType t, const std::vector<float>& r) {
  std::vector<uint8_t> out(r.size() * rv::dtype_size(t));
  uint64_t bad = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    bad += !std::isfinite(r[i]);
    if (t == DType::F32) {
      std::memcpy(out.data() + 4 * i, &r[i], 4);
    } else {
      uint16_t h = rv::f32_to_bf16(r[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return {out, bad};
}

bool cpu_has_fast_path() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
}

const DType kTypes[] = {DType::BF16, DType::F32};
const size_t kLengths[] = {0, 1, 15, 16, 17, 33, 1000, 20011};

}  // namespace

TEST(FusedKernels, DiffMatchesScalarLoop) {
  if (!cpu_has_fast_path()) GTEST_SKIP() << "no AVX2: the generic path runs instead";
  for (DType at : kTypes)
    for (DType bt : kTypes)
      for (DType ot : kTypes)
        for (size_t n : kLengths) {
          Array a = random_array(at, n, 1), b = random_array(bt, n, 2);
          std::vector<float> r(n);
          for (size_t i = 0; i < n; ++i) r[i] = b.at(i) - a.at(i);
          auto [want, want_bad] = encode(ot, r);
          std::vector<uint8_t> got(1 + want.size());
          uint64_t bad = 7;  // accumulates
          ASSERT_TRUE(
              rv::vec::detail::fused_diff(at, a.data(), bt, b.data(), ot, got.data() + 1, n, &bad));
          EXPECT_EQ(bad, 7 + want_bad) << n;
          expect_same_outputs(ot, got.data() + 1, want,
                              std::string(rv::dtype_name(at)) + "-" +
                                  std::string(rv::dtype_name(bt)) + "->" +
                                  std::string(rv::dtype_name(ot)) + " n=" + std::to_string(n));
        }
}

TEST(FusedKernels, AxpyMatchesScalarLoopWithTwoRoundings) {
  if (!cpu_has_fast_path()) GTEST_SKIP() << "no AVX2: the generic path runs instead";
  for (float alpha : {1.0f, -1.0f, 0.37f, 0.0f})
    for (DType tt : kTypes)
      for (DType vt : kTypes)
        for (DType ot : kTypes)
          for (size_t n : kLengths) {
            Array t = random_array(tt, n, 3), v = random_array(vt, n, 4);
            std::vector<float> r(n);
            for (size_t i = 0; i < n; ++i) {
              volatile float p = alpha * v.at(i);  // rounded to f32 before the sum
              r[i] = t.at(i) + p;
            }
            auto [want, want_bad] = encode(ot, r);
            std::vector<uint8_t> got(1 + want.size());
            uint64_t bad = 0;
            ASSERT_TRUE(rv::vec::detail::fused_axpy(tt, t.data(), alpha, vt, v.data(), ot,
                                                    got.data() + 1, n, &bad));
            EXPECT_EQ(bad, want_bad) << n;
            expect_same_outputs(ot, got.data() + 1, want,
                                "alpha=" + std::to_string(alpha) + " " +
                                    std::string(rv::dtype_name(tt)) + "+" +
                                    std::string(rv::dtype_name(vt)) + "->" +
                                    std::string(rv::dtype_name(ot)) + " n=" + std::to_string(n));
          }
}

TEST(FusedKernels, DeclineF16SoTheGenericPathRuns) {
  std::vector<uint8_t> a(64), b(64), o(64);
  uint64_t bad = 0;
  EXPECT_FALSE(rv::vec::detail::fused_diff(DType::F16, a.data(), DType::BF16, b.data(), DType::BF16,
                                           o.data(), 16, &bad));
  EXPECT_FALSE(rv::vec::detail::fused_axpy(DType::BF16, a.data(), 1.0f, DType::BF16, b.data(),
                                           DType::F16, o.data(), 16, &bad));
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(o, std::vector<uint8_t>(64));
}
