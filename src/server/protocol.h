// The OpenAI wire protocol, independent of HTTP and of the engine: request
// bodies are validated and turned into plain structs, and failures become
// ApiError, which the server renders as an OpenAI error object
//   {"error": {"message", "type", "param", "code"}}.
//
// Parsing follows the OpenAI API and vLLM's extensions (top_k, min_p,
// ignore_eos, stop_token_ids). `null` means "not given" everywhere, unknown
// fields are ignored, and features we do not implement (best_of > 1,
// penalties, logit_bias, tools) are rejected with 400 rather than silently
// ignored. n > 1 asks for n choices per prompt; choice j samples with
// seed + j, so each choice is reproducible from (seed, j) alone.
//
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"

namespace rv::server {

using json = nlohmann::json;

// A request the server refuses; rendered with error_body().
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {},
           std::string type = "invalid_request_error")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;         // HTTP status
  std::string type;   // "invalid_request_error", "authentication_error", "server_error"
  std::string param;  // offending field, empty -> null
  std::string code;   // machine-readable code, empty -> null
};

// {"error": {"message", "type", "param", "code"}} with empty strings as null.
json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code);
inline json error_body(const ApiError& e) {
  return error_body(e.what(), e.type, e.param, e.code);
}

// One prompt of /v1/completions: text to tokenize, or token ids as given.
struct Prompt {
  bool is_tokens = false;
  std::string text;
  std::vector<int32_t> tokens;
};

// Options shared by both endpoints.
struct CommonRequest {
  std::string model;  // empty: not given
  engine::SamplingParams sampling;
  int n = 1;                      // choices per prompt (1..kMaxChoices); choice j uses seed + j
  bool max_tokens_given = false;  // else the endpoint's default applies
  bool seed_given = false;        // else the server draws a random seed
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

struct CompletionRequest : CommonRequest {
  std::vector<Prompt> prompts;  // >= 1
  bool echo = false;
  std::optional<int> logprobs;  // number of alternatives (0..kMaxLogprobs); nullopt: none
};

struct ChatMessage {
  std::string role;
  std::string content;  // text parts joined
};

struct ChatRequest : CommonRequest {
  std::vector<ChatMessage> messages;  // >= 1
  bool logprobs = false;
  int top_logprobs = 0;  // alternatives per token, 0..kMaxLogprobs
  bool add_generation_prompt = true;
  // vLLM's extension: the reply continues the final (assistant) message;
  // needs add_generation_prompt = false, as in vLLM.
  bool continue_final_message = false;
  json template_kwargs = json::object();  // vLLM's chat_template_kwargs (e.g. enable_thinking)
};

inline constexpr int kMaxChoices = 128;
inline constexpr int kMaxLogprobs = 20;              // as vLLM's default max_logprobs
inline constexpr int kDefaultCompletionTokens = 16;  // OpenAI / vLLM default for completions

// REQUIRES: nothing; throws ApiError(400) naming the offending field.
CompletionRequest parse_completion_request(const json& body);
ChatRequest parse_chat_request(const json& body);

// Length of `s` without a trailing incomplete UTF-8 character, so that a
// streamed chunk never ends inside a character (invalid bytes elsewhere are
// left alone).
size_t complete_utf8_prefix(std::string_view s);
// Length of the prefix of `text` that can be streamed without ever showing
// a stop string: up to the first complete stop string, and short of any
// suffix that could still grow into one. Never ends inside a UTF-8 character.
size_t stop_safe_prefix(const std::string& text, const std::vector<std::string>& stops);

// stop_safe_prefix for a text that only grows (a streamed choice): each call
// searches only the bytes appended since the previous call plus the
// (longest stop - 1) bytes before them, so a stream of any length costs time
// linear in its length. safe_prefix(text) == stop_safe_prefix(text, stops)
// as long as every `text` extends the previous one.
class StopScanner {
 public:
  explicit StopScanner(std::vector<std::string> stops);
  size_t safe_prefix(const std::string& text);
  // Bytes compared so far (for tests: stays linear in the text's length).
  size_t bytes_examined() const { return examined_; }

 private:
  std::vector<std::string> stops_;
  std::vector<size_t> found_;  // per stop: its first occurrence, or npos
  size_t max_len_ = 0;
  size_t scanned_ = 0;  // text length at the previous call
  size_t examined_ = 0;
};
// Number of characters in `s` as vLLM counts text_offset (code points for
// valid UTF-8; every byte that is not a continuation byte counts one).
size_t utf8_length(const std::string& s);

}  // namespace rv::server
