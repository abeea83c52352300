#include "train/model_core.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "engine/thread_pool.h"

namespace rv::train {

std::vector<ParamSet::Entry> param_layout(const ModelShape& s) {
  std::vector<ParamSet::Entry> out;
  size_t off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    out.push_back({name, std::move(shape), off, n});
    off += n;
  };
  const int64_t H = s.hidden, QD = int64_t(s.heads) * s.head_dim(),
                KVD = int64_t(s.kv_heads) * s.head_dim(), I = s.intermediate;
  add("model.embed_tokens.weight", {s.vocab, H});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H});
    add(p + "self_attn.q_proj.weight", {QD, H});
    add(p + "self_attn.q_proj.bias", {QD});
    add(p + "self_attn.k_proj.weight", {KVD, H});
    add(p + "self_attn.k_proj.bias", {KVD});
    add(p + "self_attn.v_proj.weight", {KVD, H});
    add(p + "self_attn.v_proj.bias", {KVD});
    add(p + "self_attn.o_proj.weight", {H, QD});
    add(p + "post_attention_layernorm.weight", {H});
    add(p + "mlp.gate_proj.weight", {I, H});
    add(p + "mlp.up_proj.weight", {I, H});
    add(p + "mlp.down_proj.weight", {H, I});
  }
  add("model.norm.weight", {H});
  if (!s.tied) add("lm_head.weight", {s.vocab, H});
  return out;
}

namespace {

// C[M][N] = alpha * op(A) * op(B) + beta * C, row-major.
void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
          const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Y[N][out] = X[N][in] * W[out][in]^T (+ bias).
template <class R>
void linear(const R* X, int N, int in, const R* W, int out, const R* bias, R* Y) {
  gemm(false, true, N, out, in, R(1), X, in, W, in, R(0), Y, out);
  if (bias)
    for (int t = 0; t < N; ++t)
      for (int o = 0; o < out; ++o) Y[size_t(t) * out + o] += bias[o];
}

// Backward of linear(): dX (+)= dY * W (beta 0: overwrite, 1: add), dW +=
// dY^T * X, dbias += column sums of dY.
template <class R>
void linear_back(const R* X, int N, int in, const R* W, int out, const R* dY, R* dX, R beta, R* dW,
                 R* dbias) {
  gemm(false, false, N, in, out, R(1), dY, out, W, in, beta, dX, in);
  gemm(true, false, out, in, N, R(1), dY, out, X, in, R(1), dW, in);
  if (dbias)
    for (int t = 0; t < N; ++t)
      for (int o = 0; o < out; ++o) dbias[o] += dY[size_t(t) * out + o];
}

// Per row: r = 1/sqrt(mean(x²) + eps) (sum of squares in double, as the
// engine), y = x * r * w.
template <class R>
void rms_forward(const R* x, int N, int n, const R* w, double eps, R* y, R* r) {
  for (int t = 0; t < N; ++t) {
    const R* xr = x + size_t(t) * n;
    R* yr = y + size_t(t) * n;
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const R rr = static_cast<R>(1.0 / std::sqrt(ss / n + eps));
    r[t] = rr;
    for (int i = 0; i < n; ++i) yr[i] = xr[i] * rr * w[i];
  }
}

// dx += dL/dx and dw += dL/dw of rms_forward given dy:
// dx_k = r·w_k·dy_k − x_k·r³/n·Σ_i dy_i·w_i·x_i, dw_i = Σ_t dy_i·x_i·r.
template <class R>
void rms_backward(const R* x, const R* r, int N, int n, const R* w, const R* dy, R* dx, R* dw) {
  for (int t = 0; t < N; ++t) {
    const R* xr = x + size_t(t) * n;
    const R* dyr = dy + size_t(t) * n;
    R* dxr = dx + size_t(t) * n;
    const R rr = r[t];
    double dot = 0;
    for (int i = 0; i < n; ++i) {
      dot += static_cast<double>(dyr[i]) * w[i] * xr[i];
      dw[i] += dyr[i] * xr[i] * rr;
    }
    const R c = static_cast<R>(dot * rr * rr * rr / n);
    for (int i = 0; i < n; ++i) dxr[i] += rr * w[i] * dyr[i] - xr[i] * c;
  }
}

// HF rotate_half RoPE on one head (pairs i, i + d/2), and its transpose.
template <class R>
void rope(R* x, int d, const R* cs, const R* sn) {
  const int h = d / 2;
  for (int i = 0; i < h; ++i) {
    const R a = x[i], b = x[i + h];
    x[i] = a * cs[i] - b * sn[i];
    x[i + h] = b * cs[i] + a * sn[i];
  }
}
template <class R>
void rope_back(R* dx, int d, const R* cs, const R* sn) {
  const int h = d / 2;
  for (int i = 0; i < h; ++i) {
    const R da = dx[i], db = dx[i + h];
    dx[i] = da * cs[i] + db * sn[i];
    dx[i + h] = db * cs[i] - da * sn[i];
  }
}

}  // namespace

template <class R>
Decoder<R>::Decoder(const ModelShape& s, int threads)
    : s_(s), threads_(threads), pool_(std::make_unique<engine::ThreadPool>(threads)) {
  s_.validate("train");
  threads_ = pool_->size();
  const auto lay = param_layout(s_);
  size_t i = 0;
  embed_ = lay[i++].offset;
  for (int l = 0; l < s_.layers; ++l) {
    LayerOff o{};
    o.in_norm = lay[i++].offset;
    o.qw = lay[i++].offset;
    o.qb = lay[i++].offset;
    o.kw = lay[i++].offset;
    o.kb = lay[i++].offset;
    o.vw = lay[i++].offset;
    o.vb = lay[i++].offset;
    o.ow = lay[i++].offset;
    o.post_norm = lay[i++].offset;
    o.gate = lay[i++].offset;
    o.up = lay[i++].offset;
    o.down = lay[i++].offset;
    off_.push_back(o);
  }
  final_norm_ = lay[i++].offset;
  head_ = s_.tied ? embed_ : lay[i++].offset;
  acts_.resize(size_t(s_.layers));
}

template <class R>
Decoder<R>::~Decoder() = default;

// Causal, segment-masked attention of every (row, query head) as two small
// matrix products per task: S = scale·Q Kᵀ over the whole row (T x T, the
// masked half included: a product is still cheaper than T² short dot
// products), the masked softmax in place (P, kept for backward; masked and
// padding entries 0), then att = P V.
template <class R>
void Decoder<R>::attention_forward(LayerAct& A) {
  const int T = batch_.T, HD = s_.head_dim(), QD = s_.heads * HD, KVD = s_.kv_heads * HD;
  const int group = s_.heads / s_.kv_heads;
  const R scale = static_cast<R>(1.0 / std::sqrt(static_cast<double>(HD)));
  const int32_t* seg = batch_.seg.data();
  // The tasks run concurrently, each product single-threaded.
  openblas_set_num_threads(1);
  pool_->for_range(int64_t(batch_.rows) * s_.heads, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int row = int(task / s_.heads), h = int(task % s_.heads), kvh = h / group;
      const size_t r0 = size_t(row) * T;
      R* P = &A.prob[size_t(task) * T * T];
      gemm(false, true, T, T, HD, scale, &A.q[r0 * QD + size_t(h) * HD], QD,
           &A.k[r0 * KVD + size_t(kvh) * HD], KVD, R(0), P, T);
      for (int i = 0; i < T; ++i) {
        R* Pi = P + size_t(i) * T;
        const int32_t si = seg[r0 + i];
        R mx = -INFINITY;
        for (int j = 0; j <= i; ++j)
          if (si >= 0 && seg[r0 + j] == si) mx = std::max(mx, Pi[j]);
        double sum = 0;
        for (int j = 0; j < T; ++j) {
          if (si >= 0 && j <= i && seg[r0 + j] == si) {
            Pi[j] = std::exp(Pi[j] - mx);
            sum += Pi[j];
          } else {
            Pi[j] = 0;
          }
        }
        if (sum > 0) {
          const R inv = static_cast<R>(1.0 / sum);
          for (int j = 0; j <= i; ++j) Pi[j] *= inv;
        }
      }
      gemm(false, false, T, HD, T, R(1), P, T, &A.v[r0 * KVD + size_t(kvh) * HD], KVD, R(0),
           &A.att[r0 * QD + size_t(h) * HD], QD);
    }
  });
  openblas_set_num_threads(threads_);
}

// dq (overwritten), dk and dv (overwritten) of the post-RoPE q/k and v from
// datt, one task per (row, kv head) so the group's heads add into dk/dv
// without races: dP = dO Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP))·scale,
// dQ = dS K, dK = Σ_group dSᵀ Q, dV = Σ_group Pᵀ dO.
template <class R>
void Decoder<R>::attention_backward(const LayerAct& A, const R* datt, R* dq, R* dk, R* dv) {
  const int T = batch_.T, HD = s_.head_dim(), QD = s_.heads * HD, KVD = s_.kv_heads * HD;
  const int group = s_.heads / s_.kv_heads;
  const R scale = static_cast<R>(1.0 / std::sqrt(static_cast<double>(HD)));
  openblas_set_num_threads(1);
  pool_->for_range(int64_t(batch_.rows) * s_.kv_heads, 1, [&](int64_t b, int64_t e) {
    std::vector<R> dS(static_cast<size_t>(T) * T);
    for (int64_t task = b; task < e; ++task) {
      const int row = int(task / s_.kv_heads), kvh = int(task % s_.kv_heads);
      const size_t r0 = size_t(row) * T;
      const R* K = &A.k[r0 * KVD + size_t(kvh) * HD];
      const R* Vh = &A.v[r0 * KVD + size_t(kvh) * HD];
      R* dK = &dk[r0 * KVD + size_t(kvh) * HD];
      R* dV = &dv[r0 * KVD + size_t(kvh) * HD];
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        const R* P = &A.prob[(size_t(row) * s_.heads + h) * T * T];
        const R* dO = &datt[r0 * QD + size_t(h) * HD];
        const R* Q = &A.q[r0 * QD + size_t(h) * HD];
        const R beta = h == kvh * group ? R(0) : R(1);
        gemm(false, true, T, T, HD, R(1), dO, QD, Vh, KVD, R(0), dS.data(), T);
        for (int i = 0; i < T; ++i) {
          const R* Pi = P + size_t(i) * T;
          R* d = &dS[size_t(i) * T];
          double sum = 0;
          for (int j = 0; j <= i; ++j) sum += static_cast<double>(Pi[j]) * d[j];
          for (int j = 0; j <= i; ++j) d[j] = Pi[j] * (d[j] - static_cast<R>(sum)) * scale;
          std::fill(d + i + 1, d + T, R(0));
        }
        gemm(false, false, T, HD, T, R(1), dS.data(), T, K, KVD, R(0),
             &dq[r0 * QD + size_t(h) * HD], QD);
        gemm(true, false, T, HD, T, R(1), dS.data(), T, Q, QD, beta, dK, KVD);
        gemm(true, false, T, HD, T, R(1), P, T, dO, QD, beta, dV, KVD);
      }
    }
  });
  openblas_set_num_threads(threads_);
}

template <class R>
const std::vector<R>& Decoder<R>::forward(const R* p, const Batch& b) {
  const size_t N = size_t(b.rows) * size_t(b.T);
  if (b.rows < 1 || b.T < 1)
    throw Error("train: forward: batch needs rows >= 1 and T >= 1 (got " + std::to_string(b.rows) +
                " x " + std::to_string(b.T) + ")");
  if (b.tokens.size() != N || b.pos.size() != N || b.seg.size() != N)
    throw Error("train: forward: batch tokens/pos/seg must have rows*T = " + std::to_string(N) +
                " entries");
  for (size_t t = 0; t < N; ++t) {
    if (b.tokens[t] < 0 || b.tokens[t] >= s_.vocab)
      throw Error("train: forward: token id " + std::to_string(b.tokens[t]) +
                  " outside the vocabulary (" + std::to_string(s_.vocab) + ")");
    if (b.pos[t] < 0 || b.pos[t] >= s_.max_position)
      throw Error("train: forward: position " + std::to_string(b.pos[t]) +
                  " outside [0, max_position " + std::to_string(s_.max_position) + ")");
    if (b.seg[t] < -1) throw Error("train: forward: segment ids must be >= -1");
  }
  openblas_set_num_threads(threads_);
  batch_ = b;
  const int n = int(N), H = s_.hidden, HD = s_.head_dim(), half = HD / 2;
  const int QD = s_.heads * HD, KVD = s_.kv_heads * HD, I = s_.intermediate, V = s_.vocab;

  // RoPE tables: angle = pos * theta^(-2i/head_dim), in double as the engine.
  cos_.resize(N * half);
  sin_.resize(N * half);
  for (size_t t = 0; t < N; ++t)
    for (int i = 0; i < half; ++i) {
      const double a = b.pos[t] * (1.0 / std::pow(s_.rope_theta, 2.0 * i / HD));
      cos_[t * half + i] = static_cast<R>(std::cos(a));
      sin_[t * half + i] = static_cast<R>(std::sin(a));
    }

  std::vector<R>& x = x_;
  std::vector<R>& tmp = tmp_;
  x.resize(N * H);
  tmp.resize(N * H);
  for (size_t t = 0; t < N; ++t)
    std::memcpy(&x[t * H], p + embed_ + size_t(b.tokens[t]) * H, sizeof(R) * H);

  for (int l = 0; l < s_.layers; ++l) {
    const LayerOff& o = off_[size_t(l)];
    LayerAct& A = acts_[size_t(l)];
    A.x_in = x;
    A.r1.resize(N);
    A.xn1.resize(N * H);
    rms_forward(x.data(), n, H, p + o.in_norm, s_.rms_eps, A.xn1.data(), A.r1.data());
    A.q.resize(N * QD);
    A.k.resize(N * KVD);
    A.v.resize(N * KVD);
    linear(A.xn1.data(), n, H, p + o.qw, QD, p + o.qb, A.q.data());
    linear(A.xn1.data(), n, H, p + o.kw, KVD, p + o.kb, A.k.data());
    linear(A.xn1.data(), n, H, p + o.vw, KVD, p + o.vb, A.v.data());
    for (size_t t = 0; t < N; ++t) {
      for (int h = 0; h < s_.heads; ++h)
        rope(&A.q[t * QD + size_t(h) * HD], HD, &cos_[t * half], &sin_[t * half]);
      for (int h = 0; h < s_.kv_heads; ++h)
        rope(&A.k[t * KVD + size_t(h) * HD], HD, &cos_[t * half], &sin_[t * half]);
    }
    A.prob.resize(size_t(b.rows) * s_.heads * b.T * b.T);
    A.att.resize(N * QD);
    attention_forward(A);
    linear(A.att.data(), n, QD, p + o.ow, H, static_cast<const R*>(nullptr), tmp.data());
    for (size_t i = 0; i < N * H; ++i) x[i] += tmp[i];
    A.x_mid = x;

    A.r2.resize(N);
    A.xn2.resize(N * H);
    rms_forward(x.data(), n, H, p + o.post_norm, s_.rms_eps, A.xn2.data(), A.r2.data());
    A.gate.resize(N * I);
    A.up.resize(N * I);
    A.act.resize(N * I);
    linear(A.xn2.data(), n, H, p + o.gate, I, static_cast<const R*>(nullptr), A.gate.data());
    linear(A.xn2.data(), n, H, p + o.up, I, static_cast<const R*>(nullptr), A.up.data());
    for (size_t i = 0; i < N * I; ++i) {
      const R g = A.gate[i];
      A.act[i] = g / (R(1) + std::exp(-g)) * A.up[i];
    }
    linear(A.act.data(), n, I, p + o.down, H, static_cast<const R*>(nullptr), tmp.data());
    for (size_t i = 0; i < N * H; ++i) x[i] += tmp[i];
  }

  x_final_ = x;
  rf_.resize(N);
  xnf_.resize(N * H);
  rms_forward(x.data(), n, H, p + final_norm_, s_.rms_eps, xnf_.data(), rf_.data());
  logits_.resize(N * V);
  linear(xnf_.data(), n, H, p + head_, V, static_cast<const R*>(nullptr), logits_.data());
  return logits_;
}

template <class R>
void Decoder<R>::backward(const R* p, R* g, const R* dlogits) {
  const size_t N = size_t(batch_.rows) * size_t(batch_.T);
  if (N == 0 || logits_.size() != N * size_t(s_.vocab))
    throw Error("train: backward: no forward() to differentiate");
  openblas_set_num_threads(threads_);
  const int n = int(N), H = s_.hidden, HD = s_.head_dim(), half = HD / 2;
  const int QD = s_.heads * HD, KVD = s_.kv_heads * HD, I = s_.intermediate, V = s_.vocab;

  // Scratch kept across steps: fresh multi-megabyte vectors every step cost
  // as much in page faults and zeroing as the attention itself.
  std::vector<R>& dx = dx_;
  std::vector<R>& dxn = dxn_;
  dx.assign(N * H, R(0));
  dxn.resize(N * H);
  // LM head (for tied weights this adds into the embedding's gradient).
  linear_back(xnf_.data(), n, H, p + head_, V, dlogits, dxn.data(), R(0), g + head_,
              static_cast<R*>(nullptr));
  rms_backward(x_final_.data(), rf_.data(), n, H, p + final_norm_, dxn.data(), dx.data(),
               g + final_norm_);

  std::vector<R>&dact = dact_, &dgate = dgate_, &dup = dup_, &datt = datt_, &dq = dq_, &dk = dk_,
  &dv = dv_;
  dact.resize(N * I);
  dgate.resize(N * I);
  dup.resize(N * I);
  datt.resize(N * QD);
  dq.resize(N * QD);
  dk.resize(N * KVD);
  dv.resize(N * KVD);
  for (int l = s_.layers - 1; l >= 0; --l) {
    const LayerOff& o = off_[size_t(l)];
    const LayerAct& A = acts_[size_t(l)];
    // MLP block: x_out = x_mid + down(silu(gate(xn2)) * up(xn2)).
    linear_back(A.act.data(), n, I, p + o.down, H, dx.data(), dact.data(), R(0), g + o.down,
                static_cast<R*>(nullptr));
    for (size_t i = 0; i < N * I; ++i) {
      const R gv = A.gate[i];
      const R sg = R(1) / (R(1) + std::exp(-gv));
      dup[i] = dact[i] * gv * sg;
      dgate[i] = dact[i] * A.up[i] * (sg + gv * sg * (R(1) - sg));
    }
    linear_back(A.xn2.data(), n, H, p + o.gate, I, dgate.data(), dxn.data(), R(0), g + o.gate,
                static_cast<R*>(nullptr));
    linear_back(A.xn2.data(), n, H, p + o.up, I, dup.data(), dxn.data(), R(1), g + o.up,
                static_cast<R*>(nullptr));
    rms_backward(A.x_mid.data(), A.r2.data(), n, H, p + o.post_norm, dxn.data(), dx.data(),
                 g + o.post_norm);

    // Attention block: x_mid = x_in + o_proj(attention(rope(q), rope(k), v)).
    linear_back(A.att.data(), n, QD, p + o.ow, H, dx.data(), datt.data(), R(0), g + o.ow,
                static_cast<R*>(nullptr));
    attention_backward(A, datt.data(), dq.data(), dk.data(), dv.data());
    for (size_t t = 0; t < N; ++t) {
      for (int h = 0; h < s_.heads; ++h)
        rope_back(&dq[t * QD + size_t(h) * HD], HD, &cos_[t * half], &sin_[t * half]);
      for (int h = 0; h < s_.kv_heads; ++h)
        rope_back(&dk[t * KVD + size_t(h) * HD], HD, &cos_[t * half], &sin_[t * half]);
    }
    linear_back(A.xn1.data(), n, H, p + o.qw, QD, dq.data(), dxn.data(), R(0), g + o.qw, g + o.qb);
    linear_back(A.xn1.data(), n, H, p + o.kw, KVD, dk.data(), dxn.data(), R(1), g + o.kw, g + o.kb);
    linear_back(A.xn1.data(), n, H, p + o.vw, KVD, dv.data(), dxn.data(), R(1), g + o.vw, g + o.vb);
    rms_backward(A.x_in.data(), A.r1.data(), n, H, p + o.in_norm, dxn.data(), dx.data(),
                 g + o.in_norm);
  }
  // Embedding gather: scatter-add, in token order (deterministic).
  for (size_t t = 0; t < N; ++t) {
    R* ge = g + embed_ + size_t(batch_.tokens[t]) * H;
    for (int i = 0; i < H; ++i) ge[i] += dx[t * H + i];
  }
}

template class Decoder<float>;
template class Decoder<double>;

}  // namespace rv::train
