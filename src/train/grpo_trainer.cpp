#include "train/grpo_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "engine/model.h"
#include "formats/model_dir.h"
#include "train/optim.h"
#include "train/rollout.h"
#include "train/seed.h"

namespace rv::train {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The engine's view of the policy: the same config.json TrainModel::save
// writes, over the policy's f32 master weights in place.
std::unique_ptr<engine::Model> policy_engine(const TrainModel& m, int threads) {
  ModelConfig cfg = parse_model_config(hf_config(m.shape(), -1, -1), "<policy>");
  std::vector<std::pair<std::string, engine::TensorSource::Tensor>> tensors;
  const ParamSet& p = m.params();
  for (const auto& e : p.entries) {
    engine::TensorSource::Tensor t;
    t.data = reinterpret_cast<const uint8_t*>(p.data.data() + e.offset);
    t.dtype = DType::F32;
    t.shape = e.shape;
    tensors.emplace_back(e.name, t);
  }
  return engine::Model::from_memory(cfg, std::move(tensors), {.threads = threads});
}

}  // namespace

GrpoTrainResult train_grpo(TrainModel& policy, TrainModel* ref,
                           const std::vector<std::vector<int32_t>>& prompts, const RewardFn& reward,
                           const GrpoTrainOptions& o,
                           const std::function<void(const GrpoStepLog&)>& on_step) {
  if (prompts.empty()) throw Error("grpo: no prompts");
  if (o.group < 2) throw Error("grpo: group must be >= 2");
  if (o.steps < 1 || o.prompts < 1 || o.mu < 1 || o.max_tokens < 1)
    throw Error("grpo: steps, prompts, mu and max_tokens must be >= 1");
  if (o.loss.beta > 0 && !ref) throw Error("grpo: beta > 0 needs a reference model");
  GrpoOptions lo = o.loss;
  if (lo.max_completion_length <= 0) lo.max_completion_length = o.max_tokens;
  const int V = policy.shape().vocab;
  AdamW opt(policy.params(), AdamWOptions{.weight_decay = o.weight_decay});
  GrpoTrainResult res;
  std::vector<float> dlogits;

  for (int step = 0; step < o.steps; ++step) {
    check_interrupted();
    GrpoStepLog L;
    L.step = step + 1;
    L.steps = o.steps;
    // The step's prompts: a seeded draw without replacement (with
    // replacement only if there are fewer prompts than asked for).
    std::mt19937_64 rng(mix(o.seed ^ mix(static_cast<uint64_t>(step) + 1)));
    std::vector<int> idx(prompts.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::vector<int> pick;
    for (int i = 0; i < o.prompts; ++i) {
      const size_t left = idx.size() - (i % idx.size());
      const size_t j = (i % idx.size()) + std::uniform_int_distribution<size_t>(0, left - 1)(rng);
      std::swap(idx[i % idx.size()], idx[j]);
      pick.push_back(idx[i % idx.size()]);
    }
    std::vector<std::vector<int32_t>> step_prompts;
    for (int i : pick) step_prompts.push_back(prompts[i]);

    // Sampling through the engine over the current weights.
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Completion> comps;
    {
      auto eng = policy_engine(policy, 0);
      RolloutOptions ro;
      ro.group = o.group;
      ro.max_tokens = o.max_tokens;
      ro.temperature = o.temperature;
      ro.seed = mix(o.seed + 0x5eed) ^ static_cast<uint64_t>(step);
      ro.stop_ids = o.stop_ids;
      ro.max_batch = o.max_batch;
      comps = sample_group(*eng, step_prompts, ro);
    }
    const size_t n = comps.size();
    std::vector<double> rewards(n);
    int correct = 0;
    double len = 0;
    for (size_t i = 0; i < n; ++i) {
      GrpoReward r = reward(pick[comps[i].prompt], comps[i].tokens, comps[i].stopped);
      rewards[i] = r.reward;
      correct += r.correct;
      len += comps[i].tokens.size();
    }
    L.sample_seconds = seconds_since(t0);
    L.reward = std::accumulate(rewards.begin(), rewards.end(), 0.0) / n;
    L.accuracy = static_cast<double>(correct) / n;
    L.length = len / n;
    for (int g = 0; g < o.prompts; ++g) {
      double m = 0, v = 0;
      for (int j = 0; j < o.group; ++j) m += rewards[g * o.group + j];
      m /= o.group;
      for (int j = 0; j < o.group; ++j)
        v += (rewards[g * o.group + j] - m) * (rewards[g * o.group + j] - m);
      L.reward_std += std::sqrt(v / (o.group - 1)) / o.prompts;
    }
    const std::vector<double> adv = group_advantages(rewards, o.group, o.scale_rewards);

    // One row per (prompt + completion); completion token k is predicted by
    // the logits row of the token before it.
    t0 = std::chrono::steady_clock::now();
    Batch b;
    b.rows = static_cast<int>(n);
    for (size_t i = 0; i < n; ++i)
      b.T = std::max<int>(b.T, step_prompts[comps[i].prompt].size() + comps[i].tokens.size());
    b.tokens.assign(static_cast<size_t>(b.rows) * b.T, 0);
    b.pos.assign(b.tokens.size(), 0);
    b.seg.assign(b.tokens.size(), -1);
    std::vector<ScoredToken> scored;
    std::vector<int64_t> rows;
    std::vector<int32_t> ids;
    for (size_t i = 0; i < n; ++i) {
      const auto& p = step_prompts[comps[i].prompt];
      const auto& c = comps[i].tokens;
      const size_t base = i * b.T;
      for (size_t t = 0; t < p.size() + c.size(); ++t) {
        b.tokens[base + t] = t < p.size() ? p[t] : c[t - p.size()];
        b.pos[base + t] = static_cast<int32_t>(t);
        b.seg[base + t] = 0;
      }
      for (size_t k = 0; k < c.size(); ++k) {
        ScoredToken s;
        s.row = static_cast<int64_t>(base + p.size() + k - 1);
        s.id = c[k];
        s.seq = static_cast<int>(i);
        scored.push_back(s);
        rows.push_back(s.row);
        ids.push_back(s.id);
      }
    }
    if (ref && lo.beta > 0) {
      const auto& rl = ref->forward(b);
      const auto lp = token_logprobs(rl, V, rows, ids);
      for (size_t k = 0; k < scored.size(); ++k) scored[k].ref_logprob = lp[k];
    }
    const double lr = lr_schedule(step, o.steps, o.warmup, o.lr, o.min_lr_ratio);
    L.lr = lr;
    for (int it = 0; it < o.mu; ++it) {
      const auto& logits = policy.forward(b);
      if (it == 0) {
        // The sampling policy's log-probs, from the same training forward the
        // updates use, so that the first ratio is exactly 1.
        const auto lp = token_logprobs(logits, V, rows, ids);
        for (size_t k = 0; k < scored.size(); ++k) scored[k].old_logprob = lp[k];
      }
      policy.zero_grad();
      GrpoStats st = grpo_loss(logits, V, scored, adv, lo, dlogits);
      if (!std::isfinite(st.loss))
        throw Error("grpo: step " + std::to_string(step + 1) + ": loss is " +
                    (std::isnan(st.loss) ? "nan" : "inf"));
      policy.backward(dlogits);
      std::string bad;
      if (has_nonfinite(policy.grads(), &bad))
        throw Error("grpo: step " + std::to_string(step + 1) + ": gradient of " + bad +
                    " is not finite");
      L.grad_norm = clip_grad_norm(policy.grads(), o.clip);
      opt.step(policy.params(), policy.grads(), lr);
      if (it == 0) L.entropy = st.entropy;
      L.kl = st.kl;
      L.clip_frac = st.clip_low + st.clip_high;
    }
    std::string bad;
    if (has_nonfinite(policy.params(), &bad))
      throw Error("grpo: step " + std::to_string(step + 1) + ": weights of " + bad +
                  " are not finite");
    L.train_seconds = seconds_since(t0);
    res.log.push_back(L);
    if (on_step) on_step(L);
  }
  return res;
}

}  // namespace rv::train
