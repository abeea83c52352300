// Numeric kernels of the engine: weight-times-activations products for
// bf16 / f16 / f32 weights used in place (no conversion copy), and the small
// f32 vector helpers attention needs.
//
// Three implementations exist: portable scalar C++, AVX2+FMA+F16C
// (kernels_avx2.cpp) and AVX-512 BF16 (kernels_avx512bf16.cpp), each file
// compiled with its own flags. At startup the best one the CPU supports is
// chosen, so the binary works on any x86-64.
//
// Scalar and AVX2 compute with the weights and activations exactly as given
// (f32 products). The AVX-512 BF16 one differs for BF16 weights only: it
// rounds the activations to bf16 (nearest-even) and multiplies bf16 x bf16
// pairs with vdpbf16ps, accumulating in f32, as llama.cpp does. That moves
// each product by up to 2^-8 relative (8 significant bits), so logits differ
// slightly from the other ISAs'. It is therefore picked by default only where the CPU has it
// and the environment variable RV_ISA does not say otherwise: RV_ISA=avx2 or
// RV_ISA=scalar at startup forces that ISA (bench/kernel_isa_check checks
// all of them against a double-precision reference).
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

enum class Isa { kScalar, kAvx2, kAvx512Bf16 };

// The instruction set the kernels use now. Defaults to the best the CPU
// supports, or to $RV_ISA ("scalar", "avx2", "avx512bf16") when set at the
// first call (an unknown or unsupported value throws rv::Error). set_isa
// lets tests and benchmarks compare them; setting an ISA the CPU lacks
// throws rv::Error.
Isa isa();
void set_isa(Isa isa);
bool cpu_has_avx2();        // AVX2 + FMA + F16C
bool cpu_has_avx512bf16();  // AVX-512 F + BW + VL + BF16 (and AVX2: its fallbacks use it)
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);

// Y[t * ldy + n] = sum_k X[t * ldx + k] * W[n][k] for t in [0, T), n in
// [n0, n1). K = W.cols. Reads each weight row block once for all T tokens.
void matmul_rows(const float* X, int64_t ldx, int T, const WeightView& W, int64_t n0, int64_t n1,
                 float* Y, int64_t ldy);

float dot(const float* a, const float* b, int n);
void axpy(float a, const float* x, float* y, int n);  // y += a * x
// The same with `b` / `x` a row of bf16 values (a bf16 KV cache), widened
// to f32 exactly: results equal dot / axpy on the widened row.
float dot_bf16(const float* a, const uint16_t* b, int n);
void axpy_bf16(float a, const uint16_t* x, float* y, int n);
// Attention of G query heads that share one cached K/V head, each query
// against the same n cached rows: for g < G,
//   out[g * out_stride + d] = sum_j softmax_j(scale * q_g . K_j) * V_j[d],
// where q_g = q + g * q_stride (hd floats), K_j = K + j * ld elements and
// V_j likewise (f32 rows, or bf16 rows when kv_bf16). The result is exactly
// that of the per-row composition: s_j = dot(q_g, K_j) * scale, the max in
// row order, e_j = expf(s_j - max), the sum of e_j in double, inv =
// float(1 / sum), then axpy(e_j * inv, V_j) into zeros in row order.
// `scratch` holds max(G, 8) * n floats.
void attend(const float* q, int64_t q_stride, int G, const void* K, const void* V, bool kv_bf16,
            int64_t ld, int n, int hd, float scale, float* out, int64_t out_stride, float* scratch);
// attend() for B <= kAttendMaxTokens consecutive tokens of one sequence
// (prefill): token b's G queries start at q + b * q_tok (heads q_stride
// apart), it sees rows [0, n0 + b), and its output starts at out + b *
// out_tok. The result is exactly that of attend() per token; it is faster
// because each cached row is read once for the whole block. `scratch`
// holds max(G, 8) * B * (n0 + B - 1) floats.
constexpr int kAttendMaxTokens = 2;
void attend_tokens(const float* q, int64_t q_tok, int64_t q_stride, int G, int B, const void* K,
                   const void* V, bool kv_bf16, int64_t ld, int n0, int hd, float scale, float* out,
                   int64_t out_tok, int64_t out_stride, float* scratch);
// out[i] = gate[i] / (1 + expf(-gate[i])) * up[i] (SwiGLU), in exactly
// those float operations; out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
// Converts n elements of weight row `row` to f32.
void row_to_f32(const WeightView& W, int64_t row, float* out);

// Entry points of the AVX2 translation unit (do not call directly).
namespace avx2 {
void matmul_rows(const float* X, int64_t ldx, int T, const void* w, int dtype, int64_t K,
                 int64_t n0, int64_t n1, float* Y, int64_t ldy);
float dot(const float* a, const float* b, int n);
void axpy(float a, const float* x, float* y, int n);
float dot_bf16(const float* a, const uint16_t* b, int n);
void axpy_bf16(float a, const uint16_t* x, float* y, int n);
void attend(const float* q, int64_t q_stride, int G, const void* K, const void* V, bool kv_bf16,
            int64_t ld, int n, int hd, float scale, float* out, int64_t out_stride, float* sc);
// attend's vectorised expf: whether it matched this process's expf (checked
// once; attend uses it only then), and y[i] = that exp of x[i] (for tests).
bool exp_vector_ok();
void exp_n(const float* x, float* y, int64_t n);
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
}  // namespace avx2

// Entry point of the AVX-512 attention translation unit (AVX-512 F/BW/VL;
// chosen with the AVX-512 BF16 ISA): attend_tokens for hd % 8 == 0, bit for
// bit avx2::attend per token. `sc` holds 8 * B * (n0 + B - 1) floats.
namespace avx512 {
void attend_tokens(const float* q, int64_t q_tok, int64_t q_stride, int G, int B, const void* K,
                   const void* V, bool kv_bf16, int64_t ld, int n0, int hd, float scale, float* out,
                   int64_t out_tok, int64_t out_stride, float* sc);
// Its expf, as avx2's: whether it matched this process's expf, and y = exp(x).
bool exp_vector_ok();
void exp_n(const float* x, float* y, int64_t n);
}  // namespace avx512

// Entry point of the AVX-512 BF16 translation unit: BF16 weights only; the
// dispatcher sends other dtypes and dot/axpy to avx2::. `xb` is scratch for
// T * round_up(K, 32) bf16 activations.
namespace avx512bf16 {
void matmul_rows_bf16(const float* X, int64_t ldx, int T, const void* w, int64_t K, int64_t n0,
                      int64_t n1, float* Y, int64_t ldy, uint16_t* xb);
}  // namespace avx512bf16

}  // namespace rv::engine::kern
