// reasonvec chat-template: print a conversation rendered with the model's own
// chat template, byte for byte (no trailing newline is added).
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "common/file.h"
#include "tokenizer/chat_template.h"

namespace rv::cli {

namespace {

struct ChatTemplateOptions {
  std::string model, messages;
  bool add_generation_prompt = false;
  std::vector<std::string> vars;
};

nlohmann::ordered_json read_messages(const std::string& path) {
  std::string text;
  if (path == "-") {
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
    if (ferror(stdin)) throw Error("-", "cannot read messages from stdin");
  } else {
    text = read_file(path);
  }
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path, std::string("malformed messages JSON: ") + e.what());
  }
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  if (!j.is_array())
    throw Error(
        path,
        "expected a JSON array of {\"role\", \"content\"} messages (or {\"messages\": [...]})");
  return j;
}

void run(const ChatTemplateOptions& o) {
  ChatTemplateSource src = load_chat_template(o.model);
  ChatTemplateInputs in;
  in.messages = read_messages(o.messages);
  in.add_generation_prompt = o.add_generation_prompt;
  in.bos_token = src.bos_token;
  in.eos_token = src.eos_token;
  for (const auto& kv : o.vars) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("--set", "expected KEY=VALUE, got '" + kv + "'");
    std::string key = kv.substr(0, eq), val = kv.substr(eq + 1);
    // A JSON value (false, 3, "x", [..]) when it parses, else the raw string.
    auto parsed = nlohmann::ordered_json::parse(val, nullptr, false);
    in.extra[key] = parsed.is_discarded() ? nlohmann::ordered_json(val) : parsed;
  }
  std::string out;
  try {
    out = render_chat_template(src.tmpl, in);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("chat template", 0) == 0) throw Error(src.origin, msg);
    throw;
  }
  if (fwrite(out.data(), 1, out.size(), stdout) != out.size() || fflush(stdout) != 0)
    throw Error("stdout", "write failed");
}

}  // namespace

void add_chat_template_command(CLI::App& app) {
  auto* o = keep_alive<ChatTemplateOptions>();
  auto* sub = app.add_subcommand(
      "chat-template",
      "Render messages with the model's chat template (exactly as transformers does)");
  sub->add_option("--model,-m", o->model,
                  "Model directory (tokenizer_config.json or chat_template.jinja), or .gguf")
      ->required();
  sub->add_option("--messages", o->messages,
                  "JSON file: [{\"role\", \"content\"}, ...] ('-' for stdin)")
      ->required();
  sub->add_flag("--add-generation-prompt", o->add_generation_prompt,
                "Append the assistant header that starts the model's reply");
  sub->add_option("--set", o->vars,
                  "Extra template variable KEY=VALUE (VALUE parsed as JSON if it can be), "
                  "e.g. --set enable_thinking=false");
  sub->callback([o] { run(*o); });
}

}  // namespace rv::cli
