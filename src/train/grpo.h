// The GRPO objective (DeepSeekMath, arXiv:2402.03300) as TRL's GRPOTrainer
// computes it: group-relative advantages, a PPO-style clipped surrogate on
// the per-token probability ratio against the sampling policy, and an
// optional k3 KL penalty towards a reference policy. Works on logits rows
// of any model (a TrainModel batch's [rows*T][vocab]); knows nothing of how
// they were produced.
//
//   auto adv = rv::train::group_advantages(rewards, group, true);
//   rv::train::GrpoStats st = rv::train::grpo_loss(logits, vocab, tokens, adv, {}, dlogits);
//   model.backward(dlogits);
//
// All functions are pure and thread-safe; log-softmax and reductions are in
// double.
#pragma once

#include <cstdint>
#include <vector>

namespace rv::train {

// Advantages of `rewards` laid out group-major (rewards[g*group + j] is
// sample j of prompt g): A_i = r_i - mean_g, divided by (std_g + 1e-4) when
// `scale_by_std` (GRPO), left unscaled for Dr. GRPO. std_g is the unbiased
// (Bessel-corrected, n-1) standard deviation, as torch.std and so TRL use.
// A group whose rewards are all equal gets advantages 0.
// Throws rv::Error when group < 2 or rewards.size() is not a multiple of it.
std::vector<double> group_advantages(const std::vector<double>& rewards, int group,
                                     bool scale_by_std);

// How per-token losses are summed into the batch loss.
enum class LossAggregation {
  // Original GRPO (TRL "grpo"): mean over each sequence's tokens, then mean
  // over sequences. A token of a short answer weighs more than one of a long
  // answer, which biases the policy towards long wrong answers (Dr. GRPO,
  // arXiv:2503.20783).
  kSequenceMean,
  // DAPO / TRL "bnpo": sum over every scored token of the batch / their
  // number. Every token weighs the same whatever its sequence's length; the
  // default for that reason.
  kTokenMean,
  // Dr. GRPO (TRL "dr_grpo"): sum / (sequences × max_completion_length), a
  // constant normaliser, so no length re-weighting within or across batches.
  kConstant,
};

struct GrpoOptions {
  double epsilon_low = 0.2;   // ratio clipped below at 1 - epsilon_low
  double epsilon_high = 0.2;  // ... and above at 1 + epsilon_high (DAPO raises it, e.g. 0.28)
  double beta = 0.0;          // weight of the k3 KL penalty; 0: ref_logprob is ignored
  LossAggregation aggregation = LossAggregation::kTokenMean;
  int max_completion_length = 0;  // kConstant's normaliser (> 0 required there)
};

// One completion token to score.
struct ScoredToken {
  int64_t row = 0;  // the logits row that predicts it
  int32_t id = 0;   // the token
  int seq = 0;      // its sequence (index into the advantages)
  // log p under the policy that sampled it (before the μ updates); with one
  // update per batch (μ = 1) the current policy's own value (ratio 1), as TRL does.
  double old_logprob = 0;
  double ref_logprob = 0;  // log p under the reference policy (used only when beta != 0)
};

// Averages over the scored tokens (the loss is the aggregated objective).
struct GrpoStats {
  double loss = 0;
  double kl = 0;         // mean k3 estimate exp(l_ref - l) - (l_ref - l) - 1 (0 when beta = 0)
  double clip_low = 0;   // fraction with ratio < 1 - epsilon_low and A < 0 (gradient 0)
  double clip_high = 0;  // fraction with ratio > 1 + epsilon_high and A > 0 (gradient 0)
  double entropy = 0;    // mean entropy (nats) of the policy at the scored positions
  double ratio = 0;      // mean exp(l - l_old)
  int64_t tokens = 0;    // scored tokens
};

// The GRPO loss over `logits` ([N][vocab] f32, N = logits.size() / vocab)
// for the scored tokens, with per-sequence `advantages`. Per token, with l
// = log softmax(logits[row])[id] and ratio = exp(l - l_old):
//   -min(ratio·A, clip(ratio, 1-ε_low, 1+ε_high)·A) + β·(exp(l_ref - l) - (l_ref - l) - 1)
// aggregated as o.aggregation says (kSequenceMean's sequences are all
// advantages.size() of them, a sequence without scored tokens counting 0,
// as TRL's clamp(min=1) does). Writes dL/dlogits into `dlogits` (resized to
// logits.size(), 0 in rows no token is scored at).
// Throws rv::Error for a row, id or seq out of range, vocab < 1, a logits
// size not a multiple of vocab, or kConstant without max_completion_length.
GrpoStats grpo_loss(const std::vector<float>& logits, int vocab,
                    const std::vector<ScoredToken>& tokens, const std::vector<double>& advantages,
                    const GrpoOptions& o, std::vector<float>& dlogits);

// log softmax(logits[rows[i]])[ids[i]] in double for each i: the old and
// reference log-probabilities, from a forward pass of the sampling or
// reference policy over the same batch. Throws rv::Error on out-of-range rows or ids.
std::vector<double> token_logprobs(const std::vector<float>& logits, int vocab,
                                   const std::vector<int64_t>& rows,
                                   const std::vector<int32_t>& ids);

}  // namespace rv::train
