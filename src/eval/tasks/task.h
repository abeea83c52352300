// Evaluation tasks: prompts, gold answers and scoring, lm-evaluation-harness
// compatible. A Task turns data files into Instances (one per document, each
// a generation or a set of log-likelihood requests for a Backend) and scores
// a document from the backend's responses. It never talks to a backend.
//
// Typical use (the runner):
//   auto task = make_task("gsm8k_cot");
//   TaskOptions o; o.data_dir = dir; o.limit = 50;
//   auto insts = task->instances(o);          // throws on missing/corrupt data
//   ... gens[i] = backend.generate(insts[i].requests()) ...
//   auto scores = task->score_many(insts, gens, lls, o);
//   auto summary = aggregate(*task, insts, scores);
//
// Registered tasks: gsm8k, gsm8k_cot, humaneval, humaneval_instruct, sciq,
// bbh_cot_fewshot (27 subtasks as groups), gsm_plus (8 perturbation types as
// groups), gsm_symbolic_p2, and competition math: math500 (subjects as groups,
// levels as a breakdown), aime24, aime25, amc23, minerva_math, olympiadbench
// (subfields as groups). See gsm.cpp, bbh.cpp, ..., math_tasks.cpp for the
// exact definitions. make_task() also accepts the path of a task YAML file
// (yaml_task.h).
//
// Thread-safety: Task objects are immutable after construction; instances()
// and score*() may be called concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/backend/backend.h"
#include "eval/tasks/sandbox.h"

namespace rv::eval {

struct TaskOptions {
  std::filesystem::path data_dir;       // layout in data.h
  int limit = 0;                        // first N documents (per subtask for bbh); 0 = all
  uint64_t seed = 1234;                 // few-shot sampling (lm-eval's fewshot seed) and transforms
  bool apply_chat_template = false;     // send messages instead of a raw prompt
  bool fewshot_as_multiturn = false;    // with chat: one user/assistant pair per exemplar
  std::string system_prompt;            // prepended as system message (raw: text + "\n\n")
  bool cot_hint = false;                // append kCotHint to the question (see below)
  std::vector<std::string> transforms;  // transforms.h: "distractor", "typos:0.05", ...
  int num_fewshot = -1;                 // -1 = task default
  // Generations per document. HumanEval samples them itself (pass@k); for
  // every other generative task run_eval scores each one and reports
  // avg@K / pass@K / maj@K beside the first sample's metrics.
  int n_samples = 1;
  // Sampling overrides applied by prepare_task to every generative
  // instance; negative / 0 = the task's own. With n_samples > 1 and a greedy
  // task, temperature defaults to kDefaultSampledTemperature.
  float temperature = -1.0f;
  float top_p = -1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  // JSON object text passed to the chat template ({"enable_thinking":false});
  // "" = none. Canonical form (nlohmann dump) so it keys the cache stably.
  std::string chat_template_kwargs;
  // Reasoning models: score only what follows </think> (true, --think strip)
  // or the whole response (false, --think keep).
  bool strip_think = true;
  // Overrides every generative task's token budget (lm-eval's
  // --gen_kwargs max_gen_toks=N), e.g. for quick smoke runs. Applied by
  // run_eval to the instances and to config()'s generation_kwargs; 0 = the
  // task's own.
  int max_gen_toks = 0;
  SandboxOptions sandbox;  // HumanEval execution
};

// The --cot-hint text. Raw prompts: appended to the answer cue ("Answer:" ->
// "Answer: Let's think step by step."); chat prompts: appended to the user
// message after a newline. BBH's prompts already end with it (no-op there).
inline constexpr const char* kCotHint = "Let's think step by step.";

// Temperature used when n_samples > 1 asks for samples of a greedy task and
// no temperature is given (K greedy answers would all be the same).
inline constexpr float kDefaultSampledTemperature = 1.0f;

struct Instance {
  std::string doc_id;  // stable within a task: "17", "boolean_expressions/3"
  size_t index = 0;    // position in instances()
  std::string group;   // subtask / perturbation type ("" when the task has none)
  // Further breakdowns besides `group`, reported by aggregate() under
  // "breakdowns": {"level": "3"} (MATH-500 levels).
  std::map<std::string, std::string> facets;
  bool is_loglik = false;
  GenRequest gen;                      // generative tasks
  int repeats = 1;                     // number of generations wanted (n_samples)
  std::vector<LoglikRequest> choices;  // log-likelihood tasks, in choice order
  nlohmann::json gold;                 // reference answer as stored in samples
  nlohmann::json doc_meta;             // extra per-doc data for samples (question, test, ...)

  // `repeats` copies of gen; copy i has seed gen.seed + i.
  std::vector<GenRequest> requests() const;
  // The prompt as text for samples/logs (the raw prompt or the messages as JSON).
  std::string prompt_text() const;
};

struct SampleScore {
  // lm-eval metric keys: "exact_match,strict-match", "exact_match,flexible-extract",
  // "acc", "acc_norm", "pass@1", "pass@10", "exact_match,get-answer", ...
  std::map<std::string, double> metrics;
  std::string extracted;   // the primary filter's answer (first sample)
  bool correct = false;    // primary metric == 1 (for pass@k: pass@1 > 0)
  nlohmann::json details;  // every filter's extraction, execution results, ...
};

struct MetricInfo {
  std::string key;  // "exact_match,strict-match"
  bool higher_is_better = true;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // Every file instances() may read, relative to the data directory, for
  // any options. `reasonvec data` must know each of them (a test checks the
  // declarations against its table), so a task that reads a new file
  // declares it here and nowhere else.
  virtual std::vector<std::string> data_files() const = 0;
  // Everything that defines prompts and scoring for these options (task
  // version, prompt templates, stops, few-shot settings, transforms, chat
  // options, data files). Stable JSON: usable as a cache key and written to
  // results.json "configs". Does not include data_dir or limit.
  virtual nlohmann::json config(const TaskOptions& opts) const = 0;
  // The instances of the first opts.limit documents (per subtask for
  // BBH); when `n_documents` is given it receives the number of documents
  // without the limit, so callers need not build the instances twice.
  // Throws rv::Error on missing/corrupt data or options the task rejects.
  virtual std::vector<Instance> instances(const TaskOptions& opts, size_t* n_documents) const = 0;
  std::vector<Instance> instances(const TaskOptions& opts) const {
    return instances(opts, nullptr);
  }
  // gens: the instance's `repeats` generations (generative tasks);
  // lls: one response per choice (log-likelihood tasks).
  // opts: the options instances() was called with (HumanEval reads
  // opts.sandbox).
  virtual SampleScore score(const Instance& inst, const std::vector<GenResponse>& gens,
                            const std::vector<LoglikResponse>& lls,
                            const TaskOptions& opts) const = 0;
  // Scores many documents; HumanEval runs its programs in parallel here.
  virtual std::vector<SampleScore> score_many(const std::vector<Instance>& insts,
                                              const std::vector<std::vector<GenResponse>>& gens,
                                              const std::vector<std::vector<LoglikResponse>>& lls,
                                              const TaskOptions& opts) const;
  virtual std::vector<MetricInfo> metrics(const TaskOptions& opts) const = 0;
  // The metric that decides SampleScore::correct and headline tables.
  virtual std::string primary_metric() const = 0;
  // Whether two extracted answers (SampleScore::extracted) are the same
  // answer, for maj@K's majority vote. An answer not equivalent to itself is
  // no answer and takes no part in the vote. Default: equal strings, neither
  // empty nor lm-eval's "[invalid]" extraction fallback. Math tasks override
  // it with their equivalence checker.
  virtual bool answers_equivalent(const std::string& a, const std::string& b) const {
    return !a.empty() && a != "[invalid]" && a == b;
  }
};

// Per-task summary in lm-eval's shape:
//   {"<metric>": mean, "<metric>_stderr": stderr, ... (metric names keep the
//    ",filter" suffix: "exact_match_stderr,strict-match"),
//    "n-samples": N,
//    "groups": {"<group>": {"<metric>": ..., "<metric>_stderr": ..., "n-samples": n}},
//    "breakdowns": {"<facet>": {"<value>": {"<metric>": ..., "<metric>_stderr": ...,
//                                           "n-samples": n}}}}
// ("groups" only for grouped tasks, "breakdowns" only when instances have facets).
// The task-level value for grouped tasks is the size-weighted mean of the
// group means (== the mean over all samples) with lm-eval's pooled stderr.
// Besides task.metrics(opts), every key of the scores that contains ':'
// (the sampled metrics "avg@K:<metric>", "pass@K:...", "maj@K:...", see
// run/sampling.h) is aggregated the same way, per document.
nlohmann::json aggregate(const Task& task, const TaskOptions& opts,
                         const std::vector<Instance>& insts,
                         const std::vector<SampleScore>& scores);

std::unique_ptr<Task> make_task(const std::string& name);  // throws on unknown names
std::vector<std::string> task_names();

}  // namespace rv::eval
