// Every test suite compares against f32 / double references with tolerances
// meant for f32 arithmetic. On a CPU with AVX-512 BF16 the engine's default
// ISA rounds activations to bf16 for bf16 weights, which those tolerances do
// not cover. So, unless RV_ISA is already set, the test binaries set
// RV_ISA=avx2 on such CPUs before main(): the engine in this process and every
// CLI or server process a test spawns (they inherit the environment) run the
// f32 kernels. Tests of the AVX-512 BF16 path select it themselves
// (model_test's ForwardVsReference, kv_bf16_test), and bench/kernel_isa_check
// checks its numerics against a reference.
#include <cstdio>
#include <cstdlib>

namespace {

bool pin_avx2() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const char* env = std::getenv("RV_ISA");
  if ((env && *env) || !__builtin_cpu_supports("avx512bf16")) return false;
  setenv("RV_ISA", "avx2", 0);
  std::fprintf(stderr, "note: tests run the avx2 kernels (RV_ISA unset on an AVX-512 BF16 CPU)\n");
  return true;
#else
  return false;
#endif
}

[[maybe_unused]] const bool kPinned = pin_avx2();

}  // namespace
