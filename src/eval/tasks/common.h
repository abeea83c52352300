// Internal helpers shared by the task definitions (tasks_*.cpp): prompt
// assembly in lm-evaluation-harness's layout and the task registry hooks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/tasks/task.h"
#include "eval/tasks/transforms.h"

namespace rv::eval::detail {

struct Shot {
  std::string text;    // doc_to_text of the exemplar
  std::string target;  // doc_to_target of the exemplar
};

// lm-eval's fewshot_context layout. Raw prompt:
//   [system_prompt + fewshot_delimiter] description
//   + Σ (shot.text + target_delimiter + shot.target + fewshot_delimiter) + query
// Chat: system message = system_prompt and description joined by "\n\n"
// (trailing whitespace removed); then either one user message holding the
// shots and the query as above, or (fewshot_as_multiturn) one user/assistant
// pair per shot followed by the query as the last user message.
struct PromptSpec {
  std::string description;
  std::vector<Shot> shots;
  std::string query;
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";
};

// How many of `available` documents to use under opts.limit; adds
// `available` to *n_documents when given (BBH sums its subtasks).
inline size_t limited(size_t available, const TaskOptions& opts, size_t* n_documents) {
  if (n_documents) *n_documents += available;
  return opts.limit > 0 && static_cast<size_t>(opts.limit) < available
             ? static_cast<size_t>(opts.limit)
             : available;
}

GenRequest build_gen_request(const PromptSpec& spec, const TaskOptions& opts, bool chat,
                             std::vector<std::string> stops, int max_tokens);

// Chat-related options as recorded in config().
nlohmann::json prompt_options_json(const TaskOptions& opts, bool chat_applies);

// Rejects transforms a task does not support (error names task and transform).
std::vector<TransformSpec> checked_transforms(const std::string& task, const TaskOptions& opts,
                                              const std::vector<std::string>& supported);
nlohmann::json transforms_json(const std::vector<TransformSpec>& ts);
bool has_transform(const std::vector<TransformSpec>& ts, const std::string& kind);
const TransformSpec* find_transform(const std::vector<TransformSpec>& ts, const std::string& kind);

// Constructors, one per task family, registered in task.cpp.
std::unique_ptr<Task> make_gsm_task(
    const std::string& name);  // gsm8k, gsm8k_cot, gsm_plus, gsm_symbolic_p2
std::unique_ptr<Task> make_humaneval_task(bool instruct);
std::unique_ptr<Task> make_sciq_task();
std::unique_ptr<Task> make_bbh_task();
// math500, aime24, aime25, amc23, minerva_math, olympiadbench.
const std::vector<std::string>& math_task_names();
std::unique_ptr<Task> make_math_task(const std::string& name);

}  // namespace rv::eval::detail
