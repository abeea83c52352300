// Sampled evaluation and reasoning-model helpers used by the runner, the same
// for every generative task:
//
//  - apply_sampling(): --n-samples / --temperature / --top-p / --top-k /
//    --min-p / --chat-template-kwargs onto a task's instances, and the
//    per-document seed, so a (document, sample) pair always draws the same
//    tokens: sample k of document d uses seed doc_seed(run seed, d) + k.
//    (Consecutive seeds let an HTTP backend ask for several samples of one
//    document with one request, n = K, whose choice j uses seed + j.)
//  - split_think(): what of a response is scored under --think strip.
//  - score_sampled(): each of a document's K generations scored on its own;
//    avg@K, pass@K and maj@K per document.
//
// Metric keys of the sampled metrics: "<kind>@K:<metric>", e.g.
// "avg@8:exact_match,strict-match", "pass@8:exact_match,strict-match",
// "maj@8:exact_match,strict-match" (maj only for the primary metric). The
// plain keys keep the first sample's value, as lm-eval's take_first does.
//
// All functions are pure (Task is immutable) and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/backend/backend.h"
#include "eval/tasks/task.h"

namespace rv::eval {

// Base seed of a document: the first 8 bytes of sha256(seed "|" doc_id).
uint64_t doc_seed(uint64_t run_seed, const std::string& doc_id);

// Applies opts' sampling overrides and the per-document seed to every
// generative instance. Returns what was changed for the task's config
// ("generation_overrides"), or null when nothing was (K = 1, no overrides:
// the config, and so the cache key, stay as they were).
nlohmann::json apply_sampling(std::vector<Instance>& insts, const TaskOptions& opts);

// --think strip: the text after the last "</think>"; a response that opens
// "<think>" and never closes it has no answer (unterminated).
struct ThinkSplit {
  std::string answer;
  bool had_think = false;     // a </think> was found and the reasoning cut off
  bool unterminated = false;  // "<think>" without "</think>": answer is ""
};
ThinkSplit split_think(const std::string& text);

// Whether a task's K generations are scored one by one (every generative
// task whose primary metric is not already pass@k, i.e. not HumanEval).
bool scores_samples_separately(const Task& task, const Instance& inst, size_t n_gens);

// Scores every generation of `inst` on its own (task.score(inst, {g}, ...)),
// adds avg@K / pass@K (every metric) and maj@K (primary metric) to
// `doc_score.metrics`, and returns the per-sample record for the samples
// file: {"samples": [{"extracted", "correct", "metrics"}...],
// "majority": {"answer", "votes", "sample"}}.
nlohmann::json score_sampled(const Task& task, const Instance& inst,
                             const std::vector<GenResponse>& gens, const TaskOptions& opts,
                             SampleScore& doc_score);

// The majority vote alone: the index of the first member of the largest
// cluster of equivalent answers (ties: the cluster whose first member came
// first; answers not equivalent to themselves, such as "", take no part),
// and its size; {-1, 0} when no sample
// has an answer.
std::pair<int, int> majority_vote(const Task& task, const std::vector<std::string>& answers);

}  // namespace rv::eval
