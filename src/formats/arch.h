// The model architectures reasonvec supports, in one table: how each is named
// by Hugging Face and by GGUF/llama.cpp, how its tensors and hyper-parameters
// are named in a GGUF file, how its q/k rows are laid out there, and which
// pre-tokenizer its tokenizer uses.
//
// Readers of this table: the GGUF exporter (convert/gguf_export.cpp), the
// engine's model loaders (engine/model.cpp, engine/model_gguf.cpp), the
// tokenizer (tokenizer/tokenizer.cpp for GGUF files and for the two-file
// vocab.json + merges.txt form) and the fast pre-tokenizer
// (tokenizer/pretokenize.cpp).
//
// Adding an architecture (OLMo2, Mistral, Gemma, ...):
//   1. one ArchInfo entry in kArchs (arch.cpp): its names, the flags below,
//      and its pre-tokenizer (a new PreTokenizer entry if llama.cpp knows
//      its regex under a new tokenizer.ggml.pre name);
//   2. extra tensors, if any, as rows of the tensor-name table in arch.cpp;
//   3. its forward-pass differences in engine/model.cpp (a new ArchId value,
//      the ModelSpec flags make_model_spec sets, and the code they switch),
//      and a synth recipe (formats/synth.cpp) so tests can build one.
// Nothing else names architectures.
//
// Everything here is immutable static data; all functions are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rv {

// A pre-tokenizer llama.cpp knows by its tokenizer.ggml.pre name, with the
// Hugging Face tokenizer settings that family declares.
struct PreTokenizer {
  std::string_view gguf_pre;  // tokenizer.ggml.pre: "qwen2", "llama-bpe"
  // The Split regex exactly as tokenizer.json writes it (Isolated behaviour,
  // followed by ByteLevel without its own regex).
  std::string_view regex;
  bool nfc;              // NFC normalizer (Qwen); none otherwise
  bool ignore_merges;    // a piece that is itself a token is not merged (Llama-3)
  bool clean_up_spaces;  // clean_up_tokenization_spaces (Llama-3)
};

inline constexpr PreTokenizer kQwen2PreTokenizer{
    "qwen2",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    true, false, false};
// Llama-3: Qwen2's regex with digits in groups of up to three (\p{N}{1,3}).
inline constexpr PreTokenizer kLlama3PreTokenizer{
    "llama-bpe",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    false, true, true};

// The GPT-2 pattern ByteLevel uses when its own use_regex is true, as Hugging
// Face writes it (tokenizers/src/pre_tokenizers/byte_level.rs). Not a GGUF
// pre-tokenizer: the export rejects tokenizers that use it.
inline constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The pre-tokenizer whose regex is byte-for-byte `regex`, or nullptr.
const PreTokenizer* pre_tokenizer_by_regex(std::string_view regex);
// The pre-tokenizer named `gguf_pre` (tokenizer.ggml.pre), or nullptr.
const PreTokenizer* pre_tokenizer_by_name(std::string_view gguf_pre);
// "qwen2, llama-bpe": the supported tokenizer.ggml.pre names, for messages.
std::string pre_tokenizer_names();

enum class ArchId { kQwen2, kQwen3, kLlama };

struct ArchInfo {
  ArchId id;
  std::string_view hf_class;  // config.json architectures[0]: "Qwen2ForCausalLM"
  std::string_view gguf;      // general.architecture and key prefix: "qwen2"
  std::string_view family;    // for messages: "Qwen2"
  // The pre-tokenizer of the family's tokenizer, for tokenizer files that
  // carry no regex (vocab.json + merges.txt).
  const PreTokenizer* pre;
  // Forward pass: q/k/v projections always have biases (else config.json's
  // attention_bias decides); per-head RMSNorm of q and k before RoPE.
  bool qkv_bias_always;
  bool qk_norm;
  // GGUF layout: q/k rows are permuted from Hugging Face's rotate-half RoPE
  // layout to llama.cpp's interleaved one (see gguf_qk_source_row).
  bool permute_qk;
  // rope_scaling type "llama3" is supported (written as rope_freqs.weight).
  bool llama3_rope;
  // Metadata llama.cpp expects for this architecture beyond the common keys:
  // attention.key_length/value_length even when config.json has no head_dim;
  // <arch>.vocab_size and rope.dimension_count.
  bool always_key_length;
  bool vocab_size_and_rope_dims;
};

// All supported architectures, in a fixed order.
const std::vector<ArchInfo>& architectures();
// Look-ups by Hugging Face class, by GGUF name, by id; nullptr when unknown
// (by id: never).
const ArchInfo* arch_by_hf_class(std::string_view hf_class);
const ArchInfo* arch_by_gguf(std::string_view gguf);
const ArchInfo& arch_info(ArchId id);
// "Qwen2ForCausalLM, Qwen3ForCausalLM, LlamaForCausalLM", "qwen2, qwen3,
// llama" and "Qwen2, Qwen3, Llama": the supported names, for messages.
std::string hf_class_names();
std::string gguf_arch_names();
std::string family_names();

// GGUF hyper-parameter keys, llama.cpp's names after the "<arch>." prefix.
namespace gguf_key {
inline constexpr const char* kBlockCount = "block_count";
inline constexpr const char* kContextLength = "context_length";
inline constexpr const char* kEmbeddingLength = "embedding_length";
inline constexpr const char* kFeedForwardLength = "feed_forward_length";
inline constexpr const char* kHeadCount = "attention.head_count";
inline constexpr const char* kHeadCountKv = "attention.head_count_kv";
inline constexpr const char* kRopeFreqBase = "rope.freq_base";
inline constexpr const char* kRmsEpsilon = "attention.layer_norm_rms_epsilon";
inline constexpr const char* kKeyLength = "attention.key_length";
inline constexpr const char* kValueLength = "attention.value_length";
inline constexpr const char* kVocabSize = "vocab_size";
inline constexpr const char* kRopeDimensionCount = "rope.dimension_count";
inline constexpr const char* kRopeScalingType = "rope.scaling.type";
inline constexpr const char* kRopeScalingFactor = "rope.scaling.factor";
inline constexpr const char* kRopeScalingOrigContext = "rope.scaling.original_context_length";
}  // namespace gguf_key

// The tensor of Llama-3 rope scaling divisors (see llama3_rope_divisors).
inline constexpr const char* kRopeFreqsTensor = "rope_freqs.weight";

// Tensor names: Hugging Face <-> llama.cpp, e.g.
// "model.layers.3.mlp.up_proj.weight" <-> "blk.3.ffn_up.weight". "" when the
// other side has no counterpart. The two are inverse on every name either
// returns non-empty.
std::string gguf_tensor_name(const std::string& hf);
std::string hf_tensor_name(const std::string& gguf);

// The q/k row permutation of permute_qk architectures: GGUF row `row` of a
// [heads * head_dim, cols] projection holds Hugging Face row
// gguf_qk_source_row(row, head_dim). Within a head, Hugging Face keeps the
// two rotated halves apart ([x0..x_{d/2}) then [x_{d/2}..x_d)); llama.cpp
// wants them interleaved (x0, x_{d/2}, x1, ...). REQUIRES: head_dim even.
inline int64_t gguf_qk_source_row(int64_t row, int64_t head_dim) {
  const int64_t h = row / head_dim, j = row % head_dim;
  return h * head_dim + (j % 2) * (head_dim / 2) + j / 2;
}

// Llama-3 ("llama3") RoPE scaling as llama.cpp applies it: one f32 divisor
// of the rotation angle per frequency (head_dim / 2 of them), written to GGUF
// as rope_freqs.weight. The engine divides its frequencies by these same f32
// values for a model directory, so both paths give bit-identical logits.
std::vector<float> llama3_rope_divisors(double theta, int head_dim, double factor,
                                        double low_freq_factor, double high_freq_factor,
                                        double original_max_position_embeddings);

}  // namespace rv
