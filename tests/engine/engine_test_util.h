// Fixtures for the engine tests: tiny synthesized models (with non-trivial
// norm weights, which synth leaves at 1) and an independent reference
// forward pass in double precision written as plainly as possible, reading
// weights with rv::to_f32. It shares no code with src/engine.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/file.h"
#include "formats/dtype.h"
#include "formats/model_dir.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "support/llamacpp_oracle.h"

namespace rv::enginetest {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline fs::path temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("rv_engine_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

using rv_test::sanitizer_run;

// A 2-layer, 64-wide model of `arch` with peaked next-token distributions
// (init_scale 0.2), the engine suites' usual fixture.
inline SynthOptions tiny(const std::string& arch, DType dt, bool tied, uint64_t seed = 1) {
  SynthOptions o;
  o.arch = arch;
  o.layers = 2;
  o.hidden = 64;
  o.heads = 4;
  o.kv_heads = 2;
  o.intermediate = 96;
  o.vocab = 256;
  o.dtype = dt;
  o.tied = tied;
  o.seed = seed;
  o.init_scale = 0.2f;
  if (arch == "qwen3") o.head_dim = 24;  // != hidden / heads, as in real Qwen3
  return o;
}

// Synthesizes a model at `out`; then gives every norm weight seeded values
// around 1 (so a norm applied to the wrong thing shows up), and merges
// `config_patch` into config.json.
inline void make_model(const SynthOptions& opt, const fs::path& out, const json& config_patch = {},
                       bool random_norms = true) {
  synth_model(opt, out, true);
  if (random_norms) {
    std::vector<TensorSpec> specs;
    std::vector<std::vector<uint8_t>> data;
    {
      TensorSet ts(out);
      for (const auto& name : ts.names()) {
        TensorView v = ts.view(name);
        specs.push_back({name, v.dtype(), v.shape()});
        std::vector<uint8_t> bytes(v.data, v.data + v.nbytes());
        if (name.find("norm") != std::string::npos) {
          std::vector<float> f(v.numel());
          for (size_t i = 0; i < f.size(); ++i)
            f[i] = 1.0f + 0.3f * synth_normal(opt.seed + 7, hash_name(name), i);
          from_f32(v.dtype(), f.data(), bytes.data(), f.size());
        }
        data.push_back(std::move(bytes));
      }
    }
    fs::remove(out / "model.safetensors");
    SafetensorsWriter w(out, specs, {});
    for (size_t i = 0; i < specs.size(); ++i) w.write(i, 0, data[i].data(), data[i].size());
    w.finish();
  }
  if (!config_patch.is_null() && !config_patch.empty()) {
    json cfg = json::parse(read_file(out / "config.json"));
    cfg.merge_patch(config_patch);
    write_file(out / "config.json", cfg.dump(2));
  }
}

// Reference decoder: straightforward double-precision loops.
class RefModel {
 public:
  explicit RefModel(const fs::path& dir) : ts_(dir) {
    cfg_ = json::parse(read_file(dir / "config.json"));
    arch_ = cfg_["architectures"][0].get<std::string>();
    H_ = cfg_["hidden_size"];
    L_ = cfg_["num_hidden_layers"];
    NH_ = cfg_["num_attention_heads"];
    NKV_ = cfg_.value("num_key_value_heads", NH_);
    HD_ = cfg_.contains("head_dim") ? cfg_["head_dim"].get<int>() : H_ / NH_;
    I_ = cfg_["intermediate_size"];
    V_ = cfg_["vocab_size"];
    eps_ = cfg_["rms_norm_eps"];
    theta_ = cfg_["rope_theta"];
    tied_ = cfg_.value("tie_word_embeddings", false);
  }

  int vocab() const { return V_; }
  // Rounds K and V to bf16 as a bf16 KV cache stores them (the rest stays
  // double), to check the engine's bf16 cache exactly rather than loosely.
  void set_kv_bf16(bool on) { kv_bf16_ = on; }

  // Logits for every position of `tokens`, [T][V].
  std::vector<std::vector<double>> forward(const std::vector<int32_t>& tokens) {
    const int T = static_cast<int>(tokens.size());
    const auto& E = w("model.embed_tokens.weight");
    std::vector<std::vector<double>> x(T, std::vector<double>(H_));
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < H_; ++i) x[t][i] = E[size_t(tokens[t]) * H_ + i];
    const bool qwen2 = arch_ == "Qwen2ForCausalLM", qwen3 = arch_ == "Qwen3ForCausalLM";
    std::vector<double> freq = rope_freqs();
    for (int l = 0; l < L_; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      auto Wq = w(p + "self_attn.q_proj.weight"), Wk = w(p + "self_attn.k_proj.weight"),
           Wv = w(p + "self_attn.v_proj.weight"), Wo = w(p + "self_attn.o_proj.weight");
      std::vector<std::vector<double>> q(T), k(T), v(T);
      for (int t = 0; t < T; ++t) {
        auto h = rmsnorm(x[t], w(p + "input_layernorm.weight"));
        q[t] = matvec(Wq, h, NH_ * HD_);
        k[t] = matvec(Wk, h, NKV_ * HD_);
        v[t] = matvec(Wv, h, NKV_ * HD_);
        if (qwen2) {
          add(q[t], w(p + "self_attn.q_proj.bias"));
          add(k[t], w(p + "self_attn.k_proj.bias"));
          add(v[t], w(p + "self_attn.v_proj.bias"));
        }
        for (int hh = 0; hh < NH_; ++hh) {
          if (qwen3) head_norm(q[t], hh, w(p + "self_attn.q_norm.weight"));
          rope(q[t], hh, t, freq);
        }
        for (int hh = 0; hh < NKV_; ++hh) {
          if (qwen3) head_norm(k[t], hh, w(p + "self_attn.k_norm.weight"));
          rope(k[t], hh, t, freq);
        }
        if (kv_bf16_)
          for (auto* kv : {&k[t], &v[t]})
            for (double& e : *kv) e = bf16_to_f32(f32_to_bf16(static_cast<float>(e)));
      }
      for (int t = 0; t < T; ++t) {
        std::vector<double> att(NH_ * HD_, 0.0);
        for (int hh = 0; hh < NH_; ++hh) {
          const int g = hh / (NH_ / NKV_);
          std::vector<double> s(t + 1);
          double mx = -1e300;
          for (int j = 0; j <= t; ++j) {
            double d = 0;
            for (int i = 0; i < HD_; ++i) d += q[t][hh * HD_ + i] * k[j][g * HD_ + i];
            s[j] = d / std::sqrt(double(HD_));
            mx = std::max(mx, s[j]);
          }
          double sum = 0;
          for (auto& e : s) sum += (e = std::exp(e - mx));
          for (int j = 0; j <= t; ++j)
            for (int i = 0; i < HD_; ++i) att[hh * HD_ + i] += s[j] / sum * v[j][g * HD_ + i];
        }
        auto o = matvec(Wo, att, H_);
        add(x[t], o);
      }
      auto Wg = w(p + "mlp.gate_proj.weight"), Wu = w(p + "mlp.up_proj.weight"),
           Wd = w(p + "mlp.down_proj.weight");
      for (int t = 0; t < T; ++t) {
        auto h = rmsnorm(x[t], w(p + "post_attention_layernorm.weight"));
        auto g = matvec(Wg, h, I_), u = matvec(Wu, h, I_);
        for (int i = 0; i < I_; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        add(x[t], matvec(Wd, g, H_));
      }
    }
    const auto& head = tied_ ? E : w("lm_head.weight");
    std::vector<std::vector<double>> out(T);
    for (int t = 0; t < T; ++t) out[t] = matvec(head, rmsnorm(x[t], w("model.norm.weight")), V_);
    return out;
  }

 private:
  const std::vector<double>& w(const std::string& name) {
    auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
    TensorView v = ts_.view(name);
    std::vector<float> f(v.numel());
    to_f32(v.dtype(), v.data, f.data(), f.size());
    return cache_[name] = std::vector<double>(f.begin(), f.end());
  }
  std::vector<double> matvec(const std::vector<double>& W, const std::vector<double>& x, int rows) {
    const size_t cols = x.size();
    std::vector<double> y(rows, 0.0);
    for (int r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) y[r] += W[r * cols + c] * x[c];
    return y;
  }
  static void add(std::vector<double>& a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  }
  std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& g) {
    double ss = 0;
    for (double e : x) ss += e * e;
    const double r = 1 / std::sqrt(ss / x.size() + eps_);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * r * g[i];
    return y;
  }
  void head_norm(std::vector<double>& x, int h, const std::vector<double>& g) {
    std::vector<double> seg(x.begin() + h * HD_, x.begin() + (h + 1) * HD_);
    seg = rmsnorm(seg, g);
    std::copy(seg.begin(), seg.end(), x.begin() + h * HD_);
  }
  // HF LlamaRotaryEmbedding incl. the "llama3" frequency rescaling.
  std::vector<double> rope_freqs() {
    std::vector<double> f(HD_ / 2);
    for (int i = 0; i < HD_ / 2; ++i) f[i] = std::pow(theta_, -(2.0 * i) / HD_);
    if (cfg_.contains("rope_scaling") && cfg_["rope_scaling"].is_object() &&
        cfg_["rope_scaling"].value("rope_type", "") == "llama3") {
      const auto& rs = cfg_["rope_scaling"];
      const double factor = rs["factor"], lo = rs["low_freq_factor"], hi = rs["high_freq_factor"],
                   old = rs["original_max_position_embeddings"];
      for (auto& x : f) {
        const double wl = 2 * M_PI / x;
        if (wl > old / lo) {
          x = x / factor;
        } else if (wl >= old / hi) {
          const double sm = (old / wl - lo) / (hi - lo);
          x = (1 - sm) * x / factor + sm * x;
        }
      }
    }
    return f;
  }
  void rope(std::vector<double>& x, int h, int pos, const std::vector<double>& f) {
    const int half = HD_ / 2;
    for (int i = 0; i < half; ++i) {
      const double c = std::cos(pos * f[i]), s = std::sin(pos * f[i]);
      const double a = x[h * HD_ + i], b = x[h * HD_ + i + half];
      x[h * HD_ + i] = a * c - b * s;  // rotate_half: (-x2, x1)
      x[h * HD_ + i + half] = b * c + a * s;
    }
  }

  TensorSet ts_;
  json cfg_;
  std::string arch_;
  int H_, L_, NH_, NKV_, HD_, I_, V_;
  double eps_, theta_;
  bool tied_;
  bool kv_bf16_ = false;
  std::map<std::string, std::vector<double>> cache_;
};

// log-softmax of one row in double.
inline std::vector<double> log_softmax(const double* x, size_t n) {
  double mx = -1e300;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(x[i] - mx);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] - mx - std::log(s);
  return out;
}

}  // namespace rv::enginetest
