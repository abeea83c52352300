// write_gguf_lora: a PEFT adapter as llama.cpp's LoRA GGUF.
//   - Layout: keys, names, ggml dims, and data checked against a PEFT
//     adapter written here (per-module rank/alpha patterns folded into
//     lora_b, Llama q/k rows permuted as convert_hf_to_gguf.py's permute()).
//   - llama.cpp itself (node-llama-cpp) loads `reasonvec lowrank --format
//     both` output on our exported base, and its next-token log-probs match
//     the merged model θ + (α/r)·B·A (written with `reasonvec apply`, exported
//     with `export-gguf`) run without adapter, within the 1e-3 that
//     gguf_llamacpp_test.cpp uses. Fails (never skips) without node.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"
#include "common/file.h"
#include "convert/gguf_lora.h"
#include "formats/gguf.h"
#include "formats/model_dir.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "support/llamacpp_oracle.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using rv_test::TmpDir;

namespace {

std::vector<float> gauss(size_t n, uint64_t seed, uint64_t stream, double scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(scale * rv::synth_normal(seed, stream, i));
  return v;
}

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

void write_st(const fs::path& file, const std::vector<Tensor>& ts,
              std::map<std::string, std::string> meta = {}) {
  std::vector<rv::TensorSpec> specs;
  for (const auto& t : ts) specs.push_back({t.name, rv::DType::F32, t.shape});
  rv::SafetensorsWriter::Options wo;
  wo.single_name = file.filename().string();
  wo.metadata = std::move(meta);
  rv::SafetensorsWriter w(file.parent_path(), specs, wo);
  for (size_t i = 0; i < ts.size(); ++i) w.write(i, 0, ts[i].data.data(), ts[i].data.size() * 4);
  w.finish();
}

const float* gguf_f32(const rv::gguf::File& f, const std::string& name) {
  const auto& t = f.tensor(name);
  EXPECT_EQ(t.type, rv::gguf::TensorType::F32) << name;
  return reinterpret_cast<const float*>(f.data(t));
}

void run(const std::string& cmd) {
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace

// Llama (q/k permuted) adapter with a per-module rank and alpha: dims,
// metadata and α_gguf / r_t · lora_b · lora_a == s_t · P·B·A.
TEST(GgufLora, LayoutScalingAndLlamaPermutation) {
  TmpDir tmp("gguf_lora");
  rv::SynthOptions so;
  so.arch = "llama";
  so.layers = 1;
  so.hidden = 32;
  so.heads = 4;
  so.kv_heads = 2;
  so.intermediate = 48;
  so.vocab = 40;
  so.dtype = rv::DType::F32;
  rv::synth_model(so, tmp.p / "model", false);
  const int64_t H = 32, hd = 8, I = 48;
  struct Mod {
    std::string hf, gguf;
    int64_t out, in;
    int r;
    double alpha;
    int heads;  // > 0: q/k permutation
  };
  // Global r = 2, lora_alpha = 4; q_proj has rank 3 and alpha 9 via the
  // patterns (scaling 3), k_proj rank 2 with alpha 4 (scaling 2).
  const std::vector<Mod> mods = {
      {"model.layers.0.self_attn.q_proj", "blk.0.attn_q.weight", H, H, 3, 9, 4},
      {"model.layers.0.self_attn.k_proj", "blk.0.attn_k.weight", 16, H, 2, 4, 2},
      {"model.layers.0.mlp.down_proj", "blk.0.ffn_down.weight", H, I, 2, 4, 0}};
  std::vector<Tensor> ts;
  uint64_t k = 0;
  for (const auto& m : mods) {
    ts.push_back({"base_model.model." + m.hf + ".lora_A.weight",
                  {m.r, m.in},
                  gauss(m.r * m.in, 1, k++, 0.5)});
    ts.push_back({"base_model.model." + m.hf + ".lora_B.weight",
                  {m.out, m.r},
                  gauss(m.out * m.r, 1, k++, 0.5)});
  }
  ts.push_back({"base_model.model.model.norm.weight", {H}, gauss(H, 1, 99, 1)});
  const fs::path ad = tmp.p / "adapter";
  fs::create_directories(ad);
  write_st(ad / "adapter_model.safetensors", ts);
  json cfg = {{"peft_type", "LORA"},
              {"r", 2},
              {"lora_alpha", 4},
              {"rank_pattern", {{"layers.0.self_attn.q_proj", 3}}},
              {"alpha_pattern", {{"layers.0.self_attn.q_proj", 9}}},
              {"fan_in_fan_out", false},
              {"modules_to_save", {"norm"}}};
  rv::write_file(ad / "adapter_config.json", cfg.dump());

  const fs::path out = tmp.p / "a.gguf";
  rv::GgufLoraResult r = rv::write_gguf_lora(ad, tmp.p / "model", out, false);
  EXPECT_EQ(r.n_modules, 3u);
  EXPECT_EQ(r.skipped, std::vector<std::string>{"base_model.model.model.norm.weight"});
  rv::gguf::File f(out);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string("general.type"), "adapter");
  EXPECT_EQ(f.get_string("adapter.type"), "lora");
  EXPECT_EQ(f.get_float("adapter.lora.alpha"), 4.0);
  EXPECT_EQ(f.tensors().size(), 6u);
  k = 0;
  for (const auto& m : mods) {
    SCOPED_TRACE(m.hf);
    const auto& ta = f.tensor(m.gguf + ".lora_a");
    const auto& tb = f.tensor(m.gguf + ".lora_b");
    // ggml dims: a is [in, r] (ne[0] = the base weight's ne[0]), b is [r, out].
    EXPECT_EQ(ta.ne, (std::vector<uint64_t>{uint64_t(m.in), uint64_t(m.r)}));
    EXPECT_EQ(tb.ne, (std::vector<uint64_t>{uint64_t(m.r), uint64_t(m.out)}));
    const float* a = gguf_f32(f, m.gguf + ".lora_a");
    const float* b = gguf_f32(f, m.gguf + ".lora_b");
    const std::vector<float>& A = ts[k++].data;
    const std::vector<float>& B = ts[k++].data;
    for (int64_t i = 0; i < m.r * m.in; ++i) ASSERT_EQ(a[i], A[i]);
    const double s = m.alpha / m.r;  // PEFT's scaling of this module
    for (int64_t row = 0; row < m.out; ++row) {
      // convert_hf_to_gguf.py permute(): reshape(heads, 2, hd/2, ...) then
      // swap axes 1 and 2, so new row h*hd + 2j + i holds old h*hd + i*hd/2 + j.
      int64_t src = row;
      if (m.heads) {
        const int64_t h = row / hd, rest = row % hd, j = rest / 2, i = rest % 2;
        src = h * hd + i * (hd / 2) + j;
      }
      for (int64_t c = 0; c < m.in; ++c) {
        double got = 0, want = 0;
        for (int q = 0; q < m.r; ++q) {
          got += double(b[row * m.r + q]) * a[q * m.in + c];
          want += double(B[src * m.r + q]) * A[q * m.in + c];
        }
        ASSERT_NEAR(4.0 / m.r * got, s * want, 1e-6 * (1 + std::abs(s * want))) << row << "," << c;
      }
    }
  }

  // Unsupported adapters fail before the output exists.
  const fs::path out2 = tmp.p / "b.gguf";
  cfg["use_dora"] = true;
  rv::write_file(ad / "adapter_config.json", cfg.dump());
  EXPECT_THROW(rv::write_gguf_lora(ad, tmp.p / "model", out2, false), rv::Error);
  cfg["use_dora"] = false;
  rv::write_file(ad / "adapter_config.json", cfg.dump());
  EXPECT_THROW(rv::write_gguf_lora(ad, tmp.p / "model", out, false), rv::Error);  // exists
  ts.push_back(
      {"base_model.model.model.layers.0.mlp.foo.lora_A.weight", {2, H}, gauss(2 * H, 2, 0, 1)});
  ts.push_back(
      {"base_model.model.model.layers.0.mlp.foo.lora_B.weight", {H, 2}, gauss(2 * H, 2, 1, 1)});
  write_st(ad / "adapter_model.safetensors", ts);
  try {
    rv::write_gguf_lora(ad, tmp.p / "model", out2, false);
    ADD_FAILURE() << "no error";
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.foo has no llama.cpp tensor"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(out2));
}

namespace {

// llama.cpp with our adapter on the base == llama.cpp on the merged model.
void check_llamacpp_lora(const std::string& arch, const std::string& tok) {
  SCOPED_TRACE(arch);
  TmpDir tmp("gguf_lora_llama");
  const fs::path base_gguf = rv_test::synth_oracle_gguf(arch, tok, false, 11, tmp.p);
  const fs::path md = tmp.p / "model";
  const std::string cli = std::string(RV_CLI_PATH) + " -q ";

  // A vector of exact rank 4 per projection (norms get a delta too: the
  // adapter cannot carry it, so it stays out of the merged model as well).
  rv::ModelDir m(md);
  std::vector<Tensor> v;
  uint64_t k = 0;
  const int r = 4;
  for (const auto& n : m.tensors().names()) {
    const auto& s = m.tensors().find(n)->shape;
    if (s.size() != 2 || n.find("_proj.weight") == std::string::npos) continue;
    const auto B = gauss(s[0] * r, 21, k++, 0.25), A = gauss(r * s[1], 21, k++, 0.25);
    std::vector<float> d(s[0] * s[1]);
    for (int64_t i = 0; i < s[0]; ++i)
      for (int64_t j = 0; j < s[1]; ++j) {
        double acc = 0;
        for (int q = 0; q < r; ++q) acc += double(B[i * r + q]) * A[q * s[1] + j];
        d[i * s[1] + j] = static_cast<float>(acc);
      }
    v.push_back({n, s, d});
  }
  write_st(tmp.p / "v.safetensors", v, {{"reasonvec.architecture", m.config().architecture}});
  const fs::path ad = tmp.p / "adapter";
  run(cli + "lowrank " + (tmp.p / "v.safetensors").string() + " --rank 4 --format both --model " +
      md.string() + " -o " + ad.string() + " > /dev/null");
  ASSERT_TRUE(fs::exists(ad / "adapter.gguf"));

  // The merged model: θ + (lora_alpha / r)·B·A from the PEFT adapter.
  const json cfg = json::parse(std::ifstream(ad / "adapter_config.json"));
  const double scale = cfg["lora_alpha"].get<double>() / cfg["r"].get<double>();
  rv::TensorSet pa(ad / "adapter_model.safetensors");
  std::vector<Tensor> dense;
  for (const auto& t : v) {
    const std::string p = "base_model.model." + t.name.substr(0, t.name.rfind('.'));
    const rv::TensorView a = pa.view(p + ".lora_A.weight"), b = pa.view(p + ".lora_B.weight");
    const float* A = reinterpret_cast<const float*>(a.data);
    const float* B = reinterpret_cast<const float*>(b.data);
    const int64_t rr = a.shape()[0], in = a.shape()[1], out = b.shape()[0];
    std::vector<float> d(out * in);
    for (int64_t i = 0; i < out; ++i)
      for (int64_t j = 0; j < in; ++j) {
        double acc = 0;
        for (int64_t q = 0; q < rr; ++q) acc += double(B[i * rr + q]) * A[q * in + j];
        d[i * in + j] = static_cast<float>(scale * acc);
      }
    dense.push_back({t.name, t.shape, d});
  }
  write_st(tmp.p / "d.safetensors", dense);
  // The dense delta covers the projections only: --partial says so.
  run(cli + "apply --partial --model " + md.string() + " --vector " +
      (tmp.p / "d.safetensors").string() + " -o " + (tmp.p / "merged").string() + " > /dev/null");
  run(cli + "export-gguf --dtype f32 --model " + (tmp.p / "merged").string() + " -o " +
      (tmp.p / "merged.gguf").string() + " 2> /dev/null");

  auto prompts = rv_test::oracle_prompts();
  prompts.resize(rv_test::sanitizer_run() ? 2 : 4);
  json req = {{"threads", 1}, {"prompts", prompts}, {"top_k", 20}, {"greedy", 0}};
  req["gguf"] = base_gguf.string();
  req["lora"] = (ad / "adapter.gguf").string();
  req["also_without_lora"] = true;
  const json with_lora = rv_test::run_llama_ref(req, tmp.p);
  req.erase("lora");
  req["gguf"] = (tmp.p / "merged.gguf").string();
  const json merged = rv_test::run_llama_ref(req, tmp.p);

  const double tol = 1e-3;
  size_t compared = 0;
  double max_base_diff = 0;
  size_t not_in_base_top = 0;  // top tokens with the adapter that are not among the base's
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const json &pl = with_lora["results"][pi]["positions"],
               &pm = merged["results"][pi]["positions"],
               &pb = with_lora["results_without_lora"][pi]["positions"];
    ASSERT_EQ(pl.size(), pm.size());
    for (size_t i = 0; i < pl.size(); ++i) {
      std::map<int64_t, double> lm, lb;
      for (const auto& e : pm[i]["top"])
        lm[e[0].get<int64_t>()] = e[1].get<double>() - pm[i]["lse"].get<double>();
      for (const auto& e : pb[i]["top"])
        lb[e[0].get<int64_t>()] = e[1].get<double>() - pb[i]["lse"].get<double>();
      size_t matched = 0;
      for (const auto& e : pl[i]["top"]) {
        const int64_t id = e[0].get<int64_t>();
        const double lp = e[1].get<double>() - pl[i]["lse"].get<double>();
        if (lb.count(id))
          max_base_diff = std::max(max_base_diff, std::abs(lp - lb[id]));
        else
          ++not_in_base_top;
        if (!lm.count(id)) continue;  // at the edge of the other's top-20
        ASSERT_NEAR(lp, lm[id], tol) << "prompt " << pi << " position " << i << " token " << id;
        ++matched;
        ++compared;
      }
      EXPECT_GE(matched, 15u) << "prompt " << pi << " position " << i;
    }
  }
  EXPECT_GT(compared, 100u);
  // The adapter changes the model far beyond the tolerance (else the
  // comparison above could not fail): shared top tokens move by more than
  // 100x the tolerance, or the top tokens are different ones altogether.
  EXPECT_TRUE(max_base_diff > 100 * tol || not_in_base_top > compared / 2)
      << "max |Δ logprob| vs the base " << max_base_diff << ", " << not_in_base_top << " of "
      << compared << " top tokens not in the base's top";
}

}  // namespace

TEST(GgufLoraLlamaCpp, Qwen2AdapterMatchesMergedModel) {
  check_llamacpp_lora("qwen2", "qwen2_5");
}
TEST(GgufLoraLlamaCpp, Llama3AdapterMatchesMergedModel) {
  check_llamacpp_lora("llama", "llama3_1");
}
