// reasonvec lowrank: a reasoning vector as a LoRA adapter (PEFT and/or GGUF).
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/table.h"
#include "common/error.h"
#include "common/file.h"
#include "convert/gguf_lora.h"
#include "vector/lowrank.h"

namespace rv::cli {

void add_lowrank_command(CLI::App& app) {
  struct Opts {
    std::string vector, out, model, format = "peft";
    vec::LowrankOptions o;
  };
  auto* p = keep_alive<Opts>();
  auto* sub = app.add_subcommand(
      "lowrank",
      "Truncated SVD of a vector's projections, written as a LoRA adapter (PEFT / GGUF)");
  sub->add_option("vector", p->vector, "Vector .safetensors file (or tensor directory)")
      ->required();
  sub->add_option("--rank,-r", p->o.rank, "Rank of every projection");
  sub->add_option("--energy", p->o.energy,
                  "Per tensor, the smallest rank capturing this fraction of |v_t|^2, in (0, 1]");
  sub->add_option("--model,-m", p->model,
                  "Base model directory (architecture, base_model_name_or_path; needed for "
                  "--format gguf|both and --modules-to-save)");
  sub->add_option("--format", p->format,
                  "peft (a directory), gguf (a file) or both (GGUF as "
                  "adapter.gguf inside the directory)")
      ->capture_default_str()
      ->check(CLI::IsMember({"peft", "gguf", "both"}));
  sub->add_flag("--modules-to-save", p->o.modules_to_save,
                "Also carry norms / embeddings / lm_head as PEFT modules_to_save (theta + v)");
  sub->add_option("--oversample", p->o.oversample, "Randomized SVD oversampling")
      ->capture_default_str();
  sub->add_option("--power-iters", p->o.power_iters, "Randomized SVD power iterations")
      ->capture_default_str();
  sub->add_option("--seed", p->o.seed, "Randomized SVD sketch seed")->capture_default_str();
  sub->add_option("-o,--output", p->out, "Output adapter directory (peft, both) or .gguf file")
      ->required();
  sub->add_flag("--force", p->o.force, "Replace an existing output");
  sub->callback([p] {
    vec::LowrankOptions o = p->o;
    o.model = p->model;
    o.command_line = command_line();
    const bool gguf = p->format != "peft";
    if (gguf && p->model.empty())
      throw Error("--format " + p->format +
                  " needs --model (the base's architecture and q/k layout)");
    if (gguf && o.modules_to_save)
      log_line(
          "note: the GGUF adapter leaves modules_to_save out (llama.cpp LoRA files carry "
          "only lora_a/lora_b pairs)");
    GgufLoraResult g;
    vec::LowrankResult r;
    if (p->format == "gguf") {
      // The PEFT adapter is an intermediate in a scratch directory that is
      // never published (removed when `scratch` goes out of scope).
      std::error_code ec;
      if (!o.force && fs::exists(p->out, ec)) throw Error(p->out, "exists (use --force)");
      AtomicOutput scratch(p->out + ".peft", AtomicOutput::Kind::kDirectory, true);
      r = vec::lowrank(p->vector, scratch.path() / "adapter", o,
                       [](const std::string& m) { log_line(m); });
      g = write_gguf_lora(scratch.path() / "adapter", p->model, p->out, o.force);
    } else {
      if (p->format == "both")
        o.before_commit = [&](const fs::path& dir, const vec::LowrankResult&) {
          g = write_gguf_lora(dir, p->model, dir / "adapter.gguf", false);
        };
      r = vec::lowrank(p->vector, p->out, o, [](const std::string& m) { log_line(m); });
    }
    Table t({"tensor", "out x in", "rank", "energy", "rel.err", "svd"});
    for (const auto& x : r.tensors)
      t.add({x.name, std::to_string(x.rows) + "x" + std::to_string(x.cols), std::to_string(x.rank),
             fmt(x.energy, "%.6f"), fmt(x.rel_error, "%.3g"),
             x.randomized ? "randomized" : "exact"});
    std::cout << t.str() << "\n";
    printf("energy captured over all of v: %.6f\n", r.energy_captured);
    printf("share of |v|^2 a LoRA cannot carry: %.6f (%zu tensors)%s\n", r.unrepresentable_share,
           r.unrepresentable.size(),
           o.modules_to_save ? "" : "; --modules-to-save carries norms/embeddings/lm_head");
    if (o.modules_to_save)
      printf("share written as modules_to_save: %.6f\n", r.modules_to_save_share);
    printf(
        "wrote %s (r = %d%s)\n", p->out.c_str(), r.r,
        gguf ? (", GGUF " + g.arch + ", " + std::to_string(g.n_modules) + " modules").c_str() : "");
  });
}

}  // namespace rv::cli
