#include "vector/overlay.h"
#include "vector/sparsify.h"

#include <atomic>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "formats/gguf.h"
#include "formats/model_dir.h"
#include "vector/internal.h"
#include "vector/kernels.h"

namespace rv::vec {

using namespace detail;
namespace fs = std::filesystem;

// The deltas of one vector file under the target's Hugging Face names.
class Overlay::Delta {
 public:
  virtual ~Delta() = default;
  bool has(const std::string& name) const { return shapes.count(name) != 0; }
  // A full vector (as opposed to a LoRA adapter): expected to cover every weight.
  virtual bool full() const { return false; }
  // Elements [b, e) of Δ[name] will not be read again soon: a mapped file may
  // drop their pages (they fault back in if they are).
  virtual void release(const std::string&, uint64_t, uint64_t) const {}
  // The one step that turns a stored vector tensor into dense f32 values:
  // elements [b, e) of Δ[name] in row-major Hugging Face layout, before α.
  // (A sparse vector format would add its reader here.)
  virtual void read_f32(const std::string& name, uint64_t b, uint64_t e, float* out) const = 0;
  // The stored tensor when Δ is one (full vectors): apply's fused kernel reads it directly.
  virtual const TensorView* view(const std::string&) const { return nullptr; }
  // What messages call Δ[name].
  virtual std::string file_name(const std::string& name) const { return name; }

  std::map<std::string, std::vector<int64_t>> shapes;  // Δ's dense shape by target name
};

namespace {

using Delta = Overlay::Delta;
using ojson = nlohmann::ordered_json;

std::string fmt(double x) {
  char b[32];
  snprintf(b, sizeof b, "%g", x);
  return b;
}

// A full vector, stored densely or in `sparsify`'s compact encoding
// (VectorReader expands it): Δ is the stored tensor.
class FullDelta final : public Delta {
 public:
  explicit FullDelta(const fs::path& p) : reader_(p) {
    for (const auto& n : reader_.names()) {
      const DType dt = reader_.dtype(n);
      if (!is_float_dtype(dt))
        throw Error(p.string(),
                    "tensor '" + n + "' has non-float dtype " + std::string(dtype_name(dt)));
      shapes[n] = reader_.shape(n);
      if (auto v = reader_.dense_view(n)) views_[n] = *v;
    }
  }
  void read_f32(const std::string& name, uint64_t b, uint64_t e, float* out) const override {
    auto it = views_.find(name);
    if (it != views_.end())
      load_f32(it->second, b, e, out);
    else
      reader_.read_f32(name, b, e, out);
  }
  const TensorView* view(const std::string& name) const override {
    auto it = views_.find(name);
    return it == views_.end() ? nullptr : &it->second;
  }
  bool full() const override { return true; }
  void release(const std::string& name, uint64_t b, uint64_t e) const override {
    reader_.release(name, b, e);
  }

 private:
  VectorReader reader_;
  std::map<std::string, TensorView> views_;  // dense tensors only
};

// A LoRA adapter: Δ = (B·A) · scale, A [r, in] and B [out, r] kept as f32.
class LoraDelta final : public Delta {
 public:
  struct Pair {
    std::string a_name, b_name;  // names in the adapter file
    std::vector<float> a, b;
    int64_t r = 0, in = 0, out = 0;
    float scale = 1;
  };

  void add(const fs::path& file, const std::string& hf, Pair p) {
    if (pairs_.count(hf))
      throw Error(file.string(), "two LoRA pairs for '" + hf + "' ('" + p.a_name + "')");
    shapes[hf] = {p.out, p.in};
    pairs_[hf] = std::move(p);
  }

  void read_f32(const std::string& name, uint64_t b, uint64_t e, float* out) const override {
    const Pair& p = pairs_.at(name);
    // Row by row; every element sums its r products in f32 in rank order, so
    // the value does not depend on how [b, e) was split.
    for (uint64_t i = b / p.in; i * p.in < e; ++i) {
      const uint64_t j0 = std::max<uint64_t>(b, i * p.in) - i * p.in;
      const uint64_t j1 = std::min<uint64_t>(e, (i + 1) * p.in) - i * p.in;
      float* o = out + (i * p.in + j0 - b);
      std::fill(o, o + (j1 - j0), 0.0f);
      for (int64_t k = 0; k < p.r; ++k) {
        const float bk = p.b[i * p.r + k];
        const float* ak = p.a.data() + k * p.in;
        for (uint64_t j = j0; j < j1; ++j) o[j - j0] += bk * ak[j];
      }
      for (uint64_t j = 0; j < j1 - j0; ++j) o[j] *= p.scale;
    }
  }
  std::string file_name(const std::string& name) const override {
    const Pair& p = pairs_.at(name);
    return p.b_name + " x " + p.a_name;
  }

 private:
  std::map<std::string, Pair> pairs_;
};

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// The model name an adapter was trained on vs the target's, compared by
// last path component ("Qwen/Qwen2.5-1.5B" ~ ".../Qwen2.5-1.5B").
void check_base_name(const fs::path& file, const std::string& base, const OverlayTarget& t,
                     const Overlay::Log& log) {
  if (base.empty() || t.name.empty() || !log) return;
  fs::path b = fs::path(base).lexically_normal();
  if (b.filename().empty()) b = b.parent_path();
  if (b.filename().string() != t.name)
    log("warning: " + file.string() + ": adapter was trained on '" + base + "', loading it onto '" +
        t.name + "'");
}

std::vector<float> widen(DType dt, const uint8_t* data, size_t n) {
  std::vector<float> f(n);
  to_f32(dt, data, f.data(), n);
  return f;
}

// PEFT's get_pattern_key: the first key k of `pattern` with
// re.match(rf"(.*\.)?({k})$", module); null when none.
const ojson* pattern_value(const ojson& pattern, const std::string& module, const fs::path& file) {
  if (!pattern.is_object()) return nullptr;
  for (auto it = pattern.begin(); it != pattern.end(); ++it) {
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?(" + it.key() + ")"))) return &it.value();
    } catch (const std::regex_error&) {
      throw Error(file.string(), "pattern '" + it.key() + "' is not a valid regular expression");
    }
  }
  return nullptr;
}

std::unique_ptr<Delta> open_peft(const fs::path& dir, const OverlayTarget& target,
                                 const Overlay::Log& log) {
  const fs::path cfg_path = dir / "adapter_config.json";
  const std::string where = cfg_path.string();
  ojson cfg;
  try {
    cfg = ojson::parse(read_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(where, std::string("malformed JSON: ") + e.what());
  }
  auto flag = [&](const char* k) {
    return cfg.contains(k) && cfg[k].is_boolean() && cfg[k].get<bool>();
  };
  if (cfg.contains("peft_type") && cfg["peft_type"] != "LORA")
    throw Error(where, "peft_type is " + cfg["peft_type"].dump() + ", only LORA adapters load");
  if (flag("use_dora")) throw Error(where, "use_dora = true (DoRA) is not supported");
  if (flag("fan_in_fan_out")) throw Error(where, "fan_in_fan_out = true is not supported");
  if (!cfg.contains("r") || !cfg["r"].is_number_integer() || cfg["r"].get<int64_t>() <= 0)
    throw Error(where, "'r' is missing or not a positive integer");
  const int64_t r_default = cfg["r"].get<int64_t>();
  double alpha_default = 8;  // PEFT's default lora_alpha
  if (cfg.contains("lora_alpha")) {
    if (!cfg["lora_alpha"].is_number()) throw Error(where, "'lora_alpha' is not a number");
    alpha_default = cfg["lora_alpha"].get<double>();
  }
  const bool rslora = flag("use_rslora");
  const ojson empty = ojson::object();
  const ojson& rank_pattern = cfg.contains("rank_pattern") ? cfg["rank_pattern"] : empty;
  const ojson& alpha_pattern = cfg.contains("alpha_pattern") ? cfg["alpha_pattern"] : empty;
  if (cfg.contains("base_model_name_or_path") && cfg["base_model_name_or_path"].is_string())
    check_base_name(dir, cfg["base_model_name_or_path"].get<std::string>(), target, log);

  const fs::path weights = dir / "adapter_model.safetensors";
  if (!fs::exists(weights)) {
    if (fs::exists(dir / "adapter_model.bin"))
      throw Error(dir.string(),
                  "adapter_model.bin (pickle) is not read; save the adapter with "
                  "safe_serialization (adapter_model.safetensors)");
    throw Error(dir.string(), "adapter_model.safetensors is missing");
  }
  TensorSet ts(weights);
  const std::string wf = weights.string();
  const std::string prefix = "base_model.model.", ka = ".lora_A.weight", kb = ".lora_B.weight";
  std::set<std::string> modules;
  for (const auto& n : ts.names()) {
    const bool a = ends_with(n, ka), b = ends_with(n, kb);
    if (n.rfind(prefix, 0) != 0 || (!a && !b))
      throw Error(wf, "tensor '" + n +
                          "' is not a LoRA A/B weight (embedding LoRA, modules_to_save, DoRA and "
                          "LoRA biases are not supported)");
    modules.insert(n.substr(prefix.size(), n.size() - prefix.size() - ka.size()));
  }
  auto d = std::make_unique<LoraDelta>();
  for (const auto& m : modules) {
    LoraDelta::Pair p;
    p.a_name = prefix + m + ka;
    p.b_name = prefix + m + kb;
    for (const auto* n : {&p.a_name, &p.b_name})
      if (!ts.has(*n)) throw Error(wf, "tensor '" + *n + "' is missing (its A/B partner exists)");
    const std::string hf = m + ".weight";
    if (hf == kEmbed) throw Error(wf, "tensor '" + p.a_name + "': embedding LoRA is not supported");
    const TensorView A = ts.view(p.a_name), B = ts.view(p.b_name);
    for (const TensorView* v : {&A, &B})
      if (!is_float_dtype(v->dtype()) || v->shape().size() != 2)
        throw Error(wf, "tensor '" + v->name() + "' must be a float matrix, is " +
                            std::string(dtype_name(v->dtype())) + " " + shape_str(v->shape()));
    int64_t r = r_default;
    if (const ojson* v = pattern_value(rank_pattern, m, dir)) {
      if (!v->is_number_integer() || v->get<int64_t>() <= 0)
        throw Error(where, "rank_pattern value for '" + m + "' is not a positive integer");
      r = v->get<int64_t>();
    }
    double alpha = alpha_default;
    if (const ojson* v = pattern_value(alpha_pattern, m, dir)) {
      if (!v->is_number())
        throw Error(where, "alpha_pattern value for '" + m + "' is not a number");
      alpha = v->get<double>();
    }
    if (A.shape()[0] != r || B.shape()[1] != r)
      throw Error(wf, "tensor '" + p.a_name + "' " + shape_str(A.shape()) + " and '" + p.b_name +
                          "' " + shape_str(B.shape()) + " do not have the configured rank " +
                          std::to_string(r));
    p.r = r;
    p.in = A.shape()[1];
    p.out = B.shape()[0];
    p.scale = static_cast<float>(rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / r);
    p.a = widen(A.dtype(), A.data, A.numel());
    p.b = widen(B.dtype(), B.data, B.numel());
    d->add(weights, hf, std::move(p));
  }
  return d;
}

std::unique_ptr<Delta> open_gguf_lora(const fs::path& path, const OverlayTarget& target,
                                      const Overlay::Log& log) {
  gguf::File f(path);
  const std::string where = path.string();
  auto str = [&](const char* k) -> std::string {
    const gguf::Value* v = f.find(k);
    return v && v->type() == gguf::ValueType::STRING ? v->as_string() : "";
  };
  if (str("general.type") != "adapter" || str("adapter.type") != "lora")
    throw Error(where, "not a GGUF LoRA adapter (general.type = '" + str("general.type") +
                           "', adapter.type = '" + str("adapter.type") +
                           "'; a full vector must be .safetensors)");
  const ArchInfo& ai = arch_info(target.arch);
  if (str("general.architecture") != ai.gguf)
    throw Error(where, "adapter is for architecture '" + str("general.architecture") +
                           "', the model is '" + std::string(ai.gguf) + "'");
  double alpha = 0;
  if (const gguf::Value* v = f.find("adapter.lora.alpha")) {
    if (!v->is_float() && !v->is_integer())
      throw Error(where, "key 'adapter.lora.alpha' is not a number");
    alpha = v->as_float();
  }
  check_base_name(path, str("general.base_model.0.name"), target, log);

  std::map<std::string, std::pair<const gguf::TensorInfo*, const gguf::TensorInfo*>> pairs;
  for (const auto& t : f.tensors()) {
    const bool a = ends_with(t.name, ".lora_a"), b = ends_with(t.name, ".lora_b");
    if (!a && !b) throw Error(where, "tensor '" + t.name + "' is not a LoRA A/B tensor");
    auto& slot = pairs[t.name.substr(0, t.name.size() - 7)];
    (a ? slot.first : slot.second) = &t;
  }
  auto d = std::make_unique<LoraDelta>();
  for (const auto& [base, ab] : pairs) {
    if (!ab.first || !ab.second)
      throw Error(where, "tensor '" + base + (ab.first ? ".lora_b" : ".lora_a") +
                             "' is missing (its A/B partner exists)");
    const std::string hf = hf_tensor_name(base);
    if (hf.empty() || !target.tensors.count(hf))
      throw Error(where, "tensor '" + base + ".lora_a' has no counterpart in the model");
    if (hf == kEmbed)
      throw Error(where, "tensor '" + base + ".lora_a': embedding LoRA is not supported");
    const gguf::TensorInfo &A = *ab.first, &B = *ab.second;
    LoraDelta::Pair p;
    p.a_name = A.name;
    p.b_name = B.name;
    // ggml ne is the reverse of the PyTorch shape: A ne (in, r), B ne (r, out).
    if (A.ne.size() != 2 || B.ne.size() != 2 || A.ne[1] != B.ne[0])
      throw Error(where, "tensors '" + A.name + "' and '" + B.name +
                             "' are not an [r, in] and [out, r] pair");
    p.r = static_cast<int64_t>(A.ne[1]);
    p.in = static_cast<int64_t>(A.ne[0]);
    p.out = static_cast<int64_t>(B.ne[1]);
    p.scale = static_cast<float>(alpha != 0 ? alpha / p.r : 1.0);
    p.a = widen(gguf::tensor_dtype(A.type), f.data(A), A.numel());
    std::vector<float> b = widen(gguf::tensor_dtype(B.type), f.data(B), B.numel());
    // llama.cpp's q/k rows are interleaved per head (the exporter's
    // permutation); B's rows are output rows, so put them back.
    const bool qk =
        base.find(".attn_q.") != std::string::npos || base.find(".attn_k.") != std::string::npos;
    if (ai.permute_qk && qk) {
      const int64_t hd = target.head_dim;
      if (hd <= 0 || hd % 2 || p.out % hd)
        throw Error(where, "tensor '" + B.name + "' has " + std::to_string(p.out) +
                               " rows, not a multiple of the head size " + std::to_string(hd));
      p.b.resize(b.size());
      for (int64_t row = 0; row < p.out; ++row)
        std::copy(b.begin() + row * p.r, b.begin() + (row + 1) * p.r,
                  p.b.begin() + gguf_qk_source_row(row, hd) * p.r);
    } else {
      p.b = std::move(b);
    }
    d->add(path, hf, std::move(p));
  }
  return d;
}

std::unique_ptr<Delta> open_delta(const fs::path& p, const OverlayTarget& target,
                                  const Overlay::Log& log) {
  if (fs::is_directory(p) && fs::exists(p / "adapter_config.json"))
    return open_peft(p, target, log);
  if (gguf::is_gguf_path(p)) return open_gguf_lora(p, target, log);
  return std::make_unique<FullDelta>(p);
}

}  // namespace

Overlay::Overlay(const OverlayTarget& target, const std::vector<OverlayTerm>& terms, const Log& log)
    : target_(target), terms_(terms) {
  auto note = [&](const std::string& m) {
    if (log) log("note: " + m);
  };
  for (const auto& t : terms_) {
    if (!std::isfinite(t.alpha))
      throw Error(t.path.string(), "alpha " + fmt(t.alpha) + " is not a finite number");
    deltas_.push_back(open_delta(t.path, target_, log));
  }
  const auto& T = target_.tensors;
  const bool tied = !T.count(kLmHead) && T.count(kEmbed);
  std::vector<std::set<std::string>> used(terms_.size());
  for (const auto& [name, tt] : T) {
    if (!is_float_dtype(tt.dtype)) continue;
    for (size_t k = 0; k < terms_.size(); ++k) {
      const Delta& D = *deltas_[k];
      const std::string file = terms_[k].path.string();
      std::string vname = name;
      if (!D.has(name)) {
        // A vector from tied models carries the shared matrix as embed_tokens
        // only; its change acted on the output projection too.
        if (name != kLmHead || !D.has(kEmbed) || D.has(kLmHead)) continue;
        vname = kEmbed;
        note(file + " comes from models with tied embeddings: its " + kEmbed +
             " delta is applied to the untied " + kLmHead + " as well");
      }
      used[k].insert(vname);
      const auto& vs = D.shapes.at(vname);
      if (vs != tt.shape) {
        const bool rows_only = is_vocab_tensor(name) && vs.size() == tt.shape.size() &&
                               !vs.empty() &&
                               std::equal(vs.begin() + 1, vs.end(), tt.shape.begin() + 1);
        if (rows_only)
          throw Error(file, "tensor '" + D.file_name(vname) + "': vector has " +
                                std::to_string(vs[0]) + " vocabulary rows, the model " +
                                std::to_string(tt.shape[0]) +
                                " (apply it with `reasonvec apply --vocab-mismatch overlap|skip`)");
        throw Error(file, "tensor '" + D.file_name(vname) + "' has shape " + shape_str(vs) +
                              " but the model's '" + name + "' is " + shape_str(tt.shape));
      }
      plan_[name].push_back({k, vname});
    }
  }
  for (size_t k = 0; k < terms_.size(); ++k) {
    const Delta& D = *deltas_[k];
    if (tied && D.has(kLmHead)) {
      used[k].insert(kLmHead);
      note("the model ties embeddings, so " + terms_[k].path.string() +
           "'s lm_head.weight delta is not applied (the shared matrix gets only the "
           "embed_tokens delta)");
    }
    for (const auto& [n, s] : D.shapes)
      if (!used[k].count(n))
        throw Error(terms_[k].path.string(),
                    "tensor '" + D.file_name(n) + "' is not in the model " + target_.name);
    if (!D.full() || terms_[k].partial) continue;
    // As apply: a full vector that leaves weights unchanged was most likely
    // made for another model.
    std::vector<std::string> missing;
    size_t weights = 0;
    for (const auto& [name, tt] : T) {
      if (!is_weight_name(name) || !is_float_dtype(tt.dtype)) continue;
      ++weights;
      auto it = plan_.find(name);
      bool hit = false;
      if (it != plan_.end())
        for (const auto& a : it->second) hit = hit || a.term == k;
      if (!hit) missing.push_back(name);
    }
    if (!missing.empty())
      throw Error(terms_[k].path.string(), "does not match " + target_.name + ": " +
                                               uncovered_text(missing, weights, "weights") +
                                               " (--partial applies it anyway)");
  }
}

Overlay::~Overlay() = default;

bool Overlay::changes(const std::string& name) const {
  return plan_.count(name) != 0;
}

std::vector<std::string> Overlay::changed() const {
  std::vector<std::string> r;
  for (const auto& [n, a] : plan_) r.push_back(n);
  return r;
}

uint64_t Overlay::compute(const std::string& name, const uint8_t* base, uint8_t* out) const {
  const std::vector<Add>& adds = plan_.at(name);
  const OverlayTarget::Tensor& tt = target_.tensors.at(name);
  uint64_t numel = 1;
  for (int64_t d : tt.shape) numel *= static_cast<uint64_t>(d);
  const DType dt = tt.dtype;
  const size_t tsz = dtype_size(dt);
  std::atomic<uint64_t> nonfinite{0};
  for_tiles(numel, [&](uint64_t lo, uint64_t hi) {
    uint64_t bad = 0;
    // One full vector: apply's fused kernel, which equals the loop below bit for bit.
    const TensorView* v = adds.size() == 1 ? deltas_[adds[0].term]->view(adds[0].tensor) : nullptr;
    const bool one =
        v &&
        fused_axpy(dt, base + lo * tsz, static_cast<float>(terms_[adds[0].term].alpha), v->dtype(),
                   v->data + lo * dtype_size(v->dtype()), dt, out + lo * tsz, hi - lo, &bad);
    if (!one)
      for_chunks(lo, hi, [&](uint64_t c0, uint64_t c1, float* acc, float* d) {
        const size_t m = c1 - c0;
        to_f32(dt, base + c0 * tsz, acc, m);
        // As apply: θ + α₁·Δ₁ + α₂·Δ₂ ... in f32, each product rounded, in term order.
        for (const Add& a : adds) {
          const float alpha = static_cast<float>(terms_[a.term].alpha);
          deltas_[a.term]->read_f32(a.tensor, c0, c1, d);
          for (size_t k = 0; k < m; ++k) acc[k] = acc[k] + alpha * d[k];
        }
        bad += count_nonfinite(acc, m);
        from_f32(dt, acc, out + c0 * tsz, m);
      });
    if (bad) nonfinite += bad;
    // A model's vector is as large as the model (f32: twice a bf16 one);
    // keeping its pages resident after use would double the load's memory.
    for (const Add& a : adds) deltas_[a.term]->release(a.tensor, lo, hi);
  });
  return nonfinite.load();
}

}  // namespace rv::vec
