#include "train/rollout.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "common/error.h"
#include "engine/sampling.h"

namespace rv::train {
namespace {

constexpr const char* kRolloutWhere = "rollout";
// Prompt tokens prefilled per forward pass at most (beyond the first
// admitted prompt): bounds the activations of one pass.
constexpr int kPrefillBudget = 4096;

// The RNG of stream `s` (= prompt * group + sample): seeded by a hash of
// (seed, s), so streams are independent of each other and of scheduling.
engine::Rng stream_rng(uint64_t seed, uint64_t s) {
  engine::Rng a(seed);
  engine::Rng b(a.next() ^ (s * 0xd1b54a32d192ed03ull));
  return engine::Rng(b.next());
}

// Copies K/V positions [0, n) of every layer from slot `from` to slot `to`.
void copy_prefix(engine::KVCache& kv, const engine::ModelSpec& spec, int from, int to, int n) {
  const size_t bytes =
      static_cast<size_t>(n) * spec.kv_dim() * dtype_size(kv.bf16() ? DType::BF16 : DType::F32);
  for (int l = 0; l < spec.layers; ++l) {
    std::memcpy(kv.k(l, to), kv.k(l, from), bytes);
    std::memcpy(kv.v(l, to), kv.v(l, from), bytes);
  }
}

}  // namespace

std::vector<Completion> sample_group(engine::Model& m,
                                     const std::vector<std::vector<int32_t>>& prompts,
                                     const RolloutOptions& o) {
  const engine::ModelSpec& spec = m.spec();
  if (o.group < 1 || o.max_tokens < 1 || o.max_batch < 1)
    throw Error(kRolloutWhere, "group, max_tokens and max_batch must be >= 1");
  if (!(o.temperature >= 0)) throw Error(kRolloutWhere, "temperature must be >= 0");
  int max_prompt = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    if (prompts[p].empty()) throw Error(kRolloutWhere, "prompt " + std::to_string(p) + " is empty");
    for (int32_t t : prompts[p])
      if (t < 0 || t >= spec.vocab)
        throw Error(kRolloutWhere, "prompt " + std::to_string(p) + ": token id " +
                                       std::to_string(t) + " outside the vocabulary (" +
                                       std::to_string(spec.vocab) + ")");
    max_prompt = std::max(max_prompt, static_cast<int>(prompts[p].size()));
  }
  const int G = o.group, P = static_cast<int>(prompts.size()), N = P * G, V = spec.vocab;
  std::vector<Completion> out(N);
  for (int s = 0; s < N; ++s) out[s].prompt = s / G;
  if (N == 0) return out;

  engine::SamplingParams sp;
  sp.temperature = o.temperature;
  sp.top_p = o.top_p;
  sp.top_k = o.top_k;
  const int n_slots = std::min(o.max_batch, N);
  engine::KVCache kv(spec, n_slots, max_prompt + o.max_tokens);

  struct Slot {
    int stream = -1;      // the sequence decoding here; -1: free
    int pos = 0;          // where `pending` goes
    int32_t pending = 0;  // last sampled token, not yet in the cache
    int prompt = -1;      // whose prompt K/V rows [0, len) this slot holds
  };
  std::vector<Slot> slots(n_slots);
  std::vector<engine::Rng> rng;
  rng.reserve(N);
  for (int s = 0; s < N; ++s) rng.push_back(stream_rng(o.seed, s));
  // First-step logits of prompts with samples still to admit, so later
  // samples of a group need neither a prefill nor a forward pass.
  std::map<int, std::vector<float>> first_logits;

  // Samples the next token of the slot's stream from `row`; frees the slot
  // when the completion ends.
  auto step = [&](int si, const float* row) {
    Slot& sl = slots[si];
    Completion& c = out[sl.stream];
    const int32_t t = engine::sample_token(row, V, sp, rng[sl.stream]);
    c.tokens.push_back(t);
    c.stopped = std::find(o.stop_ids.begin(), o.stop_ids.end(), t) != o.stop_ids.end();
    if (c.stopped || static_cast<int>(c.tokens.size()) >= o.max_tokens) {
      sl.stream = -1;
    } else {
      sl.pending = t;
    }
  };

  // A row of this pass's logits: a live sequence's next token, or a
  // prefilled prompt's first token for the leader slot and its followers.
  struct Row {
    int slot = -1;
    int prompt = -1;  // >= 0: a prefill
    std::vector<int> followers;
  };
  std::vector<engine::BatchToken> batch;
  std::vector<Row> rows;
  std::vector<float> logits;
  int next = 0;  // next stream to admit
  for (;;) {
    batch.clear();
    rows.clear();
    for (int si = 0; si < n_slots; ++si)
      if (slots[si].stream >= 0) {
        batch.push_back({slots[si].pending, si, slots[si].pos, true});
        rows.push_back({si, -1, {}});
      }
    int prefilled = 0;
    std::map<int, size_t> prefill_row;  // prompt -> its row in `rows`
    for (int si = 0; si < n_slots && next < N;) {
      Slot& sl = slots[si];
      if (sl.stream >= 0) {
        ++si;
        continue;
      }
      const int s = next, p = s / G, len = static_cast<int>(prompts[p].size());
      auto cached = first_logits.find(p);
      int holder = -1;  // a slot that holds prompt p's K/V
      if (sl.prompt == p) {
        holder = si;
      } else {
        for (int h = 0; h < n_slots && holder < 0; ++h)
          if (slots[h].prompt == p && prefill_row.count(p) == 0) holder = h;
      }
      if (cached != first_logits.end() && holder >= 0) {
        if (holder != si) copy_prefix(kv, spec, holder, si, len);
        sl = {s, len, 0, p};
        ++next;
        step(si, cached->second.data());
        continue;  // the slot may be free again at once
      }
      if (auto pr = prefill_row.find(p); pr != prefill_row.end()) {
        rows[pr->second].followers.push_back(si);
      } else {
        if (prefilled > 0 && prefilled + len > kPrefillBudget) break;
        for (int t = 0; t < len; ++t) batch.push_back({prompts[p][t], si, t, t + 1 == len});
        prefilled += len;
        prefill_row[p] = rows.size();
        rows.push_back({si, p, {}});
      }
      sl = {s, len, 0, p};
      ++next;
      ++si;
    }
    // Prompts before next / G have every sample admitted.
    first_logits.erase(first_logits.begin(), first_logits.lower_bound(next / G));
    if (batch.empty()) {
      // Samples admitted from cached logits this pass are fed next pass.
      if (std::none_of(slots.begin(), slots.end(), [](const Slot& x) { return x.stream >= 0; }))
        break;  // nothing live and nothing left to admit
      continue;
    }
    m.forward(batch, kv, logits);
    for (size_t r = 0; r < rows.size(); ++r) {
      const float* row = &logits[r * static_cast<size_t>(V)];
      const Row& rw = rows[r];
      if (rw.prompt < 0) {
        ++slots[rw.slot].pos;
        step(rw.slot, row);
        continue;
      }
      for (int f : rw.followers)
        copy_prefix(kv, spec, rw.slot, f, static_cast<int>(prompts[rw.prompt].size()));
      step(rw.slot, row);
      for (int f : rw.followers) step(f, row);
      // Samples of this prompt still to admit reuse the row.
      if (next < N && next / G == rw.prompt) first_logits[rw.prompt].assign(row, row + V);
    }
  }
  return out;
}

}  // namespace rv::train
