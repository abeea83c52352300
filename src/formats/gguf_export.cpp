#include "formats/gguf_export.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/file.h"
#include "formats/gguf.h"
#include "formats/model_dir.h"

namespace rv {

using json = nlohmann::json;
using gguf::Value;

namespace {

// Token types as llama.cpp numbers them (llama_token_type).
enum : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5 };

// The pre-tokenizer split regexes of the tokenizers llama.cpp knows under
// these tokenizer.ggml.pre names (tokenizer.json spelling).
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

json load_json(const fs::path& p) {
  try {
    return json::parse(read_file(p));
  } catch (const json::exception& e) {
    std::string m = e.what();
    auto q = m.find("] ");
    throw Error(p.string(), "malformed JSON: " + (q == std::string::npos ? m : m.substr(q + 2)));
  }
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  std::string pre;
  std::map<std::string, int64_t> special;  // "bos"/"eos"/"unk"/"padding" -> id
  std::optional<bool> add_bos, add_eos;
  std::optional<std::string> chat_template;
};

struct Added {
  int64_t id;
  std::string content;
  bool special;
};

void find_split_regexes(const json& pt, std::vector<std::string>* out) {
  if (!pt.is_object()) return;
  if (pt.value("type", "") == "Split" && pt.contains("pattern") && pt["pattern"].is_object() &&
      pt["pattern"].contains("Regex") && pt["pattern"]["Regex"].is_string())
    out->push_back(pt["pattern"]["Regex"].get<std::string>());
  if (pt.contains("pretokenizers") && pt["pretokenizers"].is_array())
    for (const auto& p : pt["pretokenizers"]) find_split_regexes(p, out);
}

// "content" of a tokenizer_config special-token entry (string or AddedToken dict).
std::optional<std::string> token_content(const json& e) {
  if (e.is_string()) return e.get<std::string>();
  if (e.is_object() && e.contains("content") && e["content"].is_string())
    return e["content"].get<std::string>();
  return std::nullopt;
}

Vocab read_vocab(const fs::path& dir, const ModelConfig& cfg, const std::string& arch,
                 int64_t n_vocab) {
  Vocab v;
  std::map<std::string, int64_t> base;  // byte-level token string -> id
  std::vector<Added> added;
  const fs::path tj_path = dir / "tokenizer.json";
  std::error_code ec;
  std::optional<json> tj;
  if (fs::exists(tj_path, ec)) {
    tj = load_json(tj_path);
    const std::string where = tj_path.string();
    if (!tj->is_object() || !tj->contains("model") || !(*tj)["model"].is_object())
      throw Error(where, "no \"model\" object");
    const json& m = (*tj)["model"];
    if (m.value("type", "") != "BPE")
      throw Error(where, "tokenizer model type '" + m.value("type", std::string("?")) +
                             "' is not supported (only byte-level BPE)");
    if (m.value("byte_fallback", false))
      throw Error(where, "BPE with byte_fallback (SentencePiece-style) is not supported");
    if (!m.contains("vocab") || !m["vocab"].is_object()) throw Error(where, "model.vocab missing");
    for (const auto& [k, id] : m["vocab"].items()) {
      if (!id.is_number_integer())
        throw Error(where, "vocab entry '" + k + "' has a non-integer id");
      base[k] = id.get<int64_t>();
    }
    if (m.contains("merges") && m["merges"].is_array()) {
      for (const auto& mg : m["merges"]) {
        if (mg.is_string()) {
          v.merges.push_back(mg.get<std::string>());
        } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
          // The pair form may hold spaces inside a part; llama.cpp splits merges
          // on the space, so spaces are written as their byte-level form U+0120.
          std::string s;
          for (int i = 0; i < 2; ++i) {
            if (i) s += ' ';
            for (char c : mg[i].get<std::string>()) {
              if (c == ' ')
                s += "\xc4\xa0";
              else
                s += c;
            }
          }
          v.merges.push_back(std::move(s));
        } else {
          throw Error(where, "model.merges: unknown merge format");
        }
      }
    }
    if (tj->contains("added_tokens") && (*tj)["added_tokens"].is_array())
      for (const auto& a : (*tj)["added_tokens"]) {
        if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
            !a["content"].is_string())
          throw Error(where, "added_tokens entry without integer id and string content");
        added.push_back(
            {a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false)});
      }
    std::vector<std::string> regexes;
    if (tj->contains("pre_tokenizer")) find_split_regexes((*tj)["pre_tokenizer"], &regexes);
    if (regexes.size() != 1)
      throw Error(where, "expected one Split pre-tokenizer regex, found " +
                             std::to_string(regexes.size()) + " (unsupported pre-tokenizer)");
    if (regexes[0] == kQwen2Regex)
      v.pre = "qwen2";
    else if (regexes[0] == kLlama3Regex)
      v.pre = "llama-bpe";
    else
      throw Error(where,
                  "pre-tokenizer regex is neither Qwen2's nor Llama-3's: unsupported "
                  "tokenizer for GGUF export");
  } else if (fs::exists(dir / "vocab.json", ec) && fs::exists(dir / "merges.txt", ec)) {
    json vj = load_json(dir / "vocab.json");
    if (!vj.is_object()) throw Error((dir / "vocab.json").string(), "not a JSON object");
    for (const auto& [k, id] : vj.items()) {
      if (!id.is_number_integer())
        throw Error((dir / "vocab.json").string(), "entry '" + k + "' has a non-integer id");
      base[k] = id.get<int64_t>();
    }
    std::string mt = read_file(dir / "merges.txt");
    size_t p = 0;
    while (p < mt.size()) {
      size_t e = mt.find('\n', p);
      if (e == std::string::npos) e = mt.size();
      std::string line = mt.substr(p, e - p);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty() && line.rfind("#version", 0) != 0) v.merges.push_back(line);
      p = e + 1;
    }
    if (fs::exists(dir / "added_tokens.json", ec)) {
      json aj = load_json(dir / "added_tokens.json");
      for (const auto& [k, id] : aj.items())
        if (id.is_number_integer()) added.push_back({id.get<int64_t>(), k, false});
    }
    // Without tokenizer.json there is no regex to check: go by the model family.
    v.pre = arch == "llama" ? "llama-bpe" : "qwen2";
  } else {
    throw Error(dir.string(),
                "no tokenizer.json (or vocab.json + merges.txt): cannot export the tokenizer");
  }

  std::optional<json> tc;
  if (fs::exists(dir / "tokenizer_config.json", ec)) tc = load_json(dir / "tokenizer_config.json");
  if (tc && tc->contains("added_tokens_decoder") && (*tc)["added_tokens_decoder"].is_object()) {
    // Merged into the added tokens: it is the only list for vocab.json models,
    // and carries the "special" flag for tokenizer.json ones too.
    for (const auto& [k, t] : (*tc)["added_tokens_decoder"].items()) {
      int64_t id;
      try {
        id = std::stoll(k);
      } catch (...) {
        throw Error((dir / "tokenizer_config.json").string(),
                    "added_tokens_decoder key '" + k + "' is not an id");
      }
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string()) continue;
      bool dup = false;
      for (const auto& a : added) dup |= a.id == id;
      if (!dup) added.push_back({id, t["content"].get<std::string>(), t.value("special", false)});
    }
  }

  // Assemble the id -> token table.
  v.tokens.assign(n_vocab, std::string());
  v.types.assign(n_vocab, kUnused);
  std::vector<bool> have(n_vocab, false);
  auto place = [&](int64_t id, const std::string& s, int32_t type) {
    if (id < 0 || id >= n_vocab)
      throw Error(dir.string(), "token '" + s + "' has id " + std::to_string(id) +
                                    " outside the embedding's " + std::to_string(n_vocab) +
                                    " rows");
    v.tokens[id] = s;
    v.types[id] = type;
    have[id] = true;
  };
  for (const auto& [s, id] : base) {
    if (id >= 0 && id < n_vocab && have[id])
      throw Error(dir.string(), "two vocabulary entries share id " + std::to_string(id));
    place(id, s, kNormal);
  }
  for (const auto& a : added) place(a.id, a.content, a.special ? kControl : kUserDefined);
  for (int64_t i = 0; i < n_vocab; ++i)
    if (!have[i]) v.tokens[i] = "[PAD" + std::to_string(i) + "]";

  // Special ids: tokenizer_config's *_token strings first, config.json's
  // *_token_id as the fallback (what transformers does).
  auto id_of_content = [&](const std::string& c) -> std::optional<int64_t> {
    for (const auto& a : added)
      if (a.content == c) return a.id;
    auto it = base.find(c);
    if (it != base.end()) return it->second;
    return std::nullopt;
  };
  const std::pair<const char*, const char*> kinds[] = {
      {"bos", "bos"}, {"eos", "eos"}, {"unk", "unk"}, {"pad", "padding"}};
  for (auto [hf, gg] : kinds) {
    std::string key = std::string(hf) + "_token";
    if (tc && tc->contains(key))
      if (auto c = token_content((*tc)[key]))
        if (auto id = id_of_content(*c)) v.special[gg] = *id;
    if (!v.special.count(gg)) {
      auto it = cfg.raw.find(key + "_id");
      if (it != cfg.raw.end()) {
        if (it->is_number_integer())
          v.special[gg] = it->get<int64_t>();
        else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer())
          v.special[gg] = (*it)[0].get<int64_t>();
      }
    }
    if (v.special.count(gg) && (v.special[gg] < 0 || v.special[gg] >= n_vocab)) v.special.erase(gg);
  }

  // add_bos: an explicit tokenizer_config flag, else whether tokenizer.json's
  // post-processor template starts with the BOS token.
  if (tc && tc->contains("add_bos_token") && (*tc)["add_bos_token"].is_boolean())
    v.add_bos = (*tc)["add_bos_token"].get<bool>();
  if (tc && tc->contains("add_eos_token") && (*tc)["add_eos_token"].is_boolean())
    v.add_eos = (*tc)["add_eos_token"].get<bool>();
  if (!v.add_bos && tj && tj->contains("post_processor") && (*tj)["post_processor"].is_object()) {
    const json& pp = (*tj)["post_processor"];
    std::vector<json> procs;
    if (pp.contains("processors") && pp["processors"].is_array())
      for (const auto& p : pp["processors"]) procs.push_back(p);
    else
      procs.push_back(pp);
    for (const auto& p : procs) {
      if (p.value("type", "") != "TemplateProcessing" || !p.contains("single") ||
          !p["single"].is_array() || p["single"].size() < 2)
        continue;
      const json& first = p["single"][0];
      if (first.contains("SpecialToken") && first["SpecialToken"].contains("id") &&
          first["SpecialToken"]["id"].is_string()) {
        auto id = id_of_content(first["SpecialToken"]["id"].get<std::string>());
        v.add_bos = id && v.special.count("bos") && *id == v.special["bos"];
      }
    }
  }

  if (tc && tc->contains("chat_template")) {
    const json& ct = (*tc)["chat_template"];
    if (ct.is_string()) {
      v.chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const auto& e : ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
            e["template"].is_string())
          v.chat_template = e["template"].get<std::string>();
    }
  }
  if (!v.chat_template && fs::exists(dir / "chat_template.jinja", ec))
    v.chat_template = read_file(dir / "chat_template.jinja");
  if (!v.chat_template && fs::exists(dir / "chat_template.json", ec)) {
    json cj = load_json(dir / "chat_template.json");
    if (cj.contains("chat_template") && cj["chat_template"].is_string())
      v.chat_template = cj["chat_template"].get<std::string>();
  }
  return v;
}

std::string map_name(const std::string& hf, const std::string& where) {
  if (hf.size() > 20 && hf.compare(hf.size() - 20, 20, ".rotary_emb.inv_freq") == 0) return "";
  std::string name = llama_cpp_tensor_name(hf);
  if (name.empty())
    throw Error(where,
                "tensor '" + hf + "' has no llama.cpp counterpart (unsupported model layout)");
  return name;
}

struct Plan {
  std::string hf;  // source tensor ("" for generated ones)
  gguf::TensorInfo info;
  int64_t rows = 1, cols = 1;    // source viewed as [rows, cols]
  int permute_heads = 0;         // >0: llama q/k row permutation with this many heads
  std::vector<float> generated;  // data of generated tensors (rope_freqs)
};

std::vector<float> llama3_rope_factors(const json& rs, double theta, int head_dim) {
  return llama3_rope_divisors(theta, head_dim, rs.value("factor", 8.0),
                              rs.value("low_freq_factor", 1.0), rs.value("high_freq_factor", 4.0),
                              rs.value("original_max_position_embeddings", 8192.0));
}

}  // namespace

std::vector<float> llama3_rope_divisors(double theta, int head_dim, double factor, double low,
                                        double high, double old_ctx) {
  const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  std::vector<float> out;
  for (int i = 0; i < head_dim; i += 2) {
    // Mirrors the f32 inverse frequencies the reference computes.
    float freq = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(i) / head_dim));
    double wavelen = 2 * M_PI / freq;
    double f;
    if (wavelen < high_wavelen)
      f = 1;
    else if (wavelen > low_wavelen)
      f = factor;
    else {
      double smooth = (old_ctx / wavelen - low) / (high - low);
      f = 1 / ((1 - smooth) / factor + smooth);
    }
    out.push_back(static_cast<float>(f));
  }
  return out;
}

std::string llama_cpp_tensor_name(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.o_proj.bias", "attn_output.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.gate_proj.bias", "ffn_gate.bias"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.up_proj.bias", "ffn_up.bias"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"mlp.down_proj.bias", "ffn_down.bias"},
  };
  const std::string prefix = "model.layers.";
  if (hf.rfind(prefix, 0) == 0) {
    size_t p = prefix.size(), q = p;
    while (q < hf.size() && isdigit(static_cast<unsigned char>(hf[q]))) ++q;
    if (q > p && q < hf.size() && hf[q] == '.') {
      std::string rest = hf.substr(q + 1), n = hf.substr(p, q - p);
      for (auto [from, to] : kLayer)
        if (rest == from) return "blk." + std::to_string(std::stoi(n)) + "." + to;
    }
  }
  return "";
}

GgufExportResult write_gguf(const fs::path& model_dir, const fs::path& out_file,
                            const GgufExportOptions& opt) {
  ModelDir md(model_dir);
  const ModelConfig& cfg = md.config();
  const std::string cfg_where = (model_dir / "config.json").string();
  std::string arch;
  if (cfg.architecture == "Qwen2ForCausalLM")
    arch = "qwen2";
  else if (cfg.architecture == "Qwen3ForCausalLM")
    arch = "qwen3";
  else if (cfg.architecture == "LlamaForCausalLM")
    arch = "llama";
  else
    throw Error(cfg_where, "architecture '" + cfg.architecture +
                               "' is not supported for GGUF export (Qwen2, Qwen3, Llama)");
  DType dt = opt.dtype ? *opt.dtype : md.weight_dtype();
  if (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16)
    throw Error("--dtype: GGUF export writes f32, f16 or bf16");
  const gguf::TensorType mat_type = dt == DType::F32   ? gguf::TensorType::F32
                                    : dt == DType::F16 ? gguf::TensorType::F16
                                                       : gguf::TensorType::BF16;
  const gguf::FileType ftype = dt == DType::F32   ? gguf::FileType::ALL_F32
                               : dt == DType::F16 ? gguf::FileType::MOSTLY_F16
                                                  : gguf::FileType::MOSTLY_BF16;

  // Rope scaling.
  json rs = cfg.raw.contains("rope_scaling") ? cfg.raw["rope_scaling"] : json();
  std::string rope_type;
  if (rs.is_object()) {
    rope_type = rs.value("rope_type", rs.value("type", std::string()));
    if (rope_type == "default") rope_type.clear();
    if (!rope_type.empty() && rope_type != "linear" && rope_type != "yarn" &&
        !(rope_type == "llama3" && arch == "llama"))
      throw Error(cfg_where, "rope_scaling type '" + rope_type + "' is not supported for " + arch);
  } else if (!rs.is_null()) {
    throw Error(cfg_where, "rope_scaling is neither null nor an object");
  }

  const TensorSet& ts = md.tensors();
  const std::string w_where = model_dir.string();
  if (!ts.has("model.embed_tokens.weight"))
    throw Error(w_where, "tensor 'model.embed_tokens.weight' missing");
  const auto& emb_shape = ts.view("model.embed_tokens.weight").shape();
  if (emb_shape.size() != 2 || emb_shape[1] != cfg.hidden_size)
    throw Error(w_where, "model.embed_tokens.weight: expected shape [vocab, " +
                             std::to_string(cfg.hidden_size) + "]");
  const int64_t n_vocab = emb_shape[0];
  const bool tied = cfg.tie_word_embeddings;
  if (!tied && !ts.has("lm_head.weight"))
    throw Error(w_where, "tensor 'lm_head.weight' missing and tie_word_embeddings is false");

  // Tensor plan, in llama.cpp's usual order: embeddings, blocks, final norm, head.
  std::vector<Plan> plan;
  const int hd = cfg.head_dim;
  if (rope_type == "llama3") {
    Plan p;
    p.info.name = "rope_freqs.weight";
    p.info.type = gguf::TensorType::F32;
    p.generated = llama3_rope_factors(rs, cfg.rope_theta, hd);
    p.info.ne = {p.generated.size()};
    p.rows = static_cast<int64_t>(p.generated.size());
    plan.push_back(std::move(p));
  }
  std::vector<std::pair<std::string, std::string>> names;  // gguf, hf
  for (const auto& n : ts.names()) {
    std::string g = map_name(n, w_where);
    if (g.empty() || (g == "output.weight" && tied)) continue;
    names.emplace_back(g, n);
  }
  auto rank = [](const std::string& g) {
    if (g == "token_embd.weight") return 0;
    if (g == "output_norm.weight") return 2;
    if (g == "output.weight") return 3;
    return 1;
  };
  std::stable_sort(names.begin(), names.end(), [&](const auto& a, const auto& b) {
    if (rank(a.first) != rank(b.first)) return rank(a.first) < rank(b.first);
    int la = layer_index(a.second), lb = layer_index(b.second);
    return la < lb;
  });
  for (const auto& [g, n] : names) {
    TensorView tv = ts.view(n);
    if (!is_float_dtype(tv.dtype()))
      throw Error(w_where, "tensor '" + n + "' has dtype " + std::string(dtype_name(tv.dtype())) +
                               ", expected a float type");
    if (tv.shape().empty() || tv.shape().size() > 2)
      throw Error(w_where, "tensor '" + n + "' has " + std::to_string(tv.shape().size()) +
                               " dims, expected 1 or 2");
    Plan p;
    p.hf = n;
    p.info.name = g;
    p.info.ne = gguf::ne_from_shape(tv.shape());
    const bool is_1d = tv.shape().size() == 1;
    const bool is_norm = g.size() > 12 && g.compare(g.size() - 12, 12, "_norm.weight") == 0;
    const bool is_weight = g.size() > 7 && g.compare(g.size() - 7, 7, ".weight") == 0;
    p.info.type = (is_1d || is_norm || !is_weight) ? gguf::TensorType::F32 : mat_type;
    p.rows = tv.shape()[0];
    p.cols = is_1d ? 1 : tv.shape()[1];
    if (arch == "llama") {
      const bool q = g.find(".attn_q.") != std::string::npos;
      const bool k = g.find(".attn_k.") != std::string::npos;
      if (q || k) {
        int heads = q ? cfg.num_heads : cfg.num_kv_heads;
        if (heads <= 0 || p.rows != static_cast<int64_t>(heads) * hd || hd % 2)
          throw Error(w_where, "tensor '" + n + "' has " + std::to_string(p.rows) +
                                   " rows, expected heads x head_dim = " +
                                   std::to_string(static_cast<int64_t>(heads) * hd));
        p.permute_heads = heads;
      }
    }
    plan.push_back(std::move(p));
  }

  Vocab vocab = read_vocab(model_dir, cfg, arch, n_vocab);

  // Metadata.
  std::vector<gguf::KeyValue> kv;
  auto put = [&](const std::string& k, Value v) { kv.emplace_back(k, std::move(v)); };
  auto u32 = [](int64_t x) { return Value::u32(static_cast<uint32_t>(x)); };
  const std::string a = arch + ".";
  put("general.architecture", Value::string(arch));
  put("general.type", Value::string("model"));
  std::string name = opt.name;
  if (name.empty()) name = fs::absolute(model_dir).lexically_normal().filename().string();
  if (name.empty())
    name = fs::absolute(model_dir).lexically_normal().parent_path().filename().string();
  put("general.name", Value::string(name));
  put(a + "block_count", u32(cfg.num_layers));
  put(a + "context_length",
      u32(cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings : 4096));
  put(a + "embedding_length", u32(cfg.hidden_size));
  put(a + "feed_forward_length", u32(cfg.intermediate_size));
  put(a + "attention.head_count", u32(cfg.num_heads));
  put(a + "attention.head_count_kv", u32(cfg.num_kv_heads));
  put(a + "rope.freq_base", Value::f32(static_cast<float>(cfg.rope_theta)));
  put(a + "attention.layer_norm_rms_epsilon", Value::f32(static_cast<float>(cfg.rms_norm_eps)));
  if (arch == "qwen3" || cfg.raw.contains("head_dim")) {
    put(a + "attention.key_length", u32(hd));
    put(a + "attention.value_length", u32(hd));
  }
  if (arch == "llama") {
    put(a + "vocab_size", u32(n_vocab));
    put(a + "rope.dimension_count", u32(hd));
  }
  if (rope_type == "linear" || rope_type == "yarn") {
    put(a + "rope.scaling.type", Value::string(rope_type));
    put(a + "rope.scaling.factor", Value::f32(static_cast<float>(rs.value("factor", 1.0))));
    if (rope_type == "yarn" && rs.contains("original_max_position_embeddings"))
      put(a + "rope.scaling.original_context_length",
          u32(rs["original_max_position_embeddings"].get<int64_t>()));
  }
  put("general.file_type", Value::u32(static_cast<uint32_t>(ftype)));
  put("general.quantization_version", Value::u32(2));
  put("tokenizer.ggml.model", Value::string("gpt2"));
  put("tokenizer.ggml.pre", Value::string(vocab.pre));
  put("tokenizer.ggml.tokens", Value::strings(vocab.tokens));
  put("tokenizer.ggml.token_type", Value::i32s(vocab.types));
  put("tokenizer.ggml.merges", Value::strings(vocab.merges));
  for (const char* k : {"bos", "eos", "unk", "padding"})
    if (vocab.special.count(k))
      put(std::string("tokenizer.ggml.") + k + "_token_id", u32(vocab.special[k]));
  put("tokenizer.ggml.add_bos_token", Value::boolean(vocab.add_bos.value_or(false)));
  if (vocab.add_eos) put("tokenizer.ggml.add_eos_token", Value::boolean(*vocab.add_eos));
  if (vocab.chat_template) put("tokenizer.chat_template", Value::string(*vocab.chat_template));

  std::vector<gguf::TensorInfo> infos;
  for (const auto& p : plan) infos.push_back(p.info);
  gguf::Writer w(out_file, std::move(kv), std::move(infos));

  // Stream each tensor through a bounded buffer, converting dtype and
  // permuting rows where needed.
  std::vector<float> f32buf;
  std::vector<uint8_t> outbuf;
  for (const auto& p : plan) {
    check_interrupted();
    if (!p.generated.empty()) {
      w.append(p.generated.data(), p.generated.size() * sizeof(float));
      continue;
    }
    TensorView tv = ts.view(p.hf);
    const DType src = tv.dtype();
    const DType dst = p.info.type == gguf::TensorType::F32   ? DType::F32
                      : p.info.type == gguf::TensorType::F16 ? DType::F16
                                                             : DType::BF16;
    const size_t ss = dtype_size(src), ds = dtype_size(dst);
    const int64_t rows_per_chunk = std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, p.cols));
    for (int64_t r0 = 0; r0 < p.rows; r0 += rows_per_chunk) {
      const int64_t r1 = std::min(p.rows, r0 + rows_per_chunk);
      const size_t n = static_cast<size_t>((r1 - r0) * p.cols);
      outbuf.resize(n * ds);
      if (src != dst) f32buf.resize(static_cast<size_t>(p.cols));
      for (int64_t r = r0; r < r1; ++r) {
        int64_t sr = r;
        if (p.permute_heads) {
          // Within a head, HF keeps the two rotated halves apart ([x0..x_{d/2}) then
          // [x_{d/2}..x_d)); llama.cpp wants them interleaved (x0, x_{d/2}, x1, ...).
          const int64_t h = r / hd, j = r % hd;
          sr = h * hd + (j % 2) * (hd / 2) + j / 2;
        }
        const uint8_t* s = tv.data + static_cast<size_t>(sr * p.cols) * ss;
        uint8_t* d = outbuf.data() + static_cast<size_t>((r - r0) * p.cols) * ds;
        if (src == dst) {
          std::memcpy(d, s, static_cast<size_t>(p.cols) * ss);
        } else {
          to_f32(src, s, f32buf.data(), static_cast<size_t>(p.cols));
          from_f32(dst, f32buf.data(), d, static_cast<size_t>(p.cols));
        }
      }
      w.append(outbuf.data(), outbuf.size());
    }
  }
  w.finish();

  GgufExportResult res;
  res.arch = arch;
  res.pre = vocab.pre;
  res.n_vocab = n_vocab;
  res.n_tensors = plan.size();
  res.bytes = fs::file_size(out_file);
  return res;
}

GgufExportResult export_gguf(const fs::path& model_dir, const fs::path& out_file,
                             const GgufExportOptions& opt, bool force) {
  AtomicOutput out(out_file, AtomicOutput::Kind::kFile, force);
  GgufExportResult r = write_gguf(model_dir, out.path(), opt);
  out.commit();
  return r;
}

}  // namespace rv
