#include "train/optim.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/file.h"
#include "common/parallel.h"
#include "formats/safetensors.h"

namespace rv::train {

AdamW::AdamW(const ParamSet& params, const AdamWOptions& opt)
    : opt_(opt), m_(params.size(), 0.0f), v_(params.size(), 0.0f) {
  for (const auto& e : params.entries) decay_.push_back(e.shape.size() == 2 ? 1 : 0);
}

void AdamW::step(ParamSet& params, const ParamSet& grads, double lr) {
  if (params.size() != m_.size() || grads.size() != m_.size() ||
      params.entries.size() != decay_.size())
    throw Error("train: AdamW::step: parameter set does not match the optimizer's");
  ++t_;
  const double b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps;
  const double bc1 = 1.0 - std::pow(b1, double(t_));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, double(t_)));
  const double step_size = lr / bc1;
  for (size_t ei = 0; ei < params.entries.size(); ++ei) {
    const auto& e = params.entries[ei];
    const double keep = decay_[ei] ? 1.0 - lr * opt_.weight_decay : 1.0;
    float* p = params.data.data() + e.offset;
    const float* g = grads.data.data() + e.offset;
    float* m = m_.data() + e.offset;
    float* v = v_.data() + e.offset;
    // Element-wise, so the split over threads cannot change any bit.
    parallel_for(e.size, 8192, [&](size_t b, size_t en) {
      for (size_t i = b; i < en; ++i) {
        const double gi = g[i];
        m[i] = float(b1 * m[i] + (1.0 - b1) * gi);
        v[i] = float(b2 * v[i] + (1.0 - b2) * gi * gi);
        const double denom = std::sqrt(double(v[i])) / bc2_sqrt + eps;
        p[i] = float(double(p[i]) * keep - step_size * double(m[i]) / denom);
      }
    });
  }
}

void AdamW::save(const std::filesystem::path& file) const {
  // Flat m and v as two tensors; the step and hyper-parameters as metadata.
  std::vector<TensorSpec> specs = {{"m", DType::F32, {int64_t(m_.size())}},
                                   {"v", DType::F32, {int64_t(v_.size())}},
                                   {"decay", DType::U8, {int64_t(decay_.size())}}};
  AtomicOutput out(file, AtomicOutput::Kind::kFile, /*force=*/true);
  SafetensorsWriter::Options wo;
  wo.shard_size = UINT64_MAX;
  wo.single_name = out.path().filename().string();
  wo.metadata = {{"reasonvec.adamw.step", std::to_string(t_)},
                 {"reasonvec.adamw.beta1", std::to_string(opt_.beta1)},
                 {"reasonvec.adamw.beta2", std::to_string(opt_.beta2)}};
  SafetensorsWriter w(out.path().parent_path(), specs, wo);
  w.write(0, 0, m_.data(), m_.size() * sizeof(float));
  w.write(1, 0, v_.data(), v_.size() * sizeof(float));
  w.write(2, 0, decay_.data(), decay_.size());
  w.finish();
  out.commit();
}

void AdamW::load(const std::filesystem::path& file, const ParamSet& params) {
  const SafetensorsFile f(file);
  const std::string where = file.string();
  auto tensor = [&](const char* name, DType dt, size_t n) {
    const TensorInfo* t = f.find(name);
    if (!t) throw Error(where, std::string("tensor '") + name + "' missing (not an AdamW state?)");
    if (t->dtype != dt || t->shape.size() != 1 || size_t(t->shape[0]) != n)
      throw Error(where, std::string("tensor '") + name + "' has " + std::to_string(t->numel()) +
                             " entries, the model has " + std::to_string(n) +
                             " (state of another model?)");
    return f.view(*t).data;
  };
  const uint8_t* m = tensor("m", DType::F32, params.size());
  const uint8_t* v = tensor("v", DType::F32, params.size());
  const uint8_t* d = tensor("decay", DType::U8, params.entries.size());
  auto it = f.metadata().find("reasonvec.adamw.step");
  if (it == f.metadata().end()) throw Error(where, "metadata reasonvec.adamw.step missing");
  int64_t t = 0;
  try {
    t = std::stoll(it->second);
  } catch (const std::exception&) {
    throw Error(where, "metadata reasonvec.adamw.step '" + it->second + "' is not an integer");
  }
  for (size_t i = 0; i < params.entries.size(); ++i)
    if (d[i] != (params.entries[i].shape.size() == 2 ? 1 : 0))
      throw Error(where, "weight-decay mask differs at tensor " + params.entries[i].name);
  m_.assign(params.size(), 0.0f);
  v_.assign(params.size(), 0.0f);
  std::memcpy(m_.data(), m, m_.size() * sizeof(float));
  std::memcpy(v_.data(), v, v_.size() * sizeof(float));
  decay_.assign(d, d + params.entries.size());
  t_ = t;
}

double clip_grad_norm(ParamSet& grads, double max_norm) {
  double ss = 0;
  for (float g : grads.data) ss += double(g) * g;
  const double norm = std::sqrt(ss);
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
      for (float& g : grads.data) g = float(g * coef);
  }
  return norm;
}

double lr_schedule(int64_t step, int64_t total, int64_t warmup, double peak, double min_ratio) {
  // As transformers' cosine schedule with warmup: 0 at step 0.
  if (step < warmup) return peak * double(step) / double(warmup);
  const int64_t decay_steps = std::max<int64_t>(1, total - warmup);
  const double progress = std::min(1.0, double(step - warmup) / double(decay_steps));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak * (min_ratio + (1.0 - min_ratio) * cosine);
}

bool has_nonfinite(const ParamSet& s, std::string* which) {
  for (const auto& e : s.entries)
    for (size_t i = 0; i < e.size; ++i)
      if (!std::isfinite(s.data[e.offset + i])) {
        if (which) *which = e.name;
        return true;
      }
  return false;
}

}  // namespace rv::train
