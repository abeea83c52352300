// `reasonvec demo`: the training lab on its quick preset (lab/pipeline.h):
// a lineage trained from scratch on CPU, GRPO against SFT, and the transfer
// of their difference to an instruct target, in minutes, from the repository
// alone. `--pipeline-only` instead narrates the vector workflow (extract,
// check, inspect, apply, compact forms, an experiment) on a synthetic
// SFT / GRPO / instruct trio of random weights: the pipeline, not the effect.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/table.h"
#include "common/error.h"
#include "common/file.h"
#include "common/progress.h"
#include "experiment/experiment.h"
#include "formats/synth.h"
#include "lab/pipeline.h"
#include "vector/lowrank.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace rv::cli {

namespace fs = std::filesystem;

namespace {

void step(const char* what) {
  printf("\n== %s\n", what);
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto out = std::make_shared<std::string>("demo-out");
  auto tok = std::make_shared<std::string>();
  auto data = std::make_shared<std::string>();
  auto pipeline_only = std::make_shared<bool>(false);
  auto seeds = std::make_shared<int>(1);
  auto* sub = app.add_subcommand(
      "demo",
      "Train a small lineage on CPU and measure reasoning-vector transfer (the lab's quick "
      "preset); --pipeline-only: the vector workflow on random synthetic models");
  sub->add_flag("--pipeline-only", *pipeline_only,
                "Skip the lab: narrate extract -> check -> inspect -> apply -> experiment on "
                "synthetic random-weight models");
  sub->add_option("--seeds", *seeds, "Lab seeds (independent replicates)")->capture_default_str();
  sub->add_option("-o,--output", *out, "Working directory (replaced if it exists)")
      ->capture_default_str();
  sub->add_option("--tokenizer", *tok,
                  "Tokenizer directory: also run a small evaluation experiment (base vs +v vs -v "
                  "vs a random control)");
  sub->add_option(
      "--data-dir", *data,
      "Benchmark data: also run gsm8k and sciq in the experiment (see `reasonvec data`)");
  sub->callback([out, tok, data, pipeline_only, seeds] {
    const fs::path dir = *out;
    if (!*pipeline_only) {
      // The lab keeps its cached stages, so a second `make demo` only redoes
      // what changed.
      auto t0 = std::chrono::steady_clock::now();
      rv::lab::LabConfig cfg = rv::lab::lab_preset("quick");
      cfg.seeds = *seeds;
      printf(
          "== reasonvec lab, quick preset: pretrain a base model, fine-tune an instruct target "
          "(direct answers), train SFT and GRPO siblings on worked solutions, extract "
          "v = GRPO - SFT, add it to the target\n");
      rv::lab::LabOptions lo;
      lo.out_dir = dir / "lab";
      lo.log = [](const std::string& m) { fprintf(stderr, "%s\n", m.c_str()); };
      auto r = rv::lab::run_lab(cfg, lo);
      printf("\n%s\n", r.markdown.c_str());
      printf("Report: %s/lab_report.md (JSON: lab_report.json), plots: %s/plots/\n",
             lo.out_dir.c_str(), lo.out_dir.c_str());
      printf(
          "Done in %s (%d stage(s) run, %d cached). Config: `reasonvec lab --preset quick "
          "--print-config`; docs/lab.md explains every stage.\n",
          format_duration(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count())
              .c_str(),
          r.stages_run, r.stages_cached);
      return;
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    auto t0 = std::chrono::steady_clock::now();
    auto log = [](const std::string& m) { printf("   %s\n", m.c_str()); };

    step("1. synthesize an SFT / GRPO / instruct trio (Qwen2-shaped, bf16, one lineage)");
    SynthOptions o;
    o.arch = "qwen2";
    o.layers = 4;
    o.hidden = 256;
    o.heads = 8;
    o.kv_heads = 2;
    o.intermediate = 704;
    o.vocab = 4096;
    o.dtype = DType::BF16;
    o.seed = 2024;
    o.init_scale = 0.05f;
    synth_model(o, dir / "sft", true);
    o.delta_scale = 0.002f;
    o.delta_seed = 1;  // "GRPO": SFT + a small, structured-by-seed update
    synth_model(o, dir / "grpo", true);
    o.delta_scale = 0.004f;
    o.delta_seed = 2;  // "instruct": the same base, tuned differently
    o.shards = 2;
    synth_model(o, dir / "instruct", true);
    printf("   %s/{sft,grpo,instruct}: 4 layers, hidden 256, vocab 4096\n", dir.c_str());

    step("2. extract v = theta_GRPO - theta_SFT");
    vec::ExtractOptions eo;
    eo.command_line = command_line();
    auto er = vec::extract(dir / "sft", dir / "grpo", dir / "v.safetensors", eo, log);
    printf("   %s: %zu tensors, %s (f32)\n", (dir / "v.safetensors").c_str(), er.tensors,
           format_bytes(double(er.bytes_written)).c_str());

    step("3. check the vector against the instruct target (with lineage from the SFT base)");
    vec::CheckOptions co;
    co.base = dir / "sft";
    auto cr = vec::check(dir / "instruct", dir / "v.safetensors", co);
    static const char* verdicts[] = {"compatible", "compatible, with warnings", "INCOMPATIBLE"};
    printf("   verdict: %s, %zu tensors match, lineage distance %.4f\n",
           verdicts[static_cast<int>(cr.verdict)], cr.matched, cr.lineage_global);

    step("4. inspect: per-layer norms of v, relative to the SFT weights");
    auto ir = vec::inspect(dir / "v.safetensors", dir / "sft");
    Table t({"layer", "L2", "|v|/|theta|", "max|x|"});
    for (const auto& [i, s] : ir.layers)
      t.add({std::to_string(i), fmt(s.l2()), fmt(s.rel()), fmt(s.max_abs)});
    t.add({"other", fmt(ir.other.l2()), fmt(ir.other.rel()), fmt(ir.other.max_abs)});
    t.separator();
    t.add({"total", fmt(ir.total.l2()), fmt(ir.total.rel()), fmt(ir.total.max_abs)});
    printf("%s", t.str().c_str());

    step("5. apply with alpha = +1 and alpha = -1");
    for (double a : {1.0, -1.0}) {
      vec::ApplyOptions ao;
      ao.command_line = command_line();
      fs::path o_dir = dir / (a > 0 ? "instruct+v" : "instruct-v");
      auto ar = vec::apply(dir / "instruct", {{dir / "v.safetensors", a}}, o_dir, ao, log);
      printf("   %s: %zu tensors changed, %zu file(s), model card in README.md\n", o_dir.c_str(),
             ar.tensors_changed, ar.files.size());
    }

    step("6. compare: (instruct+v) - instruct recovers v");
    vec::extract(dir / "instruct", dir / "instruct+v", dir / "v_recovered.safetensors", eo, log);
    auto cmp = vec::compare(dir / "v.safetensors", dir / "v_recovered.safetensors");
    printf(
        "   cosine(v, recovered) = %.6f, norm ratio = %.6f (bf16 rounding of the merged model)\n",
        cmp.total.cosine(), cmp.total.norm_ratio());

    step("7. compact forms of v: a DARE-sparsified copy and a rank-8 LoRA adapter");
    {
      vec::SparsifyOptions so;
      so.method = "dare";
      so.params.density = 0.1;
      so.params.rescale = vec::sparsify_default_rescale("dare");
      so.command_line = command_line();
      auto sr = vec::sparsify(dir / "v.safetensors", dir / "v_dare10.safetensors", so, log);
      printf("   %s: %.1f%% of entries kept, %s (the dense f32 vector: %s)\n",
             (dir / "v_dare10.safetensors").c_str(),
             100.0 * double(sr.kept) / double(std::max<uint64_t>(1, sr.elements)),
             format_bytes(double(sr.bytes_written)).c_str(),
             format_bytes(double(sr.dense_bytes)).c_str());
      vec::LowrankOptions lo;
      lo.rank = 8;
      lo.model = dir / "sft";
      lo.command_line = command_line();
      auto lr = vec::lowrank(dir / "v.safetensors", dir / "v_lora8", lo, log);
      printf(
          "   %s: PEFT LoRA adapter, rank 8, %.1f%% of the projections' |v|^2 captured; %.1f%% of "
          "|v|^2 (norms, embeddings) is outside what a LoRA carries\n",
          (dir / "v_lora8").c_str(), 100 * lr.energy_captured, 100 * lr.unrepresentable_share);
      printf(
          "   (the demo's v is random, so its energy spreads over all ranks; see "
          "docs/lowrank.md)\n");
    }

    if (!tok->empty()) {
      step(
          "8. experiment: evaluate instruct with alpha -1, 0, +1, a random control and v's rank-4 "
          "LoRA (built-in engine, vectors applied in memory)");
      printf(
          "   (synthesized weights are random: scores sit near chance; this shows the pipeline, "
          "not the effect)\n");
      SynthOptions e;
      e.arch = "qwen2";
      e.layers = 2;
      e.hidden = 64;
      e.heads = 4;
      e.kv_heads = 2;
      e.intermediate = 128;
      e.tokenizer_dir = *tok;
      e.dtype = DType::BF16;
      e.seed = 7;
      e.init_scale = 0.2f;
      e.tied = true;
      synth_model(e, dir / "exp-sft", true);
      e.delta_scale = 0.02f;
      e.delta_seed = 1;
      synth_model(e, dir / "exp-grpo", true);
      e.delta_seed = 2;
      synth_model(e, dir / "exp-instruct", true);
      // A fresh clone has no benchmark files and maybe no network, so the
      // demo's own task is generated here: a task YAML file over 20
      // two-number sums (deterministic). With --data-dir, gsm8k and sciq run
      // as well.
      std::string rows;
      for (int i = 0; i < 20; ++i) {
        const int a = 3 + (i * 37) % 90, b = 5 + (i * 53) % 80;
        rows += "{\"question\": \"What is " + std::to_string(a) + " + " + std::to_string(b) +
                "?\", \"answer\": \"" + std::to_string(a + b) + "\"}\n";
      }
      write_file(dir / "sums.jsonl", rows);
      write_file(dir / "sums.yaml",
                 "task: sums\n"
                 "dataset: sums.jsonl\n"
                 "doc_to_text: \"Question: {{question}}\\nAnswer:\"\n"
                 "doc_to_target: \"{{answer}}\"\n"
                 "generation_kwargs: {until: [\"\\n\"], max_gen_toks: 16}\n"
                 "filter_list:\n"
                 "  - name: last-number\n"
                 "    filter: [{function: number}, {function: take_first}]\n"
                 "metric_list:\n  - metric: exact_match\n");
      std::string cfg =
          "vector: {base: exp-sft, tuned: exp-grpo}\n"
          "targets:\n  - {name: instruct, path: exp-instruct}\n"
          "alphas: [-1, 0, 1]\n"
          "controls: {random: {seed: 0}}\n"
          "vector_form: [full, {lowrank: {rank: 4}}]\n"
          "seed: 1234\n"
          "tasks:\n  - sums.yaml\n";
      if (!data->empty())
        cfg += "  - {name: gsm8k, limit: 4}\n  - {name: sciq, limit: 20}\ndata_dir: " +
               fs::absolute(*data).string() + "\n";
      write_file(dir / "experiment.yaml", cfg);
      experiment::ExperimentOptions xo;
      xo.out_dir = dir / "experiment";
      xo.log = [](const std::string& m) { printf("   %s\n", m.c_str()); };
      auto xr = experiment::run_experiment(
          experiment::load_experiment_config(dir / "experiment.yaml"), xo);
      printf("\n%s\n", xr.markdown.c_str());
      printf("   report: %s/experiment/report.md, plots under %s/experiment/plots/\n", dir.c_str(),
             dir.c_str());
    }

    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf(
        "\ndone in %.1fs. Everything is under %s/. Next: `reasonvec inspect %s/v.safetensors`.\n",
        secs, dir.c_str(), dir.c_str());
  });
}

}  // namespace rv::cli
