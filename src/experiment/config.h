// The experiment config (YAML) and its parser.
//
// Config (unknown keys are errors, messages are "FILE:LINE: key: problem"):
//   vector: {base: DIR, tuned: DIR}   or   vector: {file: PATH}
//   targets: [DIR, ...] or [{name: N, path: DIR, backend: ...}, ...]
//   alphas: [-1, 0, 1]                  (default)
//   controls: {random: true|{seed: N}, reverse: true}
//   tasks: [gsm8k, {name: sciq, label: sciq_cot, limit: 50, seed: 1234,
//           transforms: [typos:0.05], cot_hint: true, chat_template: true,
//           num_fewshot: 5, system_prompt: "...",
//           n_samples: 8, temperature: 0.6, top_p: 0.95, top_k: 20, min_p: 0,
//           max_gen_toks: 32768, think: strip|keep,
//           chat_template_kwargs: {enable_thinking: false}}]
//   (sampling keys as `reasonvec eval`'s options, see docs/eval.md)
//   limit: N, seed: N                   (defaults for every task)
//   data_dir: DIR                       (default: eval::default_data_dir())
//   backend: engine | {engine: {max_batch: 64, max_context: 4096, kv_bf16: false,
//                               write_models: false, no_mmap: false}}
//          | {server: {command: "vllm serve {model} --port {port}",
//                      base_url: "http://127.0.0.1:{port}/v1",
//                      startup_timeout: 600, concurrency: 8, model_name: NAME,
//                      replicas: 1}}
//   (a target's own `backend` overrides the top-level one)
//   vector_form: full | {lowrank: {rank: R | energy: F}}
//              | {sparse: {method: M, density: D, seed: N, epsilon: E, gamma: G,
//                          rescale: true|false}}   (as `reasonvec sparsify`)
//              | a list of those; `rank`, `energy` and `density` may each be
//                a list (a sweep: one form per value)
//   (default: full. Every form is evaluated at every α; the random control
//   only with `full`. With the built-in engine, variants are applied in memory
//   and nothing but the derived vectors is written. With a server backend,
//   full and sparse variants are written as model directories served one at
//   a time, while all lowrank variants of a target are PEFT LoRA adapters
//   served by ONE server next to the base, started with the server's
//   `lora_command` (required then), whose {adapters} expands to one
//   `adapter_arg` per variant (default "{name}={path}", as vLLM's
//   --lora-modules takes them); requests name the adapter.)
// Relative paths are relative to the config file's directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "eval/tasks/task.h"

namespace rv::experiment {

// An OpenAI-compatible server the experiment starts for each model variant.
// `{model}` (the model directory) and `{port}` (a free local port) are
// substituted in command, base_url and model_name.
struct ServerSpec {
  std::string command;
  std::string base_url = "http://127.0.0.1:{port}/v1";
  std::string model_name;        // empty: the first id GET /v1/models returns
  double startup_timeout = 600;  // seconds until /v1/models must answer 200
  int concurrency = 8;           // requests in flight to each replica
  // Servers started per variant (e.g. one per GPU), each on its own {port};
  // `{replica}` (0..replicas-1) is substituted in command too. Requests are
  // spread over all of them (one queue, one cache).
  int replicas = 1;
  // The server for a target's base model and all its LoRA variants at once
  // (vector_form lowrank): like `command`, plus {adapters}, replaced by one
  // `adapter_arg` per variant ({name}: the adapter's model name, {path}: its
  // directory), joined by spaces.
  std::string lora_command;
  std::string adapter_arg = "{name}={path}";
};

// How the vector is turned into the delta that variants add: the vector
// itself, a truncated-SVD LoRA of it (vec::lowrank), or a sparsified copy
// (vec::sparsify, mergekit's method names and parameters).
struct VectorForm {
  enum class Kind { kFull, kLowrank, kSparse };
  Kind kind = Kind::kFull;
  int rank = 0;        // lowrank: fixed rank per matrix, or
  double energy = 0;   // lowrank: smallest rank capturing this share of ‖v‖² per matrix
  std::string method;  // sparse: dare, ties, magnitude, della, breadcrumbs
  double density = 1;  // sparse: kept fraction, (0, 1]
  uint64_t seed = 0;   // sparse: random drops
  double epsilon = 0.15, gamma = 0.01;  // della, breadcrumbs (vec::SparsifyParams defaults)
  std::optional<bool> rescale;          // default: the method's (vec::sparsify_default_rescale)
  // "full", "lowrank r=16", "lowrank e=0.9", "sparse dare d=0.1": labels,
  // report column, and (with every parameter) the derived vector's identity.
  std::string label() const;
  std::string key() const;
};

// How a target's variants are evaluated: the built-in engine (settings
// below) or a server started per variant (`srv`).
struct TargetBackend {
  bool server = false;
  ServerSpec srv;
  int max_batch = 64;  // built-in engine
  int max_context = 4096;
  bool kv_bf16 = false;  // built-in engine: bf16 KV cache (--kv-bf16)
  bool no_mmap = false;  // built-in engine: weights copied into RAM (--no-mmap); same numbers
  // Built-in engine: write full and sparse variants as model directories
  // (reasonvec apply) and load those, instead of adding the vector in memory
  // at load time; the numbers are the same. Lowrank variants stay in memory.
  bool write_models = false;
};

struct ExperimentTask {
  std::string name;   // eval::make_task name
  std::string label;  // unique column name (default: name)
  eval::TaskOptions options;
};

struct ExperimentTarget {
  std::string name;  // unique row prefix (default: the directory's name)
  std::filesystem::path dir;
  TargetBackend backend;
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
  std::vector<VectorForm> forms = {VectorForm{}};
};

// Parses and validates a config (paths resolved, names unique, tasks known).
// Throws rv::Error("FILE:LINE: key: problem"). Does not touch model files.
ExperimentConfig load_experiment_config(const std::filesystem::path& yaml_path);
ExperimentConfig parse_experiment_config(const std::string& yaml_text,
                                         const std::filesystem::path& source);

// `s` with every character other than letters, digits, '-', '_' and '.'
// replaced by '_' ("_" for an empty string): a file-system safe name.
std::string safe_name(const std::string& s);

}  // namespace rv::experiment
