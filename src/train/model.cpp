#include "train/model.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "common/parallel.h"
#include "formats/dtype.h"
#include "formats/model_dir.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "train/model_core.h"

namespace rv::train {

void ModelShape::validate(const std::string& where) const {
  auto positive = [&](const char* key, int v) {
    if (v < 1)
      throw Error(where, std::string(key) + ": must be >= 1 (got " + std::to_string(v) + ")");
  };
  positive("vocab", vocab);
  positive("hidden", hidden);
  positive("layers", layers);
  positive("heads", heads);
  positive("kv_heads", kv_heads);
  positive("intermediate", intermediate);
  positive("max_position", max_position);
  if (hidden % heads != 0)
    throw Error(where, "hidden: " + std::to_string(hidden) + " is not a multiple of heads (" +
                           std::to_string(heads) + ")");
  if (heads % kv_heads != 0)
    throw Error(where, "heads: " + std::to_string(heads) + " is not a multiple of kv_heads (" +
                           std::to_string(kv_heads) + ")");
  if (head_dim() % 2 != 0)
    throw Error(where, "hidden: head_dim " + std::to_string(head_dim()) +
                           " (hidden / heads) must be even for RoPE");
  if (!(rope_theta > 0)) throw Error(where, "rope_theta: must be positive");
  if (!(rms_eps > 0)) throw Error(where, "rms_eps: must be positive");
}

const ParamSet::Entry& ParamSet::entry(const std::string& name) const {
  for (const auto& e : entries)
    if (e.name == name) return e;
  throw Error("train: no tensor named '" + name + "'");
}
float* ParamSet::get(const std::string& name) {
  return data.data() + entry(name).offset;
}
const float* ParamSet::get(const std::string& name) const {
  return data.data() + entry(name).offset;
}

struct TrainModel::Impl {
  Impl(const ModelShape& s, int threads) : shape(s), dec(s, threads) {
    params.entries = param_layout(s);
    size_t total = 0;
    for (const auto& e : params.entries) total += e.size;
    params.data.assign(total, 0.0f);
    grads.entries = params.entries;
    grads.data.assign(total, 0.0f);
  }
  ModelShape shape;
  ParamSet params, grads;
  Decoder<float> dec;
};

TrainModel::TrainModel(const ModelShape& shape, const TrainModelOptions& opt)
    : impl_(new Impl(shape, opt.threads)) {}
TrainModel::~TrainModel() {
  delete impl_;
}
TrainModel::TrainModel(TrainModel&& o) noexcept : impl_(o.impl_) {
  o.impl_ = nullptr;
}
TrainModel& TrainModel::operator=(TrainModel&& o) noexcept {
  std::swap(impl_, o.impl_);
  return *this;
}

const ModelShape& TrainModel::shape() const {
  return impl_->shape;
}
ParamSet& TrainModel::params() {
  return impl_->params;
}
const ParamSet& TrainModel::params() const {
  return impl_->params;
}
ParamSet& TrainModel::grads() {
  return impl_->grads;
}
void TrainModel::zero_grad() {
  std::fill(impl_->grads.data.begin(), impl_->grads.data.end(), 0.0f);
}

void TrainModel::init(uint64_t seed, float std) {
  const ModelShape& s = impl_->shape;
  const float out_scale = 1.0f / std::sqrt(2.0f * float(s.layers));
  for (const auto& e : impl_->params.entries) {
    float* p = impl_->params.data.data() + e.offset;
    const bool norm = e.name.find("norm.weight") != std::string::npos;
    const bool bias = e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, ".bias") == 0;
    if (norm || bias) {
      std::fill(p, p + e.size, norm ? 1.0f : 0.0f);
      continue;
    }
    const bool scaled =
        e.name.find("o_proj") != std::string::npos || e.name.find("down_proj") != std::string::npos;
    const float sd = std * (scaled ? out_scale : 1.0f);
    // A counter-based generator per tensor: the same weights on any thread count.
    const uint64_t stream = hash_name(e.name);
    parallel_for(e.size, 4096, [&](size_t b, size_t en) {
      for (size_t i = b; i < en; ++i) p[i] = sd * synth_normal(seed, stream, i);
    });
  }
}

const std::vector<float>& TrainModel::forward(const Batch& batch) {
  return impl_->dec.forward(impl_->params.data.data(), batch);
}

void TrainModel::backward(const std::vector<float>& dlogits) {
  impl_->dec.backward(impl_->params.data.data(), impl_->grads.data.data(), dlogits.data());
}

nlohmann::json hf_config(const ModelShape& s, int bos_token_id, int eos_token_id) {
  using nlohmann::json;
  auto id = [](int v) -> json { return v < 0 ? json(nullptr) : json(v); };
  return {{"architectures", {"Qwen2ForCausalLM"}},
          {"model_type", "qwen2"},
          {"hidden_size", s.hidden},
          {"num_hidden_layers", s.layers},
          {"num_attention_heads", s.heads},
          {"num_key_value_heads", s.kv_heads},
          {"intermediate_size", s.intermediate},
          {"vocab_size", s.vocab},
          {"max_position_embeddings", s.max_position},
          {"rope_theta", s.rope_theta},
          {"rms_norm_eps", s.rms_eps},
          {"tie_word_embeddings", s.tied},
          {"torch_dtype", "float32"},
          {"hidden_act", "silu"},
          {"bos_token_id", id(bos_token_id)},
          {"eos_token_id", id(eos_token_id)},
          {"use_sliding_window", false},
          {"sliding_window", nullptr},
          {"max_window_layers", s.layers},
          {"attention_dropout", 0.0},
          {"initializer_range", 0.02},
          {"use_cache", true}};
}

void TrainModel::save(const std::filesystem::path& dir, int bos_token_id, int eos_token_id) const {
  const ModelShape& s = impl_->shape;
  using nlohmann::json;
  auto id = [](int v) -> json { return v < 0 ? json(nullptr) : json(v); };
  const json cfg = hf_config(s, bos_token_id, eos_token_id);
  json gen = {
      {"bos_token_id", id(bos_token_id)}, {"eos_token_id", id(eos_token_id)}, {"do_sample", false}};

  AtomicOutput output(dir, AtomicOutput::Kind::kDirectory, /*force=*/true);
  write_file(output.path() / "config.json", cfg.dump(2) + "\n");
  write_file(output.path() / "generation_config.json", gen.dump(2) + "\n");
  std::vector<TensorSpec> specs;
  for (const auto& e : impl_->params.entries) specs.push_back({e.name, DType::F32, e.shape});
  SafetensorsWriter::Options wo;
  wo.shard_size = UINT64_MAX;
  wo.metadata = {{"reasonvec.train", "TrainModel"}};
  SafetensorsWriter w(output.path(), specs, wo);
  for (size_t i = 0; i < impl_->params.entries.size(); ++i) {
    const auto& e = impl_->params.entries[i];
    w.write(i, 0, impl_->params.data.data() + e.offset, e.size * sizeof(float));
  }
  w.finish();
  output.commit();
}

TrainModel TrainModel::load(const std::filesystem::path& dir, const TrainModelOptions& opt) {
  const ModelDir md(dir);
  const ModelConfig& c = md.config();
  const std::string where = (dir / "config.json").string();
  if (c.model_type != "qwen2")
    throw Error(where,
                "model_type '" + c.model_type + "' is not qwen2 (training supports Qwen2 only)");
  ModelShape s;
  s.vocab = c.vocab_size;
  s.hidden = c.hidden_size;
  s.layers = c.num_layers;
  s.heads = c.num_heads;
  s.kv_heads = c.num_kv_heads;
  s.intermediate = c.intermediate_size;
  s.max_position = c.max_position_embeddings;
  s.rope_theta = c.rope_theta;
  s.rms_eps = c.rms_norm_eps;
  s.tied = c.tie_word_embeddings;
  s.validate(where);
  if (c.head_dim != s.head_dim())
    throw Error(where,
                "head_dim " + std::to_string(c.head_dim) + " is not hidden_size / num_heads");
  if (c.raw.contains("rope_scaling") && !c.raw["rope_scaling"].is_null())
    throw Error(where, "rope_scaling is not supported for training");

  TrainModel m(s, opt);
  const TensorSet& ts = md.tensors();
  for (const auto& e : m.impl_->params.entries) {
    const TensorInfo* info = ts.find(e.name);
    if (!info)
      throw Error((ts.files().size() == 1 ? ts.files().front()->path() : ts.path()).string(),
                  e.name + ": tensor missing");
    const std::string tw = ts.file_of(e.name).path().string();
    if (info->shape != e.shape) {
      std::string got, want;
      for (int64_t d : info->shape) got += (got.empty() ? "" : ",") + std::to_string(d);
      for (int64_t d : e.shape) want += (want.empty() ? "" : ",") + std::to_string(d);
      throw Error(tw, e.name + ": shape [" + got + "], expected [" + want + "]");
    }
    if (info->dtype != DType::F32 && info->dtype != DType::BF16 && info->dtype != DType::F16)
      throw Error(tw, e.name + ": dtype " + std::string(dtype_name(info->dtype)) +
                          " is not f32, bf16 or f16");
    to_f32(info->dtype, ts.view(e.name).data, m.impl_->params.data.data() + e.offset, e.size);
  }
  for (const auto& name : ts.names()) {
    bool known = false;
    for (const auto& e : m.impl_->params.entries) known = known || e.name == name;
    if (!known)
      throw Error(ts.file_of(name).path().string(), name + ": unexpected tensor (not part of a " +
                                                        std::string(s.tied ? "tied" : "untied") +
                                                        " Qwen2 decoder)");
  }
  return m;
}

double cross_entropy(const std::vector<float>& logits, int vocab,
                     const std::vector<int32_t>& targets, double normalizer,
                     std::vector<float>& dlogits) {
  if (vocab < 1 || logits.size() != targets.size() * size_t(vocab))
    throw Error("train: cross_entropy: logits have " + std::to_string(logits.size()) +
                " entries, expected targets (" + std::to_string(targets.size()) + ") x vocab (" +
                std::to_string(vocab) + ")");
  if (!(normalizer > 0)) throw Error("train: cross_entropy: normalizer must be > 0");
  for (int32_t t : targets)
    if (t >= vocab)
      throw Error("train: cross_entropy: target " + std::to_string(t) + " outside the vocabulary");
  dlogits.resize(logits.size());  // every row is written below
  std::vector<double> row_loss(targets.size(), 0.0);
  parallel_for(targets.size(), 16, [&](size_t b, size_t end) {
    std::vector<double> e(static_cast<size_t>(vocab));  // exp(z - max) of one row
    for (size_t r = b; r < end; ++r) {
      float* d = &dlogits[r * vocab];
      if (targets[r] < 0) {
        std::fill(d, d + vocab, 0.0f);
        continue;
      }
      const float* z = &logits[r * vocab];
      double mx = -INFINITY;
      for (int i = 0; i < vocab; ++i) mx = std::max(mx, double(z[i]));
      double sum = 0;
      for (int i = 0; i < vocab; ++i) {
        e[size_t(i)] = std::exp(double(z[i]) - mx);
        sum += e[size_t(i)];
      }
      row_loss[r] = mx + std::log(sum) - z[targets[r]];
      const double scale = 1.0 / (sum * normalizer);
      for (int i = 0; i < vocab; ++i) d[i] = float(e[size_t(i)] * scale);
      d[targets[r]] = float((e[size_t(targets[r])] / sum - 1.0) / normalizer);
    }
  });
  double loss = 0;
  for (double l : row_loss) loss += l;
  return loss / normalizer;
}

}  // namespace rv::train
