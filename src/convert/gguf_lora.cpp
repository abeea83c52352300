#include "convert/gguf_lora.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/error.h"
#include "common/file.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "formats/model_dir.h"

namespace rv {

using json = nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// PEFT's pattern look-up: the first key k of rank_pattern/alpha_pattern
// such that the module name matches (.*\.)?(k)$.
const json* pattern_value(const json& pattern, const std::string& module) {
  if (!pattern.is_object()) return nullptr;
  for (auto it = pattern.begin(); it != pattern.end(); ++it)
    if (std::regex_match(module, std::regex("(.*\\.)?(" + it.key() + ")"))) return &it.value();
  return nullptr;
}

}  // namespace

GgufLoraResult write_gguf_lora(const fs::path& dir, const fs::path& base, const fs::path& out,
                               bool force) {
  const fs::path cfg_path = dir / "adapter_config.json";
  const std::string cw = cfg_path.string();
  json cfg;
  try {
    cfg = json::parse(read_file(cfg_path));
  } catch (const json::exception& e) {
    throw Error(cw, std::string("not valid JSON: ") + e.what());
  }
  if (cfg.value("peft_type", "") != "LORA") throw Error(cw, "peft_type is not \"LORA\"");
  if (cfg.value("use_dora", false)) throw Error(cw, "DoRA adapters have no llama.cpp form");
  if (cfg.value("fan_in_fan_out", false))
    throw Error(cw, "fan_in_fan_out adapters (transposed weights) are not supported");
  if (!cfg.contains("r") || !cfg["r"].is_number() || !cfg.contains("lora_alpha") ||
      !cfg["lora_alpha"].is_number())
    throw Error(cw, "missing numeric r or lora_alpha");
  const double r0 = cfg["r"].get<double>(), alpha0 = cfg["lora_alpha"].get<double>();
  if (!(r0 > 0) || !(alpha0 > 0)) throw Error(cw, "r and lora_alpha must be > 0");
  const bool rslora = cfg.value("use_rslora", false);
  const json rank_pattern = cfg.value("rank_pattern", json::object());
  const json alpha_pattern = cfg.value("alpha_pattern", json::object());

  const ModelConfig mc = load_model_config(base / "config.json");
  const ArchInfo* arch = arch_by_hf_class(mc.architecture);
  if (!arch)
    throw Error((base / "config.json").string(),
                "architecture " + mc.architecture + " is not supported (" + hf_class_names() + ")");

  TensorSet ts(dir / "adapter_model.safetensors");
  const std::string tw = ts.path().string();
  struct Pair {
    std::string a, b, gguf;
    int64_t r, in, out;
    double factor;  // multiplies B: s_t · r_t / alpha0
    int permute_heads = 0;
  };
  std::vector<Pair> pairs;
  GgufLoraResult res;
  res.arch = std::string(arch->gguf);
  res.alpha = alpha0;
  const std::string prefix = "base_model.model.";
  for (const auto& n : ts.names()) {
    if (ends_with(n, ".lora_B.weight")) continue;  // handled with its lora_A
    if (!ends_with(n, ".lora_A.weight")) {
      res.skipped.push_back(n);
      continue;
    }
    std::string module = n.substr(0, n.size() - std::string(".lora_A.weight").size());
    const std::string b = module + ".lora_B.weight";
    if (!ts.has(b)) throw Error(tw, n + " has no " + b);
    if (module.rfind(prefix, 0) != 0) throw Error(tw, n + " does not start with " + prefix);
    module = module.substr(prefix.size());
    const std::string g = gguf_tensor_name(module + ".weight");
    if (g.empty()) throw Error(tw, "module " + module + " has no llama.cpp tensor");
    const auto& sa = ts.find(n)->shape;
    const auto& sb = ts.find(b)->shape;
    if (sa.size() != 2 || sb.size() != 2 || sa[0] != sb[1])
      throw Error(tw, n + " and lora_B have shapes that do not chain ([r, in] and [out, r])");
    Pair p{n, b, g, sa[0], sa[1], sb[0], 1.0};
    double rt = r0, at = alpha0;
    if (const json* v = pattern_value(rank_pattern, module)) rt = v->get<double>();
    if (const json* v = pattern_value(alpha_pattern, module)) at = v->get<double>();
    if (static_cast<int64_t>(rt) != p.r)
      throw Error(tw, n + " has rank " + std::to_string(p.r) + " but the config says " +
                          std::to_string(static_cast<int64_t>(rt)));
    const double s = rslora ? at / std::sqrt(rt) : at / rt;
    p.factor = s * rt / alpha0;
    if (arch->permute_qk) {
      const bool q = g.find(".attn_q.") != std::string::npos;
      const bool k = g.find(".attn_k.") != std::string::npos;
      if (q || k) {
        const int heads = q ? mc.num_heads : mc.num_kv_heads;
        if (p.out != static_cast<int64_t>(heads) * mc.head_dim || mc.head_dim % 2)
          throw Error(tw, b + " has " + std::to_string(p.out) + " rows, expected heads x head_dim");
        p.permute_heads = heads;
      }
    }
    pairs.push_back(p);
  }
  if (pairs.empty()) throw Error(tw, "no lora_A/lora_B pairs");
  res.n_modules = pairs.size();

  std::vector<gguf::KeyValue> kv;
  kv.emplace_back("general.architecture", gguf::Value::string(res.arch));
  kv.emplace_back("general.type", gguf::Value::string("adapter"));
  kv.emplace_back("adapter.type", gguf::Value::string("lora"));
  kv.emplace_back("adapter.lora.alpha", gguf::Value::f32(static_cast<float>(alpha0)));
  std::vector<gguf::TensorInfo> infos;
  for (const auto& p : pairs) {
    infos.push_back({p.gguf + ".lora_a", gguf::TensorType::F32, gguf::ne_from_shape({p.r, p.in})});
    infos.push_back({p.gguf + ".lora_b", gguf::TensorType::F32, gguf::ne_from_shape({p.out, p.r})});
  }

  AtomicOutput output(out, AtomicOutput::Kind::kFile, force);
  gguf::Writer w(output.path(), std::move(kv), std::move(infos));
  for (const auto& p : pairs) {
    check_interrupted();
    const TensorView va = ts.view(p.a), vb = ts.view(p.b);
    std::vector<float> a(va.numel()), b(vb.numel()), bp(vb.numel());
    to_f32(va.dtype(), va.data, a.data(), a.size());
    to_f32(vb.dtype(), vb.data, b.data(), b.size());
    w.append(a.data(), a.size() * 4);
    const int64_t hd = mc.head_dim;
    for (int64_t row = 0; row < p.out; ++row) {
      const int64_t src = p.permute_heads ? gguf_qk_source_row(row, hd) : row;
      for (int64_t j = 0; j < p.r; ++j)
        bp[row * p.r + j] = static_cast<float>(p.factor * b[src * p.r + j]);
    }
    w.append(bp.data(), bp.size() * 4);
  }
  w.finish();
  output.commit();
  return res;
}

}  // namespace rv
