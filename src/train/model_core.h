// The arithmetic behind TrainModel, templated on the scalar type: float for
// training, double for the finite-difference gradient check in the tests
// (the same code run in f64, so central differences are accurate enough to
// check every op of the hand-written backward pass).
//
// A Decoder works on caller-owned flat parameter and gradient arrays laid
// out as param_layout() says (TrainModel's ParamSet order). It keeps the
// activations of the last forward() for backward().
//
// Thread-safety: one thread drives a Decoder; matrix products run on
// OpenBLAS and attention on the Decoder's own pool, both with `threads`.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "train/model.h"

namespace rv::engine {
class ThreadPool;
}

namespace rv::train {

// The ParamSet entries (names, shapes, offsets) of a shape, in ParamSet order.
std::vector<ParamSet::Entry> param_layout(const ModelShape& s);

template <class R>
class Decoder {
 public:
  Decoder(const ModelShape& s, int threads);
  ~Decoder();

  // Logits [rows*T][vocab] of `b` under weights `p` (param_layout order).
  // Throws rv::Error for malformed batches (sizes, token ids, positions).
  const std::vector<R>& forward(const R* p, const Batch& b);
  // g += dL/dθ given dL/dlogits of the last forward() (same p).
  void backward(const R* p, R* g, const R* dlogits);

 private:
  // Offsets (in elements) of one layer's tensors.
  struct LayerOff {
    size_t in_norm, qw, qb, kw, kb, vw, vb, ow, post_norm, gate, up, down;
  };
  // What backward() needs of one layer, each [N][width].
  struct LayerAct {
    std::vector<R> x_in, r1, xn1, q, k, v, prob, att, x_mid, r2, xn2, gate, up, act;
  };
  void attention_forward(LayerAct& A);
  void attention_backward(const LayerAct& A, const R* datt, R* dq, R* dk, R* dv);

  ModelShape s_;
  int threads_;
  std::unique_ptr<engine::ThreadPool> pool_;
  size_t embed_ = 0, final_norm_ = 0, head_ = 0;
  std::vector<LayerOff> off_;

  // Last forward's batch and activations.
  Batch batch_;
  std::vector<R> cos_, sin_;  // [N][head_dim/2]
  std::vector<LayerAct> acts_;
  std::vector<R> x_final_, rf_, xnf_, logits_;
  // Scratch of forward() and backward(), reused across steps.
  std::vector<R> x_, tmp_, dx_, dxn_, dact_, dgate_, dup_, datt_, dq_, dk_, dv_;
};

extern template class Decoder<float>;
extern template class Decoder<double>;

}  // namespace rv::train
