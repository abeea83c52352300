// Vectors applied at load time (ModelOptions::vectors): full vectors must
// give the weights `reasonvec apply` writes (logits compared with memcmp),
// LoRA adapters the dense delta scale·B·A computed here independently.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "convert/gguf_export.h"
#include "engine/model.h"
#include "engine_test_util.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "formats/model_dir.h"
#include "support/llamacpp_oracle.h"
#include "vector/vector.h"

namespace rv::enginetest {
namespace {

using engine::LoadVector;
using engine::Model;

std::vector<int32_t> prompt(int n, int vocab) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + 11) % vocab);
  return t;
}

std::vector<float> logits(const fs::path& model, const std::vector<LoadVector>& vectors = {}) {
  engine::ModelOptions o;
  o.threads = 2;
  o.vectors = vectors;
  return Model::load(model, o)->forward_all(prompt(12, 256));
}

void extract(const fs::path& base, const fs::path& tuned, const fs::path& out) {
  vec::ExtractOptions o;
  o.force = true;
  vec::extract(base, tuned, out, o, [](const std::string&) {});
}

fs::path apply(const fs::path& target, const std::vector<LoadVector>& v, const fs::path& out) {
  std::vector<vec::ApplyTerm> terms;
  for (const auto& x : v) terms.push_back({x.path, x.alpha});
  vec::ApplyOptions o;
  o.force = true;
  o.partial = true;  // some of these vectors change only a few tensors, on purpose
  vec::apply(target, terms, out, o, [](const std::string&) {});
  return out;
}

// Writes f32 tensors as one .safetensors file `file`.
void write_tensors(const fs::path& file, const std::vector<std::string>& names,
                   const std::vector<std::vector<int64_t>>& shapes,
                   const std::vector<std::vector<float>>& data) {
  const fs::path tmp = file.parent_path() / (file.filename().string() + ".d");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < names.size(); ++i) specs.push_back({names[i], DType::F32, shapes[i]});
  SafetensorsWriter w(tmp, specs, {});
  for (size_t i = 0; i < names.size(); ++i) w.write(i, 0, data[i].data(), data[i].size() * 4);
  w.finish();
  fs::rename(tmp / "model.safetensors", file);
  fs::remove_all(tmp);
}

std::vector<float> randn(size_t n, uint64_t stream, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * synth_normal(99, stream, i);
  return v;
}

struct Case {
  DType dtype;
  bool tied;
};

class FullVector : public ::testing::TestWithParam<Case> {};

// θ + Σ αᵢ·vᵢ at load equals apply's model bit for bit: one vector, two
// vectors (negative alpha), on tied and untied targets.
TEST_P(FullVector, LogitsBitIdenticalToApply) {
  const Case c = GetParam();
  const fs::path dir = temp_dir("full_" + std::string(dtype_name(c.dtype)) + (c.tied ? "_t" : ""));
  SynthOptions o = tiny("qwen2", c.dtype, c.tied);
  make_model(o, dir / "base");
  SynthOptions t1 = o, t2 = o;
  t1.delta_scale = t2.delta_scale = 0.05f;
  t1.delta_seed = 1;
  t2.delta_seed = 2;
  // The second vector comes from models of the other tying, which
  // exercises apply's policies: a tied target ignores a vector's lm_head, an
  // untied one gets a tied vector's embed delta on its head as well.
  t2.tied = !c.tied;
  make_model(t1, dir / "t1");
  make_model(t2, dir / "t2");
  SynthOptions b2 = o;
  b2.tied = !c.tied;
  make_model(b2, dir / "b2");
  extract(dir / "base", dir / "t1", dir / "v1.safetensors");
  extract(dir / "b2", dir / "t2", dir / "v2.safetensors");

  const std::vector<std::vector<LoadVector>> cases = {
      {{dir / "v1.safetensors", 0.7}},
      {{dir / "v1.safetensors", 0.5}, {dir / "v2.safetensors", -1.25}},
  };
  const std::vector<float> plain = logits(dir / "base");
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path applied = apply(dir / "base", cases[i], dir / ("applied" + std::to_string(i)));
    const std::vector<float> want = logits(applied), got = logits(dir / "base", cases[i]);
    ASSERT_EQ(want.size(), got.size());
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << "case " << i;
    EXPECT_NE(0, std::memcmp(plain.data(), got.data(), got.size() * sizeof(float)));
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(LoadVectors, FullVector,
                         ::testing::Values(Case{DType::F32, false}, Case{DType::BF16, false},
                                           Case{DType::F32, true}, Case{DType::BF16, true}),
                         [](const auto& i) {
                           return std::string(dtype_name(i.param.dtype)) +
                                  (i.param.tied ? "_tied" : "_untied");
                         });

TEST(LoadVectors, OnlyChangedTensorsAreOwned) {
  const fs::path dir = temp_dir("owned");
  SynthOptions o = tiny("qwen2", DType::BF16, false);
  make_model(o, dir / "base");
  const std::string name = "model.layers.1.mlp.up_proj.weight";  // [96, 64]
  write_tensors(dir / "v.safetensors", {name}, {{96, 64}}, {randn(96 * 64, 1, 0.1f)});
  engine::ModelOptions mo;
  // A one-tensor vector leaves the other weights unchanged: refused, as by
  // apply, unless partial says it is meant.
  mo.vectors = {{dir / "v.safetensors", 2.0}};
  try {
    Model::load(dir / "base", mo);
    ADD_FAILURE() << "a partial vector loaded without partial";
  } catch (const Error& e) {
    const std::string m = e.what();
    size_t weights = 0;  // every tensor of the synthesized model is a float weight or bias
    const rv::TensorSet base(dir / "base");
    for (const auto& n : base.names()) weights += n.ends_with(".weight") || n.ends_with(".bias");
    EXPECT_EQ(m.rfind((dir / "v.safetensors").string() +
                          ": does not match base: " + std::to_string(weights - 1) + " of " +
                          std::to_string(weights) + " weights are not in the vector (",
                      0),
              0u)
        << m;
    EXPECT_NE(m.find("(--partial applies it anyway)"), std::string::npos) << m;
  }
  mo.vectors = {{dir / "v.safetensors", 2.0, true}};
  auto m = Model::load(dir / "base", mo);
  EXPECT_EQ(m->owned_bytes(), 96u * 64 * 2);  // one bf16 matrix, kept in bf16
  EXPECT_EQ(m->vectors().size(), 1u);
  EXPECT_EQ(Model::load(dir / "base")->owned_bytes(), 0u);
  fs::remove_all(dir);
}

// Dense Δ = scale · B·A in double, rounded once to f32: the independent
// computation the LoRA loaders are checked against.
std::vector<float> dense(const std::vector<float>& B, const std::vector<float>& A, int64_t out,
                         int64_t r, int64_t in, double scale) {
  std::vector<float> d(out * in);
  for (int64_t i = 0; i < out; ++i)
    for (int64_t j = 0; j < in; ++j) {
      double s = 0;
      for (int64_t k = 0; k < r; ++k) s += double(B[i * r + k]) * A[k * in + j];
      d[i * in + j] = static_cast<float>(s * scale);
    }
  return d;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

struct Lora {
  std::string module;  // e.g. model.layers.0.self_attn.q_proj
  int64_t out, r, in;
  double scale;
  std::vector<float> A = {}, B = {};
};

// LoRA logits vs apply of the dense deltas written as an f32 vector. They
// differ only by the rounding of B·A (f32 sums in the loader, double here),
// at most an ulp of each delta element, far below the 1e-4 bound.
void expect_like_dense(const fs::path& dir, const fs::path& base, const fs::path& adapter,
                       const std::vector<Lora>& loras, double alpha) {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> data;
  for (const auto& l : loras) {
    names.push_back(l.module + ".weight");
    shapes.push_back({l.out, l.in});
    data.push_back(dense(l.B, l.A, l.out, l.r, l.in, l.scale));
  }
  write_tensors(dir / "dense.safetensors", names, shapes, data);
  const auto want =
      logits(apply(base, {{dir / "dense.safetensors", alpha}}, dir / "dense_applied"));
  const auto got = logits(base, {{adapter, alpha}});
  const auto plain = logits(base);
  EXPECT_LT(max_abs_diff(want, got), 1e-4);
  EXPECT_GT(max_abs_diff(plain, got), 1e-2);  // the adapter did change the model
}

TEST(LoadVectors, PeftAdapterEqualsDenseDelta) {
  const fs::path dir = temp_dir("peft");
  make_model(tiny("qwen2", DType::F32, false), dir / "base");
  // r = 4, lora_alpha = 8; k_proj has rank 2 (rank_pattern) and layer 1's
  // down_proj alpha 3 (alpha_pattern).
  std::vector<Lora> loras = {{"model.layers.0.self_attn.q_proj", 64, 4, 64, 8.0 / 4},
                             {"model.layers.0.self_attn.k_proj", 32, 2, 64, 8.0 / 2},
                             {"model.layers.1.mlp.down_proj", 64, 4, 96, 3.0 / 4}};
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> data;
  uint64_t stream = 10;
  for (auto& l : loras) {
    l.A = randn(l.r * l.in, stream++, 0.3f);
    l.B = randn(l.out * l.r, stream++, 0.3f);
    names.push_back("base_model.model." + l.module + ".lora_A.weight");
    shapes.push_back({l.r, l.in});
    data.push_back(l.A);
    names.push_back("base_model.model." + l.module + ".lora_B.weight");
    shapes.push_back({l.out, l.r});
    data.push_back(l.B);
  }
  fs::create_directories(dir / "adapter");
  write_tensors(dir / "adapter" / "adapter_model.safetensors", names, shapes, data);
  json cfg = {{"peft_type", "LORA"},
              {"r", 4},
              {"lora_alpha", 8},
              {"base_model_name_or_path", "org/other-model"},
              {"rank_pattern", {{"k_proj", 2}}},
              {"alpha_pattern", {{"layers.1.mlp.down_proj", 3}}}};
  write_file(dir / "adapter" / "adapter_config.json", cfg.dump());
  expect_like_dense(dir, dir / "base", dir / "adapter", loras, 1.5);

  // Trained on another model (by name): a warning, not an error.
  std::vector<std::string> logged;
  engine::ModelOptions mo;
  mo.vectors = {{dir / "adapter", 1.0}};
  mo.log = [&](const std::string& m) { logged.push_back(m); };
  Model::load(dir / "base", mo);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0].rfind("warning: ", 0), 0u) << logged[0];
  EXPECT_NE(logged[0].find("org/other-model"), std::string::npos) << logged[0];
  logged.clear();
  cfg["base_model_name_or_path"] = "/models/base/";  // the model's directory name: quiet
  write_file(dir / "adapter" / "adapter_config.json", cfg.dump());
  Model::load(dir / "base", mo);
  EXPECT_TRUE(logged.empty()) << logged[0];

  // use_rslora: scale = lora_alpha / sqrt(r).
  cfg["use_rslora"] = true;
  write_file(dir / "adapter" / "adapter_config.json", cfg.dump());
  for (auto& l : loras)
    l.scale = (l.module.find("down") != std::string::npos ? 3.0 : 8.0) / std::sqrt(double(l.r));
  expect_like_dense(dir, dir / "base", dir / "adapter", loras, -0.5);

  // A rank that does not fit the configuration names the tensor.
  cfg["rank_pattern"] = json::object();
  write_file(dir / "adapter" / "adapter_config.json", cfg.dump());
  try {
    logits(dir / "base", {{dir / "adapter", 1}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("k_proj.lora_A.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos);
  }
  fs::remove_all(dir);
}

// A llama.cpp LoRA adapter for a Llama model: llama.cpp names, ggml dims
// and q/k rows (B's) in llama.cpp's interleaved order.
TEST(LoadVectors, GgufAdapterEqualsDenseDelta) {
  const fs::path dir = temp_dir("gguf_lora");
  SynthOptions o = tiny("llama", DType::F32, false);
  make_model(o, dir / "base");
  const int64_t hd = 16;  // 64 / 4 heads
  std::vector<Lora> loras = {{"model.layers.0.self_attn.q_proj", 64, 4, 64, 0},
                             {"model.layers.1.self_attn.k_proj", 32, 4, 64, 0},
                             {"model.layers.1.mlp.gate_proj", 96, 4, 64, 0}};
  const float alpha = 6;
  std::vector<gguf::TensorInfo> infos;
  std::vector<std::vector<float>> data;
  uint64_t stream = 40;
  for (auto& l : loras) {
    l.scale = alpha / l.r;
    l.A = randn(l.r * l.in, stream++, 0.3f);
    l.B = randn(l.out * l.r, stream++, 0.3f);
    const std::string g = gguf_tensor_name(l.module + ".weight");
    ASSERT_FALSE(g.empty());
    std::vector<float> b = l.B;
    if (l.module.find("_proj") != std::string::npos && l.module.find("mlp") == std::string::npos)
      for (int64_t row = 0; row < l.out; ++row)  // GGUF row `row` holds HF row source_row(row)
        std::copy(l.B.begin() + gguf_qk_source_row(row, hd) * l.r,
                  l.B.begin() + (gguf_qk_source_row(row, hd) + 1) * l.r, b.begin() + row * l.r);
    infos.push_back({g + ".lora_a", gguf::TensorType::F32, {uint64_t(l.in), uint64_t(l.r)}, 0});
    data.push_back(l.A);
    infos.push_back({g + ".lora_b", gguf::TensorType::F32, {uint64_t(l.r), uint64_t(l.out)}, 0});
    data.push_back(b);
  }
  {
    gguf::Writer w(dir / "adapter.gguf",
                   {{"general.architecture", gguf::Value::string("llama")},
                    {"general.type", gguf::Value::string("adapter")},
                    {"adapter.type", gguf::Value::string("lora")},
                    {"adapter.lora.alpha", gguf::Value::f32(alpha)}},
                   infos);
    for (const auto& d : data) w.append(d.data(), d.size() * 4);
    w.finish();
  }
  expect_like_dense(dir, dir / "base", dir / "adapter.gguf", loras, 0.8);

  // An adapter for another architecture is refused.
  make_model(tiny("qwen2", DType::F32, false), dir / "qwen");
  try {
    logits(dir / "qwen", {{dir / "adapter.gguf", 1}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir / "adapter.gguf").string() +
                  ": adapter is for architecture 'llama', the model is 'qwen2'");
  }
  fs::remove_all(dir);
}

// A GGUF model (Llama: q/k rows re-ordered at load) with vectors gives the
// directory's logits bit for bit: vectors act on the Hugging Face layout.
TEST(LoadVectors, GgufModelEqualsDirectory) {
  const fs::path dir = temp_dir("gguf_model");
  SynthOptions o = tiny("llama", DType::BF16, false);
  o.tokenizer_dir = rv_test::oracle_tokenizer_dir("llama3_1");
  o.vocab = 0;  // the tokenizer's
  o.hidden = 32;
  o.intermediate = 48;
  make_model(o, dir / "base");
  GgufExportOptions eo;
  export_gguf(dir / "base", dir / "base.gguf", eo, false);
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj.weight",
                                          "model.layers.1.self_attn.k_proj.weight",
                                          "model.layers.1.mlp.down_proj.weight"};
  write_tensors(dir / "v.safetensors", names, {{32, 32}, {16, 32}, {32, 48}},
                {randn(32 * 32, 1, 0.3f), randn(16 * 32, 2, 0.3f), randn(32 * 48, 3, 0.3f)});
  const std::vector<LoadVector> v = {{dir / "v.safetensors", -0.75, true}};  // q/k/v only: partial
  engine::ModelOptions mo;
  mo.threads = 2;
  mo.vectors = v;
  const std::vector<int32_t> toks = {1, 500, 9000, 42};
  const auto want = Model::load(dir / "base", mo)->forward_all(toks);
  const auto got = Model::load(dir / "base.gguf", mo)->forward_all(toks);
  ASSERT_EQ(want.size(), got.size());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * 4));
  EXPECT_NE(0, std::memcmp(want.data(), Model::load(dir / "base.gguf")->forward_all(toks).data(),
                           got.size() * 4));
  fs::remove_all(dir);
}

void expect_error(const fs::path& model, const fs::path& vector, const std::string& part) {
  try {
    logits(model, {{vector, 1}});
    FAIL() << "expected an error for " << vector;
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(vector.string() + ": ", 0), 0u) << m;
    EXPECT_NE(m.find(part), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(LoadVectors, BadVectorsAreOneLineErrorsNamingTheFile) {
  const fs::path dir = temp_dir("bad");
  make_model(tiny("qwen2", DType::F32, false), dir / "base");
  const std::string up = "model.layers.0.mlp.up_proj.weight";
  write_tensors(dir / "shape.safetensors", {up}, {{64, 64}}, {randn(64 * 64, 1, 0.1f)});
  expect_error(dir / "base", dir / "shape.safetensors", "'" + up + "' has shape [64, 64]");
  write_tensors(dir / "missing.safetensors", {"model.layers.7.mlp.up_proj.weight"}, {{96, 64}},
                {randn(96 * 64, 1, 0.1f)});
  expect_error(dir / "base", dir / "missing.safetensors",
               "'model.layers.7.mlp.up_proj.weight' is not in the model");
  write_tensors(dir / "vocab.safetensors", {"model.embed_tokens.weight"}, {{300, 64}},
                {randn(300 * 64, 1, 0.1f)});
  expect_error(dir / "base", dir / "vocab.safetensors", "300 vocabulary rows");
  expect_error(dir / "base", dir / "nonexistent.safetensors", "");
  fs::remove_all(dir);
}

// Peak resident memory of this process in bytes (current RSS).
uint64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * uint64_t(sysconf(_SC_PAGESIZE));
}

// A variant shares the base's mapping: loading one that changes a single
// matrix grows the resident set by about that matrix, not by the model.
TEST(LoadVectors, VariantSharesUnchangedTensors) {
  const fs::path dir = temp_dir("variant");
  SynthOptions o = tiny("qwen2", DType::F32, false);
  o.hidden = 256;
  o.intermediate = 768;
  o.layers = 6;
  o.vocab = 1024;
  o.init_scale = 0.05f;
  make_model(o, dir / "base", {}, false);                             // ~21 MB of f32 weights
  const std::string name = "model.layers.0.self_attn.o_proj.weight";  // 256 KiB
  write_tensors(dir / "v.safetensors", {name}, {{256, 256}}, {randn(256 * 256, 3, 0.05f)});
  auto base = Model::load(dir / "base", {.threads = 2});
  const std::vector<int32_t> toks = {1, 2, 3};
  const auto base_logits = base->forward_all(toks);  // touches every weight page
  engine::ModelOptions mo;
  mo.threads = 2;
  mo.vectors = {{dir / "v.safetensors", 1.5, true}};  // one tensor: partial
  const uint64_t before = rss_bytes();
  auto var = base->variant(mo);
  const uint64_t grown = rss_bytes() - std::min(before, rss_bytes());
  EXPECT_EQ(var->owned_bytes(), 256u * 256 * 4);
  EXPECT_LT(grown, var->owned_bytes() + (6u << 20)) << "model is " << base->weight_bytes();
  EXPECT_GT(base->weight_bytes(), 20u << 20);
  // The variant runs the applied weights; the base is unchanged.
  const auto got = var->forward_all(toks);
  const auto want = Model::load(apply(dir / "base", mo.vectors, dir / "applied"), {.threads = 2})
                        ->forward_all(toks);
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * 4));
  EXPECT_EQ(0, std::memcmp(base_logits.data(), base->forward_all(toks).data(), got.size() * 4));
  fs::remove_all(dir);
}

// Bytes of every distinct weight matrix (a tied head is the embedding).
uint64_t matrix_bytes(const engine::ModelSpec& s, DType dt) {
  const uint64_t h = s.hidden, per_layer = 2 * h * s.q_dim() + 2 * h * s.kv_dim() +
                                           3 * h * static_cast<uint64_t>(s.intermediate);
  return (static_cast<uint64_t>(s.vocab) * h * (s.tied ? 1 : 2) + s.layers * per_layer) *
         dtype_size(dt);
}

// Overwrites the second half of `file` (tensor data) in place, as another
// process rewriting the model would: a model still reading the mapped file
// sees it, a model holding copies does not.
void scribble(const fs::path& file) {
  const auto size = fs::file_size(file);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(size / 2));
  const std::string junk(size - size / 2, '\x3c');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  ASSERT_TRUE(f.good()) << file;
}

// ModelOptions::copy_weights: the same logits bit for bit, every matrix
// copied once (not those a vector or the GGUF Llama loader already owns),
// and the copies, not the file, are what the model reads afterwards.
TEST(CopyWeights, SameLogitsFromOwnedCopies) {
  const fs::path dir = temp_dir("copy_weights");
  SynthOptions qo = tiny("qwen2", DType::BF16, true);
  make_model(qo, dir / "qwen2");
  const std::string name = "model.layers.1.mlp.up_proj.weight";  // [96, 64]
  write_tensors(dir / "v.safetensors", {name}, {{96, 64}}, {randn(96 * 64, 4, 0.1f)});
  SynthOptions lo = tiny("llama", DType::BF16, false);
  lo.tokenizer_dir = rv_test::oracle_tokenizer_dir("llama3_1");  // export-gguf needs one
  lo.vocab = 0;                                                  // the tokenizer's
  lo.hidden = 32;
  lo.intermediate = 48;
  make_model(lo, dir / "llama");
  export_gguf(dir / "llama", dir / "llama.gguf", GgufExportOptions{}, false);
  struct Run {
    fs::path model, file;
    std::vector<LoadVector> vectors;
  };
  for (const Run& r :
       {Run{dir / "qwen2", dir / "qwen2" / "model.safetensors", {}},
        Run{dir / "qwen2", dir / "qwen2" / "model.safetensors", {{dir / "v.safetensors", 2, true}}},
        Run{dir / "llama.gguf", dir / "llama.gguf", {}}}) {
    SCOPED_TRACE(r.model.string() + (r.vectors.empty() ? "" : " + vector"));
    engine::ModelOptions mo;
    mo.threads = 2;
    mo.vectors = r.vectors;
    auto mapped = Model::load(r.model, mo);
    mo.copy_weights = true;
    auto copied = Model::load(r.model, mo);
    const auto toks = prompt(12, 256);
    const auto want = mapped->forward_all(toks);
    const auto got = copied->forward_all(toks);
    ASSERT_EQ(want.size(), got.size());
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * 4));
    // Each matrix once, padded to 64 bytes: 16 matrices at most here.
    const uint64_t all = matrix_bytes(copied->spec(), DType::BF16);
    EXPECT_GE(copied->owned_bytes(), all);
    EXPECT_LE(copied->owned_bytes(), all + 16 * 64);
    scribble(r.file);
    EXPECT_NE(0, std::memcmp(want.data(), mapped->forward_all(toks).data(), got.size() * 4));
    EXPECT_EQ(0, std::memcmp(want.data(), copied->forward_all(toks).data(), got.size() * 4));
    make_model(qo, dir / "qwen2");  // whole again for the next run
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rv::enginetest
