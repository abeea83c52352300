// `reasonvec experiment CONFIG.yaml`: the paper's transfer table from one
// config file (format: experiment/config.h).
//
// Pipeline (each heavy step a cached Step of experiment/plan.h, named by a
// fingerprint of its inputs, so a rerun does only what changed, a killed run
// resumes, and two runs on the same inputs produce the same names):
//   1. preflight: every model directory, task name and data file is checked
//      before anything heavy starts;
//   2. extract  v = θ_tuned − θ_base           -> OUT/vectors/v-<fp>.safetensors
//      (or use the config's existing vector file);
//      control `random`: vec::random_like(v)    -> OUT/vectors/random-<fp>.safetensors;
//   3. check    every (target, vector) pair (rv::vec::check); incompatible
//      pairs stop the run before any apply/eval;
//   4. apply    θ_target + α·v for each (target, vector, α≠0)
//                                              -> OUT/models/<variant>-<fp>/
//      (α = 0 evaluates the target directory itself);
//      control `reverse`: −v, i.e. every α also run as −α;
//   5. evaluate each (variant, task) with the eval runner
//                                              -> OUT/runs/<variant>/<task>-<fp>/
//      all runs share one SQLite result cache, OUT/eval-cache.sqlite, so a
//      run killed mid-task resumes request by request;
//   6. report   OUT/report.md, report.json, plots/accuracy_<task>.svg,
//      plots/vector_norms.svg (experiment/report.h).
//
// Model identities are rv::model_fingerprint (content, not paths or mtimes):
// every run reads the input models once to fingerprint them.
//
// Thread-safety: run_experiment is not re-entrant for one output directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "experiment/config.h"

namespace rv::experiment {

struct ExperimentOptions {
  std::filesystem::path out_dir;
  std::function<void(const std::string&)> log;  // step log lines ("[cached] ...", "[run   ] ...")
};

struct ExperimentResult {
  nlohmann::json report;  // as written to report.json
  std::string markdown;   // as written to report.md
  int steps_run = 0;      // extract/random/apply/eval steps actually executed
  int steps_cached = 0;   // steps skipped because their fingerprinted output existed
  uint64_t cache_hits = 0, cache_misses = 0;  // eval request cache, over the steps run
};

// Throws rv::Error: preflight problems (all of them, one message), check
// failures, and the first failing step (server failures with the log tail).
ExperimentResult run_experiment(const ExperimentConfig& cfg, const ExperimentOptions& opt);

}  // namespace rv::experiment
