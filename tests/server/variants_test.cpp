// `reasonvec serve --variant NAME=VECTOR:ALPHA...`: one server answering for
// the base model and for base + vectors, each with its own weights. Every
// answer is compared with an engine over the model `reasonvec apply` writes
// (or the base), run directly in this process.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "engine/engine.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "server/server_test_util.h"
#include "support/llamacpp_oracle.h"
#include "tokenizer/tokenizer.h"
#include "vector/vector.h"

namespace rv::server {
namespace {

using namespace rv::server::test;
namespace fs = std::filesystem;

constexpr int kVariantsContext = 128;

// A full vector over some matrices of the 2-layer synth model, N(0, 0.2²).
void write_vector(const fs::path& file, uint64_t seed) {
  const fs::path tmp = file.parent_path() / "tmp_vec";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> ts = {
      {"model.layers.0.self_attn.q_proj.weight", {64, 64}},
      {"model.layers.1.mlp.up_proj.weight", {128, 64}},
      {"model.layers.1.mlp.down_proj.weight", {64, 128}}};
  std::vector<TensorSpec> specs;
  for (const auto& [n, s] : ts) specs.push_back({n, DType::F32, s});
  SafetensorsWriter w(tmp, specs, {});
  for (size_t i = 0; i < ts.size(); ++i) {
    std::vector<float> v(ts[i].second[0] * ts[i].second[1]);
    for (size_t k = 0; k < v.size(); ++k)
      v[k] = 0.2f * synth_normal(seed, hash_name(ts[i].first), k);
    w.write(i, 0, v.data(), v.size() * 4);
  }
  w.finish();
  fs::rename(tmp / "model.safetensors", file);
  fs::remove_all(tmp);
}

fs::path apply(const fs::path& model, const std::vector<vec::ApplyTerm>& terms,
               const fs::path& out) {
  vec::ApplyOptions o;
  o.force = true;
  o.partial = true;  // some of these vectors change only a few tensors, on purpose
  vec::apply(model, terms, out, o, [](const std::string&) {});
  return out;
}

TEST(ServeVariants, EachVariantAnswersWithItsOwnWeights) {
  const fs::path root =
      fs::temp_directory_path() / ("rv_serve_variants_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path model = root / "tiny-qwen";
  SynthOptions o;
  o.arch = "qwen2";
  o.layers = 2;
  o.hidden = 64;
  o.heads = 4;
  o.kv_heads = 2;
  o.intermediate = 128;
  o.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
  o.init_scale = 0.2f;
  o.tied = true;
  o.seed = 5;
  synth_model(o, model, true);
  write_vector(root / "v1.safetensors", 1);
  write_vector(root / "v2.safetensors", 2);
  const std::string v1 = (root / "v1.safetensors").string(),
                    v2 = (root / "v2.safetensors").string();

  // The vectors change a few tensors only: --partial.
  ServeProcess proc({"-q", "serve", "--partial", "--model", model.string(), "--port", "0",
                     "--max-context", std::to_string(kVariantsContext), "--max-batch", "4",
                     "--variant", "plus=" + v1 + ":1", "--variant",
                     "mix=" + v1 + ":0.5+" + v2 + ":-1.5", "--variant", "plain="});
  auto client = make_client(proc.port());

  // Listed: the base under its usual name first, then the variants.
  auto r = client.Get("/v1/models");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  std::vector<std::string> ids;
  const json models = json::parse(r->body);
  for (const auto& m : models["data"]) ids.push_back(m["id"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"tiny-qwen", "plus", "mix", "plain"}));

  engine::EngineOptions eo;
  eo.max_context = kVariantsContext;
  eo.max_batch = 1;
  auto base = engine::Engine::open(model, eo);
  auto plus = engine::Engine::open(apply(model, {{v1, 1}}, root / "plus"), eo);
  auto mix = engine::Engine::open(apply(model, {{v1, 0.5}, {v2, -1.5}}, root / "mix"), eo);
  const std::vector<std::pair<std::string, engine::Engine*>> want = {
      {"tiny-qwen", base.get()}, {"plus", plus.get()}, {"mix", mix.get()}, {"plain", base.get()}};

  const std::vector<std::string> prompts =
      sanitizer_run() ? std::vector<std::string>{"Once upon a time"}
                      : std::vector<std::string>{"Once upon a time", "1, 2, 3, 4,"};
  int differ = 0;
  for (const auto& prompt : prompts) {
    const auto toks = base->tokenizer().encode(prompt);
    std::string base_text;
    for (const auto& [name, eng] : want) {
      engine::SamplingParams p;
      p.max_tokens = 12;
      p.logprobs = 1;
      const engine::GenerationResult g = eng->submit_generate(toks, p).get();
      json body = {{"model", name},
                   {"prompt", prompt},
                   {"max_tokens", 12},
                   {"temperature", 0},
                   {"logprobs", 1}};
      auto res = client.Post("/v1/completions", body.dump(), "application/json");
      ASSERT_TRUE(res);
      ASSERT_EQ(res->status, 200) << res->body;
      const json j = json::parse(res->body);
      EXPECT_EQ(j["model"], name);
      EXPECT_EQ(j["choices"][0]["text"], g.text) << name << ": " << prompt;
      const json& lp = j["choices"][0]["logprobs"]["token_logprobs"];
      ASSERT_EQ(lp.size(), g.token_logprobs.size()) << name;
      for (size_t i = 0; i < lp.size(); ++i)
        EXPECT_EQ(lp[i].get<double>(), g.token_logprobs[i]) << name << " token " << i;
      if (name == "tiny-qwen") base_text = g.text;
      if (name != "tiny-qwen" && name != "plain" && g.text != base_text) ++differ;
    }
  }
  EXPECT_GT(differ, 0) << "the vectors should change some greedy text";

  // An unknown model: 404 with an OpenAI error object naming what is served.
  auto bad = client.Post("/v1/completions", R"({"model": "nope", "prompt": "x", "max_tokens": 1})",
                         "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 404);
  const json e = json::parse(bad->body)["error"];
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_NE(e["message"].get<std::string>().find("`plus`"), std::string::npos) << e;

  EXPECT_EQ(proc.stop(), 0);
  fs::remove_all(root);
}

TEST(ServeVariants, BadVariantFailsWithOneLineNamingTheVector) {
  const fs::path root = fs::temp_directory_path() / ("rv_serve_badvar_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  SynthOptions o;
  o.layers = 1;
  o.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
  synth_model(o, root / "m", true);
  const std::string missing = (root / "missing.safetensors").string();
  try {
    ServeProcess p({"serve", "--model", (root / "m").string(), "--port", "0", "--variant",
                    "x=" + missing + ":2"},
                   30);
    FAIL() << "the server started";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace rv::server
