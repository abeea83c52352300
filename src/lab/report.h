// The lab's report over all seeds: per seed, the siblings (GRPO against SFT)
// and the transfer (the target at each α, the random control) from the
// experiments' report.json; across seeds the mean of each paired Δ with a
// Student-t 95% interval over seeds (seeds are the independent replicates:
// each one trains the whole lineage from its own initialisation and data).
// Written as OUT/lab_report.json, OUT/lab_report.md and OUT/plots/*.svg
// (training curves from each stage's train_log.jsonl, Δ by α).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/config.h"

namespace rv::lab {

struct SeedSummary {
  uint64_t seed = 0;
  std::filesystem::path dir;
  std::map<std::string, std::filesystem::path> stages;  // "base", "sft", "grpo-sft", ...
  std::map<std::string, nlohmann::json>
      experiments;  // "siblings-sft", "transfer-sft" -> report.json
};

nlohmann::json build_lab_report(const LabConfig& c, const std::vector<SeedSummary>& seeds);
std::string lab_markdown(const nlohmann::json& report);
// Writes lab_report.json, lab_report.md and plots/ under `out`.
void write_lab_report(const std::filesystem::path& out, const nlohmann::json& report,
                      const std::string& markdown, const std::vector<SeedSummary>& seeds);

// Mean and two-sided 95% Student-t interval of `xs` (n >= 2; n == 1 gives
// the value with an interval of NaNs). Exposed for tests.
struct MeanCi {
  double mean = 0, lo = 0, hi = 0;
  int n = 0;
};
MeanCi mean_t_ci(const std::vector<double>& xs);

// A line plot: one polyline per series; NaN points are skipped.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};
std::string line_svg(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                     const std::vector<Series>& series);

}  // namespace rv::lab
