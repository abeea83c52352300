// The lab's BPE trainer: the directory it writes loads in rv::Tokenizer,
// round-trips every text the lab produces, encodes exactly like a plain
// reference BPE written here from the merges and like transformers.js
// (tests/lab/bpe_ref.mjs), renders ChatML, and is byte-for-byte
// reproducible.
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "lab/bpe.h"
#include "lab/task.h"
#include "support/llamacpp_oracle.h"
#include "support/temp_dir.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Everything the lab feeds a tokenizer, plus text it never trained on.
std::vector<std::string> lab_texts(int n) {
  rv::lab::TaskSpec spec;
  std::vector<std::string> out;
  for (const auto& split : rv::lab::split_names())
    for (const auto& p : rv::lab::make_split(spec, split, n, 5)) {
      out.push_back(p.question);
      out.push_back(p.cot);
    }
  for (const auto& s : rv::lab::make_skills(n, 5)) {
    out.push_back(s.user);
    out.push_back(s.assistant);
  }
  for (const char* s : {"", " ", "  leading and trailing  ", "tabs\tand\nnewlines\r\n\n",
                        "1234567 + 89 = 1234656", "naïve café — 東京 🙂 ümlaut",
                        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                        "a<|endoftext|>b", "<|im_end", "don't I'll WE'RE", "x\u00a0y"})
    out.push_back(s);
  return out;
}

// The task's corpus has few distinct words: it runs out of pairs to merge
// near 800 tokens, so the shared tokenizer asks for fewer.
rv::lab::BpeOptions options() {
  rv::lab::BpeOptions o;
  o.vocab_size = 640;
  return o;
}

struct Trained {
  rv_test::TmpDir dir{"labbpe"};
  std::vector<std::string> corpus;
  double seconds = 0;
  std::unique_ptr<rv::Tokenizer> tok;
};

// One trained tokenizer shared by the tests (training is the slow part).
Trained& trained() {
  static Trained* t = [] {
    auto* x = new Trained;
    rv::lab::TaskSpec spec;
    x->corpus = rv::lab::make_corpus(spec, rv_test::sanitizer_run() ? 800 : 6000, 1);
    const auto t0 = std::chrono::steady_clock::now();
    rv::lab::train_bpe_tokenizer(x->corpus, options(), x->dir.p);
    x->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    x->tok = std::make_unique<rv::Tokenizer>(rv::Tokenizer::load(x->dir.p));
    return x;
  }();
  return *t;
}

// A plain BPE encoder from tokenizer.json's vocab and merges: special tokens
// cut out first, pre-tokens by the Llama-3 pattern, then within each
// pre-token the adjacent pair of lowest merge rank is merged (leftmost first)
// until no pair has a rank.
class ReferenceBpe {
 public:
  explicit ReferenceBpe(const fs::path& dir) {
    const auto j = nlohmann::json::parse(slurp(dir / "tokenizer.json"));
    for (const auto& [k, v] : j["model"]["vocab"].items()) vocab_[k] = v.get<int32_t>();
    int rank = 0;
    for (const auto& m : j["model"]["merges"]) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      rank_[{s.substr(0, sp), s.substr(sp + 1)}] = rank++;
    }
    for (const auto& a : j["added_tokens"]) specials_[a["content"]] = a["id"].get<int32_t>();
  }

  std::vector<int32_t> encode(const std::string& text) const {
    std::vector<int32_t> ids;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t best = std::string::npos, len = 0;
      int32_t id = -1;
      for (const auto& [s, sid] : specials_) {
        const size_t at = text.find(s, pos);
        if (at != std::string::npos && (at < best || (at == best && s.size() > len))) {
          best = at;
          len = s.size();
          id = sid;
        }
      }
      const size_t stop = best == std::string::npos ? text.size() : best;
      const std::string_view section = std::string_view(text).substr(pos, stop - pos);
      for (size_t p = 0; p < section.size();) {
        const size_t e = rv::pretok::next_piece(rv::pretok::Pattern::kLlama3, section, p);
        word(section.substr(p, e - p), ids);
        p = e;
      }
      if (id >= 0) ids.push_back(id);
      pos = best == std::string::npos ? text.size() : best + len;
    }
    return ids;
  }

 private:
  void word(std::string_view bytes, std::vector<int32_t>& ids) const {
    std::vector<std::string> sym;
    for (char c : bytes) sym.push_back(rv::unicode::bytes_to_token_text(std::string(1, c)));
    for (;;) {
      int best = INT_MAX;
      size_t at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = rank_.find({sym[i], sym[i + 1]});
        if (it != rank_.end() && it->second < best) {
          best = it->second;
          at = i;
        }
      }
      if (best == INT_MAX) break;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + static_cast<long>(at) + 1);
    }
    for (const auto& s : sym) ids.push_back(vocab_.at(s));
  }

  std::map<std::string, int32_t> vocab_;
  std::map<std::pair<std::string, std::string>, int> rank_;
  std::map<std::string, int32_t> specials_;
};

TEST(LabBpe, WritesALoadableTokenizerWithTheRequestedVocabulary) {
  auto& t = trained();
  const rv::Tokenizer& tok = *t.tok;
  size_t bytes = 0;
  for (const auto& d : t.corpus) bytes += d.size();
  std::printf("[ lab bpe ] %zu docs, %.2f MB, trained in %.2f s\n", t.corpus.size(),
              static_cast<double>(bytes) / 1e6, t.seconds);
  EXPECT_EQ(tok.vocab_size(), 640);
  EXPECT_EQ(tok.merges().size(), 640u - 256 - 3);
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 637);
  EXPECT_EQ(tok.token_id("<|im_start|>"), 638);
  EXPECT_EQ(tok.token_id("<|im_end|>"), 639);
  EXPECT_TRUE(tok.is_special(639));
  EXPECT_EQ(tok.eos_id(), 639);
  EXPECT_EQ(tok.pad_id(), 637);
  EXPECT_FALSE(tok.bos_id().has_value());
  EXPECT_FALSE(tok.adds_bos());
  // The 256 bytes come first, in byte order.
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(tok.token_to_piece(b), std::string(1, static_cast<char>(b)));
  // Llama-3 digit groups: frequent numbers and words of the task are single tokens.
  for (const char* s : {" answer", "12", " apples", " The"})
    EXPECT_EQ(tok.encode(s).size(), 1u) << s;
}

TEST(LabBpe, RoundTripsTheCorpusAndEveryLabText) {
  auto& t = trained();
  auto texts = lab_texts(rv_test::sanitizer_run() ? 30 : 300);
  texts.insert(texts.end(), t.corpus.begin(), t.corpus.end());
  size_t tokens = 0, bytes = 0;
  for (const auto& x : texts) {
    const auto ids = t.tok->encode(x);
    tokens += ids.size();
    bytes += x.size();
    ASSERT_EQ(t.tok->decode(ids), x);
  }
  std::printf("[ lab bpe ] %.2f bytes per token over %zu texts\n",
              static_cast<double>(bytes) / static_cast<double>(tokens), texts.size());
  EXPECT_GT(static_cast<double>(bytes) / static_cast<double>(tokens), 2.5);
}

TEST(LabBpe, IdsEqualAReferenceBpeFromTheMerges) {
  auto& t = trained();
  const ReferenceBpe ref(t.dir.p);
  auto texts = lab_texts(rv_test::sanitizer_run() ? 20 : 200);
  const size_t n_docs = rv_test::sanitizer_run() ? 100 : t.corpus.size();
  texts.insert(texts.end(), t.corpus.begin(), t.corpus.begin() + static_cast<long>(n_docs));
  for (const auto& x : texts) ASSERT_EQ(t.tok->encode(x), ref.encode(x)) << x;
}

TEST(LabBpe, IdsEqualTransformersJs) {
  auto& t = trained();
  const fs::path oracle = RV_ORACLE_DIR;
  if (!fs::exists(oracle / "node_modules/@lenml/tokenizers"))
    FAIL() << "oracle packages missing in " << (oracle / "node_modules").string()
           << ": run scripts/install-oracles.sh (make test does)";
  if (std::system("node --version > /dev/null 2>&1") != 0)
    FAIL() << "node not found on PATH: the tokenizer oracle needs Node.js (make test installs it)";
  auto texts = lab_texts(rv_test::sanitizer_run() ? 10 : 60);
  for (size_t i = 0; i < t.corpus.size() && i < 300; ++i) texts.push_back(t.corpus[i]);
  const std::vector<nlohmann::json> chats = {
      nlohmann::json::array({{{"role", "user"}, {"content", "Tom has 3 apples."}}}),
      nlohmann::json::array({{{"role", "system"}, {"content", "Be brief."}},
                             {{"role", "user"}, {"content", "Sort 3, 1, 2."}},
                             {{"role", "assistant"}, {"content", "1, 2, 3"}},
                             {{"role", "user"}, {"content", "Again?"}}})};
  rv_test::TmpDir work("labbpe_js");
  std::string req;
  for (const auto& x : texts) req += nlohmann::json{{"op", "encode"}, {"text", x}}.dump() + "\n";
  for (const auto& c : chats) req += nlohmann::json{{"op", "chat"}, {"messages", c}}.dump() + "\n";
  std::ofstream(work.p / "in.jsonl", std::ios::binary) << req;
  const std::string cmd = "node '" + std::string(RV_SOURCE_DIR) + "/tests/lab/bpe_ref.mjs' '" +
                          (oracle / "node_modules").string() + "' '" + t.dir.p.string() + "' '" +
                          (work.p / "in.jsonl").string() + "' '" + (work.p / "out.jsonl").string() +
                          "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::istringstream out(slurp(work.p / "out.jsonl"));
  std::string line;
  const auto tmpl = rv::load_chat_template(t.dir.p);
  for (const auto& x : texts) {
    ASSERT_TRUE(std::getline(out, line));
    const auto ids = nlohmann::json::parse(line)["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(t.tok->encode(x), ids) << x;
  }
  for (const auto& c : chats) {
    ASSERT_TRUE(std::getline(out, line));
    rv::ChatTemplateInputs in;
    in.messages = c;
    in.add_generation_prompt = true;
    in.eos_token = tmpl.eos_token;
    EXPECT_EQ(rv::render_chat_template(tmpl.tmpl, in),
              nlohmann::json::parse(line)["text"].get<std::string>());
  }
}

TEST(LabBpe, ChatTemplateRendersChatMl) {
  auto& t = trained();
  const auto src = rv::load_chat_template(t.dir.p);
  EXPECT_EQ(src.eos_token, "<|im_end|>");
  EXPECT_EQ(src.bos_token, "");
  EXPECT_EQ(t.tok->chat_template(), src.tmpl);
  rv::ChatTemplateInputs in;
  in.messages = nlohmann::json::array({{{"role", "system"}, {"content", "S"}},
                                       {{"role", "user"}, {"content", "How many?"}},
                                       {{"role", "assistant"}, {"content", "The answer is 4."}},
                                       {{"role", "user"}, {"content", "Why?"}}});
  in.eos_token = src.eos_token;
  const std::string body =
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHow many?<|im_end|>\n"
      "<|im_start|>assistant\nThe answer is 4.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n";
  EXPECT_EQ(rv::render_chat_template(src.tmpl, in), body);
  in.add_generation_prompt = true;
  const std::string prompt = rv::render_chat_template(src.tmpl, in);
  EXPECT_EQ(prompt, body + "<|im_start|>assistant\n");
  // The markup encodes as the special tokens, never as text pieces.
  const auto ids = t.tok->encode(prompt);
  EXPECT_EQ(ids.front(), *t.tok->token_id("<|im_start|>"));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *t.tok->eos_id()), 4);
}

TEST(LabBpe, OutputBytesAreDeterministic) {
  auto& t = trained();
  rv_test::TmpDir again("labbpe_again");
  rv::lab::train_bpe_tokenizer(t.corpus, options(), again.p);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(slurp(t.dir.p / f) == slurp(again.p / f)) << f << " differs between two runs";
}

TEST(LabBpe, VocabularyTooSmallIsAOneLineError) {
  rv_test::TmpDir dir("labbpe_small");
  rv::lab::BpeOptions o;
  o.vocab_size = 258;
  try {
    rv::lab::train_bpe_tokenizer({"abc"}, o, dir.p);
    FAIL() << "no error";
  } catch (const rv::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "vocab_size: 258 is below the minimum 259 (256 bytes + 3 special tokens)");
  }
  EXPECT_FALSE(fs::exists(dir.p / "tokenizer.json"));
  o.vocab_size = 300;
  o.special_tokens = {"<|endoftext|>", "<|im_start|>"};
  try {
    rv::lab::train_bpe_tokenizer({"abc"}, o, dir.p);
    FAIL() << "no error";
  } catch (const rv::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("special_tokens: must contain <|im_end|>", 0), 0u)
        << e.what();
  }
}

TEST(LabBpe, SmallCorpusStopsWhenNothingIsLeftToMergeAndSpecialsAreNeverMerged) {
  rv_test::TmpDir dir("labbpe_tiny");
  rv::lab::BpeOptions o;
  o.special_tokens.push_back("<|extra|>");
  // "ab" twice per document, separated by specials: one merge (a, b) only;
  // nothing may merge across or into a special token.
  rv::lab::train_bpe_tokenizer({"ab<|endoftext|>ab<|im_end|>", "<|extra|>ab"}, o, dir.p);
  const auto tok = rv::Tokenizer::load(dir.p);
  EXPECT_EQ(tok.vocab_size(), 256 + 1 + 4);
  EXPECT_EQ(tok.merges(), (std::vector<std::pair<std::string, std::string>>{{"a", "b"}}));
  EXPECT_EQ(tok.token_id("<|extra|>"), 260);
  EXPECT_EQ(tok.encode("ab<|extra|>"), (std::vector<int32_t>{256, 260}));
}

TEST(LabBpe, TiesAreBrokenBySmallerPair) {
  rv_test::TmpDir dir("labbpe_ties");
  rv::lab::BpeOptions o;
  o.vocab_size = 256 + 1 + 3;
  // "xy" and "ab" both occur twice: (a, b) has the smaller ids and wins.
  rv::lab::train_bpe_tokenizer({"xy ab", "ab xy"}, o, dir.p);
  const auto tok = rv::Tokenizer::load(dir.p);
  ASSERT_EQ(tok.merges().size(), 1u);
  EXPECT_EQ(tok.merges()[0], (std::pair<std::string, std::string>{"a", "b"}));
}

}  // namespace
