// Fused element-wise kernels for the common dtype combinations of extract
// and apply (internal). They read the mapped inputs once and write the
// output directly, instead of widening each operand into an f32 buffer, and
// give bit for bit the result of the generic path: widen to f32, one f32
// operation per term in the same order, round once with from_f32. (Where
// both operands are NaN, either NaN may come out, as in any x86 code that
// lets the compiler order a commutative add.)
//
// Each returns false, touching nothing, when it has no fast path for the
// dtypes or the CPU; the caller then runs the generic path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/dtype.h"

namespace rv::vec::detail {

// Whether fused_diff / fused_axpy have a fast path for these dtypes on this
// CPU (then they never return false for them).
bool has_fused(DType x, DType y, DType out);

// out[i] = b[i] - a[i] for n elements; *nonfinite += NaN/Inf results.
// Fast path: a, b bf16 or f32; out bf16 or f32.
bool fused_diff(DType at, const uint8_t* a, DType bt, const uint8_t* b, DType ot, uint8_t* out,
                size_t n, uint64_t* nonfinite);

// out[i] = t[i] + alpha * v[i] (product rounded to f32, then the sum).
// Fast path: t, v bf16 or f32; out bf16 or f32.
bool fused_axpy(DType tt, const uint8_t* t, float alpha, DType vt, const uint8_t* v, DType ot,
                uint8_t* out, size_t n, uint64_t* nonfinite);

}  // namespace rv::vec::detail
