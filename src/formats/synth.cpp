#include "formats/synth.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"
#include "common/file.h"
#include "common/parallel.h"
#include "formats/safetensors.h"

namespace rv {

using json = nlohmann::json;

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

const char* kTokenizerFiles[] = {"tokenizer.json",      "tokenizer_config.json", "vocab.json",
                                 "merges.txt",          "special_tokens_map.json",
                                 "chat_template.jinja", "added_tokens.json"};

}  // namespace

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

float synth_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t a = splitmix(seed ^ splitmix(stream ^ splitmix(index)));
  uint64_t b = splitmix(a);
  double u1 = ((a >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  double u2 = (b >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

int tokenizer_vocab_size(const fs::path& dir) {
  int64_t mx = -1;
  std::error_code ec;
  auto see = [&](int64_t id) { mx = std::max(mx, id); };
  if (fs::exists(dir / "tokenizer.json", ec)) {
    json j;
    try {
      j = json::parse(read_file(dir / "tokenizer.json"));
    } catch (const json::exception& e) {
      throw Error((dir / "tokenizer.json").string(), std::string("malformed JSON: ") + e.what());
    }
    if (j.contains("model") && j["model"].contains("vocab") && j["model"]["vocab"].is_object())
      for (auto& [k, v] : j["model"]["vocab"].items()) see(v.get<int64_t>());
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (auto& t : j["added_tokens"]) see(t.value("id", int64_t{-1}));
  } else if (fs::exists(dir / "vocab.json", ec)) {
    json v = json::parse(read_file(dir / "vocab.json"));
    for (auto& [k, id] : v.items()) see(id.get<int64_t>());
  } else {
    throw Error(dir.string(), "no tokenizer.json or vocab.json in tokenizer directory");
  }
  if (fs::exists(dir / "tokenizer_config.json", ec)) {
    json c = json::parse(read_file(dir / "tokenizer_config.json"));
    if (c.contains("added_tokens_decoder") && c["added_tokens_decoder"].is_object())
      for (auto& [k, v] : c["added_tokens_decoder"].items()) see(std::stoll(k));
  }
  if (mx < 0) throw Error(dir.string(), "tokenizer has an empty vocabulary");
  return static_cast<int>(mx + 1);
}

void synth_model(const SynthOptions& o, const fs::path& out, bool force) {
  if (o.arch != "qwen2" && o.arch != "qwen3" && o.arch != "llama")
    throw Error("synth: unknown --arch '" + o.arch + "' (expected qwen2, qwen3 or llama)");
  if (o.layers < 1 || o.hidden < 1 || o.heads < 1 || o.kv_heads < 1 || o.intermediate < 1)
    throw Error("synth: sizes must be positive");
  if (o.heads % o.kv_heads) throw Error("synth: --heads must be a multiple of --kv-heads");
  const int hd = o.head_dim ? o.head_dim : o.hidden / o.heads;
  if (!o.head_dim && o.hidden % o.heads) throw Error("synth: --hidden must be a multiple of --heads");
  if (hd % 2) throw Error("synth: head dimension must be even (RoPE)");
  if (!is_float_dtype(o.dtype)) throw Error("synth: --dtype must be f32, f16 or bf16");
  int vocab = o.vocab;
  if (!o.tokenizer_dir.empty()) {
    int tv = tokenizer_vocab_size(o.tokenizer_dir);
    if (vocab == 0) vocab = tv;
    if (vocab < tv)
      throw Error("synth: --vocab " + std::to_string(vocab) + " is smaller than the tokenizer's " +
                  std::to_string(tv));
  }
  if (vocab == 0) vocab = 256;
  if (o.shards < 1) throw Error("synth: --shards must be >= 1");

  const int64_t H = o.hidden, I = o.intermediate, V = vocab, Q = o.heads * hd, KV = o.kv_heads * hd;
  struct T {
    std::string name;
    std::vector<int64_t> shape;
    int kind;  // 0 matrix, 1 norm (ones), 2 bias
  };
  std::vector<T> ts;
  ts.push_back({"model.embed_tokens.weight", {V, H}, 0});
  for (int l = 0; l < o.layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    ts.push_back({p + "input_layernorm.weight", {H}, 1});
    ts.push_back({p + "self_attn.q_proj.weight", {Q, H}, 0});
    ts.push_back({p + "self_attn.k_proj.weight", {KV, H}, 0});
    ts.push_back({p + "self_attn.v_proj.weight", {KV, H}, 0});
    if (o.arch == "qwen2") {
      ts.push_back({p + "self_attn.q_proj.bias", {Q}, 2});
      ts.push_back({p + "self_attn.k_proj.bias", {KV}, 2});
      ts.push_back({p + "self_attn.v_proj.bias", {KV}, 2});
    }
    if (o.arch == "qwen3") {
      ts.push_back({p + "self_attn.q_norm.weight", {hd}, 1});
      ts.push_back({p + "self_attn.k_norm.weight", {hd}, 1});
    }
    ts.push_back({p + "self_attn.o_proj.weight", {H, Q}, 0});
    ts.push_back({p + "post_attention_layernorm.weight", {H}, 1});
    ts.push_back({p + "mlp.gate_proj.weight", {I, H}, 0});
    ts.push_back({p + "mlp.up_proj.weight", {I, H}, 0});
    ts.push_back({p + "mlp.down_proj.weight", {H, I}, 0});
  }
  ts.push_back({"model.norm.weight", {H}, 1});
  if (!o.tied) ts.push_back({"lm_head.weight", {V, H}, 0});

  std::vector<TensorSpec> specs;
  uint64_t total = 0;
  for (auto& t : ts) {
    specs.push_back({t.name, o.dtype, t.shape});
    total += specs.back().nbytes();
  }

  static const char* arch_class[] = {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM"};
  int ai = o.arch == "qwen2" ? 0 : o.arch == "qwen3" ? 1 : 2;
  const char* dt = o.dtype == DType::BF16 ? "bfloat16" : o.dtype == DType::F16 ? "float16" : "float32";
  json cfg = {{"architectures", {arch_class[ai]}},
              {"model_type", o.arch},
              {"hidden_size", H},
              {"intermediate_size", I},
              {"num_hidden_layers", o.layers},
              {"num_attention_heads", o.heads},
              {"num_key_value_heads", o.kv_heads},
              {"vocab_size", V},
              {"max_position_embeddings", o.max_position_embeddings},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", o.rope_theta},
              {"tie_word_embeddings", o.tied},
              {"torch_dtype", dt},
              {"hidden_act", "silu"},
              {"initializer_range", o.init_scale},
              {"use_cache", true},
              {"bos_token_id", nullptr},
              {"eos_token_id", nullptr},
              {"transformers_version", "4.46.0"}};
  if (o.arch == "qwen3" || o.head_dim) cfg["head_dim"] = hd;
  if (o.arch == "qwen2") {
    cfg["use_sliding_window"] = false;
    cfg["sliding_window"] = nullptr;
    cfg["max_window_layers"] = o.layers;
  }
  if (o.arch != "qwen2") cfg["attention_bias"] = false;
  if (o.arch == "llama") cfg["mlp_bias"] = false;
  if (o.arch == "llama") cfg["rope_scaling"] = nullptr;
  json gen = {{"do_sample", false}, {"transformers_version", "4.46.0"}};

  AtomicOutput output(out, AtomicOutput::Kind::kDirectory, force);
  const fs::path dir = output.path();
  if (!o.tokenizer_dir.empty()) {
    std::error_code ec;
    for (const char* f : kTokenizerFiles)
      if (fs::exists(o.tokenizer_dir / f, ec)) write_file(dir / f, read_file(o.tokenizer_dir / f));
    // Take special token ids from the tokenizer config so generation stops.
    if (fs::exists(o.tokenizer_dir / "tokenizer_config.json", ec)) {
      json tc = json::parse(read_file(o.tokenizer_dir / "tokenizer_config.json"));
      auto id_of = [&](const std::string& key) -> json {
        if (!tc.contains(key)) return nullptr;
        const json& v = tc[key];
        std::string s = v.is_string() ? v.get<std::string>()
                        : v.is_object() && v.contains("content") ? v["content"].get<std::string>()
                                                                 : "";
        if (s.empty() || !tc.contains("added_tokens_decoder")) return nullptr;
        for (auto& [k, t] : tc["added_tokens_decoder"].items())
          if (t.value("content", "") == s) return std::stoll(k);
        return nullptr;
      };
      cfg["bos_token_id"] = id_of("bos_token");
      cfg["eos_token_id"] = id_of("eos_token");
      gen["bos_token_id"] = cfg["bos_token_id"];
      gen["eos_token_id"] = cfg["eos_token_id"];
    }
  }
  write_file(dir / "config.json", cfg.dump(2) + "\n");
  write_file(dir / "generation_config.json", gen.dump(2) + "\n");

  SafetensorsWriter::Options wo;
  wo.shard_size = o.shards > 1 ? std::max<uint64_t>(1, (total + o.shards - 1) / o.shards) : UINT64_MAX;
  wo.metadata = {{"reasonvec.synth.seed", std::to_string(o.seed)}, {"reasonvec.synth.arch", o.arch}};
  SafetensorsWriter w(dir, specs, wo);
  const size_t esz = dtype_size(o.dtype);
  for (size_t ti = 0; ti < ts.size(); ++ti) {
    check_interrupted();
    const T& t = ts[ti];
    const uint64_t n = specs[ti].nbytes() / esz;
    const uint64_t stream = hash_name(t.name);
    const uint64_t dstream = stream ^ 0x5bd1e995ull;
    const size_t chunk = 1 << 16;
    parallel_for((n + chunk - 1) / chunk, 1, [&](size_t cb, size_t ce) {
      std::vector<float> f(chunk);
      std::vector<uint8_t> bytes(chunk * esz);
      for (size_t c = cb; c < ce; ++c) {
        uint64_t b = c * chunk, e = std::min<uint64_t>(n, b + chunk);
        for (uint64_t i = b; i < e; ++i) {
          float v;
          if (t.kind == 1) v = 1.0f + 0.1f * synth_normal(o.seed, stream, i);
          else if (t.kind == 2) v = o.init_scale * synth_normal(o.seed, stream, i);
          else v = o.init_scale * synth_normal(o.seed, stream, i);
          if (o.delta_scale != 0.0f) v += o.delta_scale * synth_normal(o.delta_seed, dstream, i);
          f[i - b] = v;
        }
        from_f32(o.dtype, f.data(), bytes.data(), e - b);
        w.write(ti, b * esz, bytes.data(), (e - b) * esz);
      }
    });
  }
  w.finish();
  output.commit();
}

}  // namespace rv
