// The inference engine's public interface: a loaded model plus a scheduler
// that batches work from many callers (continuous batching).
//
// Thread-safety: every submit_* method may be called from any number of
// threads at once; results are delivered through std::future. The engine
// owns one scheduler thread; destroying the Engine finishes in-flight work
// (or cancels it, see cancel_all) and joins that thread.
//
// Token ids are int32. Text <-> ids is the tokenizer's job (tokenizer()).
// Log-probabilities are natural logs, computed from f32 logits with a
// float64 log-softmax.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/model.h"  // LoadVector

namespace rv {
class Tokenizer;
}

namespace rv::engine {

struct EngineOptions {
  int threads = 0;         // 0: all cores (rv::num_threads())
  int max_batch = 64;      // sequences decoded together
  int max_context = 4096;  // tokens per sequence (prompt + generated); KV cache is sized from it
  // bf16 KV cache: half the memory; K/V rounded to 8 significant bits, which
  // moves logits slightly (see KVCache in model.h). Still deterministic:
  // results do not depend on batch composition.
  bool kv_bf16 = false;
  // Weights copied into owned 2 MiB pages instead of read from the mapped
  // file (ModelOptions::copy_weights): faster decode, a copy in RAM.
  bool copy_weights = false;
  // Vectors added to the weights at load (ModelOptions::vectors, Model::load).
  std::vector<LoadVector> vectors = {};
  // Notes and warnings of loading the vectors; may be empty.
  std::function<void(const std::string&)> log = {};
};

struct SamplingParams {
  int max_tokens = 256;
  float temperature = 0.0f;       // 0: greedy (argmax, ties -> lowest id)
  int top_k = 0;                  // 0: off
  float top_p = 1.0f;             // 1: off
  float min_p = 0.0f;             // 0: off
  uint64_t seed = 0;              // sampling is reproducible for a given seed
  std::vector<int32_t> stop_ids;  // generation ends after emitting one (not included in text)
  std::vector<std::string> stop_strings;  // matched across token boundaries; text is cut before it
  bool ignore_eos = false;  // otherwise the tokenizer's end-of-generation ids also stop
  int logprobs = 0;         // >0: return this many top alternatives per generated token
};

struct TopLogprob {
  int32_t id;
  double logprob;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (stop id excluded)
  std::string text;             // decoded text, cut at a stop string
  std::string finish_reason;    // "stop" or "length"
  int prompt_tokens = 0;
  std::vector<double> token_logprobs;  // per generated token (when logprobs > 0 or always: cheap)
  std::vector<std::vector<TopLogprob>> top_logprobs;  // when logprobs > 0
  // Wall time from the start of this request's prefill to its first sampled
  // token, and from there to the end (the request shares steps with others).
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Called with each new piece of UTF-8-complete text as it is generated.
// Runs on the engine's scheduler thread: must be quick and must not call
// back into the engine.
using TextCallback = std::function<void(const std::string& delta)>;

struct LoglikelihoodResult {
  double logprob = 0;      // sum over continuation tokens of log p(token | prefix)
  bool is_greedy = false;  // every continuation token was the argmax
  std::vector<double> token_logprobs;
};

// Per-position scores for a whole token sequence (what /v1/completions
// `echo` + `logprobs` returns): entry i scores tokens[i] given tokens[0..i);
// entry 0 has no context and is reported as NaN / empty (as vLLM's null).
struct SequenceScores {
  std::vector<double> token_logprobs;
  std::vector<std::vector<TopLogprob>> top_logprobs;  // top_k alternatives at each position
};

class Engine {
 public:
  // Loads a Hugging Face model directory (config.json + safetensors +
  // tokenizer) or a .gguf file written by `reasonvec export-gguf`
  // (Model::load and Tokenizer::load_gguf: weights, tokenizer, chat
  // template, bos/eos and so the end-of-generation ids all come from the
  // file). Weights stay memory-mapped (bf16/f16/f32 used in place). Throws
  // rv::Error "<path>: <problem>" for anything it cannot run (quantized
  // GGUF tensors, unknown architectures, missing keys or tensors...).
  static std::unique_ptr<Engine> open(const std::filesystem::path& model, const EngineOptions& opt);
  virtual ~Engine() = default;

  // An engine over the same model files with other load-time vectors
  // (opt.vectors; this engine's own are not inherited) and its own KV cache,
  // scheduler and workers sized by `opt`: the two share the memory-mapped
  // weights (Model::variant), so only the tensors the vectors change cost
  // memory. Same tokenizer and model_name(). Throws as open(); engines
  // that cannot (test doubles) throw rv::Error.
  virtual std::unique_ptr<Engine> variant(const EngineOptions& opt) const;

  virtual const Tokenizer& tokenizer() const = 0;
  virtual std::string model_name() const = 0;  // directory / file name
  virtual int vocab_size() const = 0;
  virtual int max_context() const = 0;
  // Bytes the KV cache takes when every slot is at max_context (it is
  // committed as used); 0 for engines without one.
  virtual uint64_t kv_cache_bytes() const { return 0; }
  // Where results depart from plain f32 arithmetic, e.g. "kv-bf16" or
  // "kv-bf16,avx512bf16" (bf16 KV cache, bf16-rounded activations); empty
  // otherwise. Result caches key on it so such runs never mix.
  virtual std::string numerics() const { return ""; }

  virtual std::future<GenerationResult> submit_generate(std::vector<int32_t> prompt,
                                                        SamplingParams params,
                                                        TextCallback on_text = nullptr) = 0;
  // REQUIRES: !continuation.empty(). Context may be empty only if the model has a BOS token.
  virtual std::future<LoglikelihoodResult> submit_loglikelihood(
      std::vector<int32_t> context, std::vector<int32_t> continuation) = 0;
  virtual std::future<SequenceScores> submit_score(std::vector<int32_t> tokens, int top_k) = 0;

  // Fails every queued and running request with rv::Error("engine: cancelled")
  // (their futures throw it); the engine stays usable. For quick shutdown.
  virtual void cancel_all() {}
};

}  // namespace rv::engine
