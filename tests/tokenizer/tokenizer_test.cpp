// Tokenizer unit tests on tiny hand-built tokenizer.json files (expected ids
// worked out by hand from the BPE rules), bad input, streaming decode,
// concurrency, and the tokenize/detokenize CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "support/llamacpp_oracle.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Loaded once: every load of a 150k-vocabulary file costs time under sanitizers.
const rv::Tokenizer& qwen() {
  static const rv::Tokenizer t = rv::Tokenizer::load(rv_test::oracle_tokenizer_dir("qwen2_5"));
  return t;
}

// GPT-2's bytes_to_unicode, written out independently of the library.
std::string byte_char(int b) {
  static std::vector<std::string> table = [] {
    std::vector<int> cps(256, -1);
    for (int i = 0; i < 256; ++i)
      if ((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF))
        cps[i] = i;
    int n = 0;
    for (int i = 0; i < 256; ++i)
      if (cps[i] < 0) cps[i] = 256 + n++;
    std::vector<std::string> t;
    for (int cp : cps) {
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      t.push_back(s);
    }
    return t;
  }();
  return table[b];
}

class TokTempDir {
 public:
  TokTempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("rv-tok-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TokTempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
  }

 private:
  fs::path path_;
};

// A tiny byte-level BPE: ids 0..255 are the bytes themselves, then "ab"=256,
// "abc"=257 (in the vocab, but only reachable through ignore_merges), " b"=258.
json tiny_tokenizer(bool pair_merges = false, bool ignore_merges = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab[byte_char(' ') + "b"] = 258;
  json merges = pair_merges
                    ? json::array({json::array({"a", "b"}), json::array({byte_char(' '), "b"})})
                    : json::array({"a b", byte_char(' ') + " b"});
  json j = {
      {"version", "1.0"},
      {"added_tokens", json::array({
                           {{"id", 300},
                            {"content", "<s>"},
                            {"special", true},
                            {"lstrip", false},
                            {"rstrip", false},
                            {"single_word", false},
                            {"normalized", false}},
                           {{"id", 301},
                            {"content", "<L>"},
                            {"special", false},
                            {"lstrip", true},
                            {"rstrip", false},
                            {"single_word", false},
                            {"normalized", false}},
                           {{"id", 302},
                            {"content", "<R>"},
                            {"special", false},
                            {"lstrip", false},
                            {"rstrip", true},
                            {"single_word", false},
                            {"normalized", false}},
                           {{"id", 303},
                            {"content", "<w>"},
                            {"special", false},
                            {"lstrip", false},
                            {"rstrip", false},
                            {"single_word", true},
                            {"normalized", false}},
                           {{"id", 304},
                            {"content", "<s>x"},
                            {"special", true},
                            {"lstrip", false},
                            {"rstrip", false},
                            {"single_word", false},
                            {"normalized", false}},
                       })},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"ignore_merges", ignore_merges},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  return j;
}

std::vector<int32_t> bytes_ids(const std::string& s) {
  std::vector<int32_t> v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const rv::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TinyTokenizer, MergesAndPreTokenizerByHand) {
  TokTempDir d;
  d.write("tokenizer.json", tiny_tokenizer().dump());
  auto t = rv::Tokenizer::load(d.path());
  // GPT-2 regex: "ab" | " abc" | " b"; merges: a+b -> 256, ' '+b -> 258.
  EXPECT_EQ(t.encode("ab abc b"), (std::vector<int32_t>{256, ' ', 256, 'c', 258}));
  EXPECT_EQ(t.encode(""), std::vector<int32_t>{});
  EXPECT_EQ(t.vocab_size(), 305);
  EXPECT_EQ(t.token_to_piece(258), " b");
  EXPECT_EQ(t.token_id(byte_char(' ') + "b"), 258);
  EXPECT_EQ(t.token_id("<s>"), 300);
  EXPECT_FALSE(t.token_id("nope").has_value());
  EXPECT_EQ(t.decode({256, ' ', 256, 'c', 258}), "ab abc b");
}

TEST(TinyTokenizer, PairMergesEqualStringMerges) {
  TokTempDir a, b;
  a.write("tokenizer.json", tiny_tokenizer(false).dump());
  b.write("tokenizer.json", tiny_tokenizer(true).dump());
  auto ta = rv::Tokenizer::load(a.path()), tb = rv::Tokenizer::load(b.path());
  EXPECT_EQ(ta.merges(), tb.merges());
  for (const char* s : {"ab abc b", "bbb aab", " b b b"})
    EXPECT_EQ(ta.encode(s), tb.encode(s)) << s;
}

TEST(TinyTokenizer, IgnoreMergesEmitsWholeVocabularyPieces) {
  TokTempDir a, b;
  a.write("tokenizer.json", tiny_tokenizer(false, false).dump());
  b.write("tokenizer.json", tiny_tokenizer(false, true).dump());
  // "abc" is one pre-token and a vocabulary entry: only ignore_merges emits it whole.
  EXPECT_EQ(rv::Tokenizer::load(a.path()).encode("abc"), (std::vector<int32_t>{256, 'c'}));
  EXPECT_EQ(rv::Tokenizer::load(b.path()).encode("abc"), (std::vector<int32_t>{257}));
}

TEST(TinyTokenizer, AddedTokenFlags) {
  TokTempDir d;
  d.write("tokenizer.json", tiny_tokenizer().dump());
  auto t = rv::Tokenizer::load(d.path());
  // Longest match wins: "<s>x" over "<s>".
  EXPECT_EQ(t.encode("<s>x<s>"), (std::vector<int32_t>{304, 300}));
  // lstrip swallows the spaces on the left of <L>, rstrip those on the right of <R>.
  EXPECT_EQ(t.encode("c  <L> c"), (std::vector<int32_t>{'c', 301, ' ', 'c'}));
  EXPECT_EQ(t.encode("c <R>  c"), (std::vector<int32_t>{'c', ' ', 302, 'c'}));
  // single_word: only when not glued to word characters.
  EXPECT_EQ(t.encode("c <w> c"), (std::vector<int32_t>{'c', ' ', 303, ' ', 'c'}));
  std::vector<int32_t> glued = bytes_ids("c");
  for (int32_t id : bytes_ids("<w>")) glued.push_back(id);
  EXPECT_EQ(t.encode("c<w>"), glued);
  // parse_special=false: special tokens become text, non-special ones still match.
  std::vector<int32_t> want = bytes_ids("<s>");
  want.push_back(302);
  EXPECT_EQ(t.encode("<s><R>", false), want);
  EXPECT_TRUE(t.is_special(300));
  EXPECT_FALSE(t.is_special(302));
  EXPECT_EQ(t.decode({'c', 300, 302}, /*skip_special=*/true), "c<R>");
}

TEST(TinyTokenizer, ConfigTokensAndTemplates) {
  TokTempDir d;
  d.write("tokenizer.json", tiny_tokenizer().dump());
  d.write("tokenizer_config.json",
          json({{"bos_token", {{"content", "<s>"}, {"__type", "AddedToken"}}},
                {"eos_token", "<s>x"},
                {"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}},
                                               {{"name", "default"}, {"template", "D"}}})}})
              .dump());
  auto t = rv::Tokenizer::load(d.path());
  EXPECT_EQ(t.bos_id(), 300);
  EXPECT_EQ(t.eos_id(), 304);
  EXPECT_EQ(t.bos_token(), "<s>");
  EXPECT_FALSE(t.pad_id().has_value());
  EXPECT_EQ(t.stop_ids(), std::vector<int32_t>{304});
  EXPECT_EQ(t.chat_template(), "D");
  d.write("chat_template.jinja", "{{ messages }}");
  EXPECT_EQ(rv::Tokenizer::load(d.path()).chat_template(), "{{ messages }}");
}

TEST(RealTokenizers, ConfigFacts) {
  const rv::Tokenizer& q = qwen();
  EXPECT_EQ(q.vocab_size(), 151665);
  EXPECT_EQ(q.eos_token(), "<|im_end|>");
  EXPECT_EQ(q.eos_id(), 151645);
  EXPECT_EQ(q.pad_id(), 151643);
  EXPECT_FALSE(q.bos_id().has_value());
  EXPECT_FALSE(q.adds_bos());
  EXPECT_EQ(q.stop_ids(), (std::vector<int32_t>{151643, 151645}));
  EXPECT_EQ(q.normalizer(), "NFC");
  EXPECT_NE(q.chat_template().find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(q.id_to_token()[9707], "Hello");
  auto l = rv::Tokenizer::load(rv_test::oracle_tokenizer_dir("llama3_1"));
  EXPECT_EQ(l.bos_id(), 128000);
  EXPECT_TRUE(l.adds_bos());
  EXPECT_EQ(l.eos_id(), 128009);
  auto stops = l.stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 128009), stops.end());  // <|eot_id|>
  // This tokenizer.json names 128008 <|reserved_special_token_4|>, so no <|eom_id|> here.
  EXPECT_EQ(std::find(stops.begin(), stops.end(), 128008), stops.end());
  EXPECT_NE(std::find(stops.begin(), stops.end(), 128001), stops.end());  // <|end_of_text|>
  EXPECT_EQ(l.normalizer(), "");
  EXPECT_NE(l.pre_tokenizer_regex().find("\\p{N}{1,3}"), std::string::npos);
}

TEST(IncrementalDecoder, HoldsPartialCharacters) {
  const rv::Tokenizer& t = qwen();
  // "é" = C3 A9 and "😀" = F0 9F 98 80, fed one byte token at a time.
  auto byte_tok = [&](int b) { return *t.token_id(byte_char(b)); };
  rv::IncrementalDecoder dec(t);
  EXPECT_EQ(dec.push(byte_tok(0xC3)), "");
  EXPECT_EQ(dec.push(byte_tok(0xA9)), "\u00e9");
  EXPECT_EQ(dec.push(byte_tok(0xF0)), "");
  EXPECT_EQ(dec.push(byte_tok(0x9F)), "");
  EXPECT_EQ(dec.push(byte_tok(0x98)), "");
  EXPECT_EQ(dec.push(byte_tok(0x80)), "\U0001F600");
  // A sequence that can no longer complete comes out as U+FFFD right away.
  EXPECT_EQ(dec.push(byte_tok(0xE4)), "");
  EXPECT_EQ(dec.push(byte_tok('A')),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(dec.push(byte_tok(0xE4)), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
  // Special tokens are skipped by default, kept on request.
  EXPECT_EQ(dec.push(151645), "");
  rv::IncrementalDecoder keep(t, false);
  EXPECT_EQ(keep.push(151645), "<|im_end|>");
  EXPECT_THROW(keep.push(999999), rv::Error);
}

TEST(RealTokenizers, ConcurrentEncodeIsConsistent) {
  const rv::Tokenizer& t = qwen();
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back(
        "Question " + std::to_string(i * 7919) + ": how many apples does Ms. Smith's class need? " +
        std::string(static_cast<size_t>(i % 13), ' ') + "\u4f60\u597d x" + std::to_string(i));
  // Expected ids from a separate instance (its own, single-threaded cache).
  auto fresh = rv::Tokenizer::load(rv_test::oracle_tokenizer_dir("qwen2_5"));
  std::vector<std::vector<int32_t>> want;
  for (const auto& s : texts) want.push_back(fresh.encode(s));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = k; i < texts.size() + k; ++i) {
          size_t j = i % texts.size();
          if (t.encode(texts[j]) != want[j]) ++bad;
        }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// ------------------------------------------------------------- bad input

void expect_one_line(const std::string& msg) {
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(BadInput, MissingDirectoryOrFiles) {
  std::string e = error_of([] { rv::Tokenizer::load("/nonexistent/model"); });
  EXPECT_NE(e.find("/nonexistent/model"), std::string::npos) << e;
  EXPECT_NE(e.find("no such model directory"), std::string::npos) << e;
  TokTempDir d;
  e = error_of([&] { rv::Tokenizer::load(d.path()); });
  EXPECT_NE(e.find("no tokenizer.json"), std::string::npos) << e;
  d.write("vocab.json", "{\"a\": 0}");
  e = error_of([&] { rv::Tokenizer::load(d.path()); });
  EXPECT_NE(e.find("merges.txt"), std::string::npos) << e;
  expect_one_line(e);
}

TEST(BadInput, MalformedTokenizerJson) {
  TokTempDir d;
  std::string full = tiny_tokenizer().dump();
  d.write("tokenizer.json", full.substr(0, full.size() / 2));
  std::string e = error_of([&] { rv::Tokenizer::load(d.path()); });
  EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
  EXPECT_NE(e.find("malformed JSON"), std::string::npos) << e;
  expect_one_line(e);
  d.write("tokenizer.json", "[1, 2]");
  e = error_of([&] { rv::Tokenizer::load(d.path()); });
  EXPECT_NE(e.find("malformed JSON"), std::string::npos) << e;
  d.write("tokenizer.json", "{\"version\": \"1.0\"}");
  e = error_of([&] { rv::Tokenizer::load(d.path()); });
  EXPECT_NE(e.find("no \"model\" section"), std::string::npos) << e;
}

TEST(BadInput, UnsupportedModelTypesNameTheType) {
  for (const char* type : {"Unigram", "WordPiece", "WordLevel"}) {
    TokTempDir d;
    json j = tiny_tokenizer();
    j["model"]["type"] = type;
    if (std::string(type) == "Unigram")
      j["model"]["vocab"] = json::array({json::array({"a", -1.0})});
    d.write("tokenizer.json", j.dump());
    std::string e = error_of([&] { rv::Tokenizer::load(d.path()); });
    EXPECT_NE(e.find(std::string("model type '") + type + "' is not supported yet"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
    expect_one_line(e);
  }
}

TEST(BadInput, UnsupportedPipelinePieces) {
  struct Case {
    std::function<void(json&)> edit;
    const char* want;
  };
  std::vector<Case> cases = {
      {[](json& j) {
         j["normalizer"] = {{"type", "NFKC"}};
       },
       "normalizer 'NFKC' is not supported yet"},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}};
       },
       "pre-tokenizer 'Metaspace' is not supported yet"},
      {[](json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       "decoder 'WordPiece' is not supported yet"},
      {[](json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback is not supported yet"},
      {[](json& j) { j["model"]["merges"].push_back("x yz"); }, "is not in the vocabulary"},
      {[](json& j) { j["model"]["merges"].push_back("abc"); }, "is not of the form"},
      {[](json& j) { j["model"]["vocab"].erase(byte_char('q')); }, "lacks the token for byte 113"},
      {[](json& j) {
         j["pre_tokenizer"] = {
             {"type", "Sequence"},
             {"pretokenizers", json::array({{{"type", "Split"},
                                             {"pattern", {{"Regex", "(unclosed"}}},
                                             {"behavior", "Isolated"},
                                             {"invert", false}},
                                            {{"type", "ByteLevel"}, {"use_regex", false}}})}};
       },
       "regex does not compile"},
      {[](json& j) { j["added_tokens"][0].erase("content"); }, "has no \"content\""},
  };
  for (const auto& c : cases) {
    TokTempDir d;
    json j = tiny_tokenizer();
    c.edit(j);
    d.write("tokenizer.json", j.dump());
    std::string e = error_of([&] { rv::Tokenizer::load(d.path()); });
    EXPECT_NE(e.find(c.want), std::string::npos) << "want '" << c.want << "', got: " << e;
    EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
    expect_one_line(e);
  }
}

TEST(BadInput, DecodeRejectsUnknownIds) {
  const rv::Tokenizer& t = qwen();
  std::string e = error_of([&] { t.decode({9707, 151665}); });
  EXPECT_NE(e.find("token id 151665 is not in the vocabulary"), std::string::npos) << e;
  e = error_of([&] { t.decode({-1}); });
  EXPECT_NE(e.find("token id -1"), std::string::npos) << e;
  EXPECT_THROW(t.token_to_piece(1 << 30), rv::Error);
  EXPECT_FALSE(t.is_valid_id(151665));
}

TEST(Encode, InvalidUtf8InputBecomesReplacementCharacter) {
  const rv::Tokenizer& t = qwen();
  EXPECT_EQ(t.encode("a\xff"
                     "b"),
            t.encode("a\xEF\xBF\xBD"
                     "b"));
  EXPECT_EQ(rv::utf8_replace_invalid("\xe4\xb8"
                                     "A\xed\xa0\x80"),
            "\xEF\xBF\xBD"
            "A\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

// ------------------------------------------------------------- CLI

struct CliRun {
  int rc;
  std::string out, err;
};

CliRun run_cli(const std::string& args) {
  TokTempDir d;
  std::string cmd = std::string(RV_CLI_PATH) + " " + args + " > '" + (d.path() / "out").string() +
                    "' 2> '" + (d.path() / "err").string() + "'";
  int st = std::system(cmd.c_str());
  CliRun r;
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream o(d.path() / "out", std::ios::binary), e(d.path() / "err", std::ios::binary);
  r.out.assign(std::istreambuf_iterator<char>(o), {});
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

std::string join_ids(const std::vector<int32_t>& ids, const char* sep) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? sep : "") + std::to_string(ids[i]);
  return s;
}

TEST(Cli, TokenizeAndDetokenize) {
  const rv::Tokenizer& t = qwen();
  const std::string text = "Hello world<|im_end|> 12345 \u4f60\u597d";
  auto ids = t.encode(text);
  const std::string model = "--model '" + rv_test::oracle_tokenizer_dir("qwen2_5").string() + "'";
  CliRun r = run_cli("tokenize " + model + " '" + text + "'");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, join_ids(ids, " ") + "\n");

  r = run_cli("tokenize " + model + " --json '" + text + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(j["count"], ids.size());
  EXPECT_EQ(j["tokens"][0], "Hello");

  r = run_cli("tokenize " + model + " --no-special '<|im_end|>'");
  EXPECT_EQ(r.out, join_ids(t.encode("<|im_end|>", false), " ") + "\n");

  TokTempDir d;
  d.write("in.txt", "line one\r\nline two\n");
  r = run_cli("tokenize " + model + " --file '" + (d.path() / "in.txt").string() + "'");
  EXPECT_EQ(r.out, join_ids(t.encode("line one\r\nline two\n"), " ") + "\n");

  r = run_cli("detokenize " + model + " " + join_ids(ids, " "));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, text + "\n");
  r = run_cli("detokenize " + model + " --skip-special " + join_ids(ids, ","));
  EXPECT_EQ(r.out, t.decode(ids, true) + "\n");
}

TEST(Cli, ErrorsAreOneLineWithExitCodes) {
  const std::string model = "--model '" + rv_test::oracle_tokenizer_dir("qwen2_5").string() + "'";
  CliRun r = run_cli("detokenize " + model + " 9707 999999");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("token id 999999 is not in the vocabulary"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.rfind("reasonvec: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  r = run_cli("detokenize " + model + " 12x");
  EXPECT_EQ(r.rc, 2) << r.err;

  r = run_cli("tokenize --model /nonexistent/dir hello");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("/nonexistent/dir"), std::string::npos) << r.err;

  r = run_cli("tokenize " + model);
  EXPECT_EQ(r.rc, 2) << r.err;
}

}  // namespace
