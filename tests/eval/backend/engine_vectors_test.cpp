// The engine backend with load-time vectors: the cache identity names the
// vectors (content and alpha), results.json records them, and a server
// backend refuses them.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "eval/backend/make.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "support/llamacpp_oracle.h"

namespace rv::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("rv_eval_vectors_" + std::to_string(getpid()));
  fs::path model = dir / "tiny-qwen";
  Fixture() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    SynthOptions o;
    o.layers = 1;
    o.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
    o.init_scale = 0.2f;
    o.tied = true;
    synth_model(o, model, true);
    for (int k = 0; k < 2; ++k) {  // two different one-tensor vectors
      const fs::path tmp = dir / "tmp";
      fs::create_directories(tmp);
      SafetensorsWriter w(tmp, {{"model.layers.0.mlp.up_proj.weight", DType::F32, {128, 64}}}, {});
      std::vector<float> v(128 * 64);
      for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1f * synth_normal(k, 1, i);
      w.write(0, 0, v.data(), v.size() * 4);
      w.finish();
      fs::rename(tmp / "model.safetensors", vec(k));
      fs::remove_all(tmp);
    }
  }
  ~Fixture() { fs::remove_all(dir); }
  fs::path vec(int k) const { return dir / ("v" + std::to_string(k) + ".safetensors"); }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

std::string fingerprint(const std::vector<engine::LoadVector>& v) {
  BackendSpec s;
  s.model_dir = fx().model;
  s.max_batch = 1;
  s.max_context = 64;
  s.vectors = v;
  for (auto& x : s.vectors) x.partial = true;  // the test vectors change a few tensors only
  return make_backend(s)->fingerprint();
}

TEST(EngineVectors, FingerprintNamesVectorContentAndAlpha) {
  const std::string plain = fingerprint({});
  const std::string a = fingerprint({{fx().vec(0), 1.0}});
  EXPECT_EQ(a.rfind(plain + "|vector:", 0), 0u) << a;
  EXPECT_EQ(a, fingerprint({{fx().vec(0), 1.0}}));
  EXPECT_NE(a, fingerprint({{fx().vec(0), 0.5}}));
  EXPECT_NE(a, fingerprint({{fx().vec(1), 1.0}}));
  EXPECT_NE(fingerprint({{fx().vec(0), 1.0}, {fx().vec(1), 1.0}}),
            fingerprint({{fx().vec(1), 1.0}, {fx().vec(0), 1.0}}));
}

TEST(EngineVectors, ServerBackendRefusesVectors) {
  BackendSpec s;
  s.kind = BackendSpec::Kind::kHttp;
  s.http.base_url = "http://127.0.0.1:9/v1";
  s.http.model = "m";
  s.vectors = {{fx().vec(0), 1.0}};
  try {
    make_backend(s);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--vector: ", 0), 0u) << e.what();
  }
}

TEST(EngineVectors, ResultsRecordTheVectors) {
  const Fixture& f = fx();
  write_file(f.dir / "data.jsonl", "{\"q\": \"1+1\", \"a\": \"2\"}\n");
  write_file(f.dir / "task.yaml",
             "task: sums\ndataset: " + (f.dir / "data.jsonl").string() +
                 "\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: a\n"
                 "generation_kwargs:\n  max_gen_toks: 4\nmetric_list:\n  - metric: exact_match\n");
  const std::string out = (f.dir / "run").string();
  const std::string cmd = std::string(RV_CLI_PATH) + " -q eval --partial --model " +
                          f.model.string() + " --vector " + f.vec(0).string() +
                          " --alpha -0.5 --vector " + f.vec(1).string() + " --alpha 2 --tasks " +
                          (f.dir / "task.yaml").string() + " --no-cache --max-context 64 -o " +
                          out + " > " + (f.dir / "log").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(f.dir / "log");
  const json cfg = json::parse(read_file(fs::path(out) / "results.json"))["config"];
  EXPECT_EQ(cfg["vectors"], json::parse("[{\"vector\": \"" + f.vec(0).string() +
                                        "\", \"alpha\": -0.5}, {\"vector\": \"" +
                                        f.vec(1).string() + "\", \"alpha\": 2.0}]"))
      << cfg;
}

}  // namespace
}  // namespace rv::eval
