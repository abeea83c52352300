#include "eval/run/runner.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/progress.h"
#include "eval/backend/backend.h"
#include "eval/backend/cache.h"
#include "eval/run/sampling.h"

namespace rv::eval {

using json = nlohmann::json;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sends `reqs` (all missing from the cache), storing each response in the
// cache and in `out[slot[i]]` as it arrives.
template <typename Req, typename Resp, typename Encode>
void send(Backend& backend, const std::vector<Req>& reqs, const std::vector<Resp*>& out,
          const std::vector<std::string>& hashes, ResultCache* cache, const std::string& fp,
          const std::string& task_hash, Progress& bar, const Encode& encode) {
  if (reqs.empty()) return;
  auto store = [&](size_t i, const Resp& r) {
    *out[i] = r;
    if (cache) cache->put(fp, task_hash, hashes[i], encode(r));
    bar.add(1);
  };
  if constexpr (std::is_same_v<Req, GenRequest>)
    backend.generate_stream(reqs, store);
  else
    backend.loglikelihood_stream(reqs, store);
}

json generation_report(const TaskRun& run) {
  size_t responses = 0, known = 0, cut = 0, unterminated = 0;
  long long total = 0;
  int max_tokens = 0;
  for (size_t i = 0; i < run.gens.size(); ++i)
    for (size_t k = 0; k < run.gens[i].size(); ++k) {
      const GenResponse& g = run.gens[i][k];
      ++responses;
      cut += g.finish_reason == "length";
      unterminated += run.think[i][k] == 2;
      if (g.completion_tokens >= 0) {
        ++known;
        total += g.completion_tokens;
        max_tokens = std::max(max_tokens, g.completion_tokens);
      }
    }
  if (responses == 0) return nullptr;
  return {{"responses", responses},
          {"completion_tokens_known", known},
          {"mean_completion_tokens",
           known ? json(static_cast<double>(total) / static_cast<double>(known)) : json(nullptr)},
          {"max_completion_tokens", known ? json(max_tokens) : json(nullptr)},
          {"cut_by_length", cut},
          {"cut_by_length_share", static_cast<double>(cut) / static_cast<double>(responses)},
          {"think_unterminated", unterminated}};
}

}  // namespace

PreparedTask prepare_task(const std::string& name, const TaskOptions& opts) {
  PreparedTask p;
  p.task = make_task(name);
  p.config = p.task->config(opts);
  const int budget = opts.max_gen_toks;
  if (budget > 0 && p.config.contains("generation_kwargs"))
    p.config["generation_kwargs"]["max_gen_toks"] = budget;
  p.instances = p.task->instances(opts, &p.n_original);
  if (budget > 0)
    for (auto& inst : p.instances)
      if (!inst.is_loglik) inst.gen.max_tokens = budget;
  // Only when something was overridden, so that K = 1 runs keep their
  // config (and cache key) unchanged.
  if (json g = apply_sampling(p.instances, opts); !g.is_null())
    p.config["generation_overrides"] = g;
  return p;
}

RunResult run_eval(Backend& backend, const RunOptions& opt) {
  // Every task first so a typo or missing data fails before any model time.
  std::vector<PreparedTask> prepared;
  for (const auto& name : opt.tasks) prepared.push_back(prepare_task(name, opt.task));
  std::vector<const PreparedTask*> ptrs;
  for (const auto& p : prepared) ptrs.push_back(&p);
  return run_eval(backend, opt, ptrs);
}

RunResult run_eval(Backend& backend, const RunOptions& opt,
                   const std::vector<const PreparedTask*>& tasks) {
  const double t_start = now_s();
  RunResult result;
  std::unique_ptr<ResultCache> cache;
  if (!opt.cache_path.empty()) cache = std::make_unique<ResultCache>(opt.cache_path);
  const std::string fp = backend.fingerprint();

  result.config = opt.config;
  result.config["backend"] = backend.describe();
  result.config["model_fingerprint"] = fp;
  result.config["limit"] = opt.task.limit > 0 ? json(opt.task.limit) : json(nullptr);
  result.config["seed"] = opt.task.seed;
  result.config["transforms"] = opt.task.transforms;
  result.config["apply_chat_template"] = opt.task.apply_chat_template;
  result.config["fewshot_as_multiturn"] = opt.task.fewshot_as_multiturn;
  result.config["system_prompt"] = opt.task.system_prompt;
  result.config["cot_hint"] = opt.task.cot_hint;
  result.config["cache"] = opt.cache_path.empty() ? json(nullptr) : json(opt.cache_path.string());
  // Only when not the default, so runs without it keep their config.
  if (!opt.task.strip_think) result.config["think"] = "keep";

  for (const PreparedTask* prep : tasks) {
    check_interrupted();
    const Task* task = prep->task.get();
    const double t0 = now_s();
    TaskRun run;
    run.name = task->name();
    run.config = prep->config;
    run.config_hash = sha256_hex(run.config.dump());
    run.primary_metric = task->primary_metric();
    for (const auto& m : task->metrics(opt.task)) run.metric_keys.push_back(m.key);
    run.instances = prep->instances;
    run.n_original = prep->n_original;
    const size_t n = run.instances.size();
    run.gens.resize(n);
    run.lls.resize(n);

    // Flatten requests, answer what the cache knows, collect the rest.
    std::vector<GenRequest> gen_missing;
    std::vector<GenResponse*> gen_slots;
    std::vector<std::string> gen_hashes;
    std::vector<LoglikRequest> ll_missing;
    std::vector<LoglikResponse*> ll_slots;
    std::vector<std::string> ll_hashes;
    for (size_t i = 0; i < n; ++i) {
      const Instance& inst = run.instances[i];
      if (inst.is_loglik) {
        run.lls[i].resize(inst.choices.size());
        for (size_t c = 0; c < inst.choices.size(); ++c) {
          std::string h = request_hash(inst.choices[c]);
          ++run.requests;
          if (cache) {
            if (auto v = cache->get(fp, run.config_hash, h)) {
              run.lls[i][c] = decode_loglik_response(*v);
              ++run.cache_hits;
              continue;
            }
            ++run.cache_misses;
          }
          ll_missing.push_back(inst.choices[c]);
          ll_slots.push_back(&run.lls[i][c]);
          ll_hashes.push_back(std::move(h));
        }
      } else {
        auto reqs = inst.requests();
        run.gens[i].resize(reqs.size());
        for (size_t r = 0; r < reqs.size(); ++r) {
          std::string h = request_hash(reqs[r]);
          ++run.requests;
          if (cache) {
            if (auto v = cache->get(fp, run.config_hash, h)) {
              run.gens[i][r] = decode_gen_response(*v);
              ++run.cache_hits;
              continue;
            }
            ++run.cache_misses;
          }
          gen_missing.push_back(std::move(reqs[r]));
          gen_slots.push_back(&run.gens[i][r]);
          gen_hashes.push_back(std::move(h));
        }
      }
    }

    const double tb = now_s();
    {
      Progress bar(run.name, gen_missing.size() + ll_missing.size(), Progress::Unit::kItems, "req");
      send(backend, gen_missing, gen_slots, gen_hashes, cache.get(), fp, run.config_hash, bar,
           [](const GenResponse& r) { return encode_response(r); });
      send(backend, ll_missing, ll_slots, ll_hashes, cache.get(), fp, run.config_hash, bar,
           [](const LoglikResponse& r) { return encode_response(r); });
      bar.finish();
    }
    run.seconds_backend = now_s() - tb;

    const double ts = now_s();
    // What is scored: with --think strip, only the text after </think>.
    std::vector<std::vector<GenResponse>> scored = run.gens;
    run.think.assign(n, {});
    for (size_t i = 0; i < n; ++i) {
      run.think[i].assign(scored[i].size(), 0);
      if (!opt.task.strip_think) continue;
      for (size_t k = 0; k < scored[i].size(); ++k) {
        ThinkSplit t = split_think(scored[i][k].text);
        if (!t.had_think && !t.unterminated) continue;
        run.think[i][k] = t.unterminated ? 2 : 1;
        scored[i][k].text = std::move(t.answer);
      }
    }
    run.scores = task->score_many(run.instances, scored, run.lls, opt.task);
    run.sampled.assign(n, nullptr);
    for (size_t i = 0; i < n; ++i)
      if (scores_samples_separately(*task, run.instances[i], scored[i].size()))
        run.sampled[i] = score_sampled(*task, run.instances[i], scored[i], opt.task, run.scores[i]);
    run.summary = aggregate(*task, opt.task, run.instances, run.scores);
    {
      std::set<std::string> extra;  // sampled metrics, as aggregate() finds them
      for (const auto& sc : run.scores)
        for (const auto& [k, v] : sc.metrics)
          if (k.find(':') != std::string::npos) extra.insert(k);
      run.metric_keys.insert(run.metric_keys.end(), extra.begin(), extra.end());
    }
    run.generation = generation_report(run);
    run.seconds_scoring = now_s() - ts;
    run.seconds_total = now_s() - t0;
    result.cache_hits += run.cache_hits;
    result.cache_misses += run.cache_misses;
    result.tasks.push_back(std::move(run));
  }
  if (auto unsent = backend.unsent_parameters(); !unsent.empty())
    result.config["unsent_parameters"] = unsent;
  result.seconds_total = now_s() - t_start;
  return result;
}

}  // namespace rv::eval
