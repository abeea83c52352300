#include "train/lm_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "train/optim.h"
#include "train/seed.h"

namespace rv::train {
namespace {

// What a checkpoint must match to be resumed: everything that shapes the run.
std::string run_identity(const TrainModel& m, const std::vector<Example>& data,
                         const LmTrainOptions& o) {
  const ModelShape& s = m.shape();
  nlohmann::json j = {
      {"vocab", s.vocab},         {"hidden", s.hidden},     {"layers", s.layers},
      {"heads", s.heads},         {"kv_heads", s.kv_heads}, {"inter", s.intermediate},
      {"tied", s.tied},           {"steps", o.steps},       {"rows", o.rows},
      {"seq_len", o.seq_len},     {"accum", o.grad_accum},  {"lr", o.lr},
      {"min_lr", o.min_lr_ratio}, {"warmup", o.warmup},     {"wd", o.weight_decay},
      {"clip", o.clip},           {"seed", o.seed},         {"examples", data.size()}};
  Sha256 h;
  h.update(j.dump());
  for (const Example& e : data) {
    h.update(e.tokens.data(), e.tokens.size() * sizeof(int32_t));
    h.update(e.target.data(), e.target.size());
  }
  return h.hex();
}

void save_checkpoint(const TrainModel& m, const AdamW& opt, const LmTrainOptions& o, int step,
                     const std::string& identity) {
  AtomicOutput out(o.checkpoint_dir, AtomicOutput::Kind::kDirectory, /*force=*/true);
  m.save(out.path() / "model", o.bos, o.eos);
  opt.save(out.path() / "optim.safetensors");
  write_file(out.path() / "state.json",
             nlohmann::json{{"step", step}, {"run", identity}}.dump(1) + "\n");
  out.commit();
}

}  // namespace

Batch pack_batch(const std::vector<Example>& data, const LmTrainOptions& o, int step, int micro,
                 std::vector<int32_t>& targets) {
  Batch b;
  b.rows = o.rows;
  b.T = o.seq_len;
  const size_t n = static_cast<size_t>(o.rows) * o.seq_len;
  b.tokens.assign(n, 0);
  b.pos.assign(n, 0);
  b.seg.assign(n, -1);
  targets.assign(n, -1);
  std::mt19937_64 rng(mix(mix(o.seed) ^ mix(static_cast<uint64_t>(step) * 1000003 + micro)));
  std::uniform_int_distribution<size_t> pick(0, data.size() - 1);
  for (int r = 0; r < o.rows; ++r) {
    int used = 0, seg = 0;
    // Fill the row with whole examples; the first may be truncated, a later
    // one that does not fit ends the row (the rest is padding).
    while (used < o.seq_len) {
      const Example& e = data[pick(rng)];
      const int len = static_cast<int>(e.tokens.size());
      if (len == 0) continue;
      if (used > 0 && used + len > o.seq_len) break;
      const int take = std::min(len, o.seq_len - used);
      const size_t base = static_cast<size_t>(r) * o.seq_len + used;
      for (int i = 0; i < take; ++i) {
        b.tokens[base + i] = e.tokens[i];
        b.pos[base + i] = i;
        b.seg[base + i] = seg;
        if (i + 1 < take && e.target[i + 1]) targets[base + i] = e.tokens[i + 1];
      }
      used += take;
      ++seg;
    }
  }
  return b;
}

LmTrainResult train_lm(TrainModel& m, const std::vector<Example>& data, const LmTrainOptions& o,
                       const std::function<void(const LmStepLog&)>& on_step) {
  if (data.empty()) throw Error("train: no training examples");
  if (o.steps < 1 || o.rows < 1 || o.seq_len < 2 || o.grad_accum < 1)
    throw Error("train: steps, rows, grad_accum must be >= 1 and seq_len >= 2");
  if (o.seq_len > m.shape().max_position)
    throw Error("train: seq_len " + std::to_string(o.seq_len) + " exceeds max_position " +
                std::to_string(m.shape().max_position));
  for (size_t i = 0; i < data.size(); ++i)
    if (data[i].tokens.size() != data[i].target.size())
      throw Error("train: example " + std::to_string(i) + ": tokens and target lengths differ");

  AdamW opt(m.params(), AdamWOptions{.weight_decay = o.weight_decay});
  LmTrainResult res;
  const std::string identity = o.checkpoint_dir.empty() ? "" : run_identity(m, data, o);
  if (!o.checkpoint_dir.empty() && std::filesystem::exists(o.checkpoint_dir / "state.json")) {
    auto st = nlohmann::json::parse(read_file(o.checkpoint_dir / "state.json"));
    if (st.value("run", "") == identity) {
      // Into the existing model, which keeps its thread settings.
      TrainModel saved = TrainModel::load(o.checkpoint_dir / "model");
      if (saved.params().size() != m.params().size())
        throw Error(o.checkpoint_dir.string() + ": checkpoint does not match the model");
      m.params().data = saved.params().data;
      opt.load(o.checkpoint_dir / "optim.safetensors", m.params());
      res.start_step = st.at("step").get<int>();
    }
  }

  std::vector<float> dlogits;
  std::vector<int32_t> targets;
  for (int step = res.start_step; step < o.steps; ++step) {
    if (interrupted()) {
      if (!o.checkpoint_dir.empty()) save_checkpoint(m, opt, o, step, identity);
      check_interrupted();
    }
    const auto t0 = std::chrono::steady_clock::now();
    // Pack every micro-batch first: the loss is normalised by the step's
    // total target count, so accumulation equals one big batch.
    std::vector<Batch> micro(o.grad_accum);
    std::vector<std::vector<int32_t>> micro_targets(o.grad_accum);
    int64_t n_targets = 0, n_tokens = 0;
    for (int k = 0; k < o.grad_accum; ++k) {
      micro[k] = pack_batch(data, o, step, k, micro_targets[k]);
      for (size_t i = 0; i < micro_targets[k].size(); ++i) {
        n_targets += micro_targets[k][i] >= 0;
        n_tokens += micro[k].seg[i] >= 0;
      }
    }
    if (n_targets == 0)
      throw Error("train: step " + std::to_string(step + 1) + ": no target tokens");
    m.zero_grad();
    double loss = 0;
    for (int k = 0; k < o.grad_accum; ++k) {
      const auto& logits = m.forward(micro[k]);
      loss += cross_entropy(logits, m.shape().vocab, micro_targets[k],
                            static_cast<double>(n_targets), dlogits);
      m.backward(dlogits);
    }
    if (!std::isfinite(loss))
      throw Error("train: step " + std::to_string(step + 1) + ": loss is " +
                  (std::isnan(loss) ? "nan" : "inf"));
    std::string bad;
    if (has_nonfinite(m.grads(), &bad))
      throw Error("train: step " + std::to_string(step + 1) + ": gradient of " + bad +
                  " is not finite");
    const double norm = clip_grad_norm(m.grads(), o.clip);
    const double lr = lr_schedule(step, o.steps, o.warmup, o.lr, o.min_lr_ratio);
    opt.step(m.params(), m.grads(), lr);
    LmStepLog s;
    s.step = step + 1;
    s.steps = o.steps;
    s.loss = loss;
    s.lr = lr;
    s.grad_norm = norm;
    s.tokens = n_tokens;
    s.targets = n_targets;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.log.push_back(s);
    if (on_step) on_step(s);
    if (!o.checkpoint_dir.empty() && o.checkpoint_every > 0 &&
        (step + 1) % o.checkpoint_every == 0 && step + 1 < o.steps)
      save_checkpoint(m, opt, o, step + 1, identity);
  }
  return res;
}

}  // namespace rv::train
