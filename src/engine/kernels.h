// Numeric kernels of the engine: weight-times-activations products for
// bf16 / f16 / f32 weights used in place (no conversion copy), and the small
// f32 vector helpers attention needs.
//
// Two implementations exist: portable scalar C++ and AVX2+FMA+F16C
// (kernels_avx2.cpp, compiled with those flags). The AVX2 one is chosen at
// startup when the CPU reports all three features; otherwise the scalar one
// runs, so the binary works on any x86-64. There is no AVX-512 path: this
// project's machines could not run it, and untested kernels are not enabled.
//
// All functions are pure and thread-safe; pointers need no alignment.
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/dtype.h"

namespace rv::engine::kern {

// A row-major [rows][cols] weight matrix living in a mapped file.
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;  // F32, F16 or BF16
  int64_t rows = 0, cols = 0;
};

enum class Isa { kScalar, kAvx2 };

// The instruction set the kernels use now. Defaults to the best the CPU
// supports; set_isa lets tests and benchmarks compare both (setting kAvx2 on
// a CPU without it throws rv::Error).
Isa isa();
void set_isa(Isa isa);
bool cpu_has_avx2();
const char* isa_name(Isa isa);

// Y[t * ldy + n] = sum_k X[t * ldx + k] * W[n][k] for t in [0, T), n in
// [n0, n1). K = W.cols. Reads each weight row block once for all T tokens.
void matmul_rows(const float* X, int64_t ldx, int T, const WeightView& W, int64_t n0, int64_t n1,
                 float* Y, int64_t ldy);

float dot(const float* a, const float* b, int n);
void axpy(float a, const float* x, float* y, int n);  // y += a * x
// Converts n elements of weight row `row` to f32.
void row_to_f32(const WeightView& W, int64_t row, float* out);

// Entry points of the AVX2 translation unit (do not call directly).
namespace avx2 {
void matmul_rows(const float* X, int64_t ldx, int T, const void* w, int dtype, int64_t K,
                 int64_t n0, int64_t n1, float* Y, int64_t ldy);
float dot(const float* a, const float* b, int n);
void axpy(float a, const float* x, float* y, int n);
}  // namespace avx2

}  // namespace rv::engine::kern
