// export-gguf: synthesized Hugging Face models with real tokenizers are
// exported and read back with an independent GGUF parser; every key, token,
// merge and tensor is checked against the source files parsed here.
#include "convert/gguf_export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "formats/model_dir.h"
#include "formats/synth.h"
#include "formats/gguf_mini_parser.h"
#include "support/llamacpp_oracle.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using rv_test::TmpDir;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
json jload(const fs::path& p) {
  return json::parse(slurp(p));
}
void jsave(const fs::path& p, const json& j) {
  std::ofstream(p) << j.dump(2);
}

// HF -> llama.cpp names, written out for the tensors synth produces.
std::string expected_name(const std::string& hf) {
  static const std::map<std::string, std::string> top = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  if (top.count(hf)) return top.at(hf);
  static const std::map<std::string, std::string> layer = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  // model.layers.<n>.<rest>
  size_t a = std::string("model.layers.").size();
  size_t b = hf.find('.', a);
  return "blk." + hf.substr(a, b - a) + "." + layer.at(hf.substr(b + 1));
}

float src_value(const rv::TensorView& v, size_t i) {
  const uint8_t* p = v.data;
  if (v.dtype() == rv::DType::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return v.dtype() == rv::DType::BF16 ? mini_gguf::bf16(h) : mini_gguf::f16(h);
}

float out_value(const mini_gguf::File& f, const mini_gguf::Tensor& t, size_t i) {
  const uint8_t* p = f.data(t);
  if (t.type == 0) {
    float x;
    std::memcpy(&x, p + 4 * i, 4);
    return x;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return t.type == 30 ? mini_gguf::bf16(h) : mini_gguf::f16(h);
}

struct Case {
  std::string arch, tok;
  bool tied;
  rv::DType src, out;
  bool rope_llama3;
};

void check_export(const Case& c) {
  SCOPED_TRACE(c.arch + " from " + std::string(rv::dtype_name(c.src)) + " to " +
               std::string(rv::dtype_name(c.out)));
  TmpDir tmp;
  rv::SynthOptions so;
  so.arch = c.arch;
  so.layers = 2;
  so.hidden = 32;
  so.heads = 4;
  so.kv_heads = 2;
  so.intermediate = 48;
  so.tied = c.tied;
  so.dtype = c.src;
  so.init_scale = 0.2f;
  so.tokenizer_dir = rv_test::oracle_tokenizer_dir(c.tok);
  fs::path md = tmp.p / "model";
  rv::synth_model(so, md, false);
  json cfg = jload(md / "config.json");
  if (c.rope_llama3) {
    cfg["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", 8.0},
                           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 64}};
    cfg["rope_theta"] = 500000.0;
    jsave(md / "config.json", cfg);
  }

  fs::path out = tmp.p / "m.gguf";
  rv::GgufExportOptions opt;
  opt.dtype = c.out;
  rv::GgufExportResult r = rv::export_gguf(md, out, opt, false);
  std::string bytes = slurp(out);
  EXPECT_EQ(r.bytes, bytes.size());
  auto f = mini_gguf::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  EXPECT_EQ(f.data_start % 32, 0u);
  auto& kv = f.kv;
  const std::string a = c.arch + ".";
  EXPECT_EQ(kv["general.architecture"].s, c.arch);
  EXPECT_EQ(kv["general.name"].s, "model");
  EXPECT_EQ(kv["general.file_type"].u, c.out == rv::DType::F32   ? 0u
                                       : c.out == rv::DType::F16 ? 1u
                                                                 : 32u);
  auto u32 = [&](const std::string& k) {
    EXPECT_EQ(kv[k].type, 4u) << k;
    return kv[k].u;
  };
  EXPECT_EQ(u32(a + "block_count"), cfg["num_hidden_layers"].get<uint64_t>());
  EXPECT_EQ(u32(a + "context_length"), cfg["max_position_embeddings"].get<uint64_t>());
  EXPECT_EQ(u32(a + "embedding_length"), cfg["hidden_size"].get<uint64_t>());
  EXPECT_EQ(u32(a + "feed_forward_length"), cfg["intermediate_size"].get<uint64_t>());
  EXPECT_EQ(u32(a + "attention.head_count"), cfg["num_attention_heads"].get<uint64_t>());
  EXPECT_EQ(u32(a + "attention.head_count_kv"), cfg["num_key_value_heads"].get<uint64_t>());
  EXPECT_EQ(kv[a + "rope.freq_base"].type, 6u);
  EXPECT_EQ(kv[a + "rope.freq_base"].f, static_cast<float>(cfg["rope_theta"].get<double>()));
  EXPECT_EQ(kv[a + "attention.layer_norm_rms_epsilon"].f,
            static_cast<float>(cfg["rms_norm_eps"].get<double>()));
  const uint64_t hd = 32 / 4;
  if (c.arch == "qwen3") {
    EXPECT_EQ(u32(a + "attention.key_length"), hd);
    EXPECT_EQ(u32(a + "attention.value_length"), hd);
  }
  if (c.arch == "llama") {
    EXPECT_EQ(u32(a + "rope.dimension_count"), hd);
    EXPECT_EQ(u32(a + "vocab_size"), cfg["vocab_size"].get<uint64_t>());
  }

  // Tokenizer, against the source files.
  json tj = jload(md / "tokenizer.json");
  json tc = jload(md / "tokenizer_config.json");
  EXPECT_EQ(kv["tokenizer.ggml.model"].s, "gpt2");
  EXPECT_EQ(kv["tokenizer.ggml.pre"].s, c.arch == "llama" ? "llama-bpe" : "qwen2");
  const auto& toks = kv["tokenizer.ggml.tokens"];
  const auto& types = kv["tokenizer.ggml.token_type"];
  const size_t V = cfg["vocab_size"].get<size_t>();
  ASSERT_EQ(toks.elem, 8u);
  ASSERT_EQ(toks.arr.size(), V);
  ASSERT_EQ(types.elem, 5u);
  ASSERT_EQ(types.arr.size(), V);
  size_t n_normal = 0;
  for (auto& [s, id] : tj["model"]["vocab"].items()) {
    size_t i = id.get<size_t>();
    ASSERT_LT(i, V);
    EXPECT_EQ(toks.arr[i].s, s);
    EXPECT_EQ(types.arr[i].i, 1);
    ++n_normal;
  }
  for (auto& t : tj["added_tokens"]) {
    size_t i = t["id"].get<size_t>();
    EXPECT_EQ(toks.arr[i].s, t["content"].get<std::string>());
    EXPECT_EQ(types.arr[i].i, t["special"].get<bool>() ? 3 : 4) << t["content"];
  }
  EXPECT_EQ(n_normal + tj["added_tokens"].size(), V);
  const auto& merges = kv["tokenizer.ggml.merges"];
  ASSERT_EQ(merges.arr.size(), tj["model"]["merges"].size());
  for (size_t i = 0; i < merges.arr.size(); i += 997) {
    const json& m = tj["model"]["merges"][i];
    std::string want = m.is_string() ? m.get<std::string>()
                                     : m[0].get<std::string>() + " " + m[1].get<std::string>();
    EXPECT_EQ(merges.arr[i].s, want);
  }
  auto id_of = [&](const std::string& content) -> int64_t {
    for (auto& t : tj["added_tokens"])
      if (t["content"] == content) return t["id"].get<int64_t>();
    return -1;
  };
  if (c.arch == "llama") {
    EXPECT_EQ(kv["tokenizer.ggml.bos_token_id"].u, id_of("<|begin_of_text|>"));
    EXPECT_EQ(kv["tokenizer.ggml.eos_token_id"].u, id_of("<|eot_id|>"));
    EXPECT_EQ(kv["tokenizer.ggml.add_bos_token"].u,
              1u);  // from the TemplateProcessing post-processor
  } else {
    EXPECT_EQ(kv.count("tokenizer.ggml.bos_token_id"), 0u);  // Qwen has none
    EXPECT_EQ(kv["tokenizer.ggml.eos_token_id"].u, id_of("<|im_end|>"));
    EXPECT_EQ(kv["tokenizer.ggml.padding_token_id"].u, id_of("<|endoftext|>"));
    EXPECT_EQ(kv["tokenizer.ggml.add_bos_token"].u, 0u);
  }
  EXPECT_EQ(kv["tokenizer.ggml.add_bos_token"].type, 7u);
  EXPECT_EQ(kv["tokenizer.chat_template"].s, tc["chat_template"].get<std::string>());

  // Tensors.
  rv::TensorSet ts(md);
  std::set<std::string> expected;
  for (const auto& n : ts.names())
    if (!(c.tied && n == "lm_head.weight")) expected.insert(expected_name(n));
  if (c.rope_llama3) expected.insert("rope_freqs.weight");
  std::set<std::string> got;
  uint64_t prev_end = 0;
  for (const auto& t : f.tensors) {
    got.insert(t.name);
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_GE(t.offset, prev_end) << t.name;
    prev_end = t.offset + mini_gguf::nbytes(t);
    EXPECT_LE(f.data_start + prev_end, bytes.size()) << t.name;
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(f.tensor("output.weight") != nullptr, !c.tied);
  const uint32_t mat_type = c.out == rv::DType::F32 ? 0 : c.out == rv::DType::F16 ? 1 : 30;
  for (const auto& hf : ts.names()) {
    if (c.tied && hf == "lm_head.weight") continue;
    rv::TensorView v = ts.view(hf);
    const mini_gguf::Tensor* t = f.tensor(expected_name(hf));
    ASSERT_NE(t, nullptr) << hf;
    std::vector<uint64_t> rev(v.shape().rbegin(), v.shape().rend());
    EXPECT_EQ(t->ne, rev) << hf;
    const bool one_d = v.shape().size() == 1;
    EXPECT_EQ(t->type, one_d ? 0u : mat_type) << hf;
    // Llama's q/k rows go from (head, half, i) to (head, i, half).
    const bool perm = c.arch == "llama" && (hf.find("q_proj") != std::string::npos ||
                                            hf.find("k_proj") != std::string::npos);
    const size_t rows = v.shape()[0], cols = one_d ? 1 : v.shape()[1];
    for (size_t r = 0; r < rows; ++r) {
      size_t sr = r;
      if (perm) {
        size_t head = r / hd, within = r % hd, i = within / 2, half = within % 2;
        sr = head * hd + half * (hd / 2) + i;
      }
      for (size_t col = 0; col < cols; ++col) {
        float s = src_value(v, sr * cols + col), o = out_value(f, *t, r * cols + col);
        if (t->type == 0 || (t->type == 30 && c.src == rv::DType::BF16)) {
          ASSERT_EQ(s, o) << hf << " [" << r << "," << col << "]";  // exact
        } else {
          // Rounded once to the narrower type: within half an ulp.
          double ulp = t->type == 30 ? std::ldexp(1.0, std::ilogb(s) - 7)
                                     : std::ldexp(1.0, std::max(std::ilogb(s), -14) - 10);
          ASSERT_LE(std::fabs(static_cast<double>(s) - o), ulp / 2) << hf << " [" << r << "]";
        }
      }
    }
  }
  if (c.rope_llama3) {
    const mini_gguf::Tensor* t = f.tensor("rope_freqs.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type, 0u);
    ASSERT_EQ(t->ne, std::vector<uint64_t>{hd / 2});
    // Llama 3.1 scaling: wavelengths above old_ctx/low are divided by `factor`,
    // below old_ctx/high untouched, smooth in between.
    for (size_t i = 0; i < hd / 2; ++i) {
      double inv = 1.0 / std::pow(500000.0, 2.0 * i / hd);
      double wl = 2 * M_PI / inv, want;
      if (wl < 64 / 4.0)
        want = 1;
      else if (wl > 64 / 1.0)
        want = 8;
      else {
        double sm = (64 / wl - 1) / (4 - 1);
        want = 1 / ((1 - sm) / 8 + sm);
      }
      EXPECT_NEAR(out_value(f, *t, i), want, 1e-4 * want) << i;
    }
  }
}

std::string export_error(const fs::path& md, const fs::path& out) {
  try {
    rv::export_gguf(md, out, {}, false);
  } catch (const rv::Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    return e.what();
  }
  ADD_FAILURE() << "export succeeded";
  return "";
}

}  // namespace

TEST(GgufExport, Qwen2TiedBf16ToF32) {
  check_export({"qwen2", "qwen2_5", true, rv::DType::BF16, rv::DType::F32, false});
}
TEST(GgufExport, Qwen3F32ToBf16) {
  check_export({"qwen3", "qwen3", false, rv::DType::F32, rv::DType::BF16, false});
}
TEST(GgufExport, LlamaBf16Llama3Rope) {
  check_export({"llama", "llama3_1", false, rv::DType::BF16, rv::DType::BF16, true});
}
TEST(GgufExport, Qwen2F32ToF16) {
  check_export({"qwen2", "qwen2_5", false, rv::DType::F32, rv::DType::F16, false});
}

TEST(GgufExport, RejectsBadModels) {
  TmpDir tmp;
  rv::SynthOptions so;
  so.arch = "llama";
  so.hidden = 16;
  so.heads = 2;
  so.kv_heads = 1;
  so.intermediate = 16;
  so.tied = true;
  so.tokenizer_dir = rv_test::oracle_tokenizer_dir("llama3_1");
  fs::path md = tmp.p / "m";
  rv::synth_model(so, md, false);
  fs::path out = tmp.p / "o.gguf";
  json cfg = jload(md / "config.json");

  json bad = cfg;
  bad["architectures"] = {"MistralForCausalLM"};
  jsave(md / "config.json", bad);
  EXPECT_NE(export_error(md, out).find("architecture 'MistralForCausalLM' is not supported"),
            std::string::npos);

  bad = cfg;
  bad["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  jsave(md / "config.json", bad);
  EXPECT_NE(export_error(md, out).find("rope_scaling type 'dynamic' is not supported"),
            std::string::npos);

  bad = cfg;
  bad["tie_word_embeddings"] = false;
  jsave(md / "config.json", bad);
  EXPECT_NE(export_error(md, out).find("'lm_head.weight' missing"), std::string::npos);

  jsave(md / "config.json", cfg);
  json tj = jload(md / "tokenizer.json");
  tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+";
  jsave(md / "tokenizer.json", tj);
  EXPECT_NE(export_error(md, out).find("unsupported tokenizer"), std::string::npos);
  fs::remove(md / "tokenizer.json");
  EXPECT_NE(export_error(md, out).find("no tokenizer.json"), std::string::npos);
  EXPECT_FALSE(fs::exists(out));  // nothing left behind by failed exports
  for (auto& e : fs::directory_iterator(tmp.p))
    EXPECT_EQ(e.path().filename().string().find(".o.gguf"), std::string::npos);

  // Existing output without force.
  std::ofstream(out) << "x";
  EXPECT_NE(export_error(md, out).find("already exists"), std::string::npos);
}

TEST(GgufExport, Cli) {
  TmpDir tmp;
  rv::SynthOptions so;
  so.arch = "qwen2";
  so.hidden = 16;
  so.heads = 2;
  so.kv_heads = 1;
  so.intermediate = 16;
  so.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
  fs::path md = tmp.p / "m";
  rv::synth_model(so, md, false);
  fs::path out = tmp.p / "o.gguf";
  std::string cmd = std::string(RV_CLI_PATH) + " -q export-gguf --model " + md.string() + " -o " +
                    out.string() + " --dtype bf16 2>" + (tmp.p / "err").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(tmp.p / "err");
  std::string bytes = slurp(out);
  auto f = mini_gguf::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(f.kv["general.file_type"].u, 32u);
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight")->type, 30u);
  EXPECT_EQ(f.tensor("blk.0.attn_q.bias")->type, 0u);
  // Again without --force: refused, exit 1, one line naming the file.
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  std::string err = slurp(tmp.p / "err");
  EXPECT_NE(err.find("reasonvec: " + out.string() + ": output already exists"), std::string::npos)
      << err;
  cmd = std::string(RV_CLI_PATH) + " -q export-gguf --model " + md.string() + " -o " +
        out.string() + " --force --dtype q4 2>" + (tmp.p / "err").string();
  rc = std::system(cmd.c_str());
  EXPECT_NE(WEXITSTATUS(rc), 0);
  EXPECT_NE(slurp(tmp.p / "err").find("--dtype"), std::string::npos);
}
