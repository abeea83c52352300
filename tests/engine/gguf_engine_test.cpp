// The engine on GGUF files written by `reasonvec export-gguf`: Qwen2-,
// Qwen3- and Llama-3-shaped models synthesized with the real tokenizers are
// exported, and the .gguf must behave exactly like the directory it came
// from: bit-identical logits (same matrix dtype -> same kernels), identical
// tokenization, decoding, chat-template rendering and end-of-generation ids,
// and identical engine results. Plus the files the engine must refuse, each
// with a one-line error naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>

#include "common/error.h"
#include "convert/gguf_export.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "engine_test_util.h"
#include "formats/gguf.h"
#include "support/llamacpp_oracle.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace rv::engine {
namespace {

namespace fs = std::filesystem;
using enginetest::make_model;
using enginetest::temp_dir;

struct Case {
  std::string name, arch, tok;
  DType dtype;
  bool tied;
  int head_dim;  // 0: hidden / heads
  nlohmann::json config_patch;
};

// A synthesized model directory and its GGUF export, removed at the end.
struct Exported {
  fs::path root, dir, gguf;
  explicit Exported(const Case& c) {
    root = temp_dir("gguf_" + c.name);
    dir = root / "model";
    gguf = root / "model.gguf";
    SynthOptions o;
    o.arch = c.arch;
    o.layers = 2;
    o.hidden = 64;
    o.heads = 4;
    o.kv_heads = 2;
    o.head_dim = c.head_dim;
    o.intermediate = 96;
    o.tokenizer_dir = rv_test::oracle_tokenizer_dir(c.tok);
    o.dtype = c.dtype;
    o.tied = c.tied;
    o.seed = 5;
    o.init_scale = 0.2f;
    make_model(o, dir, c.config_patch);
    GgufExportOptions eo;
    eo.dtype = c.dtype;
    export_gguf(dir, gguf, eo, false);
  }
  ~Exported() { fs::remove_all(root); }
};

const char* kTexts[] = {
    "",
    "Hello, world! It's 2024-06-01 and 1234567 items cost $3.50 (or 1,000.25).",
    "  leading spaces\n\n\ttabs\r\nand   runs    of     spaces   \n\n\n",
    "naïve café déjà vu — Ünïcödé, 日本語のテキスト, 中文, emoji "
    "🤖🎉👍🏽, "
    "e\u0301 "
    "vs "
    "é, "
    "Å",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>",
    "<tool_call>{\"name\": \"f\"}</tool_call><|endoftext|><think>x</think>",
    "def f(x):\n    return x**2  # comment\n\nprint(f(12345678901234567890))",
    "don't I'LL we've THEY'RE she'd",
    "Question: A ball has mass 0.5 kg. Answer: The force is F = m * a.",
};

std::string one_line_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  }
  ADD_FAILURE() << "no rv::Error thrown";
  return "";
}

void expect_same_tokenizer(const Tokenizer& d, const Tokenizer& g) {
  EXPECT_EQ(d.vocab_size(), g.vocab_size());
  EXPECT_EQ(d.eos_id(), g.eos_id());
  EXPECT_EQ(d.bos_id(), g.bos_id());
  EXPECT_EQ(d.pad_id(), g.pad_id());
  EXPECT_EQ(d.stop_ids(), g.stop_ids());
  EXPECT_FALSE(g.stop_ids().empty());
  EXPECT_EQ(d.adds_bos(), g.adds_bos());
  EXPECT_EQ(d.bos_token(), g.bos_token());
  EXPECT_EQ(d.eos_token(), g.eos_token());
  EXPECT_EQ(d.chat_template(), g.chat_template());
  EXPECT_FALSE(g.chat_template().empty());
  EXPECT_EQ(d.normalizer(), g.normalizer());
  EXPECT_EQ(d.pre_tokenizer_regex(), g.pre_tokenizer_regex());
  EXPECT_EQ(d.merges().size(), g.merges().size());
  for (int32_t id = 0; id < d.vocab_size(); id += 97) {
    ASSERT_EQ(d.is_valid_id(id), g.is_valid_id(id)) << id;
    if (!d.is_valid_id(id)) continue;
    EXPECT_EQ(d.token_to_piece(id), g.token_to_piece(id)) << id;
    EXPECT_EQ(d.is_special(id), g.is_special(id)) << id;
  }
  for (const auto& a : d.added_tokens()) {
    EXPECT_EQ(g.token_id(a.content), a.id) << a.content;
    EXPECT_EQ(g.is_special(a.id), a.special) << a.content;
  }
  std::vector<int32_t> all;
  for (const char* t : kTexts) {
    SCOPED_TRACE(t);
    for (bool special : {true, false}) {
      const auto ids = d.encode(t, special);
      EXPECT_EQ(ids, g.encode(t, special));
      EXPECT_EQ(d.decode(ids), g.decode(ids));
      EXPECT_EQ(d.decode(ids, true), g.decode(ids, true));
      all.insert(all.end(), ids.begin(), ids.end());
    }
  }
  IncrementalDecoder dd(d), gd(g);
  std::string ds, gs;
  for (int32_t id : all) {
    ds += dd.push(id);
    gs += gd.push(id);
  }
  EXPECT_EQ(ds + dd.flush(), gs + gd.flush());
}

std::string render(const Tokenizer& t) {
  ChatTemplateInputs in;
  in.messages = nlohmann::ordered_json::array(
      {{{"role", "system"}, {"content", "You are a careful assistant."}},
       {{"role", "user"}, {"content", "What is 6 × 7? Think step by step."}},
       {{"role", "assistant"}, {"content", "6 × 7 = 42."}},
       {{"role", "user"}, {"content", "And 12 × 12?"}}});
  in.add_generation_prompt = true;
  in.bos_token = t.bos_token();
  in.eos_token = t.eos_token();
  in.now = [] { return std::time_t{1700000000}; };
  return render_chat_template(t.chat_template(), in);
}

void expect_bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  size_t first = a.size();
  for (size_t i = 0; i < a.size() && first == a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) first = i;
  EXPECT_EQ(first, a.size()) << "first difference at " << first << ": " << a[first] << " vs "
                             << b[first];
}

void expect_same_model(const Model& d, const Model& g) {
  const ModelSpec &a = d.spec(), &b = g.spec();
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.layers, b.layers);
  EXPECT_EQ(a.heads, b.heads);
  EXPECT_EQ(a.kv_heads, b.kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.intermediate, b.intermediate);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.max_position, b.max_position);
  EXPECT_EQ(a.rms_eps, b.rms_eps);  // exact: f32 metadata read back as config.json's decimal
  EXPECT_EQ(a.tied, b.tied);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  const ModelConfig &c = d.config(), &e = g.config();
  EXPECT_EQ(c.architecture, e.architecture);
  EXPECT_EQ(c.model_type, e.model_type);
  EXPECT_EQ(c.rope_theta, e.rope_theta);
  EXPECT_EQ(c.rms_norm_eps, e.rms_norm_eps);
  EXPECT_EQ(c.tie_word_embeddings, e.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, e.torch_dtype);
  EXPECT_EQ(c.vocab_size, e.vocab_size);
  EXPECT_EQ(c.hidden_size, e.hidden_size);
  EXPECT_EQ(c.num_layers, e.num_layers);
  EXPECT_EQ(c.num_heads, e.num_heads);
  EXPECT_EQ(c.num_kv_heads, e.num_kv_heads);
  EXPECT_EQ(c.head_dim, e.head_dim);
  EXPECT_EQ(c.intermediate_size, e.intermediate_size);
  EXPECT_EQ(c.max_position_embeddings, e.max_position_embeddings);
}

class GgufMatchesDirectory : public ::testing::TestWithParam<Case> {};

TEST_P(GgufMatchesDirectory, LogitsTokenizerTemplateAndEngine) {
  const Case& c = GetParam();
  Exported x(c);

  // Model: same spec, bit-identical logits (whole prompt and chunked).
  auto md = Model::load(x.dir, {2});
  auto mg = Model::load(x.gguf, {2});
  expect_same_model(*md, *mg);
  EXPECT_EQ(md->spec().inv_freq, mg->spec().inv_freq);
  EXPECT_EQ(mg->weight_bytes(), fs::file_size(x.gguf));

  const Tokenizer td = Tokenizer::load(x.dir);
  const Tokenizer tg = Tokenizer::load(x.gguf);
  expect_same_tokenizer(td, tg);
  EXPECT_EQ(render(td), render(tg));

  for (const char* text : {"The quick brown fox jumps over the lazy dog.",
                           "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
                           "東京は日本の首都です。 12345"}) {
    SCOPED_TRACE(text);
    const auto ids = td.encode(text);
    expect_bit_identical(md->forward_all(ids), mg->forward_all(ids));
    expect_bit_identical(md->forward_all(ids, 3), mg->forward_all(ids, 3));
  }

  // Engine: same tokenizer-derived state and the same results.
  EngineOptions eo;
  eo.threads = 2;
  eo.max_batch = 4;
  eo.max_context = 128;
  auto ed = Engine::open(x.dir, eo);
  auto eg = Engine::open(x.gguf, eo);
  EXPECT_EQ(eg->model_name(), "model.gguf");
  EXPECT_EQ(ed->vocab_size(), eg->vocab_size());
  EXPECT_EQ(ed->max_context(), eg->max_context());
  EXPECT_EQ(ed->tokenizer().stop_ids(), eg->tokenizer().stop_ids());
  const auto prompt = td.encode(render(td));
  SamplingParams p;
  p.max_tokens = 12;
  p.logprobs = 3;
  const GenerationResult gd = ed->submit_generate(prompt, p).get();
  const GenerationResult gg = eg->submit_generate(prompt, p).get();
  EXPECT_EQ(gd.tokens, gg.tokens);
  EXPECT_EQ(gd.text, gg.text);
  EXPECT_EQ(gd.finish_reason, gg.finish_reason);
  EXPECT_EQ(gd.token_logprobs, gg.token_logprobs);
  const auto ctx = td.encode("Question: What is the boiling point of water?\nAnswer:");
  const auto cont = td.encode(" 100 degrees Celsius");
  const LoglikelihoodResult ld = ed->submit_loglikelihood(ctx, cont).get();
  const LoglikelihoodResult lg = eg->submit_loglikelihood(ctx, cont).get();
  EXPECT_EQ(ld.token_logprobs, lg.token_logprobs);
  EXPECT_EQ(ld.is_greedy, lg.is_greedy);
}

INSTANTIATE_TEST_SUITE_P(
    Archs, GgufMatchesDirectory,
    ::testing::Values(Case{"qwen2_f32", "qwen2", "qwen2_5", DType::F32, true, 0, {}},
                      Case{"qwen2_bf16", "qwen2", "qwen2_5", DType::BF16, false, 0, {}},
                      Case{"qwen3_f32", "qwen3", "qwen3", DType::F32, false, 32, {}},
                      Case{"llama_f32", "llama", "llama3_1", DType::F32, false, 0, {}},
                      Case{"llama_bf16_tied", "llama", "llama3_1", DType::BF16, true, 0, {}}),
    [](const auto& info) { return info.param.name; });

// Llama-3 rope scaling travels as rope_freqs.weight (f32 divisors, as
// llama.cpp wants it); the directory path divides by the same f32 values, so
// the frequencies, and with them the logits, are bit-identical.
TEST(GgufEngine, LlamaRopeScalingMatchesDirectoryBitForBit) {
  const nlohmann::json patch = {{"rope_scaling",
                                 {{"rope_type", "llama3"},
                                  {"factor", 8.0},
                                  {"low_freq_factor", 1.0},
                                  {"high_freq_factor", 4.0},
                                  {"original_max_position_embeddings", 64}}}};
  Exported x(Case{"llama_rope3", "llama", "llama3_1", DType::F32, false, 0, patch});
  auto md = Model::load(x.dir, {2});
  auto mg = Model::load(x.gguf, {2});
  expect_same_model(*md, *mg);
  const auto& fd = md->spec().inv_freq;
  const auto& fg = mg->spec().inv_freq;
  ASSERT_EQ(fd.size(), fg.size());
  // Recomputed here from the HF definition in double: scaling is in effect
  // (the band and the slowed part differ from the plain frequencies) and
  // agrees with it to f32 precision.
  const int hd = static_cast<int>(2 * fd.size());
  int scaled = 0;
  for (size_t i = 0; i < fd.size(); ++i) {
    EXPECT_EQ(fd[i], fg[i]) << i;
    const double plain = 1.0 / std::pow(1000000.0, 2.0 * i / hd);
    const double wavelen = 2 * M_PI / plain;
    double want = plain;
    if (wavelen > 64.0 / 1.0) {
      want = plain / 8.0;
    } else if (wavelen >= 64.0 / 4.0) {
      const double smooth = (64.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - smooth) * plain / 8.0 + smooth * plain;
    }
    EXPECT_NEAR(fd[i], want, 1e-6 * want) << i;
    scaled += fd[i] != plain;
  }
  EXPECT_GE(scaled, 2);
  // The lowest frequency is slowed by exactly `factor`.
  const int i = static_cast<int>(fd.size()) - 1;
  EXPECT_EQ(fg[i], 1.0 / std::pow(1000000.0, 2.0 * i / hd) / 8.0);
  const Tokenizer t = Tokenizer::load(x.gguf);
  std::vector<int32_t> ids = {*t.bos_id()};
  for (int32_t id : t.encode("In 1905, Albert Einstein published four papers that changed "
                             "physics: on the photoelectric effect, Brownian motion, special "
                             "relativity and mass-energy equivalence."))
    ids.push_back(id);
  const auto a = md->forward_all(ids), b = mg->forward_all(ids);
  ASSERT_EQ(a.size(), b.size());
  size_t differ = 0;
  for (size_t k = 0; k < a.size(); ++k) differ += a[k] != b[k];
  EXPECT_EQ(differ, 0u) << "of " << a.size() << " logits";
}

// ---------------------------------------------------------------------------
// Edited copies of one export: the files the engine must refuse, and the CLI.

class GgufFile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    x_ = new Exported(Case{"reject", "qwen2", "qwen2_5", DType::F32, false, 0, {}});
  }
  static void TearDownTestSuite() {
    delete x_;
    x_ = nullptr;
  }
  // Writes a copy of the export with metadata and tensors edited.
  static fs::path rewrite(const std::string& name,
                          const std::function<void(std::vector<gguf::KeyValue>&)>& edit_kv,
                          const std::function<bool(const std::string&)>& keep_tensor) {
    const gguf::File src(x_->gguf);
    std::vector<gguf::KeyValue> kv;
    for (const auto& e : src.metadata())
      if (e.first != "general.alignment") kv.push_back(e);
    if (edit_kv) edit_kv(kv);
    std::vector<gguf::TensorInfo> infos;
    for (const auto& t : src.tensors())
      if (!keep_tensor || keep_tensor(t.name)) infos.push_back(t);
    const fs::path out = x_->root / name;
    gguf::Writer w(out, kv, infos, src.header().alignment);
    for (const auto& t : infos) w.append(src.data(t), t.nbytes());
    w.finish();
    return out;
  }
  static void set_value(std::vector<gguf::KeyValue>& kv, const std::string& key, gguf::Value v) {
    for (auto& e : kv)
      if (e.first == key) e.second = std::move(v);
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  // Both entry points fail the same way, in one line naming the file.
  static std::string load_error(const fs::path& p) {
    const std::string m = one_line_error([&] { Model::load(p, {1}); });
    EXPECT_EQ(m.rfind(p.string() + ": ", 0), 0u) << m;
    const std::string e = one_line_error([&] { Engine::open(p, {}); });
    EXPECT_EQ(e.rfind(p.string() + ": ", 0), 0u) << e;
    return m;
  }
  static Exported* x_;
};
Exported* GgufFile::x_ = nullptr;

// Whether two metadata values have the same type and contents.
static bool same_value(const gguf::Value& a, const gguf::Value& b) {
  using VT = gguf::ValueType;
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case VT::STRING:
      return a.as_string() == b.as_string();
    case VT::ARRAY: {
      if (a.elem_type() != b.elem_type() || a.as_array().size() != b.as_array().size())
        return false;
      for (size_t i = 0; i < a.as_array().size(); ++i)
        if (!same_value(a.as_array()[i], b.as_array()[i])) return false;
      return true;
    }
    case VT::F32:
    case VT::F64:
      return a.as_float() == b.as_float();
    case VT::BOOL:
      return a.as_bool() == b.as_bool();
    case VT::I8:
    case VT::I16:
    case VT::I32:
    case VT::I64:
      return a.as_int() == b.as_int();
    default:
      return a.as_uint() == b.as_uint();
  }
}

TEST_F(GgufFile, EditedCopyStillLoads) {
  // The editing helper itself changes nothing when asked to change nothing:
  // the copy keeps every metadata key and value (in order), every tensor's
  // name, type, shape and bytes, and the tokenizer; the engine computes the
  // same logits from it.
  const fs::path p = rewrite("same.gguf", nullptr, nullptr);
  const gguf::File src(x_->gguf), copy(p);
  ASSERT_EQ(copy.metadata().size(), src.metadata().size());
  for (size_t i = 0; i < src.metadata().size(); ++i) {
    const auto& [key, value] = src.metadata()[i];
    EXPECT_EQ(copy.metadata()[i].first, key);
    EXPECT_TRUE(same_value(copy.metadata()[i].second, value)) << key;
  }
  ASSERT_EQ(copy.tensors().size(), src.tensors().size());
  for (size_t i = 0; i < src.tensors().size(); ++i) {
    const gguf::TensorInfo &a = src.tensors()[i], &b = copy.tensors()[i];
    SCOPED_TRACE(a.name);
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.type, a.type);
    EXPECT_EQ(b.ne, a.ne);
    ASSERT_EQ(b.nbytes(), a.nbytes());
    EXPECT_EQ(std::memcmp(copy.data(b), src.data(a), a.nbytes()), 0);
  }
  const Tokenizer ts = Tokenizer::load(x_->gguf), tc = Tokenizer::load(p);
  EXPECT_EQ(tc.id_to_token(), ts.id_to_token());
  EXPECT_EQ(tc.merges(), ts.merges());
  EXPECT_EQ(tc.bos_id(), ts.bos_id());
  EXPECT_EQ(tc.eos_id(), ts.eos_id());
  EXPECT_EQ(tc.chat_template(), ts.chat_template());
  const std::vector<int32_t> ids = ts.encode("The same file, byte for byte <|im_end|>");
  EXPECT_EQ(tc.encode("The same file, byte for byte <|im_end|>"), ids);
  EXPECT_EQ(Model::load(p, {1})->forward_all(ids), Model::load(x_->gguf, {1})->forward_all(ids));
}

TEST_F(GgufFile, RejectsTruncatedFile) {
  const std::string bytes = slurp(x_->gguf);
  for (size_t keep : {size_t{0}, size_t{3}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    SCOPED_TRACE(keep);
    const fs::path p = x_->root / "truncated.gguf";
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), keep);
    EXPECT_NE(load_error(p).find("truncated"), std::string::npos);
  }
}

TEST_F(GgufFile, RejectsQuantizedTensorType) {
  // Patch blk.0.attn_q.weight's ggml type to 2 (Q4_0) in place.
  std::string bytes = slurp(x_->gguf);
  const std::string name = "blk.0.attn_q.weight";
  size_t at = bytes.find(name);
  ASSERT_NE(at, std::string::npos);
  at += name.size();
  uint32_t n_dims;
  std::memcpy(&n_dims, &bytes[at], 4);
  ASSERT_EQ(n_dims, 2u);
  const uint32_t q4_0 = 2;
  std::memcpy(&bytes[at + 4 + 8 * n_dims], &q4_0, 4);
  const fs::path p = x_->root / "quantized.gguf";
  std::ofstream(p, std::ios::binary).write(bytes.data(), bytes.size());
  const std::string m = load_error(p);
  EXPECT_NE(m.find("'blk.0.attn_q.weight': unsupported ggml type 2"), std::string::npos) << m;
}

TEST_F(GgufFile, RejectsMissingTensor) {
  const fs::path p = rewrite("missing.gguf", nullptr,
                             [](const std::string& n) { return n != "blk.1.ffn_down.weight"; });
  const std::string m = one_line_error([&] { Model::load(p, {1}); });
  EXPECT_EQ(m, p.string() + ": missing tensor 'blk.1.ffn_down.weight' required by qwen2");
  EXPECT_NE(one_line_error([&] { Engine::open(p, {}); }).find("blk.1.ffn_down.weight"),
            std::string::npos);
}

TEST_F(GgufFile, RejectsMissingBias) {
  const fs::path p = rewrite("nobias.gguf", nullptr,
                             [](const std::string& n) { return n != "blk.0.attn_k.bias"; });
  EXPECT_NE(load_error(p).find("missing tensor 'blk.0.attn_k.bias'"), std::string::npos);
}

TEST_F(GgufFile, RejectsUnknownArchitecture) {
  const fs::path p = rewrite(
      "arch.gguf",
      [](auto& kv) { set_value(kv, "general.architecture", gguf::Value::string("gemma2")); },
      nullptr);
  const std::string m = one_line_error([&] { Model::load(p, {1}); });
  EXPECT_EQ(m, p.string() +
                   ": general.architecture 'gemma2' is not supported (supported: qwen2, qwen3, "
                   "llama)");
}

TEST_F(GgufFile, RejectsMissingHyperParameter) {
  const fs::path p = rewrite(
      "nokey.gguf",
      [](auto& kv) {
        std::erase_if(kv, [](const auto& e) { return e.first == "qwen2.block_count"; });
      },
      nullptr);
  EXPECT_EQ(one_line_error([&] { Model::load(p, {1}); }),
            p.string() + ": key 'qwen2.block_count' missing");
}

TEST_F(GgufFile, RejectsShapeAgainstMetadata) {
  const fs::path p = rewrite(
      "shape.gguf",
      [](auto& kv) { set_value(kv, "qwen2.feed_forward_length", gguf::Value::u32(64)); }, nullptr);
  EXPECT_EQ(one_line_error([&] { Model::load(p, {1}); }),
            p.string() +
                ": tensor 'blk.0.ffn_gate.weight' has shape [96, 64], the GGUF metadata implies "
                "[64, 64]");
}

TEST_F(GgufFile, RejectsTensorTheEngineWouldIgnore) {
  // An attn_output bias (Llama attention_bias) is not run by the engine:
  // refused rather than silently dropped.
  const gguf::File src(x_->gguf);
  std::vector<gguf::KeyValue> kv;
  for (const auto& e : src.metadata()) kv.push_back(e);
  std::vector<gguf::TensorInfo> infos(src.tensors());
  gguf::TensorInfo extra;
  extra.name = "blk.0.attn_output.bias";
  extra.ne = {64};
  infos.push_back(extra);
  const fs::path p = x_->root / "extra.gguf";
  {
    gguf::Writer w(p, kv, infos);
    for (const auto& t : src.tensors()) w.append(src.data(t), t.nbytes());
    std::vector<float> zeros(64);
    w.append(zeros.data(), zeros.size() * sizeof(float));
    w.finish();
  }
  EXPECT_EQ(one_line_error([&] { Model::load(p, {1}); }),
            p.string() +
                ": tensor 'blk.0.attn_output.bias' is not used by the engine (unsupported model "
                "layout)");
}

TEST_F(GgufFile, RejectsUnsupportedTokenizer) {
  const fs::path p = rewrite(
      "pre.gguf",
      [](auto& kv) { set_value(kv, "tokenizer.ggml.pre", gguf::Value::string("gpt-4o")); },
      nullptr);
  EXPECT_EQ(one_line_error([&] { Engine::open(p, {}); }),
            p.string() +
                ": tokenizer.ggml.pre 'gpt-4o' is not supported (supported: qwen2, "
                "llama-bpe)");
  const fs::path q = rewrite(
      "spm.gguf",
      [](auto& kv) { set_value(kv, "tokenizer.ggml.model", gguf::Value::string("llama")); },
      nullptr);
  EXPECT_NE(one_line_error([&] { Tokenizer::load(q); }).find("tokenizer.ggml.model 'llama'"),
            std::string::npos);
}

TEST_F(GgufFile, RejectsMissingFile) {
  const fs::path p = x_->root / "nope.gguf";
  EXPECT_EQ(one_line_error([&] { Model::load(p, {1}); }).rfind(p.string() + ": ", 0), 0u);
}

// `reasonvec eval --model X.gguf` runs end to end on the built-in engine.
TEST_F(GgufFile, CliEvalRuns) {
  const fs::path out = x_->root / "eval_out";
  const std::string cmd = std::string(RV_CLI_PATH) + " -q -t 2 eval --model '" + x_->gguf.string() +
                          "' --tasks sciq --limit 1 --no-cache --data-dir '" + RV_SHARED_DIR +
                          "/data' -o '" + out.string() + "' > '" +
                          (x_->root / "eval.log").string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(x_->root / "eval.log");
  EXPECT_TRUE(fs::exists(out / "results.json")) << slurp(x_->root / "eval.log");
}

// --no-mmap (weights copied into RAM) generates the same text as the mapped
// file; serve and eval take the flag too.
TEST_F(GgufFile, CliNoMmapGeneratesTheSame) {
  auto run = [&](const std::string& args, const std::string& log) {
    const std::string cmd = std::string(RV_CLI_PATH) + " -q -t 2 " + args + " > '" +
                            (x_->root / log).string() + "' 2> '" +
                            (x_->root / (log + ".err")).string() + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(x_->root / (log + ".err"));
    return slurp(x_->root / log);
  };
  const std::string gen = "generate --model '" + x_->gguf.string() +
                          "' --prompt 'The capital of France is' --max-tokens 12 --ignore-eos";
  const std::string mapped = run(gen, "mapped.txt"), copied = run(gen + " --no-mmap", "copied.txt");
  EXPECT_GT(mapped.size(), 1u);
  EXPECT_EQ(mapped, copied);
  for (const char* cmd : {"serve", "eval"})
    EXPECT_NE(run(std::string(cmd) + " --help", std::string(cmd) + ".help").find("--no-mmap"),
              std::string::npos)
        << cmd;
}

}  // namespace
}  // namespace rv::engine
