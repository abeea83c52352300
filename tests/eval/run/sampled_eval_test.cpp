// Sampled evaluation (--n-samples K on any generative task), think-block
// handling, the length report, and reproducible sampling across backends:
//  - avg@K / pass@K / maj@K on hand-written GSM8K responses equal
//    hand-computed values; K = 1 runs get no sampled keys;
//  - the engine gives a (request, seed) the same text alone, in a batch, in
//    any order and after a resume from the cache;
//  - `reasonvec serve` answers n > 1 with choice j == the n = 1 answer for
//    seed + j, so the HTTP backend (one request with n = K, or K requests,
//    spread over two real loopback servers) reproduces the engine's samples;
//  - parameters a server refuses are dropped and reported.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "engine/engine.h"
#include "eval/backend/cache.h"
#include "eval/backend/engine.h"
#include "eval/backend/http.h"
#include "eval/run/results.h"
#include "eval/run/runner.h"
#include "eval/run/sampling.h"
#include "formats/synth.h"
#include "server/server.h"
#include "support/llamacpp_oracle.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace rv::eval;

namespace {

const fs::path kSampledData = fs::path(RV_SHARED_DIR) / "data";

fs::path sampled_tmpdir(const std::string& n) {
  fs::path p = fs::temp_directory_path() / ("rv_sampled_" + n + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<std::string> gsm8k_golds(size_t n) {
  std::vector<std::string> out;
  std::ifstream in(kSampledData / "gsm8k/test.jsonl");
  std::string line;
  while (out.size() < n && std::getline(in, line)) {
    std::string a = json::parse(line)["answer"];
    out.push_back(a.substr(a.rfind("#### ") + 5));
  }
  return out;
}

// Answers document d's sample k with script[d][k] ("G" = the gold answer,
// "" = no answer, else that number), finding d from the prompt's question
// and k from the seed (sample k uses doc_seed + k).
struct Scripted : Backend {
  std::vector<std::vector<std::string>> script;
  std::vector<std::string> golds;
  std::map<std::string, size_t> row_of;  // question -> row
  std::string wrap_prefix, wrap_suffix;  // around the answer text
  uint64_t seed = 1234;
  std::vector<GenRequest> seen;
  Scripted() {
    std::ifstream in(kSampledData / "gsm8k/test.jsonl");
    std::string line;
    size_t i = 0;
    while (std::getline(in, line)) row_of[json::parse(line)["question"]] = i++;
  }
  std::string fingerprint() const override { return "scripted-sampler"; }
  std::string describe() const override { return "scripted"; }
  void generate_stream(const std::vector<GenRequest>& reqs, const GenResultFn& f) override {
    for (size_t i = reqs.size(); i-- > 0;) {
      const GenRequest& r = reqs[i];
      seen.push_back(r);
      size_t p = r.prompt.rfind("Question: ") + 10;
      size_t row = row_of.at(r.prompt.substr(p, r.prompt.find("\nAnswer:", p) - p));
      uint64_t k = r.seed - doc_seed(seed, std::to_string(row));
      const std::string& a = script.at(row).at(k);
      std::string body = a.empty() ? "I do not know" : "#### " + (a == "G" ? golds[row] : a);
      GenResponse g;
      g.text = wrap_prefix + body + wrap_suffix;
      g.finish_reason = k == 0 ? "length" : "stop";
      g.completion_tokens = static_cast<int>(10 + k);
      f(i, g);
    }
  }
  void loglikelihood_stream(const std::vector<LoglikRequest>&, const LoglikResultFn&) override {
    FAIL() << "no log-likelihood requests expected";
  }
};

RunOptions gsm_options(int limit, int k) {
  RunOptions o;
  o.tasks = {"gsm8k"};
  o.task.data_dir = kSampledData;
  o.task.limit = limit;
  o.task.n_samples = k;
  return o;
}

// A task that only votes: answers are equivalent when equal ignoring case.
struct VoteTask : Task {
  std::string name() const override { return "vote"; }
  std::vector<std::string> data_files() const override { return {}; }
  json config(const TaskOptions&) const override { return {}; }
  std::vector<Instance> instances(const TaskOptions&, size_t*) const override { return {}; }
  SampleScore score(const Instance&, const std::vector<GenResponse>&,
                    const std::vector<LoglikResponse>&, const TaskOptions&) const override {
    return {};
  }
  std::vector<MetricInfo> metrics(const TaskOptions&) const override { return {}; }
  std::string primary_metric() const override { return "acc"; }
  bool answers_equivalent(const std::string& a, const std::string& b) const override {
    if (a.empty() || a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(a[i])) !=
          std::tolower(static_cast<unsigned char>(b[i])))
        return false;
    return true;
  }
};

}  // namespace

TEST(SampledEval, SplitThink) {
  auto s = split_think("<think>a #### 1</think>\n#### 2");
  EXPECT_TRUE(s.had_think);
  EXPECT_FALSE(s.unterminated);
  EXPECT_EQ(s.answer, "\n#### 2");
  s = split_think("reasoning</think>answer");  // template opened the block
  EXPECT_EQ(s.answer, "answer");
  s = split_think("<think>still thinking #### 3");
  EXPECT_TRUE(s.unterminated);
  EXPECT_EQ(s.answer, "");
  s = split_think("plain #### 4");
  EXPECT_FALSE(s.had_think || s.unterminated);
  EXPECT_EQ(s.answer, "plain #### 4");
}

TEST(SampledEval, MajorityVoteClustersWithTheTasksEquivalence) {
  VoteTask t;
  // Clusters: {a, A} first at 0, {b, b, B} first at 1: the larger wins.
  EXPECT_EQ(majority_vote(t, {"a", "b", "A", "b", "B"}), std::make_pair(1, 3));
  // Tie 2-2: the cluster whose first member came first.
  EXPECT_EQ(majority_vote(t, {"x", "y", "Y", "X"}), std::make_pair(0, 2));
  // Empty answers do not vote; none at all: no winner.
  EXPECT_EQ(majority_vote(t, {"", "", "z"}), std::make_pair(2, 1));
  EXPECT_EQ(majority_vote(t, {"", ""}), std::make_pair(-1, 0));
}

TEST(SampledEval, AvgPassMajOnHandWrittenGsm8kResponses) {
  Scripted b;
  b.golds = gsm8k_golds(5);
  b.script = {{"G", "G", "G", "G"},      // avg 1    pass 1  maj 1
              {"7", "G", "7", "G"},      // avg .5   pass 1  maj 0 (tie: "7" came first)
              {"", "G", "-2", "-2"},     // avg .25  pass 1  maj 0 (no answer does not vote)
              {"-1", "-1", "-2", "-3"},  // avg 0    pass 0  maj 0
              {"-1", "G", "G", "-2"}};   // avg .5   pass 1  maj 1
  RunOptions o = gsm_options(5, 4);
  RunResult r = run_eval(b, o);
  const TaskRun& t = r.tasks.at(0);
  const json& s = t.summary;
  EXPECT_DOUBLE_EQ(s["avg@4:exact_match,strict-match"].get<double>(), 2.25 / 5);
  EXPECT_DOUBLE_EQ(s["pass@4:exact_match,strict-match"].get<double>(), 4.0 / 5);
  EXPECT_DOUBLE_EQ(s["maj@4:exact_match,strict-match"].get<double>(), 2.0 / 5);
  // The plain key is the first sample's.
  EXPECT_DOUBLE_EQ(s["exact_match,strict-match"].get<double>(), 1.0 / 5);
  // stderr over per-document averages (5 documents, not 20 samples).
  std::vector<double> per_doc = {1, .5, .25, 0, .5};
  double m = 0.45, ss = 0;
  for (double v : per_doc) ss += (v - m) * (v - m);
  EXPECT_NEAR(s["avg@4:exact_match_stderr,strict-match"].get<double>(),
              std::sqrt(ss / 4) / std::sqrt(5.0), 1e-12);
  for (size_t i = 0; i < t.scores.size(); ++i) {
    const auto& mm = t.scores[i].metrics;
    EXPECT_GE(mm.at("pass@4:exact_match,strict-match"), mm.at("avg@4:exact_match,strict-match"));
  }
  // Sampling reached the backend: K = 4 requests per document, sampled
  // (greedy task -> default temperature), seeds doc_seed + k, distinct per document.
  ASSERT_EQ(b.seen.size(), 20u);
  std::set<uint64_t> seeds;
  for (const auto& q : b.seen) {
    EXPECT_EQ(q.temperature, kDefaultSampledTemperature);
    seeds.insert(q.seed);
  }
  EXPECT_EQ(seeds.size(), 20u);
  EXPECT_EQ(t.config["generation_overrides"]["n_samples"], 4);

  // Samples file: per-sample scores and the vote.
  json line = sample_json(t, 1);
  ASSERT_EQ(line["samples"].size(), 4u);
  EXPECT_EQ(line["samples"][0]["extracted"], "7");
  EXPECT_EQ(line["samples"][1]["correct"], true);
  EXPECT_EQ(line["samples"][1]["completion_tokens"], 11);
  EXPECT_EQ(line["majority"]["answer"], "7");
  EXPECT_EQ(line["majority"]["votes"], 2);
  EXPECT_EQ(line["majority"]["correct"], false);
  EXPECT_DOUBLE_EQ(line["metrics"]["avg@4:exact_match,strict-match"].get<double>(), 0.5);

  // results.json / results.md: the sampled keys side by side.
  json res = results_json(r);
  EXPECT_TRUE(res["results"]["gsm8k"].contains("maj@4:exact_match,strict-match"));
  std::string md = results_markdown(res);
  EXPECT_NE(
      md.find("| gsm8k | 4 | exact_match | strict-match | 0.2000 | 0.4500 | 0.8000 | 0.4000 |"),
      std::string::npos)
      << md;
  // Length report: 20 responses, tokens 10..13, sample 0 of each cut.
  const json& g = res["generation"]["gsm8k"];
  EXPECT_EQ(g["responses"], 20);
  EXPECT_DOUBLE_EQ(g["mean_completion_tokens"].get<double>(), 11.5);
  EXPECT_EQ(g["max_completion_tokens"], 13);
  EXPECT_EQ(g["cut_by_length"], 5);
  EXPECT_DOUBLE_EQ(g["cut_by_length_share"].get<double>(), 0.25);
}

TEST(SampledEval, SingleSampleRunsHaveNoSampledKeys) {
  Scripted b;
  b.golds = gsm8k_golds(3);
  b.script = {{"G"}, {"7"}, {"G"}};
  RunResult r = run_eval(b, gsm_options(3, 1));
  const TaskRun& t = r.tasks.at(0);
  for (const auto& [k, v] : t.summary.items()) EXPECT_EQ(k.find(':'), std::string::npos) << k;
  EXPECT_FALSE(t.config.contains("generation_overrides"));
  EXPECT_EQ(b.seen.at(0).temperature, 0.0f);
  json line = sample_json(t, 0);
  EXPECT_FALSE(line.contains("samples"));
  EXPECT_FALSE(line.contains("think"));
}

TEST(SampledEval, ThinkStripScoresOnlyTheAnswerAndCountsUnterminated) {
  Scripted b;
  b.golds = gsm8k_golds(2);
  b.script = {{"G"}, {"G"}};
  b.wrap_prefix = "<think>maybe #### -9</think>\n";
  RunResult r = run_eval(b, gsm_options(2, 1));
  EXPECT_DOUBLE_EQ(r.tasks[0].summary["exact_match,strict-match"].get<double>(), 1.0);
  EXPECT_EQ(sample_json(r.tasks[0], 0)["think"], "stripped");
  // The output in the samples file stays the whole response.
  EXPECT_EQ(sample_json(r.tasks[0], 0)["output"].get<std::string>().rfind("<think>", 0), 0u);

  RunOptions keep = gsm_options(2, 1);
  keep.task.strip_think = false;  // strict-match now takes the first "#### -9"
  b.seen.clear();
  r = run_eval(b, keep);
  EXPECT_DOUBLE_EQ(r.tasks[0].summary["exact_match,strict-match"].get<double>(), 0.0);
  EXPECT_EQ(r.config["think"], "keep");

  b.wrap_prefix = "<think>still going ";  // never closed: no answer
  r = run_eval(b, gsm_options(2, 1));
  EXPECT_DOUBLE_EQ(r.tasks[0].summary["exact_match,strict-match"].get<double>(), 0.0);
  EXPECT_EQ(r.tasks[0].generation["think_unterminated"], 2);
  EXPECT_EQ(sample_json(r.tasks[0], 1)["think"], "unterminated");
}

// ---------------------------------------------------------------------------
// Real model: engine, cache and our server.

namespace {

struct Model {
  fs::path dir, model;
  std::shared_ptr<rv::engine::Engine> eng;
  Model() {
    dir = sampled_tmpdir("model");
    model = dir / "tiny-qwen";
    rv::SynthOptions o;
    o.arch = "qwen2";
    o.init_scale = 0.2f;
    o.seed = 11;
    o.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
    rv::synth_model(o, model, true);
    rv::engine::EngineOptions eo;
    eo.max_batch = 16;
    eo.max_context = 2048;
    eng = rv::engine::Engine::open(model, eo);
  }
  ~Model() { fs::remove_all(dir); }
};

Model& model() {
  static Model m;
  return m;
}

// Counts the generations a server hands to the engine.
class CountingEngine : public rv::engine::Engine {
 public:
  explicit CountingEngine(rv::engine::Engine& e) : e_(e) {}
  std::atomic<int> generations{0};
  const rv::Tokenizer& tokenizer() const override { return e_.tokenizer(); }
  std::string model_name() const override { return e_.model_name(); }
  int vocab_size() const override { return e_.vocab_size(); }
  int max_context() const override { return e_.max_context(); }
  std::future<rv::engine::GenerationResult> submit_generate(std::vector<int32_t> prompt,
                                                            rv::engine::SamplingParams p,
                                                            rv::engine::TextCallback cb) override {
    ++generations;
    return e_.submit_generate(std::move(prompt), std::move(p), std::move(cb));
  }
  std::future<rv::engine::LoglikelihoodResult> submit_loglikelihood(
      std::vector<int32_t> c, std::vector<int32_t> k) override {
    return e_.submit_loglikelihood(std::move(c), std::move(k));
  }
  std::future<rv::engine::SequenceScores> submit_score(std::vector<int32_t> t, int k) override {
    return e_.submit_score(std::move(t), k);
  }

 private:
  rv::engine::Engine& e_;
};

// `reasonvec serve`'s server in this process on a free loopback port.
struct LoopbackServer {
  CountingEngine eng;
  rv::server::Server srv;
  int port = 0;
  std::thread th;
  explicit LoopbackServer(rv::engine::Engine& e) : eng(e), srv(eng, opts()) {
    port = srv.bind();
    th = std::thread([this] { srv.run(); });
  }
  ~LoopbackServer() {
    srv.stop();
    th.join();
  }
  static rv::server::ServerOptions opts() {
    rv::server::ServerOptions o;
    o.port = 0;
    o.served_model_name = "tiny";
    return o;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/v1"; }
};

std::vector<GenRequest> sampled_requests(bool chat) {
  std::vector<GenRequest> out;
  const char* prompts[] = {"The capital of France is", "1 + 1 =", "Once upon a time"};
  uint64_t base = 1000;
  for (const char* p : prompts) {
    for (int k = 0; k < 3; ++k) {
      GenRequest r;
      if (chat) {
        r.chat = true;
        r.messages = {{"user", p}};
      } else {
        r.prompt = p;
      }
      r.max_tokens = 12;
      r.temperature = 1.0f;
      r.top_k = 40;
      r.min_p = 0.02f;
      r.seed = base + static_cast<uint64_t>(k);
      out.push_back(r);
    }
    base += 7919;
  }
  return out;
}

std::vector<std::string> texts(const std::vector<GenResponse>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.text);
  return out;
}

}  // namespace

TEST(SampledEval, EngineSamplesDependOnlyOnRequestAndSeed) {
  EngineBackend b(model().eng, model().model);
  auto reqs = sampled_requests(false);
  auto batch = b.generate(reqs, nullptr);
  std::vector<std::string> alone, reversed(reqs.size());
  for (const auto& r : reqs) alone.push_back(b.generate({r}, nullptr).at(0).text);
  std::vector<GenRequest> rev(reqs.rbegin(), reqs.rend());
  auto rb = b.generate(rev, nullptr);
  for (size_t i = 0; i < reqs.size(); ++i) reversed[reqs.size() - 1 - i] = rb[i].text;
  EXPECT_EQ(texts(batch), alone);
  EXPECT_EQ(texts(batch), reversed);
  // Different seeds of one prompt do differ somewhere (sampling is live).
  std::set<std::string> distinct(alone.begin(), alone.end());
  EXPECT_GT(distinct.size(), 3u);
  for (const auto& r : batch) {
    EXPECT_GE(r.completion_tokens, 1);
    EXPECT_LE(r.completion_tokens, 12);
  }
}

TEST(SampledEval, ResumedRunReproducesEverySample) {
  EngineBackend b(model().eng, model().model);
  fs::path d = sampled_tmpdir("resume");
  RunOptions o = gsm_options(2, 3);
  o.task.max_gen_toks = 6;
  o.task.num_fewshot = 1;
  RunResult ref = run_eval(b, o);  // no cache
  // With a cache: document 0 first, then both (document 1 from scratch,
  // document 0 from the cache).
  o.cache_path = d / "cache.sqlite";
  o.task.limit = 1;
  run_eval(b, o);
  o.task.limit = 2;
  RunResult resumed = run_eval(b, o);
  EXPECT_EQ(resumed.cache_hits, 3u);
  EXPECT_EQ(resumed.cache_misses, 3u);
  for (size_t i = 0; i < 2; ++i)
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(resumed.tasks[0].gens[i][k].text, ref.tasks[0].gens[i][k].text) << i << "/" << k;
      EXPECT_EQ(resumed.tasks[0].gens[i][k].completion_tokens,
                ref.tasks[0].gens[i][k].completion_tokens);
    }
  fs::remove_all(d);
}

TEST(SampledEval, ServerChoicesAreSeedPlusIndexOnBothEndpoints) {
  LoopbackServer s(*model().eng);
  httplib::Client cli("127.0.0.1", s.port);
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    const bool chat = std::string(path).find("chat") != std::string::npos;
    json body = {{"max_tokens", 10}, {"temperature", 1.0}, {"top_k", 40}, {"min_p", 0.02}};
    if (chat)
      body["messages"] = json::array({{{"role", "user"}, {"content", "Tell me a story"}}});
    else
      body["prompt"] = "Tell me a story";
    auto text_of = [&](const json& c) {
      return chat ? c["message"]["content"].get<std::string>() : c["text"].get<std::string>();
    };
    json bn = body;
    bn["n"] = 3;
    bn["seed"] = 77;
    auto res = cli.Post(path, bn.dump(), "application/json");
    ASSERT_TRUE(res) << path;
    ASSERT_EQ(res->status, 200) << res->body;
    json j = json::parse(res->body);
    ASSERT_EQ(j["choices"].size(), 3u);
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(j["choices"][k]["index"], k);
      json b1 = body;
      b1["seed"] = 77 + k;
      auto r1 = cli.Post(path, b1.dump(), "application/json");
      ASSERT_TRUE(r1 && r1->status == 200);
      EXPECT_EQ(text_of(j["choices"][k]), text_of(json::parse(r1->body)["choices"][0]))
          << path << " choice " << k;
    }
  }
}

TEST(SampledEval, HttpOverTwoServersReproducesTheEngine) {
  EngineBackend eb(model().eng, model().model);
  LoopbackServer s1(*model().eng), s2(*model().eng);
  for (bool chat : {false, true}) {
    auto reqs = sampled_requests(chat);
    if (chat)
      for (auto& r : reqs) r.chat_template_kwargs = R"({"enable_thinking":false})";
    auto want = eb.generate(reqs, nullptr);
    for (bool use_n : {true, false}) {
      HttpOptions h;
      h.base_urls = {s1.url(), s2.url()};
      h.model = "tiny";
      h.concurrency = 2;
      h.use_n = use_n;
      HttpBackend hb(h);
      EXPECT_EQ(hb.fingerprint(), "openai|" + s1.url().substr(0, s1.url().size()) + "|tiny");
      int before1 = s1.eng.generations, before2 = s2.eng.generations;
      auto got = hb.generate(reqs, nullptr);
      EXPECT_EQ(texts(got), texts(want)) << "chat " << chat << " use_n " << use_n;
      EXPECT_GT(s1.eng.generations - before1, 0);
      EXPECT_GT(s2.eng.generations - before2, 0);
      EXPECT_TRUE(hb.unsent_parameters().empty());
      for (size_t i = 0; i < got.size() && !use_n; ++i)
        EXPECT_EQ(got[i].completion_tokens, want[i].completion_tokens);
    }
  }
}

// `reasonvec serve` reports each choice's completion_tokens next to the
// usage totals, so an n > 1 request's length report is exact: the HTTP
// backend's counts equal the engine's even when a document's samples differ
// in length (stop strings cut them).
TEST(SampledEval, ServerPerChoiceTokenCountsMakeTheLengthReportExact) {
  EngineBackend eb(model().eng, model().model);
  LoopbackServer s(*model().eng);
  auto reqs = sampled_requests(false);
  for (auto& r : reqs) r.stop = {"e", "a", "o"};
  auto want = eb.generate(reqs, nullptr);
  bool uneven = false;  // some document's samples differ in length
  for (size_t d = 0; d < reqs.size(); d += 3)
    uneven |= want[d].completion_tokens != want[d + 1].completion_tokens ||
              want[d].completion_tokens != want[d + 2].completion_tokens;
  ASSERT_TRUE(uneven) << "the test needs samples of different lengths";

  // The raw response: per-choice counts that add up to usage.
  httplib::Client cli("127.0.0.1", s.port);
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    json body = {{"max_tokens", 12},
                 {"temperature", 1.0},
                 {"seed", 1000},
                 {"n", 3},
                 {"stop", {"e", "a", "o"}}};
    if (std::string(path).find("chat") != std::string::npos)
      body["messages"] = json::array({{{"role", "user"}, {"content", "Once upon a time"}}});
    else
      body["prompt"] = "Once upon a time";
    auto res = cli.Post(path, body.dump(), "application/json");
    ASSERT_TRUE(res && res->status == 200) << path;
    json j = json::parse(res->body);
    int sum = 0;
    for (const auto& c : j["choices"]) sum += c.at("completion_tokens").get<int>();
    EXPECT_EQ(sum, j["usage"]["completion_tokens"]) << path;
  }

  HttpOptions h;
  h.base_url = s.url();
  h.model = "tiny";
  h.concurrency = 2;
  h.use_n = true;
  HttpBackend hb(h);
  auto got = hb.generate(reqs, nullptr);
  ASSERT_EQ(texts(got), texts(want));
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i].completion_tokens, want[i].completion_tokens) << i;
}

// A server without per-choice counts: usage is divided evenly (remainder to
// the first choices); vLLM's per-choice token_ids are counted when present.
TEST(SampledEval, HttpSplitsUsageEvenlyWithoutPerChoiceCounts) {
  httplib::Server srv;
  srv.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    json b = json::parse(req.body);
    json choices = json::array();
    for (int k = 0; k < b.value("n", 1); ++k) {
      json c = {{"index", k}, {"text", "x"}, {"finish_reason", "stop"}};
      if (b["prompt"] == "ids") c["token_ids"] = std::vector<int>(size_t(k) + 1, 7);
      choices.push_back(c);
    }
    res.set_content(json({{"choices", choices}, {"usage", {{"completion_tokens", 7}}}}).dump(),
                    "application/json");
  });
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread th([&] { srv.listen_after_bind(); });
  HttpOptions h;
  h.base_url = "http://127.0.0.1:" + std::to_string(port);
  h.model = "m";
  h.concurrency = 1;
  h.use_n = true;
  HttpBackend hb(h);
  for (const char* prompt : {"plain", "ids"}) {
    std::vector<GenRequest> reqs(3);
    for (int k = 0; k < 3; ++k) {
      reqs[k].prompt = prompt;
      reqs[k].temperature = 0.7f;
      reqs[k].seed = 40 + k;
    }
    auto got = hb.generate(reqs, nullptr);
    ASSERT_EQ(got.size(), 3u);
    const std::vector<int> expect =
        std::string(prompt) == "ids" ? std::vector<int>{1, 2, 3} : std::vector<int>{3, 2, 2};
    for (int k = 0; k < 3; ++k) EXPECT_EQ(got[k].completion_tokens, expect[size_t(k)]) << prompt;
  }
  srv.stop();
  th.join();
}

TEST(SampledEval, HttpDropsRefusedParametersAndFallsBackFromN) {
  httplib::Server srv;
  std::atomic<int> posts{0};
  srv.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    ++posts;
    json b = json::parse(req.body);
    if (b.contains("top_k")) {
      res.status = 400;
      res.set_content(R"({"error": {"message": "Unsupported parameter: top_k", "param": null}})",
                      "application/json");
      return;
    }
    if (b.value("n", 1) > 1) {
      res.status = 400;
      res.set_content(R"({"error": {"message": "Only one completion choice is allowed"}})",
                      "application/json");
      return;
    }
    json out = {{"choices", json::array({{{"index", 0},
                                          {"text", "seed " + std::to_string(b["seed"].get<int>())},
                                          {"finish_reason", "length"}}})},
                {"usage", {{"completion_tokens", 5}}}};
    res.set_content(out.dump(), "application/json");
  });
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread th([&] { srv.listen_after_bind(); });
  HttpOptions h;
  h.base_url = "http://127.0.0.1:" + std::to_string(port);
  h.model = "m";
  h.concurrency = 1;
  HttpBackend hb(h);
  std::vector<GenRequest> reqs(3);
  for (int k = 0; k < 3; ++k) {
    reqs[k].prompt = "p";
    reqs[k].temperature = 0.7f;
    reqs[k].top_k = 20;
    reqs[k].seed = 40 + k;
  }
  auto got = hb.generate(reqs, nullptr);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(got[k].text, "seed " + std::to_string(40 + k));
    EXPECT_EQ(got[k].completion_tokens, 5);
  }
  auto unsent = hb.unsent_parameters();
  ASSERT_EQ(unsent.size(), 2u);
  EXPECT_EQ(unsent[0], "top_k");
  EXPECT_EQ(unsent[1].rfind("n ", 0), 0u);
  srv.stop();
  th.join();
}

TEST(SampledEval, CacheKeepsTokenCountsAndReadsOldEntries) {
  GenResponse g;
  g.text = "x";
  g.finish_reason = "length";
  g.completion_tokens = 42;
  EXPECT_EQ(decode_gen_response(encode_response(g)).completion_tokens, 42);
  // Written before the field existed: unknown, not 0.
  GenResponse old = decode_gen_response(R"({"text": "y", "finish_reason": "stop"})");
  EXPECT_EQ(old.text, "y");
  EXPECT_EQ(old.completion_tokens, -1);
  // New sampling fields key the cache only when set.
  GenRequest a;
  a.prompt = "p";
  a.temperature = 0.5f;
  const std::string h = request_hash(a);
  GenRequest b = a;
  b.top_k = 20;
  EXPECT_NE(request_hash(b), h);
  b = a;
  b.min_p = 0.1f;
  EXPECT_NE(request_hash(b), h);
  b = a;
  b.seed = 1;
  EXPECT_NE(request_hash(b), h);
  b = a;
  b.chat_template_kwargs = R"({"enable_thinking":false})";  // raw prompt: no template
  EXPECT_EQ(request_hash(b), h);
}
