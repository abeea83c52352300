// Writing a run's outputs, shaped like lm-evaluation-harness's:
//
//   OUT_DIR/results.json         results[task]["exact_match,strict-match"],
//                                "exact_match_stderr,strict-match", groups,
//                                group_subtasks, configs, versions, n-samples,
//                                higher-is-better, config (model, backend,
//                                limit, seed, transforms, ...), cache and
//                                timing statistics
//   OUT_DIR/samples_<task>.jsonl one line per document: doc_id, group, prompt,
//                                output, extracted, gold, correct, metrics
//   OUT_DIR/results.md           a Markdown table
//
// Metric keys without a filter get lm-eval's ",none" suffix ("acc,none",
// "acc_stderr,none"). Subtasks / perturbation groups are reported as their
// own entries "<task>_<group>" (spaces and punctuation -> '_'), e.g.
// "bbh_cot_fewshot_boolean_expressions", "gsm_plus_digit_expansion".
//
// Each file is written atomically (temporary + rename); results.json is
// written last, so its presence means the run directory is complete.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/run/runner.h"

namespace rv::eval {

// "exact_match,strict-match" -> itself; "acc" -> "acc,none".
std::string lm_eval_metric_key(const std::string& key);
// "exact_match,strict-match" -> "exact_match_stderr,strict-match".
std::string lm_eval_stderr_key(const std::string& key);
// Results entry name of a task's group: "gsm_plus" + "digit expansion" ->
// "gsm_plus_digit_expansion".
std::string group_entry_name(const std::string& task, const std::string& group);

nlohmann::json results_json(const RunResult& r);
nlohmann::json sample_json(const TaskRun& t, size_t i);
std::string results_markdown(const nlohmann::json& results);

// Creates `out_dir` if needed and writes all files into it.
void write_results(const std::filesystem::path& out_dir, const RunResult& r);

}  // namespace rv::eval
