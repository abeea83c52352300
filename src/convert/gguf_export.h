// Hugging Face model directory -> GGUF file that llama.cpp (and Ollama) load.
//
// Supports the architectures of formats/arch.h (Qwen2ForCausalLM,
// Qwen3ForCausalLM, LlamaForCausalLM) with a byte-level BPE tokenizer
// (tokenizer.json, or vocab.json + merges.txt) as rv::Tokenizer loads it;
// names, keys, the q/k permutation and the pre-tokenizer come from the
// architecture table.
//
// What is written, following llama.cpp's conventions:
// - general.architecture = qwen2 | qwen3 | llama and the <arch>.* hyper-
//   parameters llama.cpp reads (context/embedding/feed-forward length, block
//   count, head counts, RMS epsilon, RoPE base, key/value length, rope
//   scaling; Llama-3 "llama3" rope scaling becomes the rope_freqs.weight
//   tensor of per-frequency divisors, as llama.cpp expects).
// - tokenizer.ggml.* (model "gpt2", pre "qwen2" or "llama-bpe", tokens padded
//   to the embedding rows with "[PAD<i>]", token types 1 normal / 3 control
//   (special added tokens) / 4 user-defined (other added tokens) / 5 unused
//   (padding), merges as "a b", bos/eos/unk/padding ids, add_bos_token and
//   add_eos_token) and tokenizer.chat_template (Tokenizer::chat_template()).
// - tensors under llama.cpp names (token_embd, blk.N.attn_q, ..., output_norm,
//   output — omitted for tied embeddings) with ggml (reversed) dims. Matrices
//   take the requested dtype; 1-D tensors (norms, biases) are always F32 as
//   llama.cpp requires. Llama q/k projections are row-permuted from Hugging
//   Face's rotate-half RoPE layout to llama.cpp's interleaved one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "formats/dtype.h"

namespace rv {

struct GgufExportOptions {
  // Element type of the matrices: F32, F16 or BF16. nullopt: the dtype most
  // of the model's weights already use.
  std::optional<DType> dtype;
  std::string name;  // general.name; empty: the model directory's name
};

struct GgufExportResult {
  std::string arch;     // "qwen2", "qwen3", "llama"
  std::string pre;      // tokenizer.ggml.pre
  int64_t n_vocab = 0;  // tokens written (= embedding rows)
  size_t n_tensors = 0;
  uint64_t bytes = 0;  // file size
};

// Writes `out_file` (created or truncated) from the model directory. Throws
// rv::Error naming the file and problem for unsupported architectures, rope
// scaling types or tokenizers, missing or mis-shaped tensors, and I/O
// errors; the output is then incomplete, so callers wanting all-or-nothing
// output write under rv::AtomicOutput (as export_gguf_atomic does).
GgufExportResult write_gguf(const std::filesystem::path& model_dir,
                            const std::filesystem::path& out_file, const GgufExportOptions& opt);

// write_gguf into a temporary sibling renamed to `out_file` on success.
// Throws if `out_file` exists and !force.
GgufExportResult export_gguf(const std::filesystem::path& model_dir,
                             const std::filesystem::path& out_file, const GgufExportOptions& opt,
                             bool force);

}  // namespace rv
