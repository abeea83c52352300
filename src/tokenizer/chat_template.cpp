#include "tokenizer/chat_template.h"

#include <memory>

#include "common/error.h"
#include "common/file.h"
#include "formats/gguf.h"
#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace rv {

namespace {

std::string strip_ws(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// As transformers: find the final message's (stripped) content, last
// occurrence, and end the text there; keep its trailing whitespace only when
// the template kept it too.
std::string cut_after_final_message(const std::string& rendered,
                                    const nlohmann::ordered_json& messages) {
  const std::string& content = messages.back()["content"].get_ref<const std::string&>();
  std::string core = strip_ws(content);
  size_t at = core.empty() ? std::string::npos : rendered.rfind(core);
  if (at == std::string::npos)
    throw Error("continue_final_message",
                "the template does not reproduce the final message's content, so the reply "
                "cannot continue it");
  // transformers compares the unstripped content against a window the size
  // of the left-stripped one: only content without leading space can match.
  size_t unlead = content.size() - content.find_first_not_of(" \t\n\r\f\v");
  if (rendered.compare(at, unlead, content) == 0) return rendered.substr(0, at + unlead);
  return rendered.substr(0, at + core.size());
}

}  // namespace

std::string render_chat_template(const std::string& tmpl, const ChatTemplateInputs& in) {
  if (!in.messages.is_array())
    throw Error("messages",
                std::string("expected a JSON array of {\"role\", \"content\"} objects, got ") +
                    in.messages.type_name());
  for (size_t k = 0; k < in.messages.size(); ++k)
    if (!in.messages[k].is_object())
      throw Error("messages", "element " + std::to_string(k) + " is a " +
                                  in.messages[k].type_name() +
                                  ", expected an object with \"role\" and \"content\"");
  if (!in.extra.is_object()) throw Error("chat template variables", "extra must be a JSON object");
  if (in.continue_final_message) {
    if (in.add_generation_prompt)
      throw Error("continue_final_message",
                  "cannot be combined with add_generation_prompt (the reply would start a new "
                  "turn)");
    if (in.messages.empty() || !in.messages.back().contains("content") ||
        !in.messages.back()["content"].is_string())
      throw Error("continue_final_message", "the final message needs a string \"content\"");
  }

  // The variables transformers passes: messages, tools=None, documents=None,
  // add_generation_prompt, the special-token strings, then caller kwargs.
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = in.messages;
  ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = in.add_generation_prompt;
  if (!in.bos_token.empty()) ctx["bos_token"] = in.bos_token;
  if (!in.eos_token.empty()) ctx["eos_token"] = in.eos_token;
  for (auto it = in.extra.begin(); it != in.extra.end(); ++it) ctx[it.key()] = it.value();

  // Servers render the same template for every request: keep the last
  // parsed one per thread (parsing costs several times a render).
  thread_local std::string cached_src;
  thread_local std::shared_ptr<const jinja::Template> cached;
  if (!cached || cached_src != tmpl) {
    cached.reset();
    cached = std::make_shared<const jinja::Template>(tmpl, "chat template");
    cached_src = tmpl;
  }
  std::shared_ptr<const jinja::Template> t = cached;
  jinja::RenderOptions ro;
  ro.now = in.now;
  std::string out = t->render(ctx, ro);
  if (in.continue_final_message) out = cut_after_final_message(out, in.messages);
  return out;
}

namespace {

nlohmann::ordered_json read_json(const std::filesystem::path& p) {
  std::string text = read_file(p);
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(p.string(), std::string("malformed JSON: ") + e.what());
  }
}

std::string token_string(const nlohmann::ordered_json& cfg, const char* key,
                         const std::filesystem::path& p) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  throw Error(p.string(),
              std::string("\"") + key + "\" must be a string, null or {\"content\": string}");
}

// "chat_template": string, or [{"name": ..., "template": ...}] → "default".
bool pick_template(const nlohmann::ordered_json& cfg, const std::filesystem::path& p,
                   std::string* out) {
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) return false;
  if (it->is_string()) {
    *out = it->get<std::string>();
    return true;
  }
  if (it->is_array()) {
    std::string names;
    for (const auto& e : *it) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
          !e["name"].is_string() || !e["template"].is_string())
        throw Error(
            p.string(),
            "\"chat_template\" list entries must be {\"name\": string, \"template\": string}");
      if (e["name"] == "default") {
        *out = e["template"].get<std::string>();
        return true;
      }
      names += (names.empty() ? "" : ", ") + e["name"].get<std::string>();
    }
    throw Error(p.string(), "\"chat_template\" list has no \"default\" entry (has: " + names + ")");
  }
  throw Error(p.string(), "\"chat_template\" must be a string or a list of {name, template}");
}

}  // namespace

ChatTemplateSource load_chat_template(const std::filesystem::path& model_dir) {
  namespace fs = std::filesystem;
  if (gguf::is_gguf_path(model_dir)) {
    const Tokenizer tok = Tokenizer::load_gguf(model_dir);
    if (tok.chat_template().empty())
      throw Error(model_dir.string(), "no chat template (tokenizer.chat_template) in the file");
    return {tok.chat_template(), tok.bos_token(), tok.eos_token(), model_dir.string()};
  }
  if (!fs::is_directory(model_dir)) throw Error(model_dir.string(), "model directory not found");
  ChatTemplateSource src;
  fs::path cfg_path = model_dir / "tokenizer_config.json";
  nlohmann::ordered_json cfg = nlohmann::ordered_json::object();
  if (fs::exists(cfg_path)) {
    cfg = read_json(cfg_path);
    if (!cfg.is_object()) throw Error(cfg_path.string(), "expected a JSON object");
    src.bos_token = token_string(cfg, "bos_token", cfg_path);
    src.eos_token = token_string(cfg, "eos_token", cfg_path);
  }
  fs::path jinja_path = model_dir / "chat_template.jinja";
  fs::path json_path = model_dir / "chat_template.json";
  if (fs::exists(jinja_path)) {
    src.tmpl = read_file(jinja_path);
    src.origin = jinja_path.string();
    return src;
  }
  if (fs::exists(json_path)) {
    auto j = read_json(json_path);
    if (j.is_object() && pick_template(j, json_path, &src.tmpl)) {
      src.origin = json_path.string();
      return src;
    }
  }
  if (pick_template(cfg, cfg_path, &src.tmpl)) {
    src.origin = cfg_path.string();
    return src;
  }
  throw Error(model_dir.string(),
              "no chat template (looked for chat_template.jinja, chat_template.json and "
              "\"chat_template\" in "
              "tokenizer_config.json)");
}

}  // namespace rv
