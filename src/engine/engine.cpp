// Engine: a Model plus a scheduler thread doing continuous batching.
//
// Every step the scheduler builds one batch from all active requests:
// first one token for each generating sequence, then as many prompt tokens of
// prefilling requests as fit in kStepTokens (chunked prefill), keeping at
// most kStepLogitRows rows of logits. After the forward it turns each
// request's logits rows into samples / log-probabilities (in parallel), then
// updates text, stop conditions and futures (serially). Finished requests
// leave and queued ones join between steps.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "engine/sampling.h"
#include "engine/thread_pool.h"
#include "tokenizer/tokenizer.h"

namespace rv::engine {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kStepTokens = 512;     // tokens per forward: bounds prefill stalls of decoders
constexpr int kStepLogitRows = 256;  // logits rows per forward: rows x vocab x 4 bytes

enum class Kind { kGenerate, kLoglik, kScore };

struct Request {
  Kind kind = Kind::kGenerate;
  std::vector<int32_t> tokens;  // everything to prefill (loglik: context + continuation)
  int n_ctx = 0;                // loglik: length of the context part
  int top_k = 0;                // score: alternatives per position
  SamplingParams params;
  TextCallback on_text;
  std::promise<GenerationResult> gen_promise;
  std::promise<LoglikelihoodResult> ll_promise;
  std::promise<SequenceScores> score_promise;

  // Scheduler state.
  int slot = -1;
  int n_past = 0;  // positions whose K/V are cached
  bool prefilled = false, done = false;
  int32_t next = -1;  // generate: last sampled token, fed at position n_past
  std::unique_ptr<Rng> rng;
  std::unique_ptr<IncrementalDecoder> dec;
  std::vector<int32_t> stop_ids;
  std::vector<std::string> stop_strings;
  size_t max_stop_len = 0;
  std::string text;
  size_t emitted = 0;  // bytes of text already passed to on_text
  GenerationResult gen;
  LoglikelihoodResult ll;
  SequenceScores sc;
  Clock::time_point t_start, t_first;
  // This step's logits rows: [row_begin, row_begin + row_count), the first
  // one at sequence position row_pos.
  int row_begin = 0, row_count = 0, row_pos = 0;

  void fail(std::exception_ptr e) {
    if (done) return;
    done = true;
    if (kind == Kind::kGenerate) gen_promise.set_exception(e);
    if (kind == Kind::kLoglik) ll_promise.set_exception(e);
    if (kind == Kind::kScore) score_promise.set_exception(e);
  }

  // Position `pos` (a token fed to the model) needs next-token logits.
  bool wants_logits(int pos) const {
    const int T = static_cast<int>(tokens.size());
    switch (kind) {
      case Kind::kGenerate:
        return pos == T - 1;
      case Kind::kLoglik:
        return pos >= n_ctx - 1 && pos <= T - 2;
      case Kind::kScore:
        return pos <= T - 2;
    }
    return false;
  }
};

// Per-row outputs of the parallel part of a step.
struct RowOut {
  int32_t sampled = -1;
  double logprob = 0;
  bool greedy = false;
  std::vector<TopLogprob> top;
  std::exception_ptr error;
};

template <class T>
std::future<T> failed_future(const std::string& msg) {
  std::promise<T> p;
  p.set_exception(std::make_exception_ptr(Error(msg)));
  return p.get_future();
}

class EngineImpl final : public Engine {
 public:
  EngineImpl(const std::filesystem::path& path, const EngineOptions& opt)
      : tok_(Tokenizer::load(path)), name_(path.filename().string()) {
    if (name_.empty()) name_ = path.parent_path().filename().string();
    model_ = Model::load(path, model_options(opt));
    start(opt);
  }

  // A variant: `base`'s tokenizer and mapped weights, opt.vectors applied.
  EngineImpl(const EngineImpl& base, const EngineOptions& opt)
      : tok_(base.tok_), name_(base.name_) {
    model_ = base.model_->variant(model_options(opt));
    start(opt);
  }

  static ModelOptions model_options(const EngineOptions& opt) {
    ModelOptions mo;
    mo.threads = opt.threads;
    mo.vectors = opt.vectors;
    mo.log = opt.log;
    mo.copy_weights = opt.copy_weights;
    return mo;
  }

  void start(const EngineOptions& opt) {
    if (opt.max_batch <= 0) throw Error("engine: max_batch must be positive");
    if (opt.max_context <= 0) throw Error("engine: max_context must be positive");
    max_context_ = opt.max_context;
    if (model_->spec().max_position > 0)
      max_context_ = std::min(max_context_, model_->spec().max_position);
    kv_ = std::make_unique<KVCache>(model_->spec(), opt.max_batch, max_context_, opt.kv_bf16);
    for (int s = opt.max_batch - 1; s >= 0; --s) free_slots_.push_back(s);
    vocab_ = model_->spec().vocab;
    // Ids past the tokenizer's range are padding rows of the embedding:
    // never sampled (they have no text), but kept in the normalisation.
    sample_vocab_ = std::min(vocab_, static_cast<int>(tok_.vocab_size()));
    eos_ids_ = tok_.stop_ids();
    scheduler_ = std::thread([this] { loop(); });
  }

  ~EngineImpl() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    scheduler_.join();
  }

  std::unique_ptr<Engine> variant(const EngineOptions& opt) const override {
    return std::make_unique<EngineImpl>(*this, opt);
  }

  const Tokenizer& tokenizer() const override { return tok_; }
  std::string model_name() const override { return name_; }
  int vocab_size() const override { return vocab_; }
  int max_context() const override { return max_context_; }
  uint64_t kv_cache_bytes() const override { return kv_->bytes(); }
  std::string numerics() const override {
    std::string r = kv_->bf16() ? "kv-bf16" : "";
    // The AVX-512 BF16 kernel rounds activations to bf16, but only for bf16
    // matrices: f32/f16 models give AVX2's numbers and may share its cache.
    if (kern::isa() == kern::Isa::kAvx512Bf16 && model_->has_bf16_matrices())
      r += r.empty() ? "avx512bf16" : ",avx512bf16";
    return r;
  }

  std::future<GenerationResult> submit_generate(std::vector<int32_t> prompt, SamplingParams p,
                                                TextCallback on_text) override {
    if (prompt.empty()) return failed_future<GenerationResult>("engine: empty prompt");
    if (auto e = check_ids(prompt); !e.empty()) return failed_future<GenerationResult>(e);
    if (static_cast<int>(prompt.size()) > max_context_)
      return failed_future<GenerationResult>("engine: prompt of " + std::to_string(prompt.size()) +
                                             " tokens exceeds the context size " +
                                             std::to_string(max_context_));
    if (!(p.temperature >= 0) || !(p.top_p > 0 && p.top_p <= 1) ||
        !(p.min_p >= 0 && p.min_p <= 1) || p.top_k < 0 || p.logprobs < 0)
      return failed_future<GenerationResult>(
          "engine: bad sampling parameters (need temperature >= 0, 0 < top_p <= 1, 0 <= min_p <= "
          "1, "
          "top_k >= 0)");
    auto r = std::make_unique<Request>();
    r->kind = Kind::kGenerate;
    r->tokens = std::move(prompt);
    r->params = std::move(p);
    r->on_text = std::move(on_text);
    r->rng = std::make_unique<Rng>(r->params.seed);
    r->dec = std::make_unique<IncrementalDecoder>(tok_, true);
    r->stop_ids = r->params.stop_ids;
    if (!r->params.ignore_eos)
      r->stop_ids.insert(r->stop_ids.end(), eos_ids_.begin(), eos_ids_.end());
    for (const auto& s : r->params.stop_strings)
      if (!s.empty()) {
        r->stop_strings.push_back(s);
        r->max_stop_len = std::max(r->max_stop_len, s.size());
      }
    r->gen.prompt_tokens = static_cast<int>(r->tokens.size());
    auto f = r->gen_promise.get_future();
    if (r->params.max_tokens <= 0) {
      r->gen.finish_reason = "length";
      r->gen_promise.set_value(std::move(r->gen));
      return f;
    }
    enqueue(std::move(r));
    return f;
  }

  std::future<LoglikelihoodResult> submit_loglikelihood(
      std::vector<int32_t> context, std::vector<int32_t> continuation) override {
    if (continuation.empty())
      return failed_future<LoglikelihoodResult>("engine: empty continuation");
    if (context.empty()) {
      if (!tok_.bos_id())
        return failed_future<LoglikelihoodResult>(
            "engine: empty context and the tokenizer has no BOS token to condition on");
      context.push_back(*tok_.bos_id());
    }
    auto r = std::make_unique<Request>();
    r->kind = Kind::kLoglik;
    r->n_ctx = static_cast<int>(context.size());
    r->tokens = std::move(context);
    r->tokens.insert(r->tokens.end(), continuation.begin(), continuation.end());
    if (auto e = check_ids(r->tokens); !e.empty()) return failed_future<LoglikelihoodResult>(e);
    if (static_cast<int>(r->tokens.size()) > max_context_)
      return failed_future<LoglikelihoodResult>(
          "engine: context + continuation of " + std::to_string(r->tokens.size()) +
          " tokens exceeds the context size " + std::to_string(max_context_));
    auto f = r->ll_promise.get_future();
    enqueue(std::move(r));
    return f;
  }

  std::future<SequenceScores> submit_score(std::vector<int32_t> tokens, int top_k) override {
    if (tokens.empty()) return failed_future<SequenceScores>("engine: empty token sequence");
    if (top_k < 0) return failed_future<SequenceScores>("engine: top_k must be >= 0");
    if (auto e = check_ids(tokens); !e.empty()) return failed_future<SequenceScores>(e);
    if (static_cast<int>(tokens.size()) > max_context_)
      return failed_future<SequenceScores>("engine: sequence of " + std::to_string(tokens.size()) +
                                           " tokens exceeds the context size " +
                                           std::to_string(max_context_));
    auto r = std::make_unique<Request>();
    r->kind = Kind::kScore;
    r->tokens = std::move(tokens);
    r->top_k = top_k;
    r->sc.token_logprobs.assign(1, std::numeric_limits<double>::quiet_NaN());
    r->sc.top_logprobs.assign(1, {});
    auto f = r->score_promise.get_future();
    if (r->tokens.size() == 1) {  // nothing to score
      r->score_promise.set_value(std::move(r->sc));
      return f;
    }
    enqueue(std::move(r));
    return f;
  }

  void cancel_all() override {
    std::deque<std::unique_ptr<Request>> q;
    {
      std::lock_guard<std::mutex> l(mu_);
      q.swap(queue_);
      cancel_ = true;
    }
    cv_.notify_all();
    for (auto& r : q) r->fail(std::make_exception_ptr(Error("engine: cancelled")));
  }

 private:
  std::string check_ids(const std::vector<int32_t>& ids) const {
    for (int32_t id : ids)
      if (id < 0 || id >= vocab_)
        return "engine: token id " + std::to_string(id) + " outside the vocabulary (0.." +
               std::to_string(vocab_ - 1) + ")";
    return "";
  }

  void enqueue(std::unique_ptr<Request> r) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(std::move(r));
    }
    cv_.notify_all();
  }

  void loop() {
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || cancel_ || !queue_.empty() || !active_.empty(); });
        if (cancel_) {
          cancel_ = false;
          for (auto& r : active_) {
            r->fail(std::make_exception_ptr(Error("engine: cancelled")));
            release(*r);
          }
          active_.clear();
        }
        if (stop_ && queue_.empty() && active_.empty()) return;
        while (!queue_.empty() && !free_slots_.empty()) {
          auto r = std::move(queue_.front());
          queue_.pop_front();
          r->slot = free_slots_.back();
          free_slots_.pop_back();
          r->t_start = Clock::now();
          active_.push_back(std::move(r));
        }
      }
      if (active_.empty()) continue;
      try {
        step();
      } catch (...) {
        // A failure of the forward pass itself: fail everything in the batch.
        for (auto& r : active_) r->fail(std::current_exception());
      }
      // Retire finished requests and hand their slots back.
      std::lock_guard<std::mutex> l(mu_);
      for (auto& r : active_)
        if (r->done) release(*r);
      active_.erase(std::remove_if(active_.begin(), active_.end(), [](auto& r) { return r->done; }),
                    active_.end());
    }
  }

  void release(Request& r) {
    if (r.slot < 0) return;
    kv_->release(r.slot);
    free_slots_.push_back(r.slot);
    r.slot = -1;
  }

  void step() {
    batch_.clear();
    int rows = 0;
    for (auto& r : active_) {
      r->row_count = 0;
      if (r->kind == Kind::kGenerate && r->prefilled) {
        r->row_begin = rows++;
        r->row_count = 1;
        r->row_pos = r->n_past;
        batch_.push_back({r->next, r->slot, r->n_past++, true});
      }
    }
    int budget = std::max(kStepTokens - static_cast<int>(batch_.size()), 64);
    for (auto& r : active_) {
      if (r->prefilled || budget <= 0) continue;
      const int T = static_cast<int>(r->tokens.size());
      r->row_begin = rows;
      r->row_pos = -1;
      while (r->n_past < T && budget > 0) {
        const int pos = r->n_past;
        const bool want = r->wants_logits(pos);
        if (want && rows >= kStepLogitRows) break;
        if (want) {
          if (r->row_pos < 0) r->row_pos = pos;
          ++rows;
          ++r->row_count;
        }
        batch_.push_back({r->tokens[pos], r->slot, pos, want});
        ++r->n_past;
        --budget;
      }
      if (r->n_past == T) r->prefilled = true;
    }
    // Grown, never shrunk: regrowing a vector zero-fills it, which cost
    // more than the LM head when steps alternate between many and few rows.
    if (logits_.size() < static_cast<size_t>(rows) * vocab_)
      logits_.resize(static_cast<size_t>(rows) * vocab_);
    model_->forward(batch_, *kv_, logits_.data());

    // Parallel part: per logits row, what the request needs from it.
    std::vector<std::pair<Request*, int>> work;  // (request, row offset within it)
    for (auto& r : active_)
      for (int i = 0; i < r->row_count; ++i) work.push_back({r.get(), i});
    outs_.assign(work.size(), RowOut{});
    model_->pool().for_range(static_cast<int64_t>(work.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t w = b; w < e; ++w) {
        Request& r = *work[w].first;
        const int i = work[w].second;
        const float* row = logits_.data() + static_cast<size_t>(r.row_begin + i) * vocab_;
        RowOut& o = outs_[r.row_begin + i];
        try {
          // One argmax and one exp pass per row serve the logprob, the
          // greedy flag and the alternatives.
          if (r.kind == Kind::kGenerate) {
            o.sampled = sample_token(row, sample_vocab_, r.params, *r.rng);
            const double lse = log_sum_exp(row, vocab_);
            o.logprob = row[o.sampled] - lse;
            if (r.params.logprobs > 0) o.top = top_logprobs(row, vocab_, r.params.logprobs, lse);
          } else {
            const int32_t target = r.tokens[r.row_pos + i + 1];
            const int32_t best = argmax(row, vocab_);
            const double lse = log_sum_exp(row, vocab_, best);
            o.logprob = row[target] - lse;
            o.greedy = best == target;
            if (r.kind == Kind::kScore && r.top_k > 0)
              o.top = top_logprobs(row, vocab_, r.top_k, lse);
          }
        } catch (...) {
          o.error = std::current_exception();
        }
      }
    });

    // Serial part: results, text, stop conditions.
    for (auto& rp : active_) {
      Request& r = *rp;
      // A scoring request's last chunk may hold only its final token, which
      // has no logits row but still completes the request.
      if (r.done || (r.row_count == 0 && (r.kind == Kind::kGenerate || !r.prefilled))) continue;
      try {
        for (int i = 0; i < r.row_count; ++i)
          if (outs_[r.row_begin + i].error) std::rethrow_exception(outs_[r.row_begin + i].error);
        if (r.kind == Kind::kGenerate)
          on_generated(r, outs_[r.row_begin]);
        else
          on_scored(r);
      } catch (...) {
        r.fail(std::current_exception());
      }
    }
  }

  void on_scored(Request& r) {
    for (int i = 0; i < r.row_count; ++i) {
      RowOut& o = outs_[r.row_begin + i];
      if (r.kind == Kind::kLoglik) {
        r.ll.logprob += o.logprob;
        r.ll.token_logprobs.push_back(o.logprob);
        r.ll.is_greedy = (r.ll.token_logprobs.size() == 1 ? true : r.ll.is_greedy) && o.greedy;
      } else {
        r.sc.token_logprobs.push_back(o.logprob);
        r.sc.top_logprobs.push_back(std::move(o.top));
      }
    }
    if (r.n_past == static_cast<int>(r.tokens.size())) {
      r.done = true;
      if (r.kind == Kind::kLoglik)
        r.ll_promise.set_value(std::move(r.ll));
      else
        r.score_promise.set_value(std::move(r.sc));
    }
  }

  void on_generated(Request& r, RowOut& o) {
    if (r.t_first == Clock::time_point{}) {
      r.t_first = Clock::now();
      r.gen.prefill_seconds = std::chrono::duration<double>(r.t_first - r.t_start).count();
    }
    const int32_t tok = o.sampled;
    if (std::find(r.stop_ids.begin(), r.stop_ids.end(), tok) != r.stop_ids.end()) {
      finish(r, "stop", true);
      return;
    }
    r.gen.tokens.push_back(tok);
    r.gen.token_logprobs.push_back(o.logprob);
    if (r.params.logprobs > 0) r.gen.top_logprobs.push_back(std::move(o.top));
    if (append_text(r, r.dec->push(tok))) {
      finish(r, "stop", false);
      return;
    }
    if (static_cast<int>(r.gen.tokens.size()) >= r.params.max_tokens || r.n_past >= max_context_) {
      finish(r, "length", true);
      return;
    }
    r.next = tok;
  }

  // Appends decoded text; returns true when a stop string matched (the text
  // is then cut before it). Text that might be the start of a stop string is
  // held back from on_text until it is known not to be.
  bool append_text(Request& r, const std::string& piece) {
    const size_t old = r.text.size();
    r.text += piece;
    if (r.stop_strings.empty()) {
      emit(r, r.text.size());
      return false;
    }
    const size_t from = old >= r.max_stop_len - 1 ? old - (r.max_stop_len - 1) : 0;
    size_t best = std::string::npos;
    for (const auto& s : r.stop_strings) best = std::min(best, r.text.find(s, from));
    if (best != std::string::npos) {
      r.text.resize(best);
      emit(r, best);
      return true;
    }
    size_t hold = 0;
    for (size_t k = std::min(r.max_stop_len - 1, r.text.size()); k > 0 && hold == 0; --k)
      for (const auto& s : r.stop_strings)
        if (k < s.size() && r.text.compare(r.text.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    emit(r, r.text.size() - hold);
    return false;
  }

  void emit(Request& r, size_t upto) {
    if (upto <= r.emitted) return;
    if (r.on_text) r.on_text(r.text.substr(r.emitted, upto - r.emitted));
    r.emitted = upto;
  }

  void finish(Request& r, const char* reason, bool flush) {
    bool cut = false;
    if (flush) cut = append_text(r, r.dec->flush());
    if (!cut) emit(r, r.text.size());
    r.gen.text = r.text;
    r.gen.finish_reason = reason;
    r.gen.decode_seconds = std::chrono::duration<double>(Clock::now() - r.t_first).count();
    r.done = true;
    r.gen_promise.set_value(std::move(r.gen));
  }

  Tokenizer tok_;
  std::string name_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<KVCache> kv_;
  int max_context_ = 0, vocab_ = 0, sample_vocab_ = 0;
  std::vector<int32_t> eos_ids_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Request>> queue_;
  std::vector<int> free_slots_;  // guarded by mu_
  bool stop_ = false, cancel_ = false;

  // Scheduler thread only.
  std::vector<std::unique_ptr<Request>> active_;
  std::vector<BatchToken> batch_;
  std::vector<float> logits_;
  std::vector<RowOut> outs_;
  std::thread scheduler_;
};

}  // namespace

std::unique_ptr<Engine> Engine::variant(const EngineOptions&) const {
  throw Error("engine: this engine cannot make variants");
}

std::unique_ptr<Engine> Engine::open(const std::filesystem::path& model, const EngineOptions& opt) {
  return std::make_unique<EngineImpl>(model, opt);
}

}  // namespace rv::engine
