// `reasonvec lab`: a whole reasoning-vector lineage trained on CPU from a
// seed, and the transfer of its vector measured with the regular experiment.
//
// Per seed, under OUT/seed-<S>/ (every stage a cached step of
// experiment/plan.h named by a fingerprint of the config sections it depends
// on and of its inputs, so a rerun does only what changed and a killed run
// resumes; training stages also checkpoint mid-way):
//   data       the synthetic task (lab/task.h): pretraining corpus, chat
//              mixes, problems; a byte-level BPE tokenizer trained on the
//              corpus (lab/bpe.h)               -> tokenizer/, tasks/<split>.{jsonl,yaml}
//   base       pretraining from a seeded init   -> base/
//   target     base + chat SFT on other skills and these problems answered
//              WITHOUT reasoning (the "instruct" model the vector is added to)
//                                               -> target/
//   sft        base + chat SFT on the problems WITH worked solutions -> sft/
//   grpo-I     GRPO from I = sft (and/or base) on the same problems -> grpo-I/
//   siblings-I experiment: vector v = grpo-I − sft on target sft at α ∈ {0, 1}:
//              GRPO against SFT on the same held-out problems, paired
//   transfer-I experiment: v on the target at every α, with a random vector
//              of v's per-tensor norms (and −v when eval.reverse)
// and over all seeds OUT/lab_report.{md,json} and OUT/plots/*.svg (training
// curves, transfer by α).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "lab/config.h"

namespace rv::lab {

struct LabOptions {
  std::filesystem::path out_dir;
  std::function<void(const std::string&)> log;  // stage lines and training progress
};

struct LabResult {
  nlohmann::json report;  // as written to lab_report.json
  std::string markdown;   // as written to lab_report.md
  int stages_run = 0, stages_cached = 0;
};

LabResult run_lab(const LabConfig& cfg, const LabOptions& opt);

}  // namespace rv::lab
