#include "server/protocol.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace rv::server {

json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  json e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return json{{"error", e}};
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& what) {
  throw ApiError(400, "'" + param + "' " + what, param);
}

// Present and not null.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> get_bool(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(name, "must be a boolean");
  return v->get<bool>();
}

std::optional<int64_t> get_int(const json& body, const char* name, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  // Integral floats (16.0) are accepted as Python clients may send them.
  int64_t x;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
      bad(name, "is out of range");
    x = v->get<int64_t>();
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
             v->get<double>() == std::floor(v->get<double>()) &&
             std::fabs(v->get<double>()) < 9e15) {
    x = int64_t(v->get<double>());
  } else {
    bad(name, "must be an integer");
  }
  if (x < lo || x > hi)
    bad(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                  std::to_string(x));
  return x;
}

std::optional<double> get_number(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(name, "must be a number");
  double x = v->get<double>();
  if (!std::isfinite(x)) bad(name, "must be finite");
  return x;
}

std::string get_string(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return {};
  if (!v->is_string()) bad(name, "must be a string");
  return v->get<std::string>();
}

void parse_common(const json& body, CommonRequest& r, const char* max_tokens_name,
                  int64_t min_tokens) {
  r.model = get_string(body, "model");
  auto& s = r.sampling;
  if (auto n = get_int(body, "n", 1, kMaxChoices)) r.n = int(*n);
  if (auto n = get_int(body, "best_of", 1, 1 << 20); n && *n != 1)
    throw ApiError(400, "'best_of' must be 1", "best_of");
  if (auto t = get_int(body, max_tokens_name, min_tokens, INT32_MAX)) {
    s.max_tokens = int(*t);
    r.max_tokens_given = true;
  }
  if (auto t = get_number(body, "temperature")) {
    if (*t < 0) bad("temperature", "must be >= 0");
    s.temperature = float(*t);
  }
  if (auto p = get_number(body, "top_p")) {
    if (!(*p > 0 && *p <= 1)) bad("top_p", "must be in (0, 1]");
    s.top_p = float(*p);
  }
  if (auto k = get_int(body, "top_k", -1, INT32_MAX)) s.top_k = *k < 0 ? 0 : int(*k);
  if (auto p = get_number(body, "min_p")) {
    if (!(*p >= 0 && *p <= 1)) bad("min_p", "must be in [0, 1]");
    s.min_p = float(*p);
  }
  if (const json* v = field(body, "seed")) {
    if (v->is_number_unsigned()) {
      s.seed = v->get<uint64_t>();
    } else if (v->is_number_integer()) {
      s.seed = uint64_t(v->get<int64_t>());
    } else {
      bad("seed", "must be an integer");
    }
    r.seed_given = true;
  }
  if (const json* v = field(body, "stop")) {
    if (v->is_string()) {
      if (!v->get<std::string>().empty()) s.stop_strings.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (const auto& x : *v) {
        if (!x.is_string()) bad("stop", "must be a string or a list of strings");
        if (!x.get<std::string>().empty()) s.stop_strings.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or a list of strings");
    }
  }
  if (const json* v = field(body, "stop_token_ids")) {
    if (!v->is_array()) bad("stop_token_ids", "must be a list of integers");
    for (const auto& x : *v) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
        bad("stop_token_ids", "must be a list of non-negative integers");
      s.stop_ids.push_back(int32_t(x.get<int64_t>()));
    }
  }
  if (auto b = get_bool(body, "ignore_eos")) s.ignore_eos = *b;
  if (auto b = get_bool(body, "stream")) r.stream = *b;
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) bad("stream_options", "must be an object");
    if (auto b = get_bool(*v, "include_usage")) r.include_usage = *b;
  }
  for (const char* p : {"presence_penalty", "frequency_penalty"}) {
    if (auto x = get_number(body, p); x && *x != 0)
      throw ApiError(400, std::string("'") + p + "' is not supported by this server (must be 0)",
                     p);
  }
  if (auto x = get_number(body, "repetition_penalty"); x && *x != 1)
    throw ApiError(400, "'repetition_penalty' is not supported by this server (must be 1)",
                   "repetition_penalty");
  if (const json* v = field(body, "logit_bias")) {
    if (!v->is_object()) bad("logit_bias", "must be an object");
    if (!v->empty())
      throw ApiError(400, "'logit_bias' is not supported by this server", "logit_bias");
  }
}

// Token ids from a JSON array of integers; `what` names the field.
std::vector<int32_t> token_array(const json& a, const char* what) {
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (const auto& x : a) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      bad(what, "token ids must be non-negative integers");
    ids.push_back(int32_t(x.get<int64_t>()));
  }
  return ids;
}

}  // namespace

CompletionRequest parse_completion_request(const json& body) {
  if (!body.is_object()) throw ApiError(400, "request body must be a JSON object");
  CompletionRequest r;
  const json* p = field(body, "prompt");
  if (!p) throw ApiError(400, "'prompt' is required", "prompt");
  auto empty_prompt = [] { throw ApiError(400, "'prompt' must not be empty", "prompt"); };
  if (p->is_string()) {
    if (p->get<std::string>().empty()) empty_prompt();
    r.prompts.push_back({false, p->get<std::string>(), {}});
  } else if (p->is_array()) {
    if (p->empty()) empty_prompt();
    const json& first = p->front();
    if (first.is_string()) {
      for (const auto& x : *p) {
        if (!x.is_string()) bad("prompt", "must not mix strings with other types");
        if (x.get<std::string>().empty()) empty_prompt();
        r.prompts.push_back({false, x.get<std::string>(), {}});
      }
    } else if (first.is_number()) {
      r.prompts.push_back({true, {}, token_array(*p, "prompt")});
    } else if (first.is_array()) {
      for (const auto& x : *p) {
        if (!x.is_array()) bad("prompt", "must not mix token arrays with other types");
        if (x.empty()) empty_prompt();
        r.prompts.push_back({true, {}, token_array(x, "prompt")});
      }
    } else {
      bad("prompt", "must be a string, a list of strings, a list of token ids or a list of lists");
    }
  } else {
    bad("prompt", "must be a string, a list of strings, a list of token ids or a list of lists");
  }
  if (auto b = get_bool(body, "echo")) r.echo = *b;
  if (auto n = get_int(body, "logprobs", 0, kMaxLogprobs)) r.logprobs = int(*n);
  if (field(body, "suffix")) throw ApiError(400, "'suffix' is not supported", "suffix");
  // max_tokens = 0 is only meaningful with echo (scoring the prompt).
  parse_common(body, r, "max_tokens", 0);
  if (!r.max_tokens_given) r.sampling.max_tokens = kDefaultCompletionTokens;
  if (r.sampling.max_tokens == 0 && !r.echo)
    bad("max_tokens", "must be at least 1 (0 is allowed only with echo)");
  return r;
}

ChatRequest parse_chat_request(const json& body) {
  if (!body.is_object()) throw ApiError(400, "request body must be a JSON object");
  ChatRequest r;
  const json* m = field(body, "messages");
  if (!m) throw ApiError(400, "'messages' is required", "messages");
  if (!m->is_array() || m->empty()) bad("messages", "must be a non-empty list");
  for (const auto& msg : *m) {
    if (!msg.is_object()) bad("messages", "entries must be objects");
    ChatMessage cm;
    cm.role = get_string(msg, "role");
    if (cm.role.empty()) bad("messages", "entries need a 'role'");
    const json* c = field(msg, "content");
    if (!c) {
      // An assistant turn may carry only tool calls; we keep it as empty text.
    } else if (c->is_string()) {
      cm.content = c->get<std::string>();
    } else if (c->is_array()) {
      for (const auto& part : *c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
          bad("messages", "content parts must be {\"type\": \"text\", \"text\": ...}");
        cm.content += part["text"].get<std::string>();
      }
    } else {
      bad("messages", "content must be a string or a list of text parts");
    }
    r.messages.push_back(std::move(cm));
  }
  if (auto b = get_bool(body, "logprobs")) r.logprobs = *b;
  if (auto n = get_int(body, "top_logprobs", 0, kMaxLogprobs)) {
    if (!r.logprobs && *n > 0) bad("top_logprobs", "requires 'logprobs': true");
    r.top_logprobs = int(*n);
  }
  if (auto b = get_bool(body, "add_generation_prompt")) r.add_generation_prompt = *b;
  if (auto b = get_bool(body, "continue_final_message")) r.continue_final_message = *b;
  if (r.continue_final_message && r.add_generation_prompt)
    bad("continue_final_message", "requires 'add_generation_prompt': false");
  if (const json* v = field(body, "chat_template_kwargs")) {
    if (!v->is_object()) bad("chat_template_kwargs", "must be an object");
    r.template_kwargs = *v;
  }
  if (const json* t = field(body, "tools"); t && !(t->is_array() && t->empty()))
    throw ApiError(400, "'tools' are not supported by this server", "tools");
  if (const json* f = field(body, "response_format")) {
    if (!f->is_object() || f->value("type", "") != "text")
      throw ApiError(400, "only 'response_format' {\"type\": \"text\"} is supported",
                     "response_format");
  }
  // max_completion_tokens is the newer name; either may be given.
  const char* name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  parse_common(body, r, name, 1);
  return r;
}

size_t complete_utf8_prefix(std::string_view s) {
  size_t n = s.size();
  // Look back at most 3 bytes for the lead byte of the last character.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = s[n - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    return len > back ? n - back : n;
  }
  return n;
}

size_t stop_safe_prefix(const std::string& text, const std::vector<std::string>& stops) {
  size_t safe = text.size();
  for (const auto& st : stops) {
    if (st.empty()) continue;
    size_t at = text.find(st);
    if (at != std::string::npos) {
      safe = std::min(safe, at);
      continue;
    }
    // Longest suffix of text that is a proper prefix of st.
    size_t max_k = std::min(st.size() - 1, text.size());
    for (size_t k = max_k; k > 0; --k) {
      if (text.compare(text.size() - k, k, st, 0, k) == 0) {
        safe = std::min(safe, text.size() - k);
        break;
      }
    }
  }
  return complete_utf8_prefix(std::string_view(text).substr(0, safe));
}

StopScanner::StopScanner(std::vector<std::string> stops) : stops_(std::move(stops)) {
  found_.assign(stops_.size(), std::string::npos);
  for (const auto& st : stops_) max_len_ = std::max(max_len_, st.size());
}

size_t StopScanner::safe_prefix(const std::string& text) {
  const std::string_view t(text);
  // An occurrence not seen before ends in the new bytes, so it starts at most
  // (its length - 1) bytes before them.
  const size_t keep = max_len_ > 0 ? max_len_ - 1 : 0;
  const size_t from = scanned_ > keep ? scanned_ - keep : 0;
  if (t.size() > from) examined_ += t.size() - from;
  size_t safe = t.size();
  for (size_t s = 0; s < stops_.size(); ++s) {
    const std::string& st = stops_[s];
    if (st.empty()) continue;
    if (found_[s] == std::string::npos) {
      const size_t start = scanned_ >= st.size() ? scanned_ - (st.size() - 1) : 0;
      if (start < t.size()) found_[s] = t.find(st, start);
    }
    if (found_[s] != std::string::npos) {
      safe = std::min(safe, found_[s]);
      continue;
    }
    // Longest suffix of text that is a proper prefix of st.
    const size_t max_k = std::min(st.size() - 1, t.size());
    for (size_t k = max_k; k > 0; --k) {
      if (t.compare(t.size() - k, k, st.data(), k) == 0) {
        safe = std::min(safe, t.size() - k);
        break;
      }
    }
  }
  scanned_ = t.size();
  return complete_utf8_prefix(t.substr(0, safe));
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

}  // namespace rv::server
