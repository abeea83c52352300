// End to end: the real `reasonvec serve` on a synthesized Qwen2-shaped model
// with the real Qwen2.5 tokenizer, over loopback HTTP. Every answer is
// compared with the same engine run directly in this process.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include "engine/engine.h"
#include "formats/synth.h"
#include "server/server_test_util.h"
#include "support/llamacpp_oracle.h"
#include "tokenizer/tokenizer.h"

namespace rv::server {
namespace {

using namespace rv::server::test;
namespace fs = std::filesystem;

const std::filesystem::path kServeTokDir = rv_test::oracle_tokenizer_dir("qwen2_5");
constexpr int kServeContext = 256;

class ServeE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("rv_serve_e2e_" + std::to_string(getpid()));
    model_ = root_ / "tiny-qwen";
    fs::create_directories(root_);
    SynthOptions o;
    o.arch = "qwen2";
    o.layers = 2;
    o.hidden = 64;
    o.heads = 4;
    o.kv_heads = 2;
    o.intermediate = 128;
    o.tokenizer_dir = kServeTokDir;
    o.init_scale = 0.2f;  // peaked next-token distributions: greedy is stable
    o.tied = true;
    o.seed = 11;
    synth_model(o, model_, true);
    engine::EngineOptions eo;
    eo.max_context = kServeContext;
    eo.max_batch = 32;
    eng_ = engine::Engine::open(model_, eo).release();
    proc_ = new ServeProcess({"-q", "serve", "--model", model_.string(), "--port", "0",
                              "--max-context", std::to_string(kServeContext), "--max-batch", "32"});
  }
  static void TearDownTestSuite() {
    delete proc_;
    delete eng_;
    fs::remove_all(root_);
  }

  static const Tokenizer& tok() { return eng_->tokenizer(); }
  static httplib::Result post(const std::string& path, const std::string& body) {
    auto c = make_client(proc_->port());
    return c.Post(path.c_str(), body, "application/json");
  }
  static json post_ok(const std::string& path, const json& body) {
    auto r = post(path, body.dump());
    if (!r) throw std::runtime_error("no response from the server");
    if (r->status != 200)
      throw std::runtime_error("status " + std::to_string(r->status) + ": " + r->body);
    return json::parse(r->body);
  }
  static engine::GenerationResult direct(const std::vector<int32_t>& ids,
                                         engine::SamplingParams p) {
    return eng_->submit_generate(ids, std::move(p)).get();
  }
  static engine::SamplingParams greedy(int max_tokens) {
    engine::SamplingParams p;
    p.max_tokens = max_tokens;
    p.temperature = 0;
    return p;
  }

  static fs::path root_, model_;
  static engine::Engine* eng_;
  static ServeProcess* proc_;
};
fs::path ServeE2E::root_, ServeE2E::model_;
engine::Engine* ServeE2E::eng_ = nullptr;
ServeProcess* ServeE2E::proc_ = nullptr;

const std::vector<std::string> kPrompts = {
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a land far away,",
    "1, 2, 3, 4, 5,",
};

TEST_F(ServeE2E, ModelsListsTheDirectoryName) {
  auto c = make_client(proc_->port());
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  json j = json::parse(r->body);
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "tiny-qwen");
  EXPECT_EQ(j["data"][0]["max_model_len"], kServeContext);
}

TEST_F(ServeE2E, GreedyCompletionsEqualDirectGeneration) {
  for (const auto& prompt : kPrompts) {
    auto ids = tok().encode(prompt);  // Qwen adds no BOS
    auto want = direct(ids, greedy(16));
    json j = post_ok(
        "/v1/completions",
        {{"model", "tiny-qwen"}, {"prompt", prompt}, {"max_tokens", 16}, {"temperature", 0}});
    const json& c = j["choices"][0];
    EXPECT_EQ(c["text"], want.text) << prompt;
    EXPECT_EQ(c["finish_reason"], want.finish_reason) << prompt;
    EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
    EXPECT_EQ(j["usage"]["completion_tokens"], want.tokens.size());
    // The same prompt as token ids gives the same answer.
    json t = post_ok("/v1/completions", {{"prompt", ids}, {"max_tokens", 16}, {"temperature", 0}});
    EXPECT_EQ(t["choices"][0]["text"], want.text) << prompt;
  }
}

TEST_F(ServeE2E, SeededSamplingEqualsDirect) {
  engine::SamplingParams p;
  p.max_tokens = 12;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.top_k = 50;
  p.seed = 1234;
  auto ids = tok().encode(kPrompts[2]);
  auto want = direct(ids, p);
  json body = {{"prompt", kPrompts[2]}, {"max_tokens", 12}, {"temperature", 0.9},
               {"top_p", 0.95},         {"top_k", 50},      {"seed", 1234}};
  EXPECT_EQ(post_ok("/v1/completions", body)["choices"][0]["text"], want.text);
  EXPECT_EQ(post_ok("/v1/completions", body)["choices"][0]["text"], want.text);
}

TEST_F(ServeE2E, EchoLogprobsEqualDirectScores) {
  const std::string prompt = "The quick brown fox jumps over the lazy dog. It was";
  auto ids = tok().encode(prompt);
  ASSERT_GE(ids.size(), 5u);
  const int k = 5;
  json j = post_ok("/v1/completions",
                   {{"prompt", prompt}, {"max_tokens", 0}, {"echo", true}, {"logprobs", k}});
  const json& c = j["choices"][0];
  EXPECT_EQ(c["text"], prompt);
  const json& lp = c["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["text_offset"][0], 0);

  // log P(continuation | first token), computed directly.
  std::vector<int32_t> ctx(ids.begin(), ids.begin() + 1), cont(ids.begin() + 1, ids.end());
  auto ll = eng_->submit_loglikelihood(ctx, cont).get();
  auto sc = eng_->submit_score(ids, k).get();
  ASSERT_EQ(ll.token_logprobs.size(), cont.size());
  double sum = 0;
  bool all_greedy = true;
  std::string joined = lp["tokens"][0];
  for (size_t i = 1; i < ids.size(); ++i) {
    double got = lp["token_logprobs"][i].get<double>();
    sum += got;
    EXPECT_NEAR(got, ll.token_logprobs[i - 1], 1e-4) << "position " << i;
    EXPECT_NEAR(got, sc.token_logprobs[i], 1e-9) << "position " << i;
    const json& top = lp["top_logprobs"][i];
    // The k best alternatives, plus the prompt token itself when it is not among them.
    ASSERT_GE(sc.top_logprobs[i].size(), size_t(k));
    EXPECT_TRUE(top.size() == size_t(k) || top.size() == size_t(k) + 1) << top;
    const auto& best = sc.top_logprobs[i][0];
    std::string best_text = utf8_replace_invalid(tok().token_to_piece(best.id));
    ASSERT_TRUE(top.contains(best_text)) << top;
    EXPECT_NEAR(top[best_text].get<double>(), best.logprob, 1e-9);
    if (best.id != ids[i]) all_greedy = false;
    EXPECT_EQ(lp["text_offset"][i], joined.size());  // ASCII: characters == bytes
    joined += lp["tokens"][i].get<std::string>();
  }
  EXPECT_EQ(joined, prompt);
  EXPECT_NEAR(sum, ll.logprob, 1e-4);
  EXPECT_EQ(all_greedy, ll.is_greedy);
}

TEST_F(ServeE2E, ChatUsesTheModelsTemplate) {
  json messages = {{{"role", "system"}, {"content", "You are a test."}},
                   {{"role", "user"}, {"content", "Hello!"}}};
  // Qwen2.5's ChatML, written out by hand.
  const std::string rendered =
      "<|im_start|>system\nYou are a test.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
      "<|im_start|>assistant\n";
  auto ids = tok().encode(rendered);
  auto p = greedy(12);
  p.logprobs = 2;
  auto want = direct(ids, p);
  json j = post_ok("/v1/chat/completions", {{"messages", messages},
                                            {"max_tokens", 12},
                                            {"temperature", 0},
                                            {"logprobs", true},
                                            {"top_logprobs", 2}});
  const json& c = j["choices"][0];
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_EQ(c["message"]["content"], want.text);
  EXPECT_EQ(c["finish_reason"], want.finish_reason);
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
  const json& content = c["logprobs"]["content"];
  ASSERT_EQ(content.size(), want.tokens.size());
  std::string bytes;
  for (size_t t = 0; t < want.tokens.size(); ++t) {
    EXPECT_NEAR(content[t]["logprob"].get<double>(), want.token_logprobs[t], 1e-9);
    ASSERT_EQ(content[t]["top_logprobs"].size(), 2u);
    EXPECT_NEAR(content[t]["top_logprobs"][0]["logprob"].get<double>(),
                want.top_logprobs[t][0].logprob, 1e-9);
    for (const auto& b : content[t]["bytes"]) bytes += char(b.get<int>());
  }
  // The tokens' bytes spell the generated text (unless a stop string cut it
  // or a special token, which the text leaves out, was generated).
  bool plain = want.finish_reason == "length";
  for (int32_t id : want.tokens) plain = plain && !tok().is_special(id);
  if (plain) {
    EXPECT_EQ(bytes, want.text);
  }
}

TEST_F(ServeE2E, ChatContinuesAPrefilledAssistantMessage) {
  // lm-eval's gen_prefix over vLLM's API: the reply continues the assistant
  // text, with no end-of-turn after it.
  json messages = {{{"role", "user"}, {"content", "Hello!"}},
                   {{"role", "assistant"}, {"content", "Sure:\n"}}};
  const std::string rendered =
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
      "assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nSure:\n";
  auto ids = tok().encode(rendered);
  auto want = direct(ids, greedy(8));
  json j = post_ok("/v1/chat/completions", {{"messages", messages},
                                            {"max_tokens", 8},
                                            {"temperature", 0},
                                            {"add_generation_prompt", false},
                                            {"continue_final_message", true}});
  EXPECT_EQ(j["choices"][0]["message"]["content"], want.text);
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
}

TEST_F(ServeE2E, StreamingConcatenatesToTheSameText) {
  for (const auto& prompt : kPrompts) {
    json body = {{"prompt", prompt}, {"max_tokens", 20}, {"temperature", 0}};
    json plain = post_ok("/v1/completions", body);
    const std::string full = plain["choices"][0]["text"];
    body["stream"] = true;
    auto r = post("/v1/completions", body.dump());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    std::string finish;
    EXPECT_EQ(concat_stream(r->body, false, &finish), full) << prompt;
    EXPECT_EQ(finish, plain["choices"][0]["finish_reason"]);
    // A stop string taken from the middle of the answer cuts the stream there.
    if (full.size() >= 8) {
      // Cut on UTF-8 character boundaries: a stop string must be valid text.
      auto cont = [&](size_t i) {
        return i < full.size() && (static_cast<unsigned char>(full[i]) & 0xc0) == 0x80;
      };
      size_t b = full.size() / 2, e = b + 3;
      while (b > 0 && cont(b)) --b;
      while (cont(e)) ++e;
      const std::string stop = full.substr(b, e - b);
      const std::string cut_text = full.substr(0, full.find(stop));
      json sb = {{"prompt", prompt}, {"max_tokens", 20}, {"temperature", 0}, {"stop", stop}};
      json cut = post_ok("/v1/completions", sb);
      EXPECT_EQ(cut["choices"][0]["text"], cut_text) << prompt << " / stop " << stop;
      EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");
      sb["stream"] = true;
      r = post("/v1/completions", sb.dump());
      ASSERT_TRUE(r);
      EXPECT_EQ(concat_stream(r->body, false, &finish), cut_text) << prompt << " / stop " << stop;
      EXPECT_EQ(finish, "stop");
    }
  }
  json body = {{"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}},
               {"max_tokens", 16},
               {"temperature", 0}};
  json plain = post_ok("/v1/chat/completions", body);
  body["stream"] = true;
  auto r = post("/v1/chat/completions", body.dump());
  ASSERT_TRUE(r);
  std::string finish;
  EXPECT_EQ(concat_stream(r->body, true, &finish), plain["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, plain["choices"][0]["finish_reason"]);
}

TEST_F(ServeE2E, HundredConcurrentClients) {
  const int n = sanitizer_run() ? 20 : 100;
  std::vector<std::string> prompts, want, got(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) prompts.push_back("Item " + std::to_string(i * 7 + 3) + " is");
  // Each prompt's own single-request answer, one at a time.
  for (const auto& p : prompts) want.push_back(direct(tok().encode(p), greedy(8)).text);
  std::vector<std::thread> th;
  for (int i = 0; i < n; ++i)
    th.emplace_back([&, i] {
      try {
        got[size_t(i)] = post_ok("/v1/completions", {{"prompt", prompts[size_t(i)]},
                                                     {"max_tokens", 8},
                                                     {"temperature", 0}})["choices"][0]["text"];
      } catch (const std::exception& e) {
        got[size_t(i)] = std::string("ERROR: ") + e.what();
      }
    });
  for (auto& t : th) t.join();
  int wrong = 0;
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << prompts[size_t(i)];
    wrong += got[size_t(i)] != want[size_t(i)];
  }
  EXPECT_EQ(wrong, 0);
}

TEST_F(ServeE2E, MalformedRequestsGet400AndServingContinues) {
  const std::pair<const char*, const char*> bad[] = {
      {"/v1/completions", "{\"prompt\": \"x\", "},
      {"/v1/completions", R"({"prompt": ["a", 3]})"},
      {"/v1/completions", R"({"prompt": "x", "n": 0})"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": -1})"},
      {"/v1/completions", R"({"prompt": "x", "temperature": "warm"})"},
      {"/v1/completions", R"({"prompt": "x", "stop": 7})"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user"}], "logprobs": "yes"})"},
      {"/v1/chat/completions", R"({"messages": 12})"},
  };
  for (const auto& [path, body] : bad) {
    auto r = post(path, body);
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body << " -> " << r->body;
    EXPECT_EQ(error_of(r->body)["type"], "invalid_request_error") << r->body;
  }
  std::string long_prompt;
  for (int i = 0; i < kServeContext + 10; ++i) long_prompt += " x";
  auto r = post("/v1/completions", json{{"prompt", long_prompt}, {"max_tokens", 1}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_of(r->body)["code"], "context_length_exceeded");
  auto c = make_client(proc_->port());
  r = c.Get("/no/such/route");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  error_of(r->body);
  // Unknown fields are ignored; the server still answers like before.
  auto want = direct(tok().encode(kPrompts[0]), greedy(4));
  json ok = post_ok(
      "/v1/completions",
      {{"prompt", kPrompts[0]}, {"max_tokens", 4}, {"temperature", 0}, {"not_a_field", true}});
  EXPECT_EQ(ok["choices"][0]["text"], want.text);
}

TEST_F(ServeE2E, ApiKeyAndSigtermShutdown) {
  ServeProcess p({"-q", "serve", "--model", model_.string(), "--port", "0", "--api-key", "k3y",
                  "--served-model-name", "named", "--max-context", std::to_string(kServeContext)});
  auto c = make_client(p.port());
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(error_of(r->body)["code"], "invalid_api_key");
  c.set_bearer_token_auth("k3y");
  r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["data"][0]["id"], "named");
  // A request in flight when SIGTERM arrives is finished, then the server exits 0.
  std::string body;
  std::thread client([&] {
    auto c2 = make_client(p.port());
    c2.set_bearer_token_auth("k3y");
    auto r2 = c2.Post("/v1/completions", R"({"prompt": "Count: 1 2 3", "max_tokens": 64,
                                            "ignore_eos": true, "stream": true})",
                      "application/json");
    body = r2 ? r2->body : "NO RESPONSE";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(p.stop(SIGTERM), 0) << p.stderr_text();
  client.join();
  EXPECT_NE(body.find("[DONE]"), std::string::npos) << body;
  EXPECT_NE(p.stderr_text().find("stopped"), std::string::npos);
}

TEST_F(ServeE2E, SigintExitsZero) {
  ServeProcess p({"-q", "serve", "--model", model_.string(), "--port", "0"});
  auto c = make_client(p.port());
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(p.stop(SIGINT), 0) << p.stderr_text();
}

TEST_F(ServeE2E, BadModelDirectoryFailsWithOneLine) {
  try {
    ServeProcess p({"serve", "--model", (root_ / "missing").string(), "--port", "0"}, 20);
    FAIL() << "server started on a missing model";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("reasonvec: "), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace rv::server
