// Optimisation for TrainModel: AdamW with decoupled weight decay (as
// torch.optim.AdamW), global gradient-norm clipping (as
// torch.nn.utils.clip_grad_norm_) and a linear-warmup + cosine learning-rate
// schedule.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "train/model.h"

namespace rv::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;  // applied to 2-D weights only (matrices, embeddings), not norms/biases
};

class AdamW {
 public:
  AdamW(const ParamSet& params, const AdamWOptions& opt);
  // One step at learning rate `lr` (torch.optim.AdamW's update, in double
  // for the moments' bias correction, f32 state).
  void step(ParamSet& params, const ParamSet& grads, double lr);
  int64_t steps() const { return t_; }
  // Optimizer state as a safetensors file (m, v per tensor plus the step),
  // for resuming; load throws rv::Error naming the file on any mismatch.
  void save(const std::filesystem::path& file) const;
  void load(const std::filesystem::path& file, const ParamSet& params);

 private:
  AdamWOptions opt_;
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;  // per ParamSet entry
  int64_t t_ = 0;
};

// Scales grads so that their global L2 norm is at most max_norm (coef =
// max_norm / (norm + 1e-6), clamped to 1, as PyTorch). Returns the norm
// before clipping; max_norm <= 0 only measures.
double clip_grad_norm(ParamSet& grads, double max_norm);

// Learning rate at `step` (0-based) of `total`: linear warmup from 0 over
// `warmup` steps to `peak`, then cosine decay to peak * min_ratio.
double lr_schedule(int64_t step, int64_t total, int64_t warmup, double peak, double min_ratio = 0.1);

// True when any entry is NaN or inf; `which` receives the first tensor's name.
bool has_nonfinite(const ParamSet& s, std::string* which = nullptr);

}  // namespace rv::train
