// The evaluation runner: tasks x backend -> scored samples and summaries.
//
// For each task: build its instances, look every request up in the result
// cache, send only the missing ones to the backend (each response is stored
// in the cache the moment it arrives, so a killed run resumes where it
// stopped), score, and aggregate lm-eval style. A progress bar per task
// shows requests done, samples/s and ETA.
//
// Thread-safety: run_eval is not re-entrant on one Backend (see backend.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/backend/backend.h"
#include "eval/tasks/task.h"

namespace rv::eval {

struct RunOptions {
  std::vector<std::string> tasks;    // make_task names, run in this order
  TaskOptions task;                  // shared by every task
  std::filesystem::path cache_path;  // SQLite result cache; empty: no cache
  // Merged into results.json "config" (model, backend, concurrency, ...).
  nlohmann::json config = nlohmann::json::object();
};

struct TaskRun {
  std::string name;
  nlohmann::json config;    // task->config(opts)
  std::string config_hash;  // cache key part
  size_t n_original = 0;    // documents before --limit
  std::vector<Instance> instances;
  std::vector<std::vector<GenResponse>> gens;    // per instance (generative tasks)
  std::vector<std::vector<LoglikResponse>> lls;  // per instance (log-likelihood tasks)
  std::vector<SampleScore> scores;
  // Per instance, when its K > 1 generations were scored one by one
  // (sampling.h score_sampled): {"samples": [...], "majority": {...}}; null otherwise.
  std::vector<nlohmann::json> sampled;
  // Per instance and generation: 0 no think block, 1 reasoning cut off
  // before scoring (--think strip), 2 "<think>" never closed (no answer).
  std::vector<std::vector<int8_t>> think;
  nlohmann::json summary;  // aggregate(): metrics, stderr, n-samples, groups
  // Length report of the generations (null for log-likelihood tasks):
  // responses, mean/max completion_tokens (over responses whose count is
  // known), cut_by_length (finish_reason "length") and its share,
  // think_unterminated.
  nlohmann::json generation;
  std::vector<std::string> metric_keys;
  std::string primary_metric;
  uint64_t requests = 0, cache_hits = 0, cache_misses = 0;
  double seconds_total = 0, seconds_backend = 0, seconds_scoring = 0;
};

struct RunResult {
  std::vector<TaskRun> tasks;
  nlohmann::json config;  // options.config plus limit, seed, transforms, prompt options
  uint64_t cache_hits = 0, cache_misses = 0;
  double seconds_total = 0;
};

// A task with its instances built once, for opts (limit, max_gen_toks and
// the sampling options of sampling.h apply_sampling applied), so a caller that runs it on many
// backends (the experiment) or needs the document count does not build them again.
struct PreparedTask {
  std::shared_ptr<const Task> task;
  nlohmann::json config;  // task->config(opts) with max_gen_toks applied
  std::vector<Instance> instances;
  size_t n_original = 0;  // documents before the limit
};

// Throws rv::Error on an unknown name, missing/corrupt data or options the
// task rejects.
PreparedTask prepare_task(const std::string& name, const TaskOptions& opts);

// Runs every task of opt.tasks. Throws rv::Error on bad task names, missing
// data, backend failures (after whatever was answered has been cached) and
// interruption.
RunResult run_eval(Backend& backend, const RunOptions& opt);
// Runs tasks prepared with opt.task (opt.tasks is ignored).
RunResult run_eval(Backend& backend, const RunOptions& opt,
                   const std::vector<const PreparedTask*>& tasks);

}  // namespace rv::eval
