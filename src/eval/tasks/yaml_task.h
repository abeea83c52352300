// User-defined generative tasks written as YAML files, lm-evaluation-harness
// style (the format is documented in docs/eval.md, "Tasks as YAML files").
//
// make_task() hands any name ending in ".yaml" or ".yml" to load_yaml_task(),
// so `reasonvec eval --tasks path/to/task.yaml` and an experiment's `tasks:`
// entries need nothing else. Everything is checked while loading: unknown
// keys, filter functions or metrics, bad regexes and Jinja syntax errors are
// one-line rv::Errors "<file>:<line>: <key>: what" before any request is
// sent; a malformed dataset row is reported as "<dataset>:<line>: ...".
//
// Prompts are built with the same lm-eval layout as the built-in tasks
// (common.h); filters and metrics reuse extract.h, metrics.h and the math
// checker.
//
// Thread-safety: the returned Task is immutable.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "eval/tasks/task.h"

namespace rv::eval {

// True when `name` names a task file (ends in ".yaml" or ".yml").
bool is_task_file(const std::string& name);

// Parses and validates a task file. Throws rv::Error naming file, line and key.
std::unique_ptr<Task> load_yaml_task(const std::filesystem::path& path);
// The same from text; `path` names the file in messages and anchors relative paths.
std::unique_ptr<Task> parse_yaml_task(const std::string& text, const std::filesystem::path& path);

}  // namespace rv::eval
