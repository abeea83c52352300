// `reasonvec lab [CONFIG.yaml] -o DIR`: train a whole lineage (base, instruct
// target, SFT and GRPO siblings) on a synthetic reasoning task on CPU and
// measure the transfer of v = θ_GRPO − θ_SFT to the target; see
// lab/pipeline.h for the stages and lab/config.h for the config.
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "lab/pipeline.h"

namespace rv::cli {

void add_lab_command(CLI::App& app) {
  auto* config = keep_alive<std::string>();
  auto* out = keep_alive<std::string>();
  auto* preset = keep_alive<std::string>();
  auto* seeds = keep_alive<int>(0);
  auto* seed = keep_alive<int64_t>(-1);
  auto* threads = keep_alive<int>(0);
  auto* print = keep_alive<bool>(false);
  auto* sub = app.add_subcommand(
      "lab",
      "Train base, instruct target, SFT and GRPO siblings on a synthetic reasoning task (CPU), "
      "extract v = GRPO − SFT and measure its transfer to the target (cached and resumable)");
  sub->add_option("config", *config, "Lab config (YAML, see docs/lab.md); default: the preset");
  sub->add_option("-o,--output", *out, "Output directory (required unless --print-config)");
  sub->add_option("--preset", *preset, "Built-in preset without a config: default | quick");
  sub->add_option("--seeds", *seeds,
                  "Independent seeds of the whole pipeline (overrides the config)");
  sub->add_option("--seed", *seed, "First seed (overrides the config)");
  sub->add_option("-t,--threads", *threads, "Threads (default: all cores)");
  sub->add_flag("--print-config", *print, "Print the effective config as JSON and exit");
  sub->callback([=] {
    if (!config->empty() && !preset->empty())
      throw Error(
          "lab: give a config file or --preset, not both (a config names its preset with "
          "`preset:`)");
    rv::lab::LabConfig cfg = !config->empty()
                                 ? rv::lab::load_lab_config(*config)
                                 : rv::lab::lab_preset(preset->empty() ? "default" : *preset);
    if (*seeds > 0) cfg.seeds = *seeds;
    if (*seed >= 0) cfg.seed = static_cast<uint64_t>(*seed);
    if (*threads > 0) cfg.threads = *threads;
    rv::lab::validate(cfg);
    if (*print) {
      fprintf(stdout, "%s\n", cfg.to_json().dump(2).c_str());
      return;
    }
    if (out->empty()) throw Error("lab: --output DIR is required");
    rv::lab::LabOptions o;
    o.out_dir = *out;
    o.log = [](const std::string& s) { fprintf(stderr, "%s\n", s.c_str()); };
    auto r = rv::lab::run_lab(cfg, o);
    fputs(r.markdown.c_str(), stdout);
    fprintf(stdout,
            "\nWrote %s/lab_report.md, lab_report.json and plots/ (%d step(s) run, %d cached)\n",
            out->c_str(), r.stages_run, r.stages_cached);
  });
}

}  // namespace rv::cli
