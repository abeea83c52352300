#include "eval/run/sampling.h"

#include <algorithm>

#include "common/hash.h"
#include "eval/tasks/metrics.h"

namespace rv::eval {

using json = nlohmann::json;

uint64_t doc_seed(uint64_t run_seed, const std::string& doc_id) {
  // 60 bits: seed + k stays a positive int64 for servers that want one.
  const std::string h = sha256_hex(std::to_string(run_seed) + "|" + doc_id);
  return std::stoull(h.substr(0, 15), nullptr, 16);
}

json apply_sampling(std::vector<Instance>& insts, const TaskOptions& opts) {
  const int k = std::max(1, opts.n_samples);
  const bool any = k > 1 || opts.temperature >= 0 || opts.top_p > 0 || opts.top_k > 0 ||
                   opts.min_p > 0 || !opts.chat_template_kwargs.empty();
  json changed = nullptr;
  bool has_gen = false;
  for (auto& inst : insts) {
    if (inst.is_loglik) continue;
    has_gen = true;
    GenRequest& g = inst.gen;
    // Every (document, sample) its own stream; greedy requests ignore it
    // (request_hash keys the seed only when sampling).
    g.seed = doc_seed(opts.seed, inst.doc_id);
    if (!any) continue;
    inst.repeats = std::max(inst.repeats, k);
    if (opts.temperature >= 0)
      g.temperature = opts.temperature;
    else if (inst.repeats > 1 && g.temperature <= 0)
      g.temperature = kDefaultSampledTemperature;
    if (opts.top_p > 0) g.top_p = opts.top_p;
    if (opts.top_k > 0) g.top_k = opts.top_k;
    if (opts.min_p > 0) g.min_p = opts.min_p;
    if (g.chat && !opts.chat_template_kwargs.empty())
      g.chat_template_kwargs = opts.chat_template_kwargs;
    if (changed.is_null())
      changed = {{"n_samples", inst.repeats},
                 {"temperature", g.temperature},
                 {"top_p", g.top_p},
                 {"top_k", g.top_k},
                 {"min_p", g.min_p},
                 {"do_sample", g.temperature > 0},
                 {"seed", "sha256(seed|doc_id) + sample index"}};
    if (!g.chat_template_kwargs.empty())
      changed["chat_template_kwargs"] = json::parse(g.chat_template_kwargs);
  }
  return has_gen ? changed : json(nullptr);
}

ThinkSplit split_think(const std::string& text) {
  ThinkSplit s;
  static const std::string kOpen = "<think>", kClose = "</think>";
  const size_t close = text.rfind(kClose);
  if (close != std::string::npos) {
    s.had_think = true;
    s.answer = text.substr(close + kClose.size());
    return s;
  }
  if (text.find(kOpen) != std::string::npos) {
    s.unterminated = true;
    return s;
  }
  s.answer = text;
  return s;
}

bool scores_samples_separately(const Task& task, const Instance& inst, size_t n_gens) {
  return !inst.is_loglik && n_gens > 1 && task.primary_metric().rfind("pass@", 0) != 0;
}

std::pair<int, int> majority_vote(const Task& task, const std::vector<std::string>& answers) {
  std::vector<int> first, size;  // per cluster: first member, members
  for (size_t i = 0; i < answers.size(); ++i) {
    if (!task.answers_equivalent(answers[i], answers[i])) continue;  // no answer
    bool joined = false;
    for (size_t c = 0; c < first.size() && !joined; ++c)
      if (task.answers_equivalent(answers[static_cast<size_t>(first[c])], answers[i])) {
        ++size[c];
        joined = true;
      }
    if (!joined) {
      first.push_back(static_cast<int>(i));
      size.push_back(1);
    }
  }
  int best = -1, votes = 0;
  for (size_t c = 0; c < first.size(); ++c)
    if (size[c] > votes) {  // strict: ties keep the earlier cluster
      best = first[c];
      votes = size[c];
    }
  return {best, votes};
}

json score_sampled(const Task& task, const Instance& inst, const std::vector<GenResponse>& gens,
                   const TaskOptions& opts, SampleScore& doc_score) {
  const int K = static_cast<int>(gens.size());
  const std::string primary = task.primary_metric();
  const std::string kk = std::to_string(K);
  std::vector<SampleScore> per(gens.size());
  for (size_t k = 0; k < gens.size(); ++k) per[k] = task.score(inst, {gens[k]}, {}, opts);

  std::vector<std::string> answers;
  json samples = json::array();
  for (const auto& s : per) {
    answers.push_back(s.extracted);
    json m = json::object();
    for (const auto& [key, v] : s.metrics) m[key] = v;
    samples.push_back({{"extracted", s.extracted}, {"correct", s.correct}, {"metrics", m}});
  }
  for (const auto& mi : task.metrics(opts)) {
    std::vector<double> v;
    int c = 0;
    for (const auto& s : per) {
      auto it = s.metrics.find(mi.key);
      if (it == s.metrics.end()) continue;
      v.push_back(it->second);
      c += it->second >= 0.5;
    }
    if (v.size() != per.size()) continue;  // a metric not every sample has
    doc_score.metrics["avg@" + kk + ":" + mi.key] = mean(v);
    doc_score.metrics["pass@" + kk + ":" + mi.key] = pass_at_k(K, c, K);
  }
  auto [winner, votes] = majority_vote(task, answers);
  double maj = 0;
  if (winner >= 0) {
    auto it = per[static_cast<size_t>(winner)].metrics.find(primary);
    maj = it != per[static_cast<size_t>(winner)].metrics.end() && it->second >= 0.5 ? 1.0 : 0.0;
  }
  doc_score.metrics["maj@" + kk + ":" + primary] = maj;
  return {{"samples", samples},
          {"majority",
           {{"answer", winner >= 0 ? json(answers[static_cast<size_t>(winner)]) : json(nullptr)},
            {"votes", votes},
            {"sample", winner >= 0 ? json(winner) : json(nullptr)},
            {"correct", maj > 0}}}};
}

}  // namespace rv::eval
