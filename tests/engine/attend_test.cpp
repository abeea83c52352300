// kern::attend against its contract, bit for bit: per query, scores by
// kern::dot (or dot_bf16) times scale, the row-order max, std::exp, the sum in
// double, and kern::axpy (or axpy_bf16) of the weights into zeros, under
// every ISA this CPU has. Shapes cover head sizes with and without a
// 16-element tail, key counts around the 8-key blocks, GQA group sizes
// around the 6-query register blocks, and scores far enough apart that
// expf underflows to zero.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "engine/kernels.h"
#include "formats/dtype.h"
#include "isa_guard.h"

namespace rv::engine {
namespace {

std::vector<float> reference(const std::vector<float>& q, int G, int hd, const void* K,
                             const void* V, bool bf16, int64_t ld, int n, float scale) {
  std::vector<float> out(size_t(G) * hd), sc(n);
  for (int g = 0; g < G; ++g) {
    const float* qg = q.data() + size_t(g) * hd;
    float mx = -INFINITY;
    for (int j = 0; j < n; ++j) {
      sc[j] = (bf16 ? kern::dot_bf16(qg, static_cast<const uint16_t*>(K) + j * ld, hd)
                    : kern::dot(qg, static_cast<const float*>(K) + j * ld, hd)) *
              scale;
      mx = std::max(mx, sc[j]);
    }
    double sum = 0;
    for (int j = 0; j < n; ++j) {
      sc[j] = std::exp(sc[j] - mx);
      sum += sc[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    float* o = out.data() + size_t(g) * hd;
    for (int j = 0; j < n; ++j) {
      if (bf16)
        kern::axpy_bf16(sc[j] * inv, static_cast<const uint16_t*>(V) + j * ld, o, hd);
      else
        kern::axpy(sc[j] * inv, static_cast<const float*>(V) + j * ld, o, hd);
    }
  }
  return out;
}

// A random cache of n rows (ld elements apart) in f32 and in bf16.
struct Cache {
  std::vector<float> k32, v32;
  std::vector<uint16_t> k16, v16;
  Cache(int n, int64_t ld, std::mt19937& rng) : k32(size_t(n) * ld), v32(k32.size()) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto& x : k32) x = nd(rng);
    for (auto& x : v32) x = nd(rng);
    for (size_t i = 0; i < k32.size(); ++i) {
      k16.push_back(f32_to_bf16(k32[i]));
      v16.push_back(f32_to_bf16(v32[i]));
    }
  }
  const void* K(bool bf16) const {
    return bf16 ? static_cast<const void*>(k16.data()) : k32.data();
  }
  const void* V(bool bf16) const {
    return bf16 ? static_cast<const void*>(v16.data()) : v32.data();
  }
};

TEST(Attend, BitIdenticalToTheComposition) {
  enginetest::IsaGuard guard;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int checked = 0;
  for (kern::Isa isa : {kern::Isa::kScalar, kern::Isa::kAvx2, kern::Isa::kAvx512Bf16}) {
    if (!kern::isa_supported(isa)) continue;
    kern::set_isa(isa);
    for (int hd : {8, 24, 64, 72, 128})
      for (int G : {1, 3, 6, 7, 8, 9, 12})
        for (int n : {1, 5, 8, 9, 17, 64, 203})
          for (bool bf16 : {false, true})
            for (float spread : {1.0f, 40.0f}) {  // 40: many weights underflow to 0
              const int64_t ld = 2 * hd + 8;      // rows of a 2-KV-head cache, padded
              std::vector<float> q(size_t(G) * hd);
              for (auto& x : q) x = nd(rng) * spread;
              const Cache cache(n, ld, rng);
              const void* K = cache.K(bf16);
              const void* V = cache.V(bf16);
              const float scale = 1.0f / std::sqrt(float(hd));
              const auto want = reference(q, G, hd, K, V, bf16, ld, n, scale);
              // Output rows strided like heads of one token; poison to catch gaps.
              std::vector<float> out(size_t(G) * hd, NAN), scratch(size_t(std::max(G, 8)) * n);
              kern::attend(q.data(), hd, G, K, V, bf16, ld, n, hd, scale, out.data(), hd,
                           scratch.data());
              ASSERT_EQ(0, std::memcmp(out.data(), want.data(), out.size() * sizeof(float)))
                  << kern::isa_name(isa) << " hd=" << hd << " G=" << G << " n=" << n
                  << " bf16=" << bf16 << " spread=" << spread;
              ++checked;
            }
  }
  EXPECT_GE(checked, 980);  // at least the scalar ISA ran every shape
}

// attend_tokens (a prompt's consecutive tokens sharing the cached rows) is
// attend per token, bit for bit, under every ISA: blocks of every size,
// token and head rows strided with padding, groups above 8 queries.
TEST(AttendTokens, BitIdenticalToTheCompositionPerToken) {
  enginetest::IsaGuard guard;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int checked = 0;
  for (kern::Isa isa : {kern::Isa::kScalar, kern::Isa::kAvx2, kern::Isa::kAvx512Bf16}) {
    if (!kern::isa_supported(isa)) continue;
    kern::set_isa(isa);
    for (int hd : {24, 64, 72, 128})
      for (int G : {1, 5, 7, 8, 12})
        for (int B = 1; B <= kern::kAttendMaxTokens; ++B)
          for (int n0 : {1, 6, 9, 70})
            for (bool bf16 : {false, true}) {
              const int n = n0 + B - 1;
              const int64_t ld = 2 * hd + 8;
              const int64_t q_tok = int64_t(G) * hd + 5, o_tok = int64_t(G) * hd + 3;
              std::vector<float> q(size_t(B) * q_tok);
              for (auto& x : q) x = nd(rng) * 3.0f;
              const Cache cache(n, ld, rng);
              const void* K = cache.K(bf16);
              const void* V = cache.V(bf16);
              const float scale = 1.0f / std::sqrt(float(hd));
              std::vector<float> out(size_t(B) * o_tok, NAN),
                  scratch(size_t(std::max(G, 8)) * B * n);
              kern::attend_tokens(q.data(), q_tok, hd, G, B, K, V, bf16, ld, n0, hd, scale,
                                  out.data(), o_tok, hd, scratch.data());
              for (int b = 0; b < B; ++b) {
                std::vector<float> qb(q.begin() + b * q_tok, q.begin() + b * q_tok + G * hd);
                const auto want = reference(qb, G, hd, K, V, bf16, ld, n0 + b, scale);
                ASSERT_EQ(0, std::memcmp(out.data() + b * o_tok, want.data(),
                                         want.size() * sizeof(float)))
                    << kern::isa_name(isa) << " hd=" << hd << " G=" << G << " B=" << B
                    << " n0=" << n0 << " token " << b << " bf16=" << bf16;
                // The padding between tokens' rows is left alone.
                for (int64_t i = int64_t(G) * hd; i < o_tok; ++i)
                  ASSERT_TRUE(std::isnan(out[b * o_tok + i]));
              }
              ++checked;
            }
  }
  EXPECT_GE(checked, 160 * kern::kAttendMaxTokens);  // the scalar ISA ran every shape
}

}  // namespace
}  // namespace rv::engine

namespace rv::engine {
namespace {

// attend's vectorised expf against the expf this process links, for every
// float from -0 down past expf's underflow threshold (softmax's inputs are
// <= 0) and a stride through the positive range; the sanitizer build takes
// a stride through both.
TEST(Attend, VectorExpEqualsLibmExpf) {
  if (!kern::cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  struct Impl {
    const char* name;
    bool (*ok)();
    void (*exp_n)(const float*, float*, int64_t);
  };
  std::vector<Impl> impls = {{"avx2", kern::avx2::exp_vector_ok, kern::avx2::exp_n}};
  if (kern::cpu_has_avx512bf16())
    impls.push_back({"avx512", kern::avx512::exp_vector_ok, kern::avx512::exp_n});
  const bool quick = std::getenv("RV_SANITIZER_RUN") != nullptr;
  const uint32_t neg_end = 0xC2D00000u;  // -104: below it expf is +0
  const uint32_t step_neg = quick ? 4099 : 1, step_pos = quick ? 4099 : 97;
  for (const Impl& impl : impls) {
    SCOPED_TRACE(impl.name);
    ASSERT_TRUE(impl.ok());
    std::vector<float> x, y;
    x.reserve(1 << 16);
    uint64_t mismatches = 0, checked = 0;
    auto flush = [&] {
      y.resize(x.size());
      impl.exp_n(x.data(), y.data(), static_cast<int64_t>(x.size()));
      for (size_t i = 0; i < x.size(); ++i) {
        const float w = std::exp(x[i]);
        if (std::memcmp(&w, &y[i], 4) != 0 && mismatches++ < 5)
          ADD_FAILURE() << "exp(" << x[i] << "): libm " << w << ", vector " << y[i];
      }
      checked += x.size();
      x.clear();
    };
    auto add = [&](uint32_t bits) {
      float f;
      std::memcpy(&f, &bits, 4);
      x.push_back(f);
      if (x.size() == (1u << 16)) flush();
    };
    for (uint64_t b = 0x80000000u; b <= neg_end; b += step_neg) add(static_cast<uint32_t>(b));
    for (uint64_t b = 0; b <= 0x42B20000u; b += step_pos) add(static_cast<uint32_t>(b));
    // Inf, -Inf, NaN, each side of the underflow bounds, far below them.
    for (uint32_t b : {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xC2CFF1B4u, 0xC2CE8ECFu, 0xC2CFF1B5u,
                       0xC2CE8ED0u, 0xC3000000u, 0xC47A0000u, 0x42B17218u, 0x42B17217u})
      add(b);
    flush();
    EXPECT_EQ(mismatches, 0u) << "of " << checked;
  }
}

}  // namespace
}  // namespace rv::engine

namespace rv::engine {
namespace {

// kern::silu_mul is SwiGLU's gate in exactly gate / (1 + exp(-gate)) * up,
// under every ISA, for gates across expf's whole range (both underflow
// and overflow of exp(-gate)), lengths around the 8-wide blocks.
TEST(SiluMul, BitIdenticalToTheFormula) {
  enginetest::IsaGuard guard;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (kern::Isa isa : {kern::Isa::kScalar, kern::Isa::kAvx2, kern::Isa::kAvx512Bf16}) {
    if (!kern::isa_supported(isa)) continue;
    kern::set_isa(isa);
    for (int n : {1, 7, 8, 9, 4099})
      for (float spread : {1.0f, 30.0f, 200.0f}) {
        std::vector<float> g(n), u(n), out(n);
        for (auto& x : g) x = nd(rng) * spread;
        for (auto& x : u) x = nd(rng);
        kern::silu_mul(g.data(), u.data(), out.data(), n);
        for (int i = 0; i < n; ++i) {
          const float want = g[i] / (1.0f + std::exp(-g[i])) * u[i];
          ASSERT_EQ(0, std::memcmp(&want, &out[i], 4))
              << kern::isa_name(isa) << " gate " << g[i] << ": " << want << " vs " << out[i];
        }
      }
  }
}

}  // namespace
}  // namespace rv::engine
