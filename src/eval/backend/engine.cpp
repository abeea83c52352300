#include "eval/backend/engine.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <future>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/parallel.h"
#include "formats/model_dir.h"
#include "tokenizer/tokenizer.h"

namespace rv::eval {

namespace fs = std::filesystem;

std::unique_ptr<EngineBackend> EngineBackend::open(const fs::path& model_dir,
                                                   const engine::EngineOptions& opt,
                                                   std::string identity) {
  std::shared_ptr<engine::Engine> eng = engine::Engine::open(model_dir, opt);
  auto b = std::make_unique<EngineBackend>(std::move(eng), model_dir, std::move(identity));
  b->vectors_ = opt.vectors;
  return b;
}

EngineBackend::EngineBackend(std::shared_ptr<engine::Engine> eng, fs::path model_dir,
                             std::string identity)
    : eng_(std::move(eng)), dir_(std::move(model_dir)), identity_(std::move(identity)) {}

std::string EngineBackend::fingerprint() const {
  if (fingerprint_.empty()) {
    if (!identity_.empty()) {
      fingerprint_ = identity_;  // names the vectors too (make.h)
    } else {
      fingerprint_ = "engine|" + (dir_.empty() ? eng_->model_name() : model_fingerprint(dir_));
      // Vectors applied at load change the weights: their content and alpha.
      for (const auto& v : vectors_) {
        std::string files;
        if (fs::is_directory(v.path)) {
          std::vector<fs::path> ps;
          for (const auto& e : fs::directory_iterator(v.path))
            if (e.is_regular_file()) ps.push_back(e.path());
          std::sort(ps.begin(), ps.end());
          for (const auto& p : ps)
            files += p.filename().string() + ":" + sha256_file_pieces_hex(p) + ";";
        } else {
          files = sha256_file_pieces_hex(v.path);
        }
        char alpha[40];
        snprintf(alpha, sizeof alpha, "%.17g", v.alpha);
        fingerprint_ += "|vector:" + sha256_hex(files) + "*" + alpha;
      }
    }
    // A bf16 KV cache or bf16 activations change the responses: cache them apart.
    if (const std::string n = eng_->numerics(); !n.empty()) fingerprint_ += "|" + n;
  }
  return fingerprint_;
}

std::string EngineBackend::describe() const {
  std::string s = "reasonvec engine: " + (dir_.empty() ? eng_->model_name() : dir_.string());
  for (const auto& v : vectors_) {
    char alpha[32];
    snprintf(alpha, sizeof alpha, "%g", v.alpha);
    s += " + " + std::string(alpha) + "*" + v.path.string();
  }
  return s;
}

std::string EngineBackend::prompt_text(const GenRequest& r) const {
  if (!r.chat) return r.prompt + r.assistant_prefix;
  if (!chat_) {
    if (dir_.empty() || fs::is_regular_file(dir_)) {
      const Tokenizer& tok = eng_->tokenizer();
      if (tok.chat_template().empty()) throw Error(describe(), "the model has no chat template");
      chat_ =
          ChatTemplateSource{tok.chat_template(), tok.bos_token(), tok.eos_token(), "tokenizer"};
    } else {
      chat_ = load_chat_template(dir_);
    }
  }
  ChatTemplateInputs in;
  for (const auto& m : r.messages)
    in.messages.push_back({{"role", m.role}, {"content", m.content}});
  if (!r.assistant_prefix.empty()) {
    in.messages.push_back({{"role", "assistant"}, {"content", r.assistant_prefix}});
    in.continue_final_message = true;
  } else {
    in.add_generation_prompt = true;
  }
  in.bos_token = chat_->bos_token;
  in.eos_token = chat_->eos_token;
  if (!r.chat_template_kwargs.empty()) {
    nlohmann::ordered_json kw;
    try {
      kw = nlohmann::ordered_json::parse(r.chat_template_kwargs);
    } catch (const nlohmann::json::exception& e) {
      throw Error(describe(), std::string("chat_template_kwargs: ") + e.what());
    }
    if (!kw.is_object()) throw Error(describe(), "chat_template_kwargs must be a JSON object");
    for (auto it = kw.begin(); it != kw.end(); ++it) in.extra[it.key()] = it.value();
  }
  return render_chat_template(chat_->tmpl, in);
}

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Waits for futures, handing each result over as soon as it is ready.
template <typename T, typename Fn>
void drain(std::vector<std::future<T>>& futs, const Fn& fn) {
  std::deque<size_t> pending;
  for (size_t i = 0; i < futs.size(); ++i) pending.push_back(i);
  while (!pending.empty()) {
    if (rv::interrupted()) throw Error("interrupted");
    bool any = false;
    for (auto it = pending.begin(); it != pending.end();) {
      if (futs[*it].wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        fn(*it, futs[*it].get());
        it = pending.erase(it);
        any = true;
      } else {
        ++it;
      }
    }
    if (!any) futs[pending.front()].wait_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::pair<std::vector<int32_t>, std::vector<int32_t>> EngineBackend::encode_pair(
    const std::string& context, const std::string& continuation) const {
  const Tokenizer& tok = eng_->tokenizer();
  if (continuation.empty() && (context.empty() || !is_space(context.back())))
    throw Error(describe(), "log-likelihood request with an empty continuation");
  if (context.empty()) {
    std::optional<int32_t> prefix = tok.bos_id() ? tok.bos_id() : tok.eos_id();
    if (!prefix) throw Error(describe(), "empty context and the tokenizer has neither BOS nor EOS");
    return {{*prefix}, tok.encode(continuation)};
  }
  size_t keep = context.size();
  while (keep > 0 && is_space(context[keep - 1])) --keep;
  std::string ctx = context.substr(0, keep);
  std::string cont = context.substr(keep) + continuation;
  std::vector<int32_t> whole = tok.encode(ctx + cont);
  size_t ctx_len = ctx.empty() ? 0 : tok.encode(ctx).size();
  ctx_len = std::min(ctx_len, whole.size());
  std::vector<int32_t> c(whole.begin(), whole.begin() + static_cast<long>(ctx_len));
  std::vector<int32_t> k(whole.begin() + static_cast<long>(ctx_len), whole.end());
  if (c.empty()) {
    std::optional<int32_t> prefix = tok.bos_id() ? tok.bos_id() : tok.eos_id();
    if (!prefix) throw Error(describe(), "empty context and the tokenizer has neither BOS nor EOS");
    c.push_back(*prefix);
  }
  if (k.empty())
    throw Error(describe(), "continuation '" + continuation + "' encodes to no tokens");
  return {std::move(c), std::move(k)};
}

void EngineBackend::generate_stream(const std::vector<GenRequest>& reqs,
                                    const GenResultFn& on_result) {
  const Tokenizer& tok = eng_->tokenizer();
  const int window = eng_->max_context();
  std::vector<std::future<engine::GenerationResult>> futs;
  futs.reserve(reqs.size());
  for (const auto& r : reqs) {
    std::vector<int32_t> ids = tok.encode(prompt_text(r));
    engine::SamplingParams p;
    p.max_tokens = std::max(1, std::min(r.max_tokens, window - 1));
    p.temperature = r.temperature;
    p.top_p = r.top_p;
    p.top_k = r.top_k;
    p.min_p = r.min_p;
    // The engine seeds a fresh RNG per request from this (see engine.cpp):
    // a (document, sample) draws the same tokens alone or in any batch.
    p.seed = r.seed;
    p.stop_strings = r.stop;
    // lm-eval keeps the last (window - max_tokens) prompt tokens.
    size_t room = static_cast<size_t>(window - p.max_tokens);
    if (ids.size() > room) ids.erase(ids.begin(), ids.end() - static_cast<long>(room));
    futs.push_back(eng_->submit_generate(std::move(ids), std::move(p)));
  }
  drain(futs, [&](size_t i, engine::GenerationResult g) {
    GenResponse out;
    out.text = std::move(g.text);
    out.finish_reason = std::move(g.finish_reason);
    out.completion_tokens = static_cast<int>(g.tokens.size());
    // The engine cuts at stop strings already; re-cut defensively so both
    // backends apply exactly the same rule.
    size_t best = std::string::npos;
    for (const auto& s : reqs[i].stop)
      if (!s.empty()) best = std::min(best, out.text.find(s));
    if (best != std::string::npos) {
      out.text.resize(best);
      out.finish_reason = "stop";
    }
    on_result(i, out);
  });
}

void EngineBackend::loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                                         const LoglikResultFn& on_result) {
  const size_t window = static_cast<size_t>(eng_->max_context());
  std::vector<std::future<engine::LoglikelihoodResult>> futs;
  futs.reserve(reqs.size());
  for (const auto& r : reqs) {
    auto [ctx, cont] = encode_pair(r.context, r.continuation);
    if (cont.size() >= window)
      throw Error(describe(), "continuation of " + std::to_string(cont.size()) +
                                  " tokens exceeds the context window");
    if (ctx.size() + cont.size() > window)
      ctx.erase(ctx.begin(), ctx.end() - static_cast<long>(window - cont.size()));
    futs.push_back(eng_->submit_loglikelihood(std::move(ctx), std::move(cont)));
  }
  drain(futs, [&](size_t i, engine::LoglikelihoodResult l) {
    on_result(i, LoglikResponse{l.logprob, l.is_greedy});
  });
}

}  // namespace rv::eval
