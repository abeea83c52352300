#include "convert/gguf_export.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/file.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "formats/model_dir.h"
#include "tokenizer/tokenizer.h"

namespace rv {

using json = nlohmann::json;
using gguf::Value;

namespace {

// The tokenizer.ggml.* view of a tokenizer.
struct Vocab {
  std::vector<std::string> tokens;  // id -> token, padded to the embedding rows
  std::vector<int32_t> types;       // gguf::TokenType per id
  std::vector<std::string> merges;  // "a b"
  std::string pre;
  std::map<std::string, int64_t> special;  // "bos"/"eos"/"unk"/"padding" -> id
  std::optional<bool> add_bos, add_eos;
  std::string chat_template;  // empty: none
};

// llama.cpp splits merges on the space, so a space inside a part (possible
// in tokenizer.json's pair form) is written as its byte-level form U+0120.
std::string merge_part(const std::string& part) {
  std::string s;
  for (char c : part) {
    if (c == ' ')
      s += "\xc4\xa0";
    else
      s += c;
  }
  return s;
}

Vocab read_vocab(const fs::path& dir, const ModelConfig& cfg, const ArchInfo& arch,
                 int64_t n_vocab) {
  const Tokenizer tok = Tokenizer::load(dir);
  Vocab v;
  std::error_code ec;
  if (fs::exists(dir / "tokenizer.json", ec)) {
    const PreTokenizer* pre = pre_tokenizer_by_regex(tok.pre_tokenizer_regex());
    if (!pre)
      throw Error((dir / "tokenizer.json").string(),
                  "pre-tokenizer regex is neither Qwen2's nor Llama-3's: unsupported "
                  "tokenizer for GGUF export");
    v.pre = std::string(pre->gguf_pre);
  } else {
    // vocab.json + merges.txt name no regex: go by the model family.
    v.pre = std::string(arch.pre->gguf_pre);
  }

  // The id -> token table: vocabulary tokens, then added tokens over them.
  const std::vector<std::string>& id_to_token = tok.id_to_token();
  for (size_t id = static_cast<size_t>(n_vocab); id < id_to_token.size(); ++id)
    if (tok.is_valid_id(static_cast<int32_t>(id)))
      throw Error(dir.string(), "token '" + id_to_token[id] + "' has id " + std::to_string(id) +
                                    " outside the embedding's " + std::to_string(n_vocab) +
                                    " rows");
  v.tokens.assign(n_vocab, std::string());
  v.types.assign(n_vocab, gguf::kTokenUnused);
  for (int64_t i = 0; i < n_vocab; ++i) {
    if (static_cast<size_t>(i) < id_to_token.size() && tok.is_valid_id(static_cast<int32_t>(i))) {
      v.tokens[i] = id_to_token[i];
      v.types[i] = gguf::kTokenNormal;
    } else {
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
    }
  }
  for (const AddedToken& a : tok.added_tokens())
    v.types[a.id] = a.special ? gguf::kTokenControl : gguf::kTokenUserDefined;
  for (const auto& [left, right] : tok.merges())
    v.merges.push_back(merge_part(left) + " " + merge_part(right));

  // Special ids: the tokenizer's (tokenizer_config's *_token strings),
  // config.json's *_token_id as the fallback (what transformers does).
  const std::pair<const char*, std::optional<int32_t>> kinds[] = {
      {"bos", tok.bos_id()}, {"eos", tok.eos_id()}, {"unk", tok.unk_id()}, {"pad", tok.pad_id()}};
  for (const auto& [hf, id] : kinds) {
    const std::string gg = std::string(hf) == "pad" ? "padding" : hf;
    if (id) v.special[gg] = *id;
    if (!v.special.count(gg)) {
      auto it = cfg.raw.find(std::string(hf) + "_token_id");
      if (it != cfg.raw.end()) {
        if (it->is_number_integer())
          v.special[gg] = it->get<int64_t>();
        else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer())
          v.special[gg] = (*it)[0].get<int64_t>();
      }
    }
    if (v.special.count(gg) && (v.special[gg] < 0 || v.special[gg] >= n_vocab)) v.special.erase(gg);
  }

  // add_bos: tokenizer_config's explicit flag, else whether the
  // post-processor prepends BOS.
  v.add_bos = tok.configured_add_bos();
  if (!v.add_bos && tok.adds_bos()) v.add_bos = v.special.count("bos") != 0;
  v.add_eos = tok.configured_add_eos();
  v.chat_template = tok.chat_template();
  return v;
}

std::string map_name(const std::string& hf, const std::string& where) {
  if (hf.size() > 20 && hf.compare(hf.size() - 20, 20, ".rotary_emb.inv_freq") == 0) return "";
  std::string name = gguf_tensor_name(hf);
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

GgufExportResult write_gguf(const fs::path& model_dir, const fs::path& out_file,
                            const GgufExportOptions& opt) {
  ModelDir md(model_dir);
  const ModelConfig& cfg = md.config();
  const std::string cfg_where = (model_dir / "config.json").string();
  const ArchInfo* info = arch_by_hf_class(cfg.architecture);
  if (!info)
    throw Error(cfg_where, "architecture '" + cfg.architecture +
                               "' is not supported for GGUF export (" + family_names() + ")");
  const std::string arch(info->gguf);
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
        !(rope_type == "llama3" && info->llama3_rope))
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
    p.info.name = kRopeFreqsTensor;
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
    if (info->permute_qk) {
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

  Vocab vocab = read_vocab(model_dir, cfg, *info, n_vocab);

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
  namespace k = gguf_key;
  put(a + k::kBlockCount, u32(cfg.num_layers));
  put(a + k::kContextLength,
      u32(cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings : 4096));
  put(a + k::kEmbeddingLength, u32(cfg.hidden_size));
  put(a + k::kFeedForwardLength, u32(cfg.intermediate_size));
  put(a + k::kHeadCount, u32(cfg.num_heads));
  put(a + k::kHeadCountKv, u32(cfg.num_kv_heads));
  put(a + k::kRopeFreqBase, Value::f32(static_cast<float>(cfg.rope_theta)));
  put(a + k::kRmsEpsilon, Value::f32(static_cast<float>(cfg.rms_norm_eps)));
  if (info->always_key_length || cfg.raw.contains("head_dim")) {
    put(a + k::kKeyLength, u32(hd));
    put(a + k::kValueLength, u32(hd));
  }
  if (info->vocab_size_and_rope_dims) {
    put(a + k::kVocabSize, u32(n_vocab));
    put(a + k::kRopeDimensionCount, u32(hd));
  }
  if (rope_type == "linear" || rope_type == "yarn") {
    put(a + k::kRopeScalingType, Value::string(rope_type));
    put(a + k::kRopeScalingFactor, Value::f32(static_cast<float>(rs.value("factor", 1.0))));
    if (rope_type == "yarn" && rs.contains("original_max_position_embeddings"))
      put(a + k::kRopeScalingOrigContext,
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
  if (!vocab.chat_template.empty())
    put("tokenizer.chat_template", Value::string(vocab.chat_template));

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
        if (p.permute_heads) sr = gguf_qk_source_row(r, hd);
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
