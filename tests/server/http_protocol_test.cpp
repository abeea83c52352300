// The HTTP layer in-process over real loopback sockets, with a small
// deterministic stand-in engine so that framing, errors, authentication,
// limits and concurrency can be checked exactly. (The end-to-end tests in
// serve_e2e_test.cpp run the real engine behind the real CLI.)
//
// The stand-in "copies" its prompt: generated token j is prompt[j % P]; the
// text is the decoded tokens cut at the first stop string. It reports text
// to streaming callbacks token by token *including* any stop string, so the
// server's hold-back logic is what keeps stop strings out of the stream.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <thread>

#include "server/protocol.h"
#include "server/server.h"
#include "server/server_test_util.h"
#include "support/llamacpp_oracle.h"
#include "tokenizer/tokenizer.h"

namespace rv::server {
namespace {

using namespace rv::server::test;

const std::filesystem::path kTokDir = rv_test::oracle_tokenizer_dir("qwen2_5");

class CopyEngine : public engine::Engine {
 public:
  explicit CopyEngine(int max_ctx) : tok_(Tokenizer::load(kTokDir)), max_ctx_(max_ctx) {
    worker_ = std::thread([this] { loop(); });
  }
  ~CopyEngine() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  const Tokenizer& tokenizer() const override { return tok_; }
  std::string model_name() const override { return "copy-model"; }
  int vocab_size() const override { return tok_.vocab_size(); }
  int max_context() const override { return max_ctx_; }

  std::future<engine::GenerationResult> submit_generate(std::vector<int32_t> prompt,
                                                        engine::SamplingParams p,
                                                        engine::TextCallback cb) override {
    auto job = std::make_shared<Job>();
    job->prompt = std::move(prompt);
    job->params = std::move(p);
    job->cb = std::move(cb);
    auto f = job->done.get_future();
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(job);
    }
    submitted_.fetch_add(1);
    cv_.notify_all();
    return f;
  }
  std::future<engine::LoglikelihoodResult> submit_loglikelihood(std::vector<int32_t>,
                                                                std::vector<int32_t>) override {
    std::promise<engine::LoglikelihoodResult> p;
    p.set_value({});
    return p.get_future();
  }
  std::future<engine::SequenceScores> submit_score(std::vector<int32_t> tokens, int k) override {
    engine::SequenceScores s;
    for (size_t i = 0; i < tokens.size(); ++i) {
      s.token_logprobs.push_back(i == 0 ? std::nan("") : score_lp(i));
      std::vector<engine::TopLogprob> top;
      if (i > 0)
        for (int a = 0; a < k; ++a)
          top.push_back({(tokens[i] + a) % tok_.vocab_size(), score_lp(i) - a});
      s.top_logprobs.push_back(top);
    }
    std::promise<engine::SequenceScores> p;
    p.set_value(std::move(s));
    return p.get_future();
  }

  static double score_lp(size_t i) { return -0.25 * double(i); }
  static double gen_lp(size_t j) { return -0.5 * double(j + 1); }
  int max_batch_seen() const { return max_batch_.load(); }
  int submitted() const { return submitted_.load(); }

  // What the stand-in generates, computed without the server.
  std::string expected_text(const std::vector<int32_t>& prompt, int max_tokens,
                            const std::vector<std::string>& stops, std::string* finish) const {
    std::vector<int32_t> gen;
    for (int j = 0; j < max_tokens; ++j) gen.push_back(prompt[size_t(j) % prompt.size()]);
    std::string text = tok_.decode(gen);
    *finish = "length";
    size_t cut = std::string::npos;
    for (const auto& s : stops) cut = std::min(cut, text.find(s));
    if (cut != std::string::npos) {
      text.resize(cut);
      *finish = "stop";
    }
    return text;
  }

 private:
  struct Job {
    std::vector<int32_t> prompt;
    engine::SamplingParams params;
    engine::TextCallback cb;
    std::promise<engine::GenerationResult> done;
  };

  void loop() {
    for (;;) {
      std::vector<std::shared_ptr<Job>> batch;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return quit_ || !queue_.empty(); });
        if (quit_ && queue_.empty()) return;
        // Let a burst of submissions gather, like a scheduler step would.
        lk.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        lk.lock();
        batch.assign(queue_.begin(), queue_.end());
        queue_.clear();
      }
      max_batch_.store(std::max(max_batch_.load(), int(batch.size())));
      for (auto& j : batch) run(*j);
    }
  }

  void run(Job& j) {
    engine::GenerationResult r;
    r.prompt_tokens = int(j.prompt.size());
    std::string finish;
    r.text = expected_text(j.prompt, j.params.max_tokens, j.params.stop_strings, &finish);
    r.finish_reason = finish;
    IncrementalDecoder dec(tok_, false);
    std::string so_far;
    for (int t = 0; t < j.params.max_tokens; ++t) {
      int32_t id = j.prompt[size_t(t) % j.prompt.size()];
      std::string piece = dec.push(id);
      so_far += piece;
      if (j.cb && !piece.empty()) j.cb(piece);
      if (finish == "stop" && so_far.size() >= r.text.size() && so_far.find(r.text) == 0 &&
          so_far.size() > r.text.size())
        break;  // the stop string has been produced
      r.tokens.push_back(id);
      r.token_logprobs.push_back(gen_lp(size_t(t)));
      std::vector<engine::TopLogprob> top;
      for (int a = 0; a < j.params.logprobs; ++a)
        top.push_back({(id + a) % tok_.vocab_size(), gen_lp(size_t(t)) - a});
      r.top_logprobs.push_back(top);
    }
    j.done.set_value(std::move(r));
  }

  Tokenizer tok_;
  int max_ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool quit_ = false;
  std::atomic<int> max_batch_{0};
  std::atomic<int> submitted_{0};
  std::thread worker_;
};

// An in-process server on a free port, stopped and joined on destruction.
struct LiveServer {
  explicit LiveServer(engine::Engine& e, ServerOptions opt = {}) {
    opt.port = 0;
    srv = std::make_unique<Server>(e, opt);
    port = srv->bind();
    th = std::thread([this] { srv->run(); });
  }
  ~LiveServer() {
    srv->stop();
    th.join();
  }
  std::unique_ptr<Server> srv;
  int port = 0;
  std::thread th;
};

class HttpProtocol : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    eng_ = new CopyEngine(64);
    live_ = new LiveServer(*eng_);
  }
  static void TearDownTestSuite() {
    delete live_;
    delete eng_;
  }
  static httplib::Result post(const std::string& path, const std::string& body) {
    auto c = make_client(live_->port);
    return c.Post(path.c_str(), body, "application/json");
  }
  static json post_ok(const std::string& path, const json& body) {
    auto r = post(path, body.dump());
    if (!r) throw std::runtime_error("no response");
    if (r->status != 200)
      throw std::runtime_error("status " + std::to_string(r->status) + ": " + r->body);
    return json::parse(r->body);
  }
  static CopyEngine* eng_;
  static LiveServer* live_;
};
CopyEngine* HttpProtocol::eng_ = nullptr;
LiveServer* HttpProtocol::live_ = nullptr;

TEST_F(HttpProtocol, ModelsAndHealth) {
  auto c = make_client(live_->port);
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "copy-model");
  EXPECT_EQ(j["data"][0]["object"], "model");
  r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpProtocol, CompletionText) {
  const std::string prompt = "The quick brown fox jumps over";
  json j =
      post_ok("/v1/completions", {{"prompt", prompt}, {"max_tokens", 4}, {"model", "copy-model"}});
  std::string finish;
  auto ids = eng_->tokenizer().encode(prompt);
  EXPECT_EQ(j["choices"][0]["text"], eng_->expected_text(ids, 4, {}, &finish));
  EXPECT_EQ(j["choices"][0]["finish_reason"], finish);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "copy-model");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  EXPECT_EQ(j["usage"]["total_tokens"], ids.size() + 4);
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);

  // Several prompts, as strings and as token arrays: one choice each, in order.
  json many =
      post_ok("/v1/completions", {{"prompt", {"one two three", "four five"}}, {"max_tokens", 3}});
  ASSERT_EQ(many["choices"].size(), 2u);
  auto ids2 = eng_->tokenizer().encode("four five");
  EXPECT_EQ(many["choices"][1]["index"], 1);
  EXPECT_EQ(many["choices"][1]["text"], eng_->expected_text(ids2, 3, {}, &finish));
  json tok = post_ok("/v1/completions", {{"prompt", json(ids2)}, {"max_tokens", 3}});
  EXPECT_EQ(tok["choices"][0]["text"], many["choices"][1]["text"]);
}

TEST_F(HttpProtocol, EchoLogprobsShape) {
  const std::string prompt = "Hello there general";
  auto ids = eng_->tokenizer().encode(prompt);
  ASSERT_GE(ids.size(), 3u);
  json j = post_ok("/v1/completions",
                   {{"prompt", prompt}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 2}});
  const json& c = j["choices"][0];
  EXPECT_EQ(c["text"], prompt);
  EXPECT_EQ(c["finish_reason"], "length");
  const json& lp = c["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  ASSERT_EQ(lp["token_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["top_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["text_offset"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(lp["text_offset"][i], joined.size());  // ASCII prompt: characters == bytes
    joined += lp["tokens"][i].get<std::string>();
    if (i == 0) continue;
    EXPECT_DOUBLE_EQ(lp["token_logprobs"][i].get<double>(), CopyEngine::score_lp(i));
    // The stand-in's top list starts with the token itself: 2 entries.
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
    EXPECT_DOUBLE_EQ(lp["top_logprobs"][i][lp["tokens"][i].get<std::string>()].get<double>(),
                     CopyEngine::score_lp(i));
  }
  EXPECT_EQ(joined, prompt);
  EXPECT_EQ(j["usage"]["completion_tokens"], 0);

  // Echo followed by generated tokens: prompt entries then generated ones.
  j = post_ok("/v1/completions",
              {{"prompt", prompt}, {"max_tokens", 2}, {"echo", true}, {"logprobs", 0}});
  const json& lp2 = j["choices"][0]["logprobs"];
  ASSERT_EQ(lp2["tokens"].size(), ids.size() + 2);
  EXPECT_DOUBLE_EQ(lp2["token_logprobs"][ids.size()].get<double>(), CopyEngine::gen_lp(0));
  EXPECT_DOUBLE_EQ(lp2["token_logprobs"][ids.size() + 1].get<double>(), CopyEngine::gen_lp(1));
  EXPECT_EQ(lp2["top_logprobs"][ids.size()].size(), 1u);  // logprobs=0: the token only
  std::string finish;
  EXPECT_EQ(j["choices"][0]["text"], prompt + eng_->expected_text(ids, 2, {}, &finish));
}

TEST_F(HttpProtocol, ChatLogprobsShape) {
  json body = {{"messages", {{{"role", "user"}, {"content", "Say something"}}}},
               {"max_tokens", 3},
               {"logprobs", true},
               {"top_logprobs", 2}};
  json j = post_ok("/v1/chat/completions", body);
  EXPECT_EQ(j["object"], "chat.completion");
  const json& c = j["choices"][0];
  EXPECT_EQ(c["message"]["role"], "assistant");
  const json& content = c["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u);
  for (size_t t = 0; t < 3; ++t) {
    EXPECT_DOUBLE_EQ(content[t]["logprob"].get<double>(), CopyEngine::gen_lp(t));
    ASSERT_EQ(content[t]["top_logprobs"].size(), 2u);
    // bytes are the token's bytes; for ASCII tokens they spell the token.
    std::string from_bytes;
    for (const auto& b : content[t]["bytes"]) from_bytes += char(b.get<int>());
    EXPECT_EQ(from_bytes, content[t]["token"].get<std::string>());
    EXPECT_EQ(content[t]["top_logprobs"][0]["token"], content[t]["token"]);
  }
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
}

TEST_F(HttpProtocol, StreamingMatchesNonStreaming) {
  const std::string prompt = "alpha beta gamma delta epsilon zeta";
  const std::pair<json, const char*> cases[] = {
      {json(nullptr), nullptr}, {json("gamma"), "gamma"}, {json({"zzz", " delta"}), "delta"}};
  for (const auto& [stop, hidden] : cases) {
    json body = {{"prompt", prompt}, {"max_tokens", 12}, {"stop", stop}};
    json plain = post_ok("/v1/completions", body);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    auto r = post("/v1/completions", body.dump());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    std::string finish;
    json usage;
    std::string text = concat_stream(r->body, false, &finish, &usage);
    EXPECT_EQ(text, plain["choices"][0]["text"]) << stop;
    EXPECT_EQ(finish, plain["choices"][0]["finish_reason"]);
    EXPECT_EQ(usage, plain["usage"]);
    if (hidden) {
      EXPECT_EQ(finish, "stop");
      // The stop string never reaches the client, not even in pieces.
      EXPECT_EQ(r->body.find(hidden), std::string::npos) << r->body;
    }
  }
  // Chat: the first chunk announces the role; deltas add up to the message.
  json body = {{"messages", {{{"role", "user"}, {"content", "Hi there"}}}}, {"max_tokens", 6}};
  json plain = post_ok("/v1/chat/completions", body);
  body["stream"] = true;
  auto r = post("/v1/chat/completions", body.dump());
  ASSERT_TRUE(r);
  auto events = sse_events(r->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
  std::string finish;
  EXPECT_EQ(concat_stream(r->body, true, &finish), plain["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, plain["choices"][0]["finish_reason"]);
  // Streaming with logprobs: every generated token arrives with its value.
  body["logprobs"] = true;
  r = post("/v1/chat/completions", body.dump());
  ASSERT_TRUE(r);
  size_t n_lp = 0;
  for (const auto& ev : sse_events(r->body)) {
    if (ev == "[DONE]") continue;
    json e = json::parse(ev);
    const json& lp = e["choices"][0]["logprobs"];
    if (!lp.is_null()) n_lp += lp["content"].size();
  }
  EXPECT_EQ(n_lp, 6u);
  EXPECT_EQ(concat_stream(r->body, true, &finish), plain["choices"][0]["message"]["content"]);
}

// Stop strings that begin in one token and end in a later one, over a long
// stream (the server scans each wake-up's new text incrementally): the
// streamed text, finish reason and usage equal the non-streamed answer's, for
// each choice of an n > 1 request too.
TEST_F(HttpProtocol, StreamedStopsAcrossTokenBoundariesEqualNonStreamed) {
  const std::string prompt = "alpha beta gamma delta epsilon zeta eta theta";
  const Tokenizer tok = Tokenizer::load(kTokDir);
  const auto ids = tok.encode(prompt);
  ASSERT_GE(ids.size(), 4u);
  // A stop made of the end of token 1, all of token 2 and the start of token 3.
  std::string t1 = tok.decode({ids[1]}), t2 = tok.decode({ids[2]}), t3 = tok.decode({ids[3]});
  ASSERT_GE(t1.size(), 2u);
  ASSERT_GE(t3.size(), 2u);
  const std::string spanning = t1.substr(t1.size() - 1) + t2 + t3.substr(0, 2);
  const std::string two = t1.substr(t1.size() - 2) + t2.substr(0, 1);  // ends inside token 2
  const json cases[] = {json(spanning), json({"never-there", two}),
                        json({"zzzz-not-generated", "qqq"})};
  for (const json& stop : cases) {
    for (int n : {1, 3}) {
      json body = {{"prompt", prompt}, {"max_tokens", 40}, {"stop", stop}, {"n", n}};
      json plain = post_ok("/v1/completions", body);
      body["stream"] = true;
      body["stream_options"] = {{"include_usage", true}};
      auto r = post("/v1/completions", body.dump());
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      std::vector<std::string> text(static_cast<size_t>(n));
      std::vector<std::string> finish(static_cast<size_t>(n));
      json usage;
      for (const auto& ev : sse_events(r->body)) {
        if (ev == "[DONE]") continue;
        json e = json::parse(ev);
        if (e.contains("usage") && !e["usage"].is_null()) usage = e["usage"];
        for (const auto& c : e["choices"]) {
          size_t i = c["index"].get<size_t>();
          ASSERT_LT(i, size_t(n));
          text[i] += c["text"].get<std::string>();
          if (!c["finish_reason"].is_null()) finish[i] = c["finish_reason"].get<std::string>();
        }
      }
      ASSERT_EQ(plain["choices"].size(), size_t(n));
      for (size_t i = 0; i < size_t(n); ++i) {
        EXPECT_EQ(text[i], plain["choices"][i]["text"]) << stop << " n=" << n;
        EXPECT_EQ(finish[i], plain["choices"][i]["finish_reason"]) << stop;
      }
      EXPECT_EQ(usage, plain["usage"]);
      if (stop.is_string()) {
        EXPECT_EQ(plain["choices"][0]["finish_reason"], "stop");
        EXPECT_EQ(r->body.find(stop.get<std::string>()), std::string::npos);
      }
    }
  }
}

TEST_F(HttpProtocol, MalformedRequestsAnd400) {
  struct Case {
    const char* path;
    const char* body;
    int status;
    const char* param;  // nullptr: param must be null
  };
  const Case cases[] = {
      {"/v1/completions", "{not json", 400, nullptr},
      {"/v1/completions", "", 400, nullptr},
      {"/v1/completions", R"({"prompt": "x", "n": 0})", 400, "n"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": -5})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": "5"})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": 42})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": [999999999]})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": "x", "model": "other"})", 404, "model"},
      {"/v1/chat/completions", R"({"messages": {}})", 400, "messages"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "n": 999})", 400,
       "n"},
  };
  for (const auto& c : cases) {
    auto r = post(c.path, c.body);
    ASSERT_TRUE(r) << c.body;
    EXPECT_EQ(r->status, c.status) << c.body << " -> " << r->body;
    json e = error_of(r->body);
    EXPECT_EQ(e["type"], "invalid_request_error") << r->body;
    if (c.param) {
      EXPECT_EQ(e["param"], c.param) << r->body;
    } else {
      EXPECT_TRUE(e["param"].is_null()) << r->body;
    }
  }
  // Prompt + max_tokens over the 64-token context.
  std::string long_prompt;
  for (int i = 0; i < 80; ++i) long_prompt += " word";
  auto r = post("/v1/completions", json{{"prompt", long_prompt}, {"max_tokens", 1}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_of(r->body)["code"], "context_length_exceeded");
  r = post("/v1/completions", json{{"prompt", "short"}, {"max_tokens", 64}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  // Unknown fields are ignored, and the server still answers normally.
  json ok = post_ok("/v1/completions",
                    {{"prompt", "still alive"}, {"max_tokens", 2}, {"frobnicate", {1, 2}}});
  EXPECT_EQ(ok["choices"].size(), 1u);
}

TEST_F(HttpProtocol, RoutesMethodsAndBodyLimit) {
  auto c = make_client(live_->port);
  auto r = c.Get("/v1/nothing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(error_of(r->body)["code"], "not_found");
  r = c.Get("/v1/completions");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  error_of(r->body);
  // A declared body over the limit is refused from its headers alone.
  std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 20000000\r\n\r\n{\"prompt\": \"";
  std::string resp = raw_http(live_->port, req);
  ASSERT_EQ(resp.rfind("HTTP/1.1 413", 0), 0u) << resp;
  EXPECT_EQ(error_of(resp.substr(resp.find("\r\n\r\n") + 4))["code"], "request_too_large");
}

TEST_F(HttpProtocol, ConcurrentClientsAreBatched) {
  const int n = sanitizer_run() ? 16 : 48;
  std::vector<std::string> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
  std::vector<std::thread> th;
  for (int i = 0; i < n; ++i) {
    std::string prompt = "request number " + std::to_string(i) + " says hello";
    std::string finish;
    want[size_t(i)] = eng_->expected_text(eng_->tokenizer().encode(prompt), 5, {}, &finish);
    th.emplace_back([&, i, prompt] {
      try {
        json j = post_ok("/v1/completions", {{"prompt", prompt}, {"max_tokens", 5}});
        got[size_t(i)] = j["choices"][0]["text"];
      } catch (const std::exception& e) {
        got[size_t(i)] = std::string("ERROR ") + e.what();
      }
    });
  }
  for (auto& t : th) t.join();
  for (int i = 0; i < n; ++i) EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << i;
  // All requests were in the engine's queue together, not one at a time.
  EXPECT_GE(eng_->max_batch_seen(), n / 2);
}

TEST(HttpAuth, BearerKeyRequired) {
  CopyEngine eng(64);
  ServerOptions opt;
  opt.api_key = "sekrit";
  LiveServer live(eng, opt);
  auto c = make_client(live.port);
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(error_of(r->body)["code"], "invalid_api_key");
  r = c.Get("/v1/models", {{"Authorization", "Bearer wrong"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = c.Post("/v1/completions", {{"Authorization", "Bearer sekrit"}},
             R"({"prompt": "a b", "max_tokens": 1})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  c.set_bearer_token_auth("sekrit");
  r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpShutdown, StopFinishesInFlightRequest) {
  CopyEngine eng(64);
  auto live = std::make_unique<LiveServer>(eng);
  const int port = live->port;
  std::string body;
  std::thread client([&] {
    auto c = make_client(port);
    auto r = c.Post("/v1/completions", R"({"prompt": "one two three", "max_tokens": 4})",
                    "application/json");
    body = r ? r->body : "NO RESPONSE";
  });
  // Wait until the request is inside the engine (which holds it ~30 ms).
  while (eng.submitted() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  live.reset();  // stop() + join while the request may still be in the engine
  client.join();
  EXPECT_NE(body.find("\"choices\""), std::string::npos) << body;
  // Nothing listens any more.
  auto c = make_client(port);
  c.set_connection_timeout(1, 0);
  EXPECT_FALSE(c.Get("/v1/models"));
}

}  // namespace
}  // namespace rv::server
