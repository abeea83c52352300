// Model::load for GGUF files written by `reasonvec export-gguf`: the inverse
// of src/convert/gguf_export.cpp. Names, keys and the q/k permutation come
// from the architecture table (formats/arch.h).
//
//   metadata                                   -> config.json equivalent
//   general.architecture qwen2|qwen3|llama     -> architectures, model_type
//   <arch>.block_count, embedding_length,      -> num_hidden_layers, hidden_size,
//     feed_forward_length, context_length         intermediate_size, max_position_embeddings
//   <arch>.attention.head_count(_kv),          -> num_attention_heads, num_key_value_heads,
//     key_length                                  head_dim (default hidden / heads)
//   <arch>.attention.layer_norm_rms_epsilon,   -> rms_norm_eps, rope_theta (f32 values read
//     rope.freq_base                              back as the shortest decimal that
//                                                 rounds to them, i.e. config.json's)
//   no output.weight                           -> tie_word_embeddings
//   blk.0.attn_q.bias (qwen3, llama)           -> attention_bias
//   rope_freqs.weight (llama3 rope scaling)    -> RoPE frequencies divided by it
//
// Tensors keep their bytes: ggml dims reversed are the Hugging Face shape,
// so matrices are used in place from the mapping. Only Llama's q/k weights
// (and biases) are copied, to undo the exporter's row permutation.
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "engine/model.h"
#include "engine/tensor_source.h"
#include "engine/thread_pool.h"
#include "formats/arch.h"
#include "formats/gguf.h"

namespace rv::engine {
namespace {

using json = nlohmann::json;

// Hugging Face name -> the llama.cpp name the exporter wrote it under;
// names llama.cpp does not know are looked up as they are (and reported
// missing).
std::string gguf_name(const std::string& hf) {
  std::string name = gguf_tensor_name(hf);
  return name.empty() ? hf : name;
}

// The metadata of one file, with messages naming it and the key.
class Meta {
 public:
  Meta(const gguf::Header& h, std::string where) : where_(std::move(where)) {
    for (const auto& [k, v] : h.kv) kv_[k] = &v;
  }
  const gguf::Value* find(const std::string& key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : it->second;
  }
  const gguf::Value& get(const std::string& key) const {
    const gguf::Value* v = find(key);
    if (!v) throw Error(where_, "key '" + key + "' missing");
    return *v;
  }
  // A positive count that fits an int.
  int count(const std::string& key) const {
    const gguf::Value& v = get(key);
    if (!v.is_integer())
      throw Error(where_, "key '" + key + "' is " + gguf::value_type_name(v.type()) +
                              ", expected an integer");
    const int64_t x = v.as_int();
    if (x <= 0 || x > INT_MAX)
      throw Error(where_, "key '" + key + "' = " + std::to_string(x) + " is out of range");
    return static_cast<int>(x);
  }
  // A float as config.json wrote it: f32 values come back as the shortest
  // decimal that rounds to them (1e-06, not 9.99999997e-07), so the engine
  // sees the same double as from the directory.
  double real(const std::string& key) const {
    const gguf::Value& v = get(key);
    if (!v.is_float() && !v.is_integer())
      throw Error(where_, "key '" + key + "' is " + gguf::value_type_name(v.type()) +
                              ", expected a number");
    if (v.type() != gguf::ValueType::F32) return v.as_float();
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf - 1, static_cast<float>(v.as_float()));
    *r.ptr = '\0';
    return std::strtod(buf, nullptr);
  }
  const std::string& string(const std::string& key) const {
    const gguf::Value& v = get(key);
    if (v.type() != gguf::ValueType::STRING)
      throw Error(where_, "key '" + key + "' is " + gguf::value_type_name(v.type()) +
                              ", expected a string");
    return v.as_string();
  }

 private:
  std::string where_;
  std::map<std::string, const gguf::Value*> kv_;
};

std::vector<int64_t> hf_shape(const gguf::TensorInfo& t) {
  return std::vector<int64_t>(t.ne.rbegin(), t.ne.rend());
}

// The config.json the file was exported from, as far as the engine reads it.
json config_from_metadata(const Meta& meta,
                          const std::map<std::string, const gguf::TensorInfo*>& ts,
                          const std::string& where) {
  const std::string& arch = meta.string("general.architecture");
  const ArchInfo* info = arch_by_gguf(arch);
  if (!info)
    throw Error(where, "general.architecture '" + arch +
                           "' is not supported (supported: " + gguf_arch_names() + ")");
  const std::string a = arch + ".";
  namespace k = gguf_key;
  auto emb = ts.find("token_embd.weight");
  if (emb == ts.end()) throw Error(where, "missing tensor 'token_embd.weight'");
  if (emb->second->ne.size() != 2)
    throw Error(where, "tensor 'token_embd.weight' has " + std::to_string(emb->second->ne.size()) +
                           " dims, expected 2");
  const uint64_t vocab = emb->second->ne[1];
  if (vocab == 0 || vocab > INT_MAX)
    throw Error(where, "tensor 'token_embd.weight' has " + std::to_string(vocab) + " rows");
  if (meta.find(a + k::kVocabSize) && static_cast<uint64_t>(meta.count(a + k::kVocabSize)) != vocab)
    throw Error(where, "key '" + a + k::kVocabSize +
                           "' = " + std::to_string(meta.count(a + k::kVocabSize)) +
                           " but token_embd.weight has " + std::to_string(vocab) + " rows");
  if (const gguf::Value* st = meta.find(a + k::kRopeScalingType)) {
    const std::string type = st->type() == gguf::ValueType::STRING ? st->as_string() : "?";
    if (type != "none")
      throw Error(where, "key '" + a + "rope.scaling.type' = '" + type +
                             "' is not supported (the engine runs default and llama3 RoPE)");
  }

  json c;
  c["architectures"] = {std::string(info->hf_class)};
  c["model_type"] = arch;
  c["hidden_act"] = "silu";
  c["hidden_size"] = meta.count(a + k::kEmbeddingLength);
  c["num_hidden_layers"] = meta.count(a + k::kBlockCount);
  c["intermediate_size"] = meta.count(a + k::kFeedForwardLength);
  c["max_position_embeddings"] = meta.count(a + k::kContextLength);
  const int heads = meta.count(a + k::kHeadCount);
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] =
      meta.find(a + k::kHeadCountKv) ? meta.count(a + k::kHeadCountKv) : heads;
  if (meta.find(a + k::kKeyLength)) {
    const int k = meta.count(a + k::kKeyLength);
    if (meta.find(a + k::kValueLength) && meta.count(a + k::kValueLength) != k)
      throw Error(where, "attention.key_length and value_length differ (not supported)");
    c["head_dim"] = k;
  }
  const int head_dim =
      c.contains("head_dim") ? c["head_dim"].get<int>() : c["hidden_size"].get<int>() / heads;
  if (meta.find(a + k::kRopeDimensionCount) && meta.count(a + k::kRopeDimensionCount) != head_dim)
    throw Error(where, "key '" + a + "rope.dimension_count' = " +
                           std::to_string(meta.count(a + k::kRopeDimensionCount)) +
                           " differs from the head size " + std::to_string(head_dim) +
                           " (partial RoPE is not supported)");
  c["vocab_size"] = vocab;
  c["rms_norm_eps"] = meta.real(a + k::kRmsEpsilon);
  c["rope_theta"] = meta.real(a + k::kRopeFreqBase);
  c["tie_word_embeddings"] = ts.count("output.weight") == 0;
  if (!info->qkv_bias_always) c["attention_bias"] = ts.count("blk.0.attn_q.bias") != 0;
  const DType dt = gguf::tensor_dtype(emb->second->type);
  c["torch_dtype"] = dt == DType::F32 ? "float32" : dt == DType::F16 ? "float16" : "bfloat16";
  return c;
}

// The tensors of a GGUF file under their Hugging Face names.
class GgufSource final : public TensorSource {
 public:
  GgufSource(const MappedFile& file, const gguf::Header& h,
             const std::map<std::string, const gguf::TensorInfo*>& ts, const ModelSpec& spec,
             std::vector<OwnedBytes>& owned)
      : file_(file), h_(h), ts_(ts), spec_(spec), owned_(owned) {
    where = file.path().string();
    implied_by = "the GGUF metadata";
  }
  bool has(const std::string& hf) const override { return ts_.count(gguf_name(hf)) != 0; }
  std::string file_name(const std::string& hf) const override { return gguf_name(hf); }
  std::vector<std::pair<std::string, Tensor>> list() const override {
    std::vector<std::pair<std::string, Tensor>> r;
    for (const auto& t : h_.tensors) {
      if (t.name == kRopeFreqsTensor) continue;  // not a weight; no Hugging Face name
      const std::string hf = hf_tensor_name(t.name);
      r.push_back({hf.empty() ? t.name : hf, {nullptr, gguf::tensor_dtype(t.type), hf_shape(t)}});
    }
    return r;
  }

  Tensor get(const std::string& hf) override {
    const std::string name = gguf_name(hf);
    const gguf::TensorInfo& t = *ts_.at(name);
    used_.insert(name);
    Tensor out{file_.data() + h_.data_start + t.offset, gguf::tensor_dtype(t.type), hf_shape(t)};
    // export-gguf interleaved the two rotated halves of every q/k head
    // (llama.cpp's RoPE layout); put the rows back in Hugging Face's
    // rotate-half order.
    const bool q = name.find(".attn_q.") != std::string::npos;
    const bool k = name.find(".attn_k.") != std::string::npos;
    if (arch_info(spec_.arch).permute_qk && (q || k)) {
      const int64_t hd = spec_.head_dim, heads = q ? spec_.heads : spec_.kv_heads;
      if (out.shape.empty() || out.shape[0] != heads * hd || hd % 2)
        return out;  // the caller's shape check reports it
      const int64_t rows = out.shape[0];
      const size_t row_bytes = static_cast<size_t>(t.nbytes() / rows);
      OwnedBytes buf(t.nbytes());
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(buf.data() + gguf_qk_source_row(r, hd) * row_bytes, out.data + r * row_bytes,
                    row_bytes);
      owned_.push_back(std::move(buf));
      out.data = owned_.back().data();
    }
    return out;
  }

  // The first tensor of the file no get() asked for (other than `except`).
  std::string unused(const std::set<std::string>& except) const {
    for (const auto& t : h_.tensors)
      if (!used_.count(t.name) && !except.count(t.name)) return t.name;
    return "";
  }

 private:
  const MappedFile& file_;
  const gguf::Header& h_;
  const std::map<std::string, const gguf::TensorInfo*>& ts_;
  const ModelSpec& spec_;
  std::vector<OwnedBytes>& owned_;
  std::set<std::string> used_;
};

}  // namespace

std::unique_ptr<Model> Model::load_gguf(std::shared_ptr<const MappedFile> file,
                                        const ModelOptions& opt) {
  std::unique_ptr<Model> m(new Model());
  const std::filesystem::path path = file->path();
  const std::string where = path.string();
  m->gguf_ = std::move(file);
  m->weight_bytes_ = m->gguf_->size();
  // The header (with the vocabulary) is only needed while loading.
  const gguf::Header h = gguf::parse(m->gguf_->data(), m->gguf_->size(), where);
  std::map<std::string, const gguf::TensorInfo*> ts;
  for (const auto& t : h.tensors) ts[t.name] = &t;
  const Meta meta(h, where);

  m->config_ = parse_model_config(config_from_metadata(meta, ts, where), where);
  m->spec_ = make_model_spec(m->config_, where);
  ModelSpec& s = m->spec_;

  // Llama-3 rope scaling: per-frequency divisors of the angle (llama.cpp's
  // convention, written by export-gguf from rope_scaling).
  if (auto it = ts.find(kRopeFreqsTensor); it != ts.end()) {
    const gguf::TensorInfo& t = *it->second;
    if (t.type != gguf::TensorType::F32 || t.ne.size() != 1 || t.ne[0] != s.inv_freq.size())
      throw Error(where, "tensor 'rope_freqs.weight' must be F32 with " +
                             std::to_string(s.inv_freq.size()) + " elements (head size / 2)");
    std::vector<float> factors(s.inv_freq.size());
    std::memcpy(factors.data(), m->gguf_->data() + h.data_start + t.offset, t.nbytes());
    for (size_t i = 0; i < factors.size(); ++i) {
      if (!(factors[i] > 0) || !std::isfinite(factors[i]))
        throw Error(where, "tensor 'rope_freqs.weight' holds a non-positive or non-finite factor");
      s.inv_freq[i] /= factors[i];
    }
  }

  GgufSource src(*m->gguf_, h, ts, s, m->owned_);
  m->load_from(src, path.stem().string(), opt);
  const std::string extra = src.unused({kRopeFreqsTensor});
  if (!extra.empty())
    throw Error(where,
                "tensor '" + extra + "' is not used by the engine (unsupported model layout)");
  return m;
}

}  // namespace rv::engine
