// The experiment report as a typed record, and its renderings:
// report.json, report.md, plots/accuracy_<task>.svg and plots/vector_norms.svg.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/report/report.h"

namespace rv::experiment {

// One (variant, task[, group]) result, from eval::build_report's per-run cell
// of the variant's target group (the target at α=0 comes first, so deltas
// are against it).
struct Cell {
  std::string run_dir;                   // the eval run directory
  std::string metric;                    // the task's primary metric
  bool missing = false;                  // the run has no samples for the task: no numbers
  size_t n = 0;                          // documents scored
  double accuracy = 0;                   // mean of the primary metric (NaN when n == 0)
  std::pair<double, double> ci95{0, 0};  // bootstrap 95% CI
  // The value results.json reports, for cross-checking (absent when the
  // task has no such entry).
  std::optional<nlohmann::json> results_value;
  bool paired = false;  // the following fields are set (every row but α=0)
  size_t n_paired = 0;
  std::optional<double> delta;  // vs α=0 on the same documents; none when n_paired == 0
  std::pair<double, double> delta_ci95{0, 0};
  eval::McNemar mcnemar;
  bool has_mcnemar = true;  // false when a run sampled K > 1 (avg@K is not right/wrong)
};

// A variant's results for one task column: the whole task and its groups
// (BBH subtasks, GSM-Plus perturbation types).
struct TaskCells {
  std::optional<Cell> all;
  std::map<std::string, Cell> groups;
};

struct Row {
  std::string label;   // "qwen v α=+1"
  std::string target;  // target name
  std::string vector;  // "base" | "v" | "random"
  double alpha = 0;
  std::string model_dir;
  std::map<std::string, TaskCells> cells;  // by task label
  // The vector's form (experiment/config.h VectorForm::label(); empty for
  // the base row) and its sweep parameter: rank (0: by energy), energy,
  // density (0: not sparse).
  std::string form;
  int rank = 0;
  double energy = 0, density = 0;
  std::string delta;       // the vector or adapter added (empty for the base row)
  bool in_memory = false;  // applied at load time by the built-in engine
};

struct TaskColumn {
  std::string label, name;
  int limit = 0;
  uint64_t seed = 0;
  std::vector<std::string> transforms;
  bool cot_hint = false, chat_template = false;
};

struct Report {
  std::string config;  // the config file
  std::string vector_path;
  std::vector<std::pair<int, double>> vector_layers;  // (layer, ‖v_layer‖₂)
  double vector_total_l2 = 0, vector_other_l2 = 0;
  std::optional<std::pair<std::string, uint64_t>> random_control;  // (path, seed)
  std::vector<double> alphas;
  std::vector<TaskColumn> tasks;
  std::vector<Row> rows;
  int steps_run = 0, steps_cached = 0;
  eval::ReportOptions stats;  // bootstrap resamples and seed of the cells
};

// Fills rows[m].cells[task_label] from eval::build_report over the runs
// `run_dirs[m]` of one target's variants (α=0 first) for task `task_name`.
// `rows[m]` must outlive the call; they are indexed like run_dirs.
void add_task_cells(const std::vector<Row*>& rows,
                    const std::vector<std::filesystem::path>& run_dirs,
                    const std::string& task_name, const std::string& task_label,
                    const eval::ReportOptions& stats);

nlohmann::json to_json(const Report& r);
// α as labels and step names show it: "%+g" ("+1", "-0.5", "+0").
std::string format_alpha(double a);

std::string to_markdown(const Report& r);
// Accuracy vs α for one task column: one line per (target, vector), the
// target at α=0 shared.
std::string accuracy_svg(const Report& r, const std::string& task_label);
// Accuracy vs rank (`param` "rank", log₂ axis) or vs density ("density")
// for one task column: one line per (target, vector, α) over the lowrank or
// sparse forms, the full vector at the same α drawn as a dashed reference
// (at density 1 it is the line's last point). Empty when no row has such a
// form.
std::string sweep_svg(const Report& r, const std::string& task_label, const std::string& param);
// Per-layer ‖v‖₂ bars.
std::string norms_svg(const Report& r);

// Writes OUT/plots/*.svg (accuracy_<task>, accuracy_vs_rank_<task> and
// accuracy_vs_density_<task> when there are such forms, vector_norms),
// OUT/report.json and OUT/report.md.
void write_report(const Report& r, const std::filesystem::path& out);

}  // namespace rv::experiment
