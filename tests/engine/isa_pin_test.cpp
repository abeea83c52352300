// The engine suites compare against f32 / double references with tolerances
// meant for f32 arithmetic. On a CPU with AVX-512 BF16 the default ISA
// rounds activations to bf16 for bf16 weights, which those tolerances do not
// cover; so unless RV_ISA asks for an ISA explicitly, the suites run on
// AVX2 there. Tests of the AVX-512 BF16 path select it themselves
// (model_test's ForwardVsReference, kv_bf16_test), and
// bench/kernel_isa_check checks its numerics against a reference.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "engine/kernels.h"

namespace {

class PinIsa : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* env = std::getenv("RV_ISA");
    if ((!env || !*env) && rv::engine::kern::isa() == rv::engine::kern::Isa::kAvx512Bf16) {
      rv::engine::kern::set_isa(rv::engine::kern::Isa::kAvx2);
      std::fprintf(stderr, "note: engine tests use the avx2 kernels (RV_ISA unset)\n");
    }
  }
};

const auto* const kPin = ::testing::AddGlobalTestEnvironment(new PinIsa);

}  // namespace
