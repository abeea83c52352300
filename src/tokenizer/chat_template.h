// Chat templates: render a model's `chat_template` the way
// transformers.apply_chat_template does (see jinja.h for the interpreter).
//
// Start here: load_chat_template(model_dir) then render_chat_template(src.tmpl, inputs).
// Thread-safety: free functions with no shared state.
#pragma once

#include <ctime>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace rv {

// Variables a chat template sees. Like transformers, `tools` and `documents`
// are passed as None unless `extra` sets them; `extra` entries (e.g.
// {"enable_thinking": false}) are added last and override the others.
// ordered_json keeps key order (it matters for tojson output); a plain
// nlohmann::json converts implicitly (keys then come sorted).
struct ChatTemplateInputs {
  // JSON array of messages {"role", "content", ...}; content is usually a string
  // (lists of parts are passed through; whether they work is up to the template).
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  bool add_generation_prompt = false;
  // transformers' continue_final_message: the rendered text ends right after
  // the last message's content (no end-of-turn), so the model continues that
  // message, e.g. an assistant answer pre-filled with lm-eval's gen_prefix.
  // Requires add_generation_prompt = false and a string content the template
  // reproduces verbatim or whitespace-stripped (Llama's `| trim`).
  bool continue_final_message = false;
  // Special-token strings. Empty means the model has none: the variable is
  // left undefined, as transformers leaves it (e.g. Qwen's null bos_token).
  std::string bos_token, eos_token;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // Clock for strftime_now() (Llama 3.x date lines); unset: system clock.
  std::function<std::time_t()> now;
};

// Renders `tmpl` with `in`. Throws rv::Error("chat template line N: ...") for
// syntax errors, unsupported Jinja, raise_exception() and type errors, and
// rv::Error("messages: ...") when messages is not an array of objects.
std::string render_chat_template(const std::string& tmpl, const ChatTemplateInputs& in);

// A model's template and its special-token strings.
struct ChatTemplateSource {
  std::string tmpl, bos_token, eos_token;
  std::string origin;  // file the template came from (for error messages)
};

// Reads, in transformers' order of precedence: DIR/chat_template.jinja, else
// "chat_template" in DIR/chat_template.json, else in DIR/tokenizer_config.json
// (a string, or a list of {"name", "template"} of which "default" is used).
// bos/eos come from tokenizer_config.json ("<s>" or {"content": "<s>", ...};
// null or absent gives ""). A GGUF file (gguf::is_gguf_path) gives its
// tokenizer.chat_template and the strings of its bos/eos ids (see
// Tokenizer::load_gguf). Throws rv::Error("path: what") when the directory
// or a file is missing/malformed or no template is found.
ChatTemplateSource load_chat_template(const std::filesystem::path& model_dir);

}  // namespace rv
