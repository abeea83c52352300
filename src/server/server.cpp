#include "server/server.h"

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include <httplib.h>

#include "common/error.h"
#include "server/protocol.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace rv::server {
namespace {

using engine::GenerationResult;
using engine::SequenceScores;
using engine::TopLogprob;

// httplib listens with a backlog of 5: a burst of clients would wait for SYN
// retransmits (1 s and more). Linux lets listen() be repeated to raise it.
class HttpServer : public httplib::Server {
 public:
  void widen_backlog() { ::listen(svr_sock_, 1024); }
};

// Token text may be an incomplete UTF-8 character: replace rather than throw.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e));
}

// JSON has no infinities; vLLM reports log(0) as -9999.0. NaN marks "no
// value" (the first prompt token) and becomes null.
json logprob_json(double x) {
  if (std::isnan(x)) return nullptr;
  if (std::isinf(x)) return x < 0 ? -9999.0 : 9999.0;
  return x;
}

// Everything one prompt needs: its ids, the text echoed for it, and the
// engine's pending answers.
struct PromptWork {
  std::vector<int32_t> ids;
  std::string echo_text;
  std::future<GenerationResult> gen;  // invalid when max_tokens == 0
  std::future<SequenceScores> score;  // valid when echo + logprobs
};

// The legacy completions logprobs object, filled token by token.
struct LegacyLogprobs {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       text_offset = json::array();
  size_t offset = 0;  // characters before the next token (vLLM's text_offset)

  json to_json() const {
    return json{{"tokens", tokens},
                {"token_logprobs", token_logprobs},
                {"top_logprobs", top_logprobs},
                {"text_offset", text_offset}};
  }
  bool empty() const { return tokens.empty(); }
};

// Bytes of a token for the chat "bytes" field.
json bytes_json(const std::string& piece) {
  json b = json::array();
  for (unsigned char c : piece) b.push_back(int(c));
  return b;
}

}  // namespace

struct Server::Impl {
  Impl(engine::Engine& e, ServerOptions o) : eng(e), tok(e.tokenizer()), opt(std::move(o)) {
    name = opt.served_model_name.empty() ? eng.model_name() : opt.served_model_name;
    served.push_back({name, &eng});
    chat_template = opt.chat_template.empty() ? tok.chat_template() : opt.chat_template;
    created = int64_t(std::time(nullptr));
    std::random_device rd;
    rng.seed((uint64_t(rd()) << 32) ^ rd());
  }

  engine::Engine& eng;
  const Tokenizer& tok;
  ServerOptions opt;
  std::string name;
  // Every model this server answers for: the base (`name`, first: requests
  // without "model" get it) and the variants added by add_variant().
  struct Served {
    std::string name;
    engine::Engine* eng;
  };
  std::vector<Served> served;
  std::string chat_template;
  int64_t created = 0;
  HttpServer http;
  std::atomic<bool> stop_requested{false};
  std::mutex rng_mu;
  std::mt19937_64 rng;

  uint64_t random_u64() {
    std::lock_guard<std::mutex> lk(rng_mu);
    return rng();
  }
  std::string new_id(const char* prefix) {
    char buf[40];
    snprintf(buf, sizeof buf, "%s%016llx", prefix, static_cast<unsigned long long>(random_u64()));
    return buf;
  }

  // Token text for JSON: the token's bytes, with an incomplete character
  // shown as U+FFFD (as vLLM's decoded_token).
  std::string token_text(int32_t id) const { return utf8_replace_invalid(tok.token_to_piece(id)); }

  // The model a request names (the base when it names none); 404 otherwise.
  const Served& pick(const CommonRequest& r) const {
    if (r.model.empty()) return served.front();
    std::string names;
    for (const Served& m : served) {
      if (m.name == r.model) return m;
      names += (names.empty() ? "`" : ", `") + m.name + "`";
    }
    throw ApiError(404,
                   "The model `" + r.model + "` does not exist (this server serves " + names + ").",
                   "model", "model_not_found");
  }

  // Completes the sampling parameters with the endpoint's defaults and
  // checks the prompt against the context window, as vLLM does.
  void fit_context(CommonRequest& r, size_t prompt_len, const char* what) const {
    const int ctx = eng.max_context();
    auto too_long = [&](const std::string& msg) {
      throw ApiError(400, msg, what, "context_length_exceeded");
    };
    if (prompt_len > size_t(ctx))
      too_long("This model's maximum context length is " + std::to_string(ctx) +
               " tokens. However, your " + what + " has " + std::to_string(prompt_len) +
               " tokens. Please reduce the length of the " + what + ".");
    if (!r.max_tokens_given && std::string(what) == "messages")
      r.sampling.max_tokens = ctx - int(prompt_len);
    if (prompt_len + size_t(r.sampling.max_tokens) > size_t(ctx) || r.sampling.max_tokens < 0 ||
        (r.sampling.max_tokens == 0 && std::string(what) == "messages"))
      too_long("This model's maximum context length is " + std::to_string(ctx) +
               " tokens. However, you requested " +
               std::to_string(prompt_len + size_t(r.sampling.max_tokens)) + " tokens (" +
               std::to_string(prompt_len) + " in the " + what + ", " +
               std::to_string(r.sampling.max_tokens) +
               " in the completion). Please reduce the length of the " + what + " or completion.");
  }

  void finish_sampling(CommonRequest& r, int logprobs_k, bool want_logprobs) {
    if (!r.seed_given) r.sampling.seed = random_u64();
    // The engine returns per-token log-probabilities when asked for at least
    // one alternative; logprobs=0 still needs the chosen token's value.
    r.sampling.logprobs = want_logprobs ? std::max(1, logprobs_k) : 0;
  }

  std::vector<int32_t> tokenize_prompt(const Prompt& p) const {
    if (p.is_tokens) {
      for (int32_t id : p.tokens)
        if (id >= eng.vocab_size() || !tok.is_valid_id(id))
          throw ApiError(400,
                         "'prompt' contains token id " + std::to_string(id) +
                             ", which is not in the vocabulary",
                         "prompt");
      return p.tokens;
    }
    std::vector<int32_t> ids;
    // Completions tokenize like HF add_special_tokens=True (BOS for Llama-3).
    if (tok.adds_bos() && tok.bos_id()) ids.push_back(*tok.bos_id());
    auto body = tok.encode(p.text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }

  // Adds one scored token to a legacy logprobs object: `lp` NaN and `top`
  // null for the first prompt token. The top dict holds the k best
  // alternatives plus the token itself, like vLLM's.
  void add_legacy(LegacyLogprobs& L, int32_t id, double lp, const std::vector<TopLogprob>* top,
                  int k) const {
    std::string text = token_text(id);
    L.tokens.push_back(text);
    L.token_logprobs.push_back(logprob_json(lp));
    if (top == nullptr) {
      L.top_logprobs.push_back(nullptr);
    } else {
      json d = json::object();
      for (size_t j = 0; j < top->size() && j < size_t(k); ++j)
        d[token_text((*top)[j].id)] = logprob_json((*top)[j].logprob);
      if (!d.contains(text)) d[text] = logprob_json(lp);
      L.top_logprobs.push_back(std::move(d));
    }
    L.text_offset.push_back(L.offset);
    L.offset += utf8_length(text);
  }

  void add_prompt_scores(LegacyLogprobs& L, const std::vector<int32_t>& ids,
                         const SequenceScores& sc, int k) const {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i == 0 || i >= sc.token_logprobs.size()) {
        add_legacy(L, ids[i], std::nan(""), nullptr, k);
      } else {
        static const std::vector<TopLogprob> kNone;
        const auto* top = i < sc.top_logprobs.size() ? &sc.top_logprobs[i] : &kNone;
        add_legacy(L, ids[i], sc.token_logprobs[i], top, k);
      }
    }
  }

  void add_generated(LegacyLogprobs& L, const GenerationResult& g, size_t from, size_t to,
                     int k) const {
    static const std::vector<TopLogprob> kNone;
    for (size_t j = from; j < to; ++j) {
      double lp = j < g.token_logprobs.size() ? g.token_logprobs[j] : std::nan("");
      add_legacy(L, g.tokens[j], lp, j < g.top_logprobs.size() ? &g.top_logprobs[j] : &kNone, k);
    }
  }

  json chat_logprob(const GenerationResult& g, size_t j, int k) const {
    std::string piece = tok.token_to_piece(g.tokens[j]);
    json top = json::array();
    if (j < g.top_logprobs.size()) {
      for (size_t a = 0; a < g.top_logprobs[j].size() && a < size_t(k); ++a) {
        const auto& t = g.top_logprobs[j][a];
        std::string p = tok.token_to_piece(t.id);
        top.push_back({{"token", utf8_replace_invalid(p)},
                       {"logprob", logprob_json(t.logprob)},
                       {"bytes", bytes_json(p)}});
      }
    }
    double lp = j < g.token_logprobs.size() ? g.token_logprobs[j] : std::nan("");
    return {{"token", utf8_replace_invalid(piece)},
            {"logprob", logprob_json(lp)},
            {"bytes", bytes_json(piece)},
            {"top_logprobs", top}};
  }

  static json usage_json(size_t prompt, size_t completion) {
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion}};
  }

  static json parse_body(const httplib::Request& req) {
    try {
      return json::parse(req.body);
    } catch (const json::parse_error& e) {
      throw ApiError(400, std::string("request body is not valid JSON: ") + e.what());
    }
  }

  void setup_routes();
  void handle_models(httplib::Response& res) const;
  void handle_completions(const httplib::Request& req, httplib::Response& res);
  void handle_chat(const httplib::Request& req, httplib::Response& res);
};

// ---------------------------------------------------------------------------
// Streaming: engine text callbacks append to per-choice buffers; the HTTP
// worker thread (inside httplib's chunked content provider) turns them into
// SSE events, holding back anything that could still become a stop string.

namespace {

struct StreamBuffers {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> text;  // per choice, everything the engine reported
};

// Engine text callback for streamed choice `i`: appends to its buffer and
// wakes the stream writer.
engine::TextCallback append_to(std::shared_ptr<StreamBuffers> buf, size_t i) {
  return [buf = std::move(buf), i](const std::string& d) {
    {
      std::lock_guard<std::mutex> lk(buf->mu);
      buf->text[i] += d;
    }
    buf->cv.notify_all();
  };
}

bool write_event(httplib::DataSink& sink, const std::string& payload) {
  std::string s = "data: " + payload + "\n\n";
  return sink.write(s.data(), s.size());
}

}  // namespace

struct StreamJob {
  Server::Impl* impl = nullptr;
  std::string model;  // the served name the request chose
  bool chat = false;
  std::string id;
  int64_t created = 0;
  std::vector<PromptWork> work;
  std::shared_ptr<StreamBuffers> buf;
  std::vector<std::string> stops;
  bool echo = false;
  bool want_logprobs = false;
  int k = 0;
  bool include_usage = false;
  int max_tokens = 0;
  size_t n_choices = 1;  // choices per prompt (work holds prompts x n_choices)

  json chunk(json choice) const {
    return {{"id", id},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({std::move(choice)})}};
  }
  json text_choice(size_t i, const std::string& text, json logprobs, json finish) const {
    if (chat) {
      json delta = json::object();
      if (!text.empty()) delta["content"] = text;
      return {{"index", i}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}};
    }
    return {{"index", i}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish}};
  }

  // Writes the whole stream; returns false when the client went away.
  bool run(httplib::DataSink& sink) {
    auto emit = [&](const json& c) { return write_event(sink, dump(chunk(c))); };
    size_t prompt_tokens = 0, completion_tokens = 0;
    try {
      for (size_t i = 0; i < work.size(); ++i) {
        if (i % n_choices == 0) prompt_tokens += work[i].ids.size();  // once per prompt
        if (chat) {
          json delta = {{"role", "assistant"}, {"content", ""}};
          if (!emit({{"index", i},
                     {"delta", delta},
                     {"logprobs", nullptr},
                     {"finish_reason", nullptr}}))
            return false;
        } else if (echo) {
          json lp = nullptr;
          if (work[i].score.valid()) {
            LegacyLogprobs L;
            impl->add_prompt_scores(L, work[i].ids, work[i].score.get(), k);
            offsets_[i] = L.offset;
            lp = L.to_json();
          }
          if (!emit(text_choice(i, work[i].echo_text, lp, nullptr))) return false;
        }
      }
      if (max_tokens == 0) {
        for (size_t i = 0; i < work.size(); ++i)
          if (!emit(text_choice(i, "", nullptr, "length"))) return false;
      } else if (want_logprobs) {
        if (!stream_with_logprobs(emit, completion_tokens)) return false;
      } else {
        if (!stream_text(emit, completion_tokens)) return false;
      }
    } catch (const std::exception& e) {
      write_event(sink, dump(error_body(e.what(), "server_error", "", "")));
      write_event(sink, "[DONE]");
      return true;
    }
    if (include_usage) {
      json u = chunk(nullptr);
      u["choices"] = json::array();
      u["usage"] = Server::Impl::usage_json(prompt_tokens, completion_tokens);
      if (!write_event(sink, dump(u))) return false;
    }
    return write_event(sink, "[DONE]");
  }

  template <class Emit>
  bool stream_text(Emit& emit, size_t& completion_tokens) {
    const size_t n = work.size();
    std::vector<size_t> sent(n, 0);
    std::vector<bool> done(n, false);
    std::vector<StopScanner> scan(n, StopScanner(stops));
    size_t remaining = n;
    std::unique_lock<std::mutex> lk(buf->mu);
    while (remaining > 0) {
      buf->cv.wait_for(lk, std::chrono::milliseconds(20));
      for (size_t i = 0; i < n; ++i) {
        if (done[i]) continue;
        if (work[i].gen.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
          size_t safe = scan[i].safe_prefix(buf->text[i]);
          if (safe > sent[i]) {
            std::string delta = buf->text[i].substr(sent[i], safe - sent[i]);
            sent[i] = safe;
            lk.unlock();
            bool ok = emit(text_choice(i, delta, nullptr, nullptr));
            lk.lock();
            if (!ok) return false;
          }
          continue;
        }
        lk.unlock();
        GenerationResult g = work[i].gen.get();
        completion_tokens += g.tokens.size();
        // The final text is authoritative (it is cut at a stop string); what
        // was sent is a prefix of it by construction.
        std::string tail = sent[i] < g.text.size() ? g.text.substr(sent[i]) : std::string();
        bool ok = (tail.empty() || emit(text_choice(i, tail, nullptr, nullptr))) &&
                  emit(text_choice(i, "", nullptr, g.finish_reason));
        lk.lock();
        if (!ok) return false;
        done[i] = true;
        --remaining;
      }
    }
    return true;
  }

  // With logprobs every chunk carries its tokens' values, which the engine
  // only reports at the end: wait for each result, then send it token by token.
  template <class Emit>
  bool stream_with_logprobs(Emit& emit, size_t& completion_tokens) {
    for (size_t i = 0; i < work.size(); ++i) {
      GenerationResult g = work[i].gen.get();
      completion_tokens += g.tokens.size();
      IncrementalDecoder dec(impl->tok);
      std::string running;
      size_t sent = 0;
      for (size_t j = 0; j < g.tokens.size(); ++j) {
        running += dec.push(g.tokens[j]);
        size_t upto = std::min(running.size(), g.text.size());
        if (j + 1 == g.tokens.size()) upto = g.text.size();
        std::string delta = upto > sent ? g.text.substr(sent, upto - sent) : std::string();
        sent = std::max(sent, upto);
        json lp;
        if (chat) {
          lp = {{"content", json::array({impl->chat_logprob(g, j, k)})}};
        } else {
          LegacyLogprobs L;
          L.offset = offsets_[i];
          impl->add_generated(L, g, j, j + 1, k);
          offsets_[i] = L.offset;
          lp = L.to_json();
        }
        if (!emit(text_choice(i, delta, lp, nullptr))) return false;
      }
      std::string tail = sent < g.text.size() ? g.text.substr(sent) : std::string();
      if (!tail.empty() && !emit(text_choice(i, tail, nullptr, nullptr))) return false;
      if (!emit(text_choice(i, "", nullptr, g.finish_reason))) return false;
    }
    return true;
  }

  std::vector<size_t> offsets_;  // per choice: text_offset of the next token
};

namespace {

// Answers with `job` as server-sent events, written as the engine produces them.
void send_stream(httplib::Response& res, std::shared_ptr<StreamJob> job) {
  job->offsets_.assign(job->work.size(), 0);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream",
                                   [job = std::move(job)](size_t, httplib::DataSink& sink) {
                                     bool ok = job->run(sink);
                                     if (ok) sink.done();
                                     return ok;
                                   });
}

}  // namespace

// ---------------------------------------------------------------------------

void Server::Impl::handle_models(httplib::Response& res) const {
  json data = json::array();
  for (const Served& s : served)
    data.push_back({{"id", s.name},
                    {"object", "model"},
                    {"created", created},
                    {"owned_by", "reasonvec"},
                    {"root", name},  // the base model every variant is made from
                    {"max_model_len", s.eng->max_context()}});
  send_json(res, 200, {{"object", "list"}, {"data", data}});
}

void Server::Impl::handle_completions(const httplib::Request& req, httplib::Response& res) {
  CompletionRequest r = parse_completion_request(parse_body(req));
  const Served& model = pick(r);
  engine::Engine& eng = *model.eng;
  const bool want_lp = r.logprobs.has_value();
  const int k = r.logprobs.value_or(0);
  finish_sampling(r, k, want_lp);

  // n choices per prompt: choice index p * n + j, sampled with seed + j.
  const size_t n_choices = size_t(r.n);
  std::vector<PromptWork> work(r.prompts.size() * n_choices);
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    PromptWork& w = work[p * n_choices];
    w.ids = tokenize_prompt(r.prompts[p]);
    fit_context(r, w.ids.size(), "prompt");
    if (r.echo) w.echo_text = r.prompts[p].is_tokens ? tok.decode(w.ids) : r.prompts[p].text;
    for (size_t j = 1; j < n_choices; ++j) {
      work[p * n_choices + j].ids = w.ids;
      work[p * n_choices + j].echo_text = w.echo_text;
    }
  }

  auto buf = std::make_shared<StreamBuffers>();
  buf->text.resize(work.size());
  // Submit everything before waiting on anything: the engine batches it.
  for (size_t i = 0; i < work.size(); ++i) {
    if (r.echo && want_lp) work[i].score = eng.submit_score(work[i].ids, k);
    if (r.sampling.max_tokens > 0) {
      engine::TextCallback cb;
      if (r.stream && !want_lp) cb = append_to(buf, i);
      engine::SamplingParams sp = r.sampling;
      sp.seed += uint64_t(i % n_choices);
      work[i].gen = eng.submit_generate(work[i].ids, std::move(sp), std::move(cb));
    }
  }

  const std::string id = new_id("cmpl-");
  const int64_t now = int64_t(std::time(nullptr));
  if (r.stream) {
    auto job = std::make_shared<StreamJob>();
    job->impl = this;
    job->model = model.name;
    job->id = id;
    job->created = now;
    job->work = std::move(work);
    job->n_choices = n_choices;
    job->buf = buf;
    job->stops = r.sampling.stop_strings;
    job->echo = r.echo;
    job->want_logprobs = want_lp;
    job->k = k;
    job->include_usage = r.include_usage;
    job->max_tokens = r.sampling.max_tokens;
    send_stream(res, std::move(job));
    return;
  }

  json choices = json::array();
  size_t prompt_tokens = 0, completion_tokens = 0;
  for (size_t i = 0; i < work.size(); ++i) {
    if (i % n_choices == 0) prompt_tokens += work[i].ids.size();  // once per prompt
    GenerationResult g;
    if (work[i].gen.valid()) {
      g = work[i].gen.get();
    } else {
      g.finish_reason = "length";
    }
    completion_tokens += g.tokens.size();
    json lp = nullptr;
    if (want_lp) {
      LegacyLogprobs L;
      if (r.echo) add_prompt_scores(L, work[i].ids, work[i].score.get(), k);
      add_generated(L, g, 0, g.tokens.size(), k);
      lp = L.to_json();
    }
    choices.push_back(
        {{"index", i},
         {"text", work[i].echo_text + g.text},
         {"logprobs", lp},
         {"finish_reason", g.finish_reason},
         {"completion_tokens", g.tokens.size()}});  // extension: docs/eval.md "Length report"
  }
  send_json(res, 200,
            {{"id", id},
             {"object", "text_completion"},
             {"created", now},
             {"model", model.name},
             {"choices", choices},
             {"usage", usage_json(prompt_tokens, completion_tokens)}});
}

void Server::Impl::handle_chat(const httplib::Request& req, httplib::Response& res) {
  ChatRequest r = parse_chat_request(parse_body(req));
  const Served& model = pick(r);
  engine::Engine& eng = *model.eng;
  if (chat_template.empty())
    throw ApiError(400, "this model has no chat template; use /v1/completions", "messages",
                   "no_chat_template");
  ChatTemplateInputs in;
  for (const auto& m : r.messages)
    in.messages.push_back({{"role", m.role}, {"content", m.content}});
  in.add_generation_prompt = r.add_generation_prompt;
  in.continue_final_message = r.continue_final_message;
  in.bos_token = tok.bos_token();
  in.eos_token = tok.eos_token();
  for (auto it = r.template_kwargs.begin(); it != r.template_kwargs.end(); ++it)
    in.extra[it.key()] = it.value();
  std::string text;
  try {
    text = render_chat_template(chat_template, in);
  } catch (const rv::Error& e) {
    throw ApiError(400, std::string("chat template: ") + e.what(), "messages");
  }
  finish_sampling(r, r.top_logprobs, r.logprobs);
  PromptWork w;
  w.ids = tok.encode(text);  // the template writes BOS itself when the model uses one
  if (w.ids.empty()) throw ApiError(400, "the rendered chat prompt is empty", "messages");
  fit_context(r, w.ids.size(), "messages");

  // n choices: choice j samples with seed + j.
  const size_t n_choices = size_t(r.n);
  auto buf = std::make_shared<StreamBuffers>();
  buf->text.resize(n_choices);
  std::vector<PromptWork> work(n_choices);
  for (size_t j = 0; j < n_choices; ++j) {
    work[j].ids = w.ids;
    engine::TextCallback cb;
    if (r.stream && !r.logprobs) cb = append_to(buf, j);
    engine::SamplingParams sp = r.sampling;
    sp.seed += uint64_t(j);
    work[j].gen = eng.submit_generate(work[j].ids, std::move(sp), std::move(cb));
  }

  const std::string id = new_id("chatcmpl-");
  const int64_t now = int64_t(std::time(nullptr));
  if (r.stream) {
    auto job = std::make_shared<StreamJob>();
    job->impl = this;
    job->model = model.name;
    job->chat = true;
    job->id = id;
    job->created = now;
    job->work = std::move(work);
    job->n_choices = n_choices;
    job->buf = buf;
    job->stops = r.sampling.stop_strings;
    job->want_logprobs = r.logprobs;
    job->k = r.top_logprobs;
    job->include_usage = r.include_usage;
    job->max_tokens = r.sampling.max_tokens;
    send_stream(res, std::move(job));
    return;
  }

  json choices = json::array();
  size_t completion_tokens = 0;
  for (size_t c = 0; c < n_choices; ++c) {
    GenerationResult g = work[c].gen.get();
    completion_tokens += g.tokens.size();
    json lp = nullptr;
    if (r.logprobs) {
      json content = json::array();
      for (size_t j = 0; j < g.tokens.size(); ++j)
        content.push_back(chat_logprob(g, j, r.top_logprobs));
      lp = {{"content", content}};
    }
    choices.push_back(
        {{"index", c},
         {"message", {{"role", "assistant"}, {"content", g.text}}},
         {"logprobs", lp},
         {"finish_reason", g.finish_reason},
         {"completion_tokens", g.tokens.size()}});  // extension: docs/eval.md "Length report"
  }
  send_json(res, 200,
            {{"id", id},
             {"object", "chat.completion"},
             {"created", now},
             {"model", model.name},
             {"choices", choices},
             {"usage", usage_json(w.ids.size(), completion_tokens)}});
}

void Server::Impl::setup_routes() {
  auto guarded = [this](void (Impl::*fn)(const httplib::Request&, httplib::Response&)) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*fn)(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_json(res, 500, error_body(e.what(), "server_error", "", ""));
      }
    };
  };
  auto wrong_method = [](const char* allowed) {
    return [allowed](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allowed);
      send_error(res, ApiError(405,
                               "Method " + req.method + " is not allowed on " + req.path +
                                   " (use " + allowed + ")",
                               "", "method_not_allowed"));
    };
  };

  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{}", "application/json");
  });
  http.Get("/v1/models",
           [this](const httplib::Request&, httplib::Response& res) { handle_models(res); });
  http.Post("/v1/models", wrong_method("GET"));
  http.Post("/v1/completions", guarded(&Impl::handle_completions));
  http.Get("/v1/completions", wrong_method("POST"));
  http.Post("/v1/chat/completions", guarded(&Impl::handle_chat));
  http.Get("/v1/chat/completions", wrong_method("POST"));

  // Handler threads serve one request at a time: the start time of the
  // current one can live in a thread_local until the logger runs.
  static thread_local std::chrono::steady_clock::time_point request_start;
  if (opt.log_requests)
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                            request_start)
                      .count();
      fprintf(stderr, "reasonvec serve: %s %s %d %.1f ms\n", req.method.c_str(), req.path.c_str(),
              res.status, ms);
    });
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = std::chrono::steady_clock::now();
    if (opt.api_key.empty() || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string want = "Bearer " + opt.api_key;
    const std::string got = req.get_header_value("Authorization");
    // Constant-time comparison: do not leak the key's prefix through timing.
    unsigned diff = got.size() != want.size();
    for (size_t i = 0; i < want.size(); ++i)
      diff |= unsigned(i < got.size() ? got[i] : 0) ^ unsigned(want[i]);
    if (diff == 0) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401,
                             got.empty() ? "Missing API key: send 'Authorization: Bearer <key>'."
                                         : "Incorrect API key provided.",
                             "", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib produces itself (unknown route, body too large, bad
  // request line) get an OpenAI error object too; ours already have a body.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string msg, code;
        if (res.status == 404) {
          msg = "Unknown route: " + req.method + " " + req.path;
          code = "not_found";
        } else if (res.status == 413) {
          msg = "Request body too large (limit " + std::to_string(opt.max_body_bytes) + " bytes)";
          code = "request_too_large";
        } else {
          msg = "HTTP error " + std::to_string(res.status);
        }
        send_json(res, res.status, error_body(msg, "invalid_request_error", "", code));
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string msg = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          msg = e.what();
        } catch (...) {
        }
        send_json(res, 500, error_body(msg, "server_error", "", ""));
      });
}

// ---------------------------------------------------------------------------

Server::Server(engine::Engine& engine, ServerOptions opt)
    : impl_(std::make_unique<Impl>(engine, std::move(opt))) {
  Impl& I = *impl_;
  const int threads = std::max(2, I.opt.http_threads);
  I.http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  I.http.set_payload_max_length(I.opt.max_body_bytes);
  // Generations can take long; a slow reader of a stream should not be cut
  // off after httplib's default 5 s write timeout.
  I.http.set_write_timeout(300, 0);
  I.http.set_keep_alive_timeout(2);
  I.setup_routes();
}

Server::~Server() = default;

void Server::add_variant(std::string name, engine::Engine& engine) {
  Impl& I = *impl_;
  for (const auto& m : I.served)
    if (m.name == name) throw Error("serve: model name '" + name + "' is used twice");
  I.served.push_back({std::move(name), &engine});
}

const std::string& Server::served_model_name() const {
  return impl_->name;
}

int Server::bind() {
  Impl& I = *impl_;
  int port = I.opt.port;
  if (port == 0) {
    port = I.http.bind_to_any_port(I.opt.host);
    if (port < 0) throw Error(I.opt.host + ":0", "cannot bind a listening socket");
  } else if (!I.http.bind_to_port(I.opt.host, port)) {
    throw Error(I.opt.host + ":" + std::to_string(port),
                "cannot listen (address in use, or not a local address?)");
  }
  I.http.widen_backlog();
  return port;
}

void Server::run() {
  Impl& I = *impl_;
  // A client that disconnects mid-response must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::atomic<bool> finished{false};
  // httplib's stop() only works once listening has started; watch the flag.
  std::thread watcher([&] {
    while (!finished.load()) {
      if (I.stop_requested.load() && I.http.is_running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (finished.load()) return;
    I.http.stop();
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(int64_t(I.opt.shutdown_grace_s * 1000));
    while (!finished.load()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        for (const auto& m : I.served)
          m.eng->cancel_all();  // in-flight handlers now get errors and return
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  if (!I.stop_requested.load()) I.http.listen_after_bind();
  finished.store(true);
  watcher.join();
}

void Server::stop() {
  impl_->stop_requested.store(true);
}

}  // namespace rv::server
