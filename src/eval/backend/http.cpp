#include "eval/backend/http.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/error.h"
#include "common/file.h"

namespace rv::eval {

using json = nlohmann::json;

namespace {

// The server's own error text: OpenAI {"error":{"message"}}, vLLM
// {"message"}, FastAPI {"detail"}, or the raw body.
std::string server_message(const std::string& body) {
  try {
    json j = json::parse(body);
    if (j.contains("error")) {
      const json& e = j["error"];
      if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"];
      if (e.is_string()) return e;
    }
    if (j.contains("message") && j["message"].is_string()) return j["message"];
    if (j.contains("detail"))
      return j["detail"].is_string() ? j["detail"].get<std::string>() : j["detail"].dump();
  } catch (const json::exception&) {
  }
  std::string s = body.substr(0, 300);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s.empty() ? "(empty body)" : s;
}

size_t utf8_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Cuts `text` before the earliest stop string; true if one was found.
bool cut_at_stop(std::string& text, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    size_t p = text.find(s);
    if (p < best) best = p;
  }
  if (best == std::string::npos) return false;
  text.resize(best);
  return true;
}

std::string refused_echo_message(const std::string& detail) {
  return "the server gave no prompt log-probabilities for echo=true, logprobs=1 (" + detail +
         "); log-likelihood tasks (e.g. sciq) need a server that scores prompts, such as vLLM, "
         "SGLang or "
         "`reasonvec serve` (llama.cpp's server cannot) — refusing to score at chance";
}

}  // namespace

HttpBackend::Url HttpBackend::parse_base_url(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    throw Error(url, "base URL must start with http:// or https://");
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https")
    throw Error(url, "base URL must start with http:// or https://");
  size_t host_start = scheme_end + 3;
  size_t path_start = url.find('/', host_start);
  std::string host = url.substr(
      host_start, path_start == std::string::npos ? std::string::npos : path_start - host_start);
  if (host.empty()) throw Error(url, "base URL has no host");
  std::string path = path_start == std::string::npos ? "" : url.substr(path_start);
  while (!path.empty() && path.back() == '/') path.pop_back();
  // Accept both "http://h:p" and the OpenAI-client style "http://h:p/v1".
  if (path.size() < 3 || path.compare(path.size() - 3, 3, "/v1") != 0) path += "/v1";
  return Url{scheme + "://" + host, path};
}

HttpBackend::HttpBackend(HttpOptions opt) : opt_(std::move(opt)) {
  if (opt_.base_urls.empty()) opt_.base_urls.push_back(opt_.base_url);
  opt_.base_url = opt_.base_urls.front();
  for (const auto& u : opt_.base_urls) urls_.push_back(parse_base_url(u));
  url_ = urls_.front();
  if (opt_.model.empty()) throw Error(opt_.base_url, "--model NAME is required with --base-url");
  if (opt_.concurrency < 1) opt_.concurrency = 1;
}

std::string HttpBackend::fingerprint() const {
  if (!opt_.identity.empty()) return opt_.identity;
  return "openai|" + url_.scheme_host_port + url_.prefix + "|" + opt_.model;
}

std::string HttpBackend::describe() const {
  std::string where;
  for (const auto& u : urls_) where += (where.empty() ? "" : ", ") + u.scheme_host_port + u.prefix;
  return std::string(urls_.size() > 1 ? "openai-compatible servers "
                                      : "openai-compatible server ") +
         where + " model=" + opt_.model;
}

std::vector<std::string> HttpBackend::unsent_parameters() const {
  std::lock_guard<std::mutex> l(drop_mu_);
  std::vector<std::string> out = dropped_;
  if (n_refused_.load()) out.push_back("n (sent as separate requests)");
  return out;
}

bool HttpBackend::dropped(const std::string& param) const {
  std::lock_guard<std::mutex> l(drop_mu_);
  return std::find(dropped_.begin(), dropped_.end(), param) != dropped_.end();
}

struct HttpBackend::Worker {
  Worker(const HttpBackend& b, size_t server)
      : url(b.urls_[server % b.urls_.size()]), cli(url.scheme_host_port) {
    cli.set_connection_timeout(30, 0);
    auto t = std::chrono::duration<double>(b.opt_.timeout_s);
    cli.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
    cli.set_write_timeout(30, 0);
    cli.set_keep_alive(true);
    if (!b.opt_.api_key.empty()) cli.set_bearer_token_auth(b.opt_.api_key.c_str());
  }
  Url url;
  httplib::Client cli;
  std::mt19937_64 rng{std::random_device{}()};
  const std::atomic<bool>* abort = nullptr;
};

namespace {

// httplib names its errors in one word ("Connection"); say what happened.
std::string transport_error(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "cannot connect (is the server running?)";
    case httplib::Error::ConnectionTimeout:
      return "connection timed out";
    case httplib::Error::Read:
      return "no complete response (connection closed or read timed out)";
    case httplib::Error::Write:
      return "could not send the request (connection closed)";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification:
      return "TLS error (" + httplib::to_string(e) + ")";
    default:
      return httplib::to_string(e);
  }
}

}  // namespace

std::string HttpBackend::post(Worker& w, const std::string& path, const std::string& body,
                              int* status_out) {
  const std::string full = path;
  const std::string where = w.url.scheme_host_port + full;
  std::string last_error;
  for (int attempt = 0;; ++attempt) {
    ++attempts_;
    auto res = w.cli.Post(full, body, "application/json");
    double retry_after = -1;
    if (!res) {
      last_error = "connection error: " + transport_error(res.error());
    } else if (res->status == 200) {
      if (status_out) *status_out = 200;
      return res->body;
    } else if (res->status == 429 || res->status == 408 || res->status >= 500) {
      last_error = "HTTP " + std::to_string(res->status) + ": " + server_message(res->body);
      if (res->has_header("Retry-After")) {
        try {
          retry_after = std::stod(res->get_header_value("Retry-After"));
        } catch (...) {
        }
      }
    } else if (status_out) {
      *status_out = res->status;
      return res->body;
    } else {
      throw Error(where, "HTTP " + std::to_string(res->status) + ": " + server_message(res->body));
    }
    if (attempt >= opt_.max_retries)
      throw Error(where, "giving up after " + std::to_string(attempt + 1) +
                             " attempts; last: " + last_error);
    ++retries_;
    double wait = opt_.backoff_initial_s * std::pow(2.0, attempt);
    wait = std::min(wait, opt_.backoff_max_s);
    wait *= std::uniform_real_distribution<double>(0.75, 1.25)(w.rng);
    if (retry_after >= 0)
      wait = std::min(std::max(wait, retry_after), std::max(opt_.backoff_max_s, retry_after));
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait);
    while (std::chrono::steady_clock::now() < until) {
      if ((w.abort && w.abort->load()) || rv::interrupted())
        throw Error(where, "interrupted while retrying");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

namespace {

bool word_at(const std::string& msg, size_t p, size_t len) {
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  return (p == 0 || !word(msg[p - 1])) && (p + len >= msg.size() || !word(msg[p + len]));
}

// Which of `candidates` a 4xx answer blames: the error's "param", else the
// first one named as a word in its message; "" when none.
std::string refused_param(const std::string& body, const std::vector<std::string>& candidates) {
  std::string msg = server_message(body);
  try {
    json j = json::parse(body);
    if (j.contains("error") && j["error"].is_object() && j["error"].contains("param") &&
        j["error"]["param"].is_string()) {
      std::string p = j["error"]["param"];
      for (const auto& c : candidates)
        if (c == p) return c;
    }
    if (j.contains("detail")) msg += " " + j["detail"].dump();  // FastAPI's validation list
  } catch (const json::exception&) {
  }
  for (const auto& c : candidates)
    for (size_t p = msg.find(c); p != std::string::npos; p = msg.find(c, p + 1))
      if (word_at(msg, p, c.size())) return c;
  return "";
}

bool same_but_seed(const GenRequest& a, const GenRequest& b) {
  if (a.chat != b.chat || a.prompt != b.prompt || a.messages.size() != b.messages.size() ||
      a.assistant_prefix != b.assistant_prefix || a.stop != b.stop ||
      a.max_tokens != b.max_tokens || a.temperature != b.temperature || a.top_p != b.top_p ||
      a.top_k != b.top_k || a.min_p != b.min_p || a.chat_template_kwargs != b.chat_template_kwargs)
    return false;
  for (size_t i = 0; i < a.messages.size(); ++i)
    if (a.messages[i].role != b.messages[i].role || a.messages[i].content != b.messages[i].content)
      return false;
  return true;
}

}  // namespace

std::vector<GenResponse> HttpBackend::generate_group(Worker& w, const GenGroup& g) {
  const int n = static_cast<int>(g.indices.size());
  if (n > 1 && !n_refused_.load()) {
    std::vector<GenResponse> out = generate_n(w, *g.req, n);
    if (!out.empty()) return out;  // empty: the server refused n
  }
  // One request per sample, seeds seed, seed + 1, ...
  std::vector<GenResponse> out;
  for (int k = 0; k < n; ++k) {
    GenRequest r = *g.req;
    r.seed += static_cast<uint64_t>(k);
    out.push_back(generate_n(w, r, 1).at(0));
  }
  return out;
}

std::vector<GenResponse> HttpBackend::generate_n(Worker& w, const GenRequest& r, int n) {
  std::string path;
  json base = {{"model", opt_.model},
               {"max_tokens", r.max_tokens},
               {"temperature", r.temperature},
               {"top_p", r.top_p}};
  if (!r.stop.empty()) base["stop"] = r.stop;
  if (r.chat) {
    json msgs = json::array();
    for (const auto& m : r.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    if (!r.assistant_prefix.empty()) {
      // vLLM's (and our server's) extension for a pre-filled answer.
      msgs.push_back({{"role", "assistant"}, {"content", r.assistant_prefix}});
      base["add_generation_prompt"] = false;
      base["continue_final_message"] = true;
    }
    base["messages"] = msgs;
    path = w.url.prefix + "/chat/completions";
  } else {
    base["prompt"] = r.prompt + r.assistant_prefix;
    path = w.url.prefix + "/completions";
  }
  const std::string where = w.url.scheme_host_port + path;
  std::string text;
  for (;;) {
    // Optional fields, each only while the server has not refused it.
    json body = base;
    std::vector<std::string> optional;
    auto add = [&](const char* key, json v) {
      if (dropped(key)) return;
      body[key] = std::move(v);
      optional.push_back(key);
    };
    if (r.temperature > 0) add("seed", r.seed);
    if (r.top_k > 0) add("top_k", r.top_k);
    if (r.min_p > 0) add("min_p", r.min_p);
    if (r.chat && !r.chat_template_kwargs.empty())
      add("chat_template_kwargs", json::parse(r.chat_template_kwargs));
    if (n > 1) {
      body["n"] = n;
      optional.push_back("n");
    }
    int status = 0;
    text = post(w, path, body.dump(), &status);
    if (status == 200) break;
    if (status != 400 && status != 422)
      throw Error(where, "HTTP " + std::to_string(status) + ": " + server_message(text));
    std::string p = refused_param(text, optional);
    if (p.empty() && n > 1) p = "n";  // the likeliest culprit (llama.cpp: "one choice")
    if (p.empty())
      throw Error(where, "HTTP " + std::to_string(status) + ": " + server_message(text));
    if (p == "n") {
      n_refused_.store(true);
      return {};
    }
    std::lock_guard<std::mutex> l(drop_mu_);
    if (std::find(dropped_.begin(), dropped_.end(), p) == dropped_.end()) dropped_.push_back(p);
  }
  std::vector<GenResponse> out(static_cast<size_t>(n));
  try {
    json j = json::parse(text);
    const json& choices = j.at("choices");
    if (!choices.is_array() || choices.size() != static_cast<size_t>(n))
      throw Error(where, "malformed response: expected " + std::to_string(n) + " choice(s), got " +
                             std::to_string(choices.is_array() ? choices.size() : 0));
    int total = -1;
    if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("completion_tokens") &&
        j["usage"]["completion_tokens"].is_number())
      total = j["usage"]["completion_tokens"].get<int>();
    for (size_t pos = 0; pos < choices.size(); ++pos) {
      const json& c = choices[pos];
      size_t idx =
          c.contains("index") && c["index"].is_number_unsigned() ? c["index"].get<size_t>() : pos;
      if (idx >= out.size()) throw Error(where, "malformed response: choice index out of range");
      GenResponse& o = out[idx];
      if (r.chat) {
        const json& content = c.at("message").at("content");
        o.text = content.is_null() ? "" : content.get<std::string>();
      } else {
        o.text = c.at("text").get<std::string>();
      }
      o.finish_reason = c.contains("finish_reason") && c["finish_reason"].is_string()
                            ? c["finish_reason"].get<std::string>()
                            : "stop";
      if (c.contains("completion_tokens") && c["completion_tokens"].is_number_unsigned())
        // Exact: the per-choice count `reasonvec serve` adds to each choice.
        o.completion_tokens = c["completion_tokens"].get<int>();
      else if (c.contains("token_ids") && c["token_ids"].is_array())
        // vLLM's per-choice token ids (its return_token_ids extension).
        o.completion_tokens = static_cast<int>(c["token_ids"].size());
      else if (total >= 0)  // divided evenly, the remainder to the first choices
        o.completion_tokens = total / n + (static_cast<int>(idx) < total % n ? 1 : 0);
      if (cut_at_stop(o.text, r.stop)) o.finish_reason = "stop";
    }
  } catch (const json::exception& e) {
    throw Error(where, std::string("malformed response: ") + e.what());
  }
  return out;
}

LoglikResponse loglik_from_echo(const std::string& logprobs_json, const std::string& context,
                                const std::string& continuation, const std::string& where) {
  json lp;
  try {
    lp = json::parse(logprobs_json);
  } catch (const json::exception& e) {
    throw Error(where, std::string("malformed logprobs: ") + e.what());
  }
  if (!lp.is_object() || !lp.contains("tokens") || !lp["tokens"].is_array() ||
      !lp.contains("token_logprobs") || !lp["token_logprobs"].is_array() || lp["tokens"].empty())
    throw Error(where, refused_echo_message("no tokens/token_logprobs in the response"));
  const json& tokens = lp["tokens"];
  const json& tlp = lp["token_logprobs"];
  const size_t n = tokens.size();
  if (tlp.size() != n)
    throw Error(where, "malformed logprobs: tokens and token_logprobs differ in length");
  const std::string prompt = context + continuation;

  // Token start offsets in one unit, with the prompt/context lengths in the
  // same unit. Prefer offsets rebuilt from the token strings themselves
  // (exact, in bytes); else trust text_offset, which vLLM and OpenAI count in
  // characters (code points).
  std::vector<size_t> start(n);
  size_t ctx_len = context.size(), total = prompt.size();
  bool rebuilt = true;
  {
    std::string joined;
    for (size_t i = 0; i < n; ++i) {
      start[i] = joined.size();
      if (!tokens[i].is_string()) {
        rebuilt = false;
        break;
      }
      joined += tokens[i].get<std::string>();
    }
    if (rebuilt)
      rebuilt = joined.size() >= prompt.size() && joined.compare(0, prompt.size(), prompt) == 0;
  }
  if (!rebuilt) {
    if (!lp.contains("text_offset") || !lp["text_offset"].is_array() ||
        lp["text_offset"].size() != n)
      throw Error(where, refused_echo_message(
                             "echoed tokens do not spell the prompt and there is no text_offset"));
    for (size_t i = 0; i < n; ++i) start[i] = lp["text_offset"][i].get<size_t>();
    size_t chars = utf8_chars(prompt);
    // Character offsets can never exceed the prompt's character count (a
    // generated token starts exactly there); anything larger means bytes.
    size_t max_off = *std::max_element(start.begin(), start.end());
    if (chars != prompt.size() && max_off <= chars) {
      ctx_len = utf8_chars(context);
      total = chars;
    }
  }
  if (start[0] != 0)
    throw Error(where, refused_echo_message("the first token does not start the prompt"));

  LoglikResponse out;
  out.is_greedy = true;
  size_t used = 0;
  const json* tops =
      lp.contains("top_logprobs") && lp["top_logprobs"].is_array() ? &lp["top_logprobs"] : nullptr;
  for (size_t i = 0; i < n; ++i) {
    if (start[i] >= total) break;  // a generated token (max_tokens=1)
    size_t next = i + 1 < n ? start[i + 1] : std::numeric_limits<size_t>::max();
    if (next <= ctx_len) continue;  // entirely inside the context
    if (tlp[i].is_null()) {
      if (i == 0) throw Error(where, "cannot score a continuation with an empty context over HTTP");
      throw Error(where, refused_echo_message("null log-probability for a prompt token"));
    }
    double v = tlp[i].get<double>();
    out.logprob += v;
    ++used;
    bool greedy = false;
    if (tops && i < tops->size() && (*tops)[i].is_object() && !(*tops)[i].empty()) {
      double best = -std::numeric_limits<double>::infinity();
      for (const auto& [tok, val] : (*tops)[i].items())
        if (val.is_number()) best = std::max(best, val.get<double>());
      greedy = v >= best - 1e-6;
    }
    out.is_greedy = out.is_greedy && greedy;
  }
  if (used == 0) throw Error(where, refused_echo_message("no logprobs cover the continuation"));
  return out;
}

LoglikResponse HttpBackend::loglik_one(Worker& w, const LoglikRequest& r) {
  const std::string path = w.url.prefix + "/completions";
  const std::string where = w.url.scheme_host_port + path;
  const std::string prompt = r.context + r.continuation;
  for (;;) {
    int mt = loglik_max_tokens_.load();
    json body = {{"model", opt_.model}, {"prompt", prompt}, {"max_tokens", mt},
                 {"temperature", 0},    {"echo", true},     {"logprobs", 1}};
    int status = 0;
    std::string text = post(w, path, body.dump(), &status);
    if (status != 200) {
      if (mt == 0) {  // some servers refuse max_tokens=0: generate one token and ignore it
        loglik_max_tokens_.store(1);
        continue;
      }
      throw Error(where, refused_echo_message("HTTP " + std::to_string(status) + ": " +
                                              server_message(text)));
    }
    json j;
    try {
      j = json::parse(text);
      const json& c = j.at("choices").at(0);
      if (!c.contains("logprobs") || c["logprobs"].is_null())
        throw Error(where, refused_echo_message("the response has no logprobs"));
      if (c.contains("text") && c["text"].is_string()) {
        const std::string& t = c["text"].get_ref<const std::string&>();
        if (t.compare(0, prompt.size(), prompt) != 0)
          throw Error(where, refused_echo_message("the returned text does not echo the prompt"));
      }
      return loglik_from_echo(c["logprobs"].dump(), r.context, r.continuation, where);
    } catch (const json::exception& e) {
      throw Error(where, std::string("malformed response: ") + e.what());
    }
  }
}

template <typename Req, typename Resp, typename Fn>
void HttpBackend::run_all(const std::vector<Req>& reqs, const Fn& on_result,
                          Resp (HttpBackend::*one)(Worker&, const Req&)) {
  if (reqs.empty()) return;
  // `concurrency` workers per server, all taking from one queue; worker t
  // talks to server t % servers.
  const size_t nthreads =
      std::min<size_t>(static_cast<size_t>(opt_.concurrency) * urls_.size(), reqs.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> abort{false};
  std::mutex mu;
  std::exception_ptr first_error;
  // With `mu` held: keep the first error and stop every worker.
  auto fail = [&] {
    if (!first_error) first_error = std::current_exception();
    abort.store(true);
  };
  auto body = [&](size_t t) {
    Worker w(*this, t);
    w.abort = &abort;
    try {
      for (;;) {
        if (abort.load()) return;
        if (rv::interrupted()) throw Error("interrupted");
        size_t i = next.fetch_add(1);
        if (i >= reqs.size()) return;
        Resp r = (this->*one)(w, reqs[i]);
        std::lock_guard<std::mutex> lock(mu);
        if (abort.load()) return;
        // A throwing callback must raise `abort` before `mu` is released:
        // otherwise another worker can take the lock in between and call
        // it once more after it failed.
        try {
          on_result(i, r);
        } catch (...) {
          fail();
          return;
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      fail();
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < nthreads; ++t) threads.emplace_back(body, t);
  body(0);
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

void HttpBackend::generate_stream(const std::vector<GenRequest>& reqs,
                                  const GenResultFn& on_result) {
  // A document's samples (same request, consecutive seeds) as one request.
  std::vector<GenGroup> groups;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (opt_.use_n && !groups.empty() && reqs[i].temperature > 0) {
      GenGroup& g = groups.back();
      const GenRequest& last = reqs[g.indices.back()];
      if (same_but_seed(*g.req, reqs[i]) && reqs[i].seed == last.seed + 1) {
        g.indices.push_back(i);
        continue;
      }
    }
    groups.push_back({&reqs[i], {i}});
  }
  run_all<GenGroup, std::vector<GenResponse>>(
      groups,
      [&](size_t gi, const std::vector<GenResponse>& rs) {
        for (size_t k = 0; k < rs.size(); ++k) on_result(groups[gi].indices[k], rs[k]);
      },
      &HttpBackend::generate_group);
}

void HttpBackend::loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                                       const LoglikResultFn& on_result) {
  run_all<LoglikRequest, LoglikResponse>(reqs, on_result, &HttpBackend::loglik_one);
}

}  // namespace rv::eval
