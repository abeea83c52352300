// `reasonvec experiment CONFIG.yaml [-o DIR]`: the whole transfer experiment
// (extract, check, apply, evaluate, report) from one config; see
// experiment/config.h for the config format and the cached steps.
#include <cstdio>

#include "cli/commands.h"
#include "experiment/experiment.h"

namespace rv::cli {

void add_experiment_command(CLI::App& app) {
  auto* config = keep_alive<std::string>();
  auto* out = keep_alive<std::string>();
  auto* sub = app.add_subcommand("experiment",
                                 "Run a reasoning-vector transfer experiment from a YAML config: "
                                 "extract, check, apply for each "
                                 "(target, alpha), evaluate, report (cached and resumable)");
  sub->add_option("config", *config, "Experiment config (YAML); see examples/")->required();
  sub->add_option("-o,--output", *out,
                  "Output directory (default: the config's name without .yaml, next to it)");
  sub->callback([=] {
    auto cfg = rv::experiment::load_experiment_config(*config);
    std::filesystem::path dir = *out;
    if (dir.empty()) dir = std::filesystem::path(*config).replace_extension("");
    rv::experiment::ExperimentOptions o;
    o.out_dir = dir;
    o.log = [](const std::string& s) { fprintf(stderr, "%s\n", s.c_str()); };
    auto r = rv::experiment::run_experiment(cfg, o);
    fputs(r.markdown.c_str(), stdout);
    fprintf(stdout, "\nWrote %s/report.md, report.json and plots/ (%d step(s) run, %d cached)\n",
            dir.c_str(), r.steps_run, r.steps_cached);
  });
}

}  // namespace rv::cli
