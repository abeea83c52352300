// `reasonvec experiment CONFIG.yaml`: the paper's transfer table from one
// config file.
//
// Pipeline (each step cached under the output directory by a content
// fingerprint, so a rerun does only what changed and a killed run resumes):
//   1. preflight: every model directory, task name and data file is checked
//      before anything heavy starts;
//   2. extract  v = θ_tuned − θ_base           -> OUT/vectors/v-<fp>.safetensors
//      (or use the config's existing vector file);
//      control `random`: a seeded Gaussian vector with v's per-tensor L2 norms
//                                              -> OUT/vectors/random-<fp>.safetensors;
//   3. check    every (target, vector) pair (rv::vec::check); incompatible
//      pairs stop the run before any apply/eval;
//   4. apply    θ_target + α·v for each (target, vector, α≠0)
//                                              -> OUT/models/<variant>-<fp>/
//      (α = 0 evaluates the target directory itself);
//      control `reverse`: −v, i.e. every α also run as −α;
//   5. evaluate each (variant, task) with the eval runner
//                                              -> OUT/runs/<variant>/<task>/
//      all runs share one SQLite result cache, OUT/eval-cache.sqlite, so a
//      run killed mid-task resumes request by request;
//   6. report   OUT/report.md, report.json, plots/accuracy_<task>.svg,
//      plots/vector_norms.svg.
//
// Config (YAML; unknown keys are errors, messages are "FILE:LINE: key: problem"):
//   vector: {base: DIR, tuned: DIR}   or   vector: {file: PATH}
//   targets: [DIR, ...] or [{name: N, path: DIR, backend: ...}, ...]
//   alphas: [-1, 0, 1]                  (default)
//   controls: {random: true|{seed: N}, reverse: true}
//   tasks: [gsm8k, {name: sciq, label: sciq_cot, limit: 50, seed: 1234,
//           transforms: [typos:0.05], cot_hint: true, chat_template: true,
//           num_fewshot: 5, system_prompt: "..."}]
//   limit: N, seed: N                   (defaults for every task)
//   data_dir: DIR                       (default: eval::default_data_dir())
//   backend: engine | {engine: {max_batch: 64, max_context: 4096, kv_bf16: false}}
//          | {server: {command: "vllm serve {model} --port {port}",
//                      base_url: "http://127.0.0.1:{port}/v1",
//                      startup_timeout: 600, concurrency: 8, model_name: NAME}}
//   (a target's own `backend` overrides the top-level one)
// Relative paths are relative to the config file's directory.
//
// Thread-safety: run_experiment is not re-entrant for one output directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/tasks/task.h"

namespace rv::eval {

// An OpenAI-compatible server we start for each model variant. `{model}`
// (the model directory) and `{port}` (a free local port) are substituted in
// command, base_url and model_name.
struct ServerSpec {
  std::string command;
  std::string base_url = "http://127.0.0.1:{port}/v1";
  std::string model_name;        // empty: the first id GET /v1/models returns
  double startup_timeout = 600;  // seconds until /v1/models must answer 200
  int concurrency = 8;
};

struct BackendSpec {
  bool server = false;
  ServerSpec srv;
  int max_batch = 64;  // built-in engine
  int max_context = 4096;
  bool kv_bf16 = false;  // built-in engine: bf16 KV cache (--kv-bf16)
  nlohmann::json to_json() const;
};

struct ExperimentTask {
  std::string name;   // make_task name
  std::string label;  // unique column name (default: name)
  TaskOptions options;
};

struct ExperimentTarget {
  std::string name;  // unique row prefix (default: the directory's name)
  std::filesystem::path dir;
  BackendSpec backend;
};

struct ExperimentConfig {
  std::filesystem::path source;  // the YAML file (for messages)
  std::filesystem::path base, tuned;
  std::filesystem::path vector_file;  // used instead of base/tuned when set
  std::vector<ExperimentTarget> targets;
  std::vector<double> alphas = {-1, 0, 1};
  bool control_random = false;
  uint64_t random_seed = 0;
  bool control_reverse = false;
  std::vector<ExperimentTask> tasks;
  std::filesystem::path data_dir;
};

// Parses and validates a config (paths resolved, names unique, tasks known).
// Throws rv::Error("FILE:LINE: key: problem"). Does not touch model files.
ExperimentConfig load_experiment_config(const std::filesystem::path& yaml_path);
ExperimentConfig parse_experiment_config(const std::string& yaml_text,
                                         const std::filesystem::path& source);

struct ExperimentOptions {
  std::filesystem::path out_dir;
  std::function<void(const std::string&)> log;  // step log lines ("[cached] ...", "[run] ...")
};

struct ExperimentResult {
  nlohmann::json report;  // as written to report.json
  std::string markdown;   // as written to report.md
  int steps_run = 0;      // extract/random/apply/eval steps actually executed
  int steps_cached = 0;   // steps skipped because their fingerprinted output existed
  uint64_t cache_hits = 0, cache_misses = 0;  // eval request cache, over the steps run
};

ExperimentResult run_experiment(const ExperimentConfig& cfg, const ExperimentOptions& opt);

// A random vector with, tensor by tensor, the same shape and L2 norm as the
// tensors of `v` (entries seeded N(0,1), then scaled), stored as f32.
void write_random_control(const std::filesystem::path& v, uint64_t seed,
                          const std::filesystem::path& out);

// A server process started with /bin/sh -c COMMAND in its own process group,
// stdout+stderr to `log`. stop() sends SIGTERM to the group, then SIGKILL
// after `grace_s`; the destructor stops it too.
class ServerProcess {
 public:
  ServerProcess(const std::string& command, const std::filesystem::path& log);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // Polls GET {base_url}/models until 200; returns the first model id.
  // Throws rv::Error with the log tail on timeout or if the process exits.
  std::string wait_ready(const std::string& base_url, double timeout_s);
  bool alive();
  void stop(double grace_s = 15);
  std::string log_tail(size_t lines = 20) const;
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  std::filesystem::path log_;
};

// A TCP port that was free a moment ago on 127.0.0.1.
int free_local_port();

}  // namespace rv::eval
