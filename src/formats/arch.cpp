#include "formats/arch.h"

#include <cctype>
#include <cmath>
#include <utility>

namespace rv {

namespace {

const PreTokenizer* const kPreTokenizers[] = {&kQwen2PreTokenizer, &kLlama3PreTokenizer};

// clang-format off
const std::vector<ArchInfo> kArchs = {
  //  id              HF class              GGUF     family   pre-tokenizer
  //  qkv_bias_always qk_norm permute_qk llama3_rope always_key_length vocab_size_and_rope_dims
  {ArchId::kQwen2, "Qwen2ForCausalLM", "qwen2", "Qwen2", &kQwen2PreTokenizer,
   true,  false, false, false, false, false},
  {ArchId::kQwen3, "Qwen3ForCausalLM", "qwen3", "Qwen3", &kQwen2PreTokenizer,
   false, true,  false, false, true,  false},
  {ArchId::kLlama, "LlamaForCausalLM", "llama", "Llama", &kLlama3PreTokenizer,
   false, false, true,  true,  false, true},
};
// clang-format on

// Whole-model tensors, Hugging Face -> llama.cpp.
const std::pair<std::string_view, std::string_view> kGlobalTensors[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// Per-layer tensors: "model.layers.N.<hf>" <-> "blk.N.<gguf>".
const std::pair<std::string_view, std::string_view> kLayerTensors[] = {
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

// Maps "<from_prefix>N.<rest>" to "<to_prefix>N.<mapped rest>" through the
// layer table, in the direction `forward` (HF -> GGUF) or back. The layer
// number is written canonically (no leading zeros).
std::string map_layer_tensor(const std::string& name, std::string_view from_prefix,
                             std::string_view to_prefix, bool forward) {
  if (name.compare(0, from_prefix.size(), from_prefix) != 0) return "";
  const size_t p = from_prefix.size();
  size_t q = p;
  while (q < name.size() && std::isdigit(static_cast<unsigned char>(name[q]))) ++q;
  if (q == p || q >= name.size() || name[q] != '.' || q - p > 9) return "";
  const std::string_view rest = std::string_view(name).substr(q + 1);
  for (auto [hf, gg] : kLayerTensors)
    if (rest == (forward ? hf : gg))
      return std::string(to_prefix) + std::to_string(std::stoi(name.substr(p, q - p))) + "." +
             std::string(forward ? gg : hf);
  return "";
}

template <class Name>
std::string join_names(Name name) {
  std::string out;
  for (const ArchInfo& a : kArchs) out += (out.empty() ? "" : ", ") + std::string(name(a));
  return out;
}

}  // namespace

const PreTokenizer* pre_tokenizer_by_regex(std::string_view regex) {
  for (const PreTokenizer* p : kPreTokenizers)
    if (p->regex == regex) return p;
  return nullptr;
}

const PreTokenizer* pre_tokenizer_by_name(std::string_view gguf_pre) {
  for (const PreTokenizer* p : kPreTokenizers)
    if (p->gguf_pre == gguf_pre) return p;
  return nullptr;
}

std::string pre_tokenizer_names() {
  std::string out;
  for (const PreTokenizer* p : kPreTokenizers)
    out += (out.empty() ? "" : ", ") + std::string(p->gguf_pre);
  return out;
}

const std::vector<ArchInfo>& architectures() {
  return kArchs;
}

const ArchInfo* arch_by_hf_class(std::string_view hf_class) {
  for (const ArchInfo& a : kArchs)
    if (a.hf_class == hf_class) return &a;
  return nullptr;
}

const ArchInfo* arch_by_gguf(std::string_view gguf) {
  for (const ArchInfo& a : kArchs)
    if (a.gguf == gguf) return &a;
  return nullptr;
}

const ArchInfo& arch_info(ArchId id) {
  for (const ArchInfo& a : kArchs)
    if (a.id == id) return a;
  return kArchs.front();  // unreachable: every ArchId has an entry
}

std::string hf_class_names() {
  return join_names([](const ArchInfo& a) { return a.hf_class; });
}
std::string gguf_arch_names() {
  return join_names([](const ArchInfo& a) { return a.gguf; });
}
std::string family_names() {
  return join_names([](const ArchInfo& a) { return a.family; });
}

std::string gguf_tensor_name(const std::string& hf) {
  for (auto [from, to] : kGlobalTensors)
    if (hf == from) return std::string(to);
  return map_layer_tensor(hf, "model.layers.", "blk.", true);
}

std::string hf_tensor_name(const std::string& gguf) {
  for (auto [to, from] : kGlobalTensors)
    if (gguf == from) return std::string(to);
  return map_layer_tensor(gguf, "blk.", "model.layers.", false);
}

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

}  // namespace rv
