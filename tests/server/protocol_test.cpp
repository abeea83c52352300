// Request validation of the OpenAI wire protocol (no HTTP, no engine).
#include "server/protocol.h"

#include <gtest/gtest.h>

namespace rv::server {
namespace {

json J(const char* s) {
  return json::parse(s);
}

// Expects parse to fail with 400 naming `param`.
template <class F>
void expect_bad(F parse, const char* body, const std::string& param) {
  try {
    parse(J(body));
    FAIL() << "accepted: " << body;
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.param, param) << body << " -> " << e.what();
    EXPECT_EQ(e.type, "invalid_request_error");
  }
}

const auto kComp = [](const json& j) { return parse_completion_request(j); };
const auto kChat = [](const json& j) { return parse_chat_request(j); };

TEST(Protocol, CompletionPromptForms) {
  auto r = parse_completion_request(J(R"({"prompt": "hi"})"));
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_FALSE(r.prompts[0].is_tokens);
  EXPECT_EQ(r.prompts[0].text, "hi");
  EXPECT_EQ(r.sampling.max_tokens, kDefaultCompletionTokens);
  EXPECT_FALSE(r.max_tokens_given);

  r = parse_completion_request(J(R"({"prompt": ["a", "b", "c"]})"));
  ASSERT_EQ(r.prompts.size(), 3u);
  EXPECT_EQ(r.prompts[2].text, "c");

  r = parse_completion_request(J(R"({"prompt": [1, 2, 3]})"));
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_TRUE(r.prompts[0].is_tokens);
  EXPECT_EQ(r.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));

  r = parse_completion_request(J(R"({"prompt": [[1, 2], [3]]})"));
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[1].tokens, std::vector<int32_t>{3});
}

TEST(Protocol, CompletionSamplingFields) {
  auto r = parse_completion_request(
      J(R"({"prompt": "x", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
            "min_p": 0.05, "seed": 123, "stop": ["\n", ""], "logprobs": 5, "echo": true,
            "stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true,
            "stop_token_ids": [7, 8], "user": "u", "unknown_field": {"a": 1}})"));
  EXPECT_EQ(r.sampling.max_tokens, 7);
  EXPECT_TRUE(r.max_tokens_given);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_EQ(r.sampling.seed, 123u);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampling.stop_strings, std::vector<std::string>{"\n"});  // "" dropped
  EXPECT_EQ(r.sampling.stop_ids, (std::vector<int32_t>{7, 8}));
  EXPECT_TRUE(r.sampling.ignore_eos);
  EXPECT_EQ(r.logprobs, 5);
  EXPECT_TRUE(r.echo);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);

  r = parse_completion_request(J(R"({"prompt": "x", "stop": "END", "top_k": -1, "n": 1,
                                     "max_tokens": null, "logprobs": null, "seed": null})"));
  EXPECT_EQ(r.sampling.stop_strings, std::vector<std::string>{"END"});
  EXPECT_EQ(r.sampling.top_k, 0);  // -1 (vLLM's "off") maps to 0
  EXPECT_FALSE(r.max_tokens_given);
  EXPECT_FALSE(r.logprobs.has_value());
  EXPECT_FALSE(r.seed_given);
  // Echo-only scoring may ask for no tokens at all.
  r = parse_completion_request(
      J(R"({"prompt": "x", "max_tokens": 0, "echo": true, "logprobs": 0})"));
  EXPECT_EQ(r.sampling.max_tokens, 0);
  EXPECT_EQ(r.logprobs, 0);
}

TEST(Protocol, CompletionDefects) {
  expect_bad(kComp, R"({"max_tokens": 5})", "prompt");
  expect_bad(kComp, R"({"prompt": ""})", "prompt");
  expect_bad(kComp, R"({"prompt": []})", "prompt");
  expect_bad(kComp, R"({"prompt": 5})", "prompt");
  expect_bad(kComp, R"({"prompt": ["a", 1]})", "prompt");
  expect_bad(kComp, R"({"prompt": [1, "a"]})", "prompt");
  expect_bad(kComp, R"({"prompt": [1, -2]})", "prompt");
  expect_bad(kComp, R"({"prompt": [[1], []]})", "prompt");
  expect_bad(kComp, R"({"prompt": "x", "n": 0})", "n");
  expect_bad(kComp, R"({"prompt": "x", "best_of": 3})", "best_of");
  expect_bad(kComp, R"({"prompt": "x", "max_tokens": -1})", "max_tokens");
  expect_bad(kComp, R"({"prompt": "x", "max_tokens": "10"})", "max_tokens");
  expect_bad(kComp, R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens");
  expect_bad(kComp, R"({"prompt": "x", "max_tokens": 0})", "max_tokens");  // no echo
  expect_bad(kComp, R"({"prompt": "x", "temperature": -0.1})", "temperature");
  expect_bad(kComp, R"({"prompt": "x", "temperature": "hot"})", "temperature");
  expect_bad(kComp, R"({"prompt": "x", "top_p": 0})", "top_p");
  expect_bad(kComp, R"({"prompt": "x", "top_p": 1.5})", "top_p");
  expect_bad(kComp, R"({"prompt": "x", "top_k": -2})", "top_k");
  expect_bad(kComp, R"({"prompt": "x", "min_p": 2})", "min_p");
  expect_bad(kComp, R"({"prompt": "x", "seed": "abc"})", "seed");
  expect_bad(kComp, R"({"prompt": "x", "stop": 5})", "stop");
  expect_bad(kComp, R"({"prompt": "x", "stop": ["a", 5]})", "stop");
  expect_bad(kComp, R"({"prompt": "x", "logprobs": 21})", "logprobs");
  expect_bad(kComp, R"({"prompt": "x", "logprobs": true})", "logprobs");
  expect_bad(kComp, R"({"prompt": "x", "echo": "yes"})", "echo");
  expect_bad(kComp, R"({"prompt": "x", "stream": 1})", "stream");
  expect_bad(kComp, R"({"prompt": "x", "frequency_penalty": 0.5})", "frequency_penalty");
  expect_bad(kComp, R"({"prompt": "x", "logit_bias": {"5": 1}})", "logit_bias");
  expect_bad(kComp, R"({"prompt": "x", "stop_token_ids": [-1]})", "stop_token_ids");
  try {
    parse_completion_request(J(R"([1, 2])"));
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
  }
}

TEST(Protocol, ChatRequest) {
  auto r = parse_chat_request(J(R"({"messages": [{"role": "system", "content": "S"},
                         {"role": "user", "content": [{"type": "text", "text": "a"},
                                                      {"type": "text", "text": "b"}]}],
            "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 9,
            "chat_template_kwargs": {"enable_thinking": false}})"));
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.sampling.max_tokens, 9);
  EXPECT_EQ(r.template_kwargs["enable_thinking"], false);

  expect_bad(kChat, R"({})", "messages");
  expect_bad(kChat, R"({"messages": []})", "messages");
  expect_bad(kChat, R"({"messages": "hi"})", "messages");
  expect_bad(kChat, R"({"messages": [{"content": "hi"}]})", "messages");
  expect_bad(kChat, R"({"messages": [{"role": "user", "content": 5}]})", "messages");
  expect_bad(kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
             "messages");
  expect_bad(kChat, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
             "top_logprobs");
  expect_bad(kChat, R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})",
             "max_tokens");
  expect_bad(kChat, R"({"messages": [{"role": "user", "content": "x"}], "n": 129})", "n");
  expect_bad(kChat, R"({"messages": [{"role": "user", "content": "x"}], "tools": [{}]})", "tools");
  // vLLM: continuing the final message excludes a new generation prompt.
  expect_bad(kChat,
             R"({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true})",
             "continue_final_message");
  auto c = parse_chat_request(J(R"({"messages": [{"role": "assistant", "content": "x"}],
            "continue_final_message": true, "add_generation_prompt": false})"));
  EXPECT_TRUE(c.continue_final_message);
  EXPECT_FALSE(c.add_generation_prompt);
}

TEST(Protocol, ErrorBodyShape) {
  json e = error_body(ApiError(400, "bad thing", "max_tokens"));
  EXPECT_EQ(e["error"]["message"], "bad thing");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_TRUE(e["error"]["code"].is_null());
  e = error_body(ApiError(401, "no", "", "invalid_api_key"));
  EXPECT_TRUE(e["error"]["param"].is_null());
  EXPECT_EQ(e["error"]["code"], "invalid_api_key");
}

TEST(Protocol, StopSafePrefix) {
  const std::vector<std::string> stops = {"\n\nUser", "END"};
  EXPECT_EQ(stop_safe_prefix("Hello", stops), 5u);
  EXPECT_EQ(stop_safe_prefix("Hello\n", stops), 5u);  // could become "\n\nUser"
  EXPECT_EQ(stop_safe_prefix("Hello\n\nUs", stops), 5u);
  EXPECT_EQ(stop_safe_prefix("Hello\n\nUser: x", stops), 5u);  // complete stop: cut before it
  EXPECT_EQ(stop_safe_prefix("Hello\nx", stops), 7u);
  EXPECT_EQ(stop_safe_prefix("aEN", stops), 1u);
  EXPECT_EQ(stop_safe_prefix("aENDb", stops), 1u);
  EXPECT_EQ(stop_safe_prefix("abc", {}), 3u);
  // Never inside a UTF-8 character: "é" is C3 A9.
  EXPECT_EQ(stop_safe_prefix("a\xC3", {}), 1u);
  EXPECT_EQ(stop_safe_prefix("a\xC3\xA9", {}), 3u);
  EXPECT_EQ(stop_safe_prefix("a\xE2\x82", {}), 1u);  // first 2 bytes of "€"
  EXPECT_EQ(stop_safe_prefix("a\xF0\x9F\x98", {}), 1u);
  EXPECT_EQ(stop_safe_prefix("a\xF0\x9F\x98\x80", {}), 5u);
}

// The streaming path's incremental scanner gives stop_safe_prefix's answer
// after every append, whatever the pieces (stops split across them, overlapping
// stops, a stop completed long after a shorter one), while looking at each
// byte a bounded number of times.
TEST(Protocol, StopScannerEqualsStopSafePrefixIncrementally) {
  const std::vector<std::vector<std::string>> stop_sets = {
      {"\n\nUser", "END"}, {"abcd", "c"}, {"xyz", "y"}, {"aa"}, {}, {"", "\xC3\xA9!"}};
  const std::string texts[] = {"Hello\n\nUser: x",
                               "aENDb",
                               "abcd",
                               "axyzy",
                               "aaaa",
                               "caf\xC3\xA9! ok",
                               "no stop here at all \xE2\x82\xAC",
                               "\n\nUse\n\nUser"};
  for (const auto& stops : stop_sets)
    for (const auto& text : texts)
      for (size_t step = 1; step <= 4; ++step) {
        StopScanner sc(stops);
        std::string grown;
        for (size_t at = 0; at < text.size(); at += step) {
          grown += text.substr(at, step);
          ASSERT_EQ(sc.safe_prefix(grown), stop_safe_prefix(grown, stops))
              << "text '" << grown << "' step " << step << " stops " << stops.size();
        }
        ASSERT_EQ(sc.safe_prefix(grown), stop_safe_prefix(grown, stops));  // no new bytes
      }
  // Linear work: 20000 one-byte appends with a 6-byte stop never found.
  StopScanner sc({"\n\nUser"});
  std::string grown;
  for (int i = 0; i < 20000; ++i) {
    grown += char('a' + i % 26);
    ASSERT_EQ(sc.safe_prefix(grown), grown.size());
  }
  EXPECT_LE(sc.bytes_examined(), 6u * grown.size());  // a rescan would be ~2e8
}

TEST(Protocol, Utf8Length) {
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("h\xC3\xA9llo"), 5u);
  EXPECT_EQ(utf8_length("\xF0\x9F\x98\x80"), 1u);
  EXPECT_EQ(utf8_length(""), 0u);
}

}  // namespace
}  // namespace rv::server
