// What the evaluation harness needs from a model: text generation and
// log-likelihood scoring, in batches whose results are handed over one by one
// as they complete. Implemented by the built-in engine (EngineBackend) and by
// any OpenAI-compatible server (HttpBackend); eval::make_backend builds them.
//
// Results are streamed because the runner stores every response in its
// SQLite cache the moment it arrives, so a run killed half-way (kill -9)
// loses nothing that finished.
//
// Thread-safety: a Backend is used from one thread at a time; it does its
// own internal parallelism (engine batching, HTTP concurrency).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace rv::eval {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct GenRequest {
  // Exactly one of prompt / messages is used: with messages the backend
  // applies the model's own chat template (add_generation_prompt = true).
  std::string prompt;
  std::vector<ChatMessage> messages;
  bool chat = false;
  // lm-eval's gen_prefix: text the answer is made to start with. With chat
  // it becomes a final assistant message the reply continues (transformers'
  // continue_final_message); without, it is appended to the prompt. The
  // response holds only what the model wrote after it.
  std::string assistant_prefix;
  std::vector<std::string> stop;  // stop strings; the text is cut before the first one
  int max_tokens = 256;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int top_k = 0;       // 0: off
  float min_p = 0.0f;  // 0: off; keeps tokens with p >= min_p * p_max
  // With temperature > 0 the response is a function of (request, seed): the
  // runner gives every (document, sample) its own seed, so results do not
  // depend on batching, order or resumption.
  uint64_t seed = 0;
  // Extra variables for the chat template (a JSON object's text, e.g.
  // {"enable_thinking":false}); "" = none. Engine: passed to the template;
  // HTTP: sent as chat_template_kwargs.
  std::string chat_template_kwargs;
};

struct GenResponse {
  std::string text;
  std::string finish_reason;   // "stop" | "length"
  int completion_tokens = -1;  // generated tokens; -1 = unknown (old cache entries)
};

// lm-evaluation-harness `loglikelihood`: log P(continuation | context).
struct LoglikRequest {
  std::string context;
  std::string continuation;
};

struct LoglikResponse {
  double logprob = 0;
  bool is_greedy = false;
};

// Called after each finished request with (done, total) for progress bars.
using ProgressFn = std::function<void(size_t done, size_t total)>;

// Called once per request with its index in the request vector. Calls are
// serialised (never concurrent) but may come from any thread, in completion
// order. An exception thrown from the callback aborts the batch and is
// rethrown by the *_stream call.
using GenResultFn = std::function<void(size_t index, const GenResponse& resp)>;
using LoglikResultFn = std::function<void(size_t index, const LoglikResponse& resp)>;

class Backend {
 public:
  virtual ~Backend() = default;
  // Stable identity of the model behind the backend (used as a cache key):
  // e.g. the model's content fingerprint, or "url|model-name".
  virtual std::string fingerprint() const = 0;
  virtual std::string describe() const = 0;  // human-readable, for results.json
  // Return when every request is answered. Throw rv::Error on failures that
  // retrying cannot fix (4xx, missing echo support, ...).
  virtual void generate_stream(const std::vector<GenRequest>& reqs,
                               const GenResultFn& on_result) = 0;
  virtual void loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                                    const LoglikResultFn& on_result) = 0;
  // Request parameters the backend had to drop because the server refused
  // them (e.g. "top_k", "seed"), recorded in results.json; empty for backends
  // that honour everything.
  virtual std::vector<std::string> unsent_parameters() const { return {}; }

  // Batch forms: results in request order, `progress` after each one.
  std::vector<GenResponse> generate(const std::vector<GenRequest>& reqs,
                                    const ProgressFn& progress);
  std::vector<LoglikResponse> loglikelihood(const std::vector<LoglikRequest>& reqs,
                                            const ProgressFn& progress);
};

}  // namespace rv::eval
