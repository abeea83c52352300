// HttpBackend against a small OpenAI-style server on loopback that we
// control: retries on 429/5xx, errors on 4xx, concurrency, echo/logprobs
// parsing (token strings and text_offset forms), refusal of echo.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "eval/backend/http.h"

using json = nlohmann::json;
using namespace rv::eval;

namespace {

// Toy "model": tokens are maximal runs of non-space characters with their
// leading spaces; log p(token) = -0.25 * (1 + bytes % 7); the token is the
// argmax iff its byte length is even (otherwise "<alt>" is 0.5 nats better).
std::vector<std::string> toy_tokens(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && s[j] == ' ') ++j;
    while (j < s.size() && s[j] != ' ') ++j;
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}
double toy_lp(const std::string& t) {
  return -0.25 * (1 + t.size() % 7);
}
bool toy_greedy(const std::string& t) {
  return t.size() % 2 == 0;
}
size_t chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

struct MockServer {
  httplib::Server srv;
  std::thread th;
  int port = 0;
  std::atomic<int> fail_next{0};      // answer this many requests with 503
  std::atomic<int> throttle_next{0};  // ... then this many with 429
  std::atomic<bool> refuse_max0{false};
  std::atomic<bool> refuse_echo{false};
  std::atomic<bool> ignore_echo{false};
  std::atomic<bool> offsets_only{false};  // vLLM-like: token strings not usable, char text_offset
  std::atomic<int> delay_ms{0};
  std::atomic<int> in_flight{0}, max_in_flight{0}, requests{0};
  std::string last_auth;
  std::mutex mu;

  MockServer() {
    auto handler = [this](const httplib::Request& req, httplib::Response& res, bool chat) {
      ++requests;
      int now = ++in_flight;
      int prev = max_in_flight.load();
      while (now > prev && !max_in_flight.compare_exchange_weak(prev, now)) {
      }
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
      {
        std::lock_guard<std::mutex> l(mu);
        last_auth = req.get_header_value("Authorization");
      }
      respond(req, res, chat);
      --in_flight;
    };
    srv.Post("/v1/completions", [=](const auto& q, auto& r) { handler(q, r, false); });
    srv.Post("/v1/chat/completions", [=](const auto& q, auto& r) { handler(q, r, true); });
    port = srv.bind_to_any_port("127.0.0.1");
    th = std::thread([this] { srv.listen_after_bind(); });
    while (!srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~MockServer() {
    srv.stop();
    th.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  void respond(const httplib::Request& req, httplib::Response& res, bool chat) {
    if (fail_next.fetch_sub(1) > 0) {
      res.status = 503;
      res.set_content(R"({"error":{"message":"overloaded"}})", "application/json");
      return;
    }
    if (throttle_next.fetch_sub(1) > 0) {
      res.status = 429;
      res.set_header("Retry-After", "0");
      res.set_content(R"({"error":{"message":"slow down"}})", "application/json");
      return;
    }
    json q = json::parse(req.body);
    if (q.value("model", "") != "toy") {
      res.status = 404;
      res.set_content(R"({"error":{"message":"model 'x' does not exist"}})", "application/json");
      return;
    }
    json choice;
    if (chat) {
      std::string text = "chat:";
      for (auto& m : q["messages"])
        text += m["role"].get<std::string>() + "=" + m["content"].get<std::string>() + ";";
      if (q.value("continue_final_message", false) && !q.value("add_generation_prompt", true))
        text += "(continued)";
      choice = {{"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}};
    } else if (q.value("echo", false)) {
      if (refuse_echo) {
        res.status = 400;
        res.set_content(R"({"error":{"message":"echo is not supported"}})", "application/json");
        return;
      }
      int mt = q.value("max_tokens", 16);
      if (mt == 0 && refuse_max0) {
        res.status = 400;
        res.set_content(R"({"error":{"message":"max_tokens must be at least 1"}})",
                        "application/json");
        return;
      }
      std::string prompt = q["prompt"];
      auto toks = toy_tokens(prompt);
      if (mt > 0) toks.push_back(" gen");
      json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
      size_t off = 0;
      for (size_t i = 0; i < toks.size(); ++i) {
        if (ignore_echo && i + 1 < toks.size()) {
          off += toks[i].size();
          continue;
        }
        tokens.push_back(offsets_only ? "tok" + std::to_string(i) : toks[i]);
        offs.push_back(ignore_echo ? 0 : (offsets_only ? chars(prompt.substr(0, off)) : off));
        if (i == 0 && !ignore_echo) {
          lps.push_back(nullptr);
          tops.push_back(nullptr);
        } else {
          double lp = toy_lp(toks[i]);
          lps.push_back(lp);
          json top = json::object();
          top[tokens.back().get<std::string>()] = lp;
          if (!toy_greedy(toks[i])) top["<alt>"] = lp + 0.5;
          tops.push_back(top);
        }
        off += toks[i].size();
      }
      std::string text = ignore_echo ? " gen" : prompt + (mt > 0 ? " gen" : "");
      choice = {{"text", text},
                {"finish_reason", "length"},
                {"logprobs",
                 {{"tokens", tokens},
                  {"token_logprobs", lps},
                  {"top_logprobs", tops},
                  {"text_offset", offs}}}};
    } else {
      // Generation: echo the prompt back with a stop marker in the middle,
      // pretending the server ignored the stop strings.
      std::string text = "[" + q["prompt"].get<std::string>() + "] STOPHERE tail";
      choice = {{"text", text}, {"finish_reason", "length"}};
    }
    res.set_content(json{{"choices", json::array({choice})}}.dump(), "application/json");
  }
};

HttpOptions opts(const MockServer& m, int conc = 4) {
  HttpOptions o;
  o.base_url = m.url();
  o.model = "toy";
  o.concurrency = conc;
  o.backoff_initial_s = 0.001;
  o.backoff_max_s = 0.01;
  o.max_retries = 4;
  o.timeout_s = 10;
  return o;
}

double expected_lp(const std::string& ctx, const std::string& cont, bool* greedy) {
  // Independent: tokens of the whole prompt whose end lies past the context.
  auto toks = toy_tokens(ctx + cont);
  size_t off = 0;
  double sum = 0;
  *greedy = true;
  for (auto& t : toks) {
    size_t end = off + t.size();
    if (end > ctx.size()) {
      sum += toy_lp(t);
      *greedy = *greedy && toy_greedy(t);
    }
    off = end;
  }
  return sum;
}

std::vector<LoglikRequest> sample_lls() {
  return {{"Question: what is two plus two?\nAnswer:", " four"},
          {"The sky is", " blue today"},
          {"Solve it", " 1234"},
          {"Quelle température fait-il à Zürich?", " Très froid"},
          {"a b c d e f g", " h"}};
}

}  // namespace

TEST(HttpBackend, ParsesBaseUrls) {
  auto u = HttpBackend::parse_base_url("http://localhost:8000");
  EXPECT_EQ(u.scheme_host_port, "http://localhost:8000");
  EXPECT_EQ(u.prefix, "/v1");
  u = HttpBackend::parse_base_url("https://api.example.com/v1/");
  EXPECT_EQ(u.scheme_host_port, "https://api.example.com");
  EXPECT_EQ(u.prefix, "/v1");
  u = HttpBackend::parse_base_url("http://h:1/proxy");
  EXPECT_EQ(u.prefix, "/proxy/v1");
  EXPECT_THROW(HttpBackend::parse_base_url("localhost:8000"), rv::Error);
  EXPECT_THROW(HttpBackend::parse_base_url("ftp://x"), rv::Error);
  HttpOptions o;
  o.base_url = "http://x";
  EXPECT_THROW(HttpBackend{o}, rv::Error);  // no model name
}

TEST(HttpBackend, LoglikelihoodFromEchoMatchesIndependentSum) {
  MockServer m;
  for (bool refuse0 : {false, true}) {
    for (bool offsets_only : {false, true}) {
      m.refuse_max0 = refuse0;
      m.offsets_only = offsets_only;
      HttpBackend b(opts(m));
      auto reqs = sample_lls();
      auto got = b.loglikelihood(reqs, nullptr);
      ASSERT_EQ(got.size(), reqs.size());
      for (size_t i = 0; i < reqs.size(); ++i) {
        bool g;
        double want = expected_lp(reqs[i].context, reqs[i].continuation, &g);
        EXPECT_NEAR(got[i].logprob, want, 1e-12)
            << i << " refuse0=" << refuse0 << " offsets=" << offsets_only;
        EXPECT_EQ(got[i].is_greedy, g) << i;
      }
    }
  }
}

TEST(HttpBackend, RefusedOrIgnoredEchoFailsLoudly) {
  MockServer m;
  {
    m.refuse_echo = true;
    HttpBackend b(opts(m));
    try {
      b.loglikelihood(sample_lls(), nullptr);
      FAIL() << "expected an error";
    } catch (const rv::Error& e) {
      EXPECT_NE(std::string(e.what()).find("echo is not supported"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("refusing to score at chance"), std::string::npos)
          << e.what();
    }
  }
  {
    m.refuse_echo = false;
    m.ignore_echo = true;
    m.refuse_max0 = true;
    HttpBackend b(opts(m));
    try {
      b.loglikelihood(sample_lls(), nullptr);
      FAIL() << "expected an error";
    } catch (const rv::Error& e) {
      EXPECT_NE(std::string(e.what()).find("prompt log-probabilities"), std::string::npos)
          << e.what();
    }
  }
}

TEST(HttpBackend, RetriesOn503And429ThenSucceeds) {
  MockServer m;
  m.fail_next = 2;
  m.throttle_next = 2;
  HttpBackend b(opts(m, 1));
  GenRequest r;
  r.prompt = "hello";
  auto out = b.generate({r}, nullptr);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text, "[hello] STOPHERE tail");
  EXPECT_EQ(b.retries(), 4u);
  EXPECT_EQ(b.attempts(), 5u);
}

TEST(HttpBackend, GivesUpAfterMaxRetriesWithTheLastError) {
  MockServer m;
  m.fail_next = 100;
  HttpBackend b(opts(m, 1));
  GenRequest r;
  r.prompt = "x";
  try {
    b.generate({r}, nullptr);
    FAIL();
  } catch (const rv::Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("giving up after 5 attempts"), std::string::npos) << w;
    EXPECT_NE(w.find("HTTP 503: overloaded"), std::string::npos) << w;
  }
}

TEST(HttpBackend, ClientErrorIsNotRetried) {
  MockServer m;
  auto o = opts(m, 1);
  o.model = "wrong";
  HttpBackend b(o);
  GenRequest r;
  r.prompt = "x";
  try {
    b.generate({r}, nullptr);
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              m.url() + "/v1/completions: HTTP 404: model 'x' does not exist");
  }
  EXPECT_EQ(b.attempts(), 1u);
}

TEST(HttpBackend, ConnectionRefusedIsRetriedThenReported) {
  int port;
  {
    MockServer m;
    port = m.port;
  }  // server gone: nothing listens on the port now
  HttpOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port);
  o.model = "toy";
  o.backoff_initial_s = 0.001;
  o.max_retries = 2;
  HttpBackend b(o);
  GenRequest r;
  r.prompt = "x";
  try {
    b.generate({r}, nullptr);
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("connection error"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.attempts(), 3u);
}

TEST(HttpBackend, StopStringsAppliedClientSideAndChatUsesMessages) {
  MockServer m;
  HttpOptions o = opts(m);
  o.api_key = "sekrit";
  HttpBackend b(o);
  GenRequest r;
  r.prompt = "Q";
  r.stop = {"tail", "STOP"};
  GenRequest c;
  c.chat = true;
  c.messages = {{"system", "be brief"}, {"user", "hi"}};
  GenRequest prefilled = c;  // lm-eval gen_prefix: vLLM's continue_final_message
  prefilled.assistant_prefix = "Sure:";
  GenRequest raw_prefix = r;
  raw_prefix.assistant_prefix = "!";
  auto out = b.generate({r, c, prefilled, raw_prefix}, nullptr);
  EXPECT_EQ(out[0].text, "[Q] ");
  EXPECT_EQ(out[0].finish_reason, "stop");
  EXPECT_EQ(out[1].text, "chat:system=be brief;user=hi;");
  EXPECT_EQ(out[2].text, "chat:system=be brief;user=hi;assistant=Sure:;(continued)");
  EXPECT_EQ(out[3].text, "[Q!] ");
  std::lock_guard<std::mutex> l(m.mu);
  EXPECT_EQ(m.last_auth, "Bearer sekrit");
}

TEST(HttpBackend, KeepsConcurrencyRequestsInFlightAndResultsInOrder) {
  MockServer m;
  m.delay_ms = 30;
  HttpBackend b(opts(m, 6));
  std::vector<GenRequest> reqs(24);
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].prompt = "p" + std::to_string(i);
  size_t calls = 0;
  std::vector<size_t> seen;
  b.generate_stream(reqs, [&](size_t i, const GenResponse& r) {
    ++calls;
    seen.push_back(i);
    EXPECT_EQ(r.text, "[p" + std::to_string(i) + "] STOPHERE tail");
  });
  EXPECT_EQ(calls, reqs.size());
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  EXPECT_EQ(m.max_in_flight.load(), 6);
}

TEST(HttpBackend, ErrorInOneRequestAbortsTheBatch) {
  MockServer m;
  HttpBackend b(opts(m, 3));
  std::vector<GenRequest> reqs(10);
  for (auto& r : reqs) r.prompt = "x";
  size_t n = 0;
  // The failing callback lingers so that the other workers are queued on the
  // result lock when it throws: none of them may call it again afterwards.
  EXPECT_THROW(b.generate_stream(reqs,
                                 [&](size_t, const GenResponse&) {
                                   if (++n != 2) return;
                                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                                   throw rv::Error("cache", "disk full");
                                 }),
               rv::Error);
  EXPECT_EQ(n, 2u);
}
