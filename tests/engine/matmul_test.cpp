// kern::matmul_rows for many tokens against the same call one token at a
// time, bit for bit, under every ISA this CPU has and for every weight dtype
// it takes. The one-token (decode) path computes each output in a single
// pass over K; the many-token (prefill) path tiles tokens and weight rows,
// chunks the tokens and, for long rows, splits K into blocks with partial
// sums kept between them. None of that may change a single bit: every
// output must be the same sequence of operations either way. Shapes cover
// K below, at and above the split (2048), with and without a 32-element
// tail, token counts around the 4-token tiles, and weight-row counts around
// the 4-row tiles.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/kernels.h"
#include "formats/dtype.h"
#include "isa_guard.h"
#include "support/llamacpp_oracle.h"  // rv_test::sanitizer_run

namespace rv::engine {
namespace {

TEST(MatmulRows, ManyTokensEqualOneTokenAtATime) {
  enginetest::IsaGuard restore;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  const bool quick = rv_test::sanitizer_run();
  const std::vector<int64_t> ks = quick
                                      ? std::vector<int64_t>{45, 2048, 4131}
                                      : std::vector<int64_t>{45, 896, 2048, 2049, 4131, 4864, 6160};
  for (kern::Isa isa : {kern::Isa::kScalar, kern::Isa::kAvx2, kern::Isa::kAvx512Bf16}) {
    if (!kern::isa_supported(isa)) continue;
    kern::set_isa(isa);
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      for (int64_t K : ks) {
        const int64_t N = 11;
        for (int T : {2, 5, 8, 13}) {
          std::vector<float> X(size_t(T) * K), Y(size_t(T) * N), y(N);
          for (float& x : X) x = nd(rng);
          std::vector<uint16_t> w16(size_t(N) * K);
          std::vector<float> w32(size_t(N) * K);
          for (size_t i = 0; i < w32.size(); ++i) {
            w32[i] = nd(rng) * 0.05f;
            w16[i] = dt == DType::BF16 ? f32_to_bf16(w32[i]) : f32_to_f16(w32[i]);
          }
          kern::WeightView W;
          W.data = dt == DType::F32 ? static_cast<const void*>(w32.data()) : w16.data();
          W.dtype = dt;
          W.rows = N;
          W.cols = K;
          kern::matmul_rows(X.data(), K, T, W, 0, N, Y.data(), N);
          for (int t = 0; t < T; ++t) {
            kern::matmul_rows(X.data() + size_t(t) * K, K, 1, W, 0, N, y.data(), N);
            ASSERT_EQ(std::memcmp(y.data(), Y.data() + size_t(t) * N, N * sizeof(float)), 0)
                << kern::isa_name(isa) << " dtype " << int(dt) << " K " << K << " T " << T
                << " token " << t;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace rv::engine
