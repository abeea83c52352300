// extract / apply / sparsify / inspect / compare / check: the reasoning-vector commands.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/table.h"
#include "common/error.h"
#include "common/file.h"
#include "common/progress.h"
#include "vector/lowrank.h"
#include "vector/mergekit.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace rv::cli {

namespace {

DType parse_vector_dtype(const std::string& s) {
  auto d = parse_user_dtype(s);
  if (!d) throw Error("--dtype: expected f32, bf16 or f16, got '" + s + "'");
  return *d;
}

vec::Log logger() { return [](const std::string& m) { log_line(m); }; }

std::string layer_label(int i) { return i < 0 ? "other" : std::to_string(i); }

// inspect --spectrum: table (or JSON) on stdout, optional SVG plot.
void print_spectrum(const vec::SpectrumResult& r, int top, bool as_json, const std::string& svg) {
  if (!svg.empty()) write_file(svg, vec::spectrum_svg(r));
  if (as_json) {
    std::cout << r.to_json(top).dump(2) << "\n";
    return;
  }
  Table t({"tensor", "out x in", "eff.rank", "r90", "r99", "top sigma"});
  for (const auto& x : r.tensors) {
    std::string sig;
    for (size_t k = 0; k < x.sigma.size() && static_cast<int>(k) < top; ++k)
      sig += (k ? " " : "") + fmt(x.sigma[k], "%.3g");
    t.add({x.name, std::to_string(x.rows) + "x" + std::to_string(x.cols),
           fmt(x.effective_rank, "%.1f"), std::to_string(x.rank90), std::to_string(x.rank99), sig});
  }
  std::cout << t.str();
}

}  // namespace

void add_extract_command(CLI::App& app) {
  struct Opts {
    std::string base, tuned, out, dtype = "f32", shard = "5GB";
    vec::ExtractOptions o;
  };
  auto p = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("extract", "Extract a reasoning vector v = tuned - base (e.g. GRPO - SFT)");
  sub->add_option("--base", p->base, "Base model directory (the SFT checkpoint)")->required();
  sub->add_option("--tuned", p->tuned, "Tuned model directory (the GRPO checkpoint)")->required();
  sub->add_option("-o,--output", p->out, "Output .safetensors file")->required();
  sub->add_option("--dtype", p->dtype, "Vector dtype: f32 (exact for bf16 models), bf16 or f16")->capture_default_str();
  sub->add_option("--include", p->o.include, "Only tensors whose name matches this regex");
  sub->add_option("--exclude", p->o.exclude, "Leave out tensors whose name matches this regex");
  sub->add_flag("--strict", p->o.strict, "Error if a tensor is present in only one model");
  sub->add_flag("--fail-on-nonfinite", p->o.fail_on_nonfinite, "Error on NaN/Inf instead of warning");
  sub->add_option("--shard-size", p->shard, "Shard vectors larger than this (into a directory)")->capture_default_str();
  sub->add_flag("--force", p->o.force, "Overwrite the output if it exists");
  sub->callback([p] {
    p->o.dtype = parse_vector_dtype(p->dtype);
    p->o.shard_size = parse_size(p->shard);
    p->o.command_line = command_line();
    auto r = vec::extract(p->base, p->tuned, p->out, p->o, logger());
    printf("wrote %s: %zu tensors, %llu elements, %s (%s)\n", p->out.c_str(), r.tensors,
           static_cast<unsigned long long>(r.elements), format_bytes(double(r.bytes_written)).c_str(),
           std::string(dtype_name(p->o.dtype)).c_str());
  });
}

void add_apply_command(CLI::App& app) {
  struct Opts {
    std::string model, out, dtype = "same", shard = "5GB", vocab = "error", mergekit;
    std::vector<std::string> vectors;
    std::vector<double> alphas;
    bool no_rescale = false;
    vec::ApplyOptions o;
  };
  auto p = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("apply", "Add reasoning vector(s) to a model: theta + sum(alpha_i * v_i)");
  sub->add_option("--model", p->model, "Target model directory");
  sub->add_option("--vector", p->vectors, "Vector file (repeatable)");
  sub->add_option("--mergekit-config", p->mergekit,
                  "Run a mergekit YAML config (linear or task_arithmetic) instead of --model/--vector");
  sub->add_option("--alpha", p->alphas,
                  "Scale of the matching --vector (repeatable, in the same order; default 1; "
                  "negative subtracts)");
  sub->add_option("-o,--output", p->out, "Output model directory")->required();
  sub->add_option("--dtype", p->dtype, "Output dtype: same (the target's), bf16, f16 or f32")->capture_default_str();
  sub->add_option("--shard-size", p->shard, "Maximum shard size (Hugging Face style)")->capture_default_str();
  sub->add_option("--vocab-mismatch", p->vocab,
                  "When embedding rows differ: error, overlap (common rows only) or skip")
      ->check(CLI::IsMember({"error", "overlap", "skip"}))
      ->capture_default_str();
  sub->add_flag("--untie", p->o.untie, "Tied target + vector with lm_head: write a separate lm_head");
  sub->add_flag("--strict", p->o.strict, "Error if the vector has tensors the target lacks");
  sub->add_flag("--fail-on-nonfinite", p->o.fail_on_nonfinite, "Error on NaN/Inf in the result");
  sub->add_flag("--force", p->o.force, "Overwrite the output directory if it exists");
  sub->add_flag(
      "--partial", p->o.partial,
      "Apply a vector that covers only part of the target, or whose source config differs "
      "(the model card lists the tensors left unchanged)");
  sub->add_option(
         "--method", p->o.method,
         "Merge method: linear (theta + sum alpha_i v_i), ties, dare_linear, dare_ties, della, "
         "della_linear, breadcrumbs, breadcrumbs_ties (mergekit semantics; alphas are the weights)")
      ->capture_default_str();
  sub->add_option("--density", p->o.density, "Fraction of each vector tensor kept, in (0, 1]")
      ->capture_default_str();
  sub->add_option("--epsilon", p->o.epsilon, "della: keep probabilities span density +- epsilon")
      ->capture_default_str();
  sub->add_option("--gamma", p->o.gamma, "breadcrumbs: fraction of the largest entries dropped")
      ->capture_default_str();
  sub->add_option("--lambda", p->o.lambda, "della: scale of the merged delta")
      ->capture_default_str();
  sub->add_flag("--no-rescale", p->no_rescale,
                "Do not rescale kept entries (dare/della rescale by default)");
  sub->add_flag("--normalize", p->o.normalize,
                "Divide the merged delta by the sum of the (agreeing) alphas");
  sub->add_option("--seed", p->o.seed, "Seed of the random drops (dare, della)")
      ->capture_default_str();
  sub->callback([p] {
    if (p->no_rescale) p->o.rescale = false;
    if (!p->mergekit.empty()) {
      if (!p->model.empty() || !p->vectors.empty())
        throw CLI::ValidationError("--mergekit-config",
                                   "takes the models from the config: drop --model/--vector");
      if (p->o.method != "linear")
        throw CLI::ValidationError("--method", "a mergekit config names its own merge_method");
      vec::MergekitOptions mo{p->o.force, parse_size(p->shard), command_line(), p->o.seed};
      auto r = vec::run_mergekit(p->mergekit, p->out, mo, logger());
      printf("wrote %s: %zu tensors, %s in %zu file(s)\n", p->out.c_str(), r.tensors_changed,
             format_bytes(double(r.bytes_written)).c_str(), r.files.size());
      return;
    }
    if (p->model.empty() || p->vectors.empty())
      throw CLI::ValidationError("apply", "--model and at least one --vector are required");
    if (!p->alphas.empty() && p->alphas.size() != p->vectors.size())
      throw CLI::ValidationError("--alpha", "give one --alpha per --vector (or none for alpha = 1)");
    std::vector<vec::ApplyTerm> terms;
    for (size_t i = 0; i < p->vectors.size(); ++i)
      terms.push_back({p->vectors[i], p->alphas.empty() ? 1.0 : p->alphas[i]});
    if (p->dtype != "same") p->o.dtype = parse_vector_dtype(p->dtype);
    p->o.shard_size = parse_size(p->shard);
    p->o.vocab_mismatch = p->vocab == "overlap" ? vec::VocabMismatch::kOverlap
                          : p->vocab == "skip"  ? vec::VocabMismatch::kSkip
                                                : vec::VocabMismatch::kError;
    p->o.command_line = command_line();
    auto r = vec::apply(p->model, terms, p->out, p->o, logger());
    printf("wrote %s: %zu tensors changed, %zu copied, %s in %zu file(s)\n", p->out.c_str(),
           r.tensors_changed, r.tensors_copied, format_bytes(double(r.bytes_written)).c_str(),
           r.files.size());
    if (!r.unchanged.empty())
      printf("--partial: %zu target tensor(s) left unchanged (listed in README.md)\n",
             r.unchanged.size());
  });
}

void add_sparsify_command(CLI::App& app) {
  struct Opts {
    std::string in, out, format = "auto";
    bool no_rescale = false;
    vec::SparsifyOptions o;
  };
  auto p = std::make_shared<Opts>();
  auto* sub =
      app.add_subcommand("sparsify",
                         "Write a sparsified vector (dare, ties/magnitude, della, breadcrumbs), "
                         "stored compactly");
  sub->add_option("vector", p->in, "Vector file")->required();
  sub->add_option("-o,--output", p->out, "Output .safetensors file")->required();
  sub->add_option("--method", p->o.method, "dare, ties, magnitude, della or breadcrumbs")
      ->required();
  sub->add_option("--density", p->o.params.density, "Fraction of entries kept, in (0, 1]")
      ->required();
  sub->add_option("--seed", p->o.seed, "Seed of the random drops (dare, della)")
      ->capture_default_str();
  sub->add_option("--epsilon", p->o.params.epsilon,
                  "della: keep probabilities span density +- epsilon")
      ->capture_default_str();
  sub->add_option("--gamma", p->o.params.gamma,
                  "breadcrumbs: fraction of the largest entries dropped")
      ->capture_default_str();
  sub->add_flag("--no-rescale", p->no_rescale,
                "Do not rescale kept entries (dare/della rescale by default)");
  sub->add_option("--format", p->format,
                  "auto (sparse where smaller), sparse or dense storage of each tensor")
      ->check(CLI::IsMember({"auto", "sparse", "dense"}))
      ->capture_default_str();
  sub->add_flag("--force", p->o.force, "Overwrite the output if it exists");
  sub->callback([p] {
    p->o.params.rescale = !p->no_rescale && vec::sparsify_default_rescale(p->o.method);
    p->o.format = p->format == "sparse"  ? vec::SparseFormat::kSparse
                  : p->format == "dense" ? vec::SparseFormat::kDense
                                         : vec::SparseFormat::kAuto;
    p->o.command_line = command_line();
    auto r = vec::sparsify(p->in, p->out, p->o, logger());
    printf(
        "wrote %s: %zu tensors (%zu stored sparse), kept %llu of %llu values (%.2f%%), %s "
        "(dense f32: %s, %.1f%%)\n",
        p->out.c_str(), r.tensors, r.sparse_tensors, static_cast<unsigned long long>(r.kept),
        static_cast<unsigned long long>(r.elements),
        r.elements ? 100.0 * double(r.kept) / double(r.elements) : 0.0,
        format_bytes(double(r.bytes_written)).c_str(), format_bytes(double(r.dense_bytes)).c_str(),
        r.dense_bytes ? 100.0 * double(r.bytes_written) / double(r.dense_bytes) : 0.0);
  });
}

void add_inspect_command(CLI::App& app) {
  struct Opts {
    std::string path, model, svg;
    bool json = false, summary = false, spectrum = false;
    int top = 8;
  };
  auto p = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("inspect", "Norms and value statistics of a vector (or any model), per tensor and per layer");
  sub->add_option("path", p->path, "Vector file or model directory")->required();
  sub->add_option("--model", p->model, "Reference model: also report relative norms |v|/|theta|");
  sub->add_flag("--json", p->json, "Print JSON instead of tables");
  sub->add_flag("--summary", p->summary, "Only the per-layer table and totals");
  sub->add_flag("--spectrum", p->spectrum,
                "Singular values of each projection (exact SVD): top-k, effective rank, ranks for "
                "90/99 % energy");
  sub->add_option("--top", p->top, "With --spectrum: singular values shown per tensor")
      ->capture_default_str();
  sub->add_option("--svg", p->svg, "With --spectrum: also write a log-sigma plot to this SVG file");
  sub->callback([p] {
    if (p->spectrum) {
      print_spectrum(vec::spectrum(p->path), p->top, p->json, p->svg);
      return;
    }
    auto r = vec::inspect(p->path, p->model);
    if (p->json) {
      std::cout << r.to_json().dump(2) << "\n";
      return;
    }
    const bool rel = !p->model.empty();
    auto row = [&](const std::string& label, const vec::Stats& s) {
      std::vector<std::string> v = {label, std::to_string(s.numel), fmt(s.l2())};
      if (rel) v.push_back(fmt(s.rel()));
      v.push_back(fmt(s.max_abs));
      v.push_back(fmt(s.numel ? 100.0 * s.zeros / s.numel : 0.0, "%.2f%%"));
      v.push_back(std::to_string(s.nans) + "/" + std::to_string(s.infs));
      return v;
    };
    std::vector<std::string> head = {"tensor", "numel", "L2"};
    if (rel) head.push_back("|v|/|theta|");
    head.insert(head.end(), {"max|x|", "zeros", "NaN/Inf"});
    if (!p->summary) {
      Table t(head);
      for (const auto& [n, s] : r.tensors) t.add(row(n, s));
      std::cout << t.str() << "\n";
    }
    head[0] = "layer";
    Table l(head);
    for (const auto& [i, s] : r.layers) l.add(row(layer_label(i), s));
    if (r.other.numel) l.add(row("other", r.other));
    l.separator();
    l.add(row("total", r.total));
    std::cout << l.str();
    if (r.total.nans || r.total.infs)
      log_line("warning: " + std::to_string(r.total.nans) + " NaN and " + std::to_string(r.total.infs) +
               " Inf values");
  });
}

void add_compare_command(CLI::App& app) {
  struct Opts {
    std::string a, b;
    bool json = false, summary = false;
  };
  auto p = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("compare", "Cosine similarity and norm ratio of two vectors, per tensor, per layer and global");
  sub->add_option("a", p->a, "First vector (or model)")->required();
  sub->add_option("b", p->b, "Second vector (or model)")->required();
  sub->add_flag("--json", p->json, "Print JSON instead of tables");
  sub->add_flag("--summary", p->summary, "Only the per-layer table and the global line");
  sub->callback([p] {
    auto r = vec::compare(p->a, p->b);
    if (p->json) {
      std::cout << r.to_json().dump(2) << "\n";
      return;
    }
    auto row = [](const std::string& label, const vec::PairStats& s) {
      return std::vector<std::string>{label, std::to_string(s.numel), fmt(s.cosine(), "%.6f"),
                                      fmt(s.norm_ratio())};
    };
    if (!p->summary) {
      Table t({"tensor", "numel", "cosine", "|a|/|b|"});
      for (const auto& [n, s] : r.tensors) t.add(row(n, s));
      std::cout << t.str() << "\n";
    }
    Table l({"layer", "numel", "cosine", "|a|/|b|"});
    for (const auto& [i, s] : r.layers) l.add(row(layer_label(i), s));
    l.separator();
    l.add(row("global", r.total));
    std::cout << l.str();
    if (!r.only_in_a.empty() || !r.only_in_b.empty() || !r.shape_mismatch.empty())
      log_line("note: " + std::to_string(r.only_in_a.size()) + " tensor(s) only in A, " +
               std::to_string(r.only_in_b.size()) + " only in B, " +
               std::to_string(r.shape_mismatch.size()) + " with different shapes (not compared)");
  });
}

void add_check_command(CLI::App& app) {
  struct Opts {
    std::string model, vector, base;
    bool json = false;
    vec::CheckOptions o;
  };
  auto p = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("check",
                                 "Is a vector compatible with a target model? Exit 0 if so, 1 if not");
  sub->add_option("--model", p->model, "Target model directory")->required();
  sub->add_option("--vector", p->vector, "Vector file")->required();
  sub->add_option("--base", p->base, "The vector's base (SFT) model: also measure lineage |theta_T - theta_SFT|/|theta_SFT|");
  sub->add_option("--lineage-warn", p->o.lineage_warn, "Warn above this global relative distance")->capture_default_str();
  sub->add_flag("--json", p->json, "Print JSON");
  sub->callback([p] {
    p->o.base = p->base;
    auto r = vec::check(p->model, p->vector, p->o);
    if (p->json) {
      std::cout << r.to_json().dump(2) << "\n";
    } else {
      static const char* v[] = {"compatible", "compatible, with warnings", "INCOMPATIBLE"};
      printf("%s + %s: %s (%zu tensors match)\n", p->model.c_str(), p->vector.c_str(),
             v[static_cast<int>(r.verdict)], r.matched);
      for (const auto& e : r.errors) printf("  error:   %s\n", e.c_str());
      for (const auto& w : r.warnings) printf("  warning: %s\n", w.c_str());
      for (const auto& n : r.notes) printf("  note:    %s\n", n.c_str());
      if (!r.lineage.empty()) {
        std::vector<std::pair<double, std::string>> worst;
        for (const auto& [n, d] : r.lineage) worst.emplace_back(std::isnan(d) ? 0 : d, n);
        std::sort(worst.rbegin(), worst.rend());
        printf("  most distant tensors from the base:\n");
        for (size_t i = 0; i < worst.size() && i < 5; ++i)
          printf("    %-60s %.4f\n", worst[i].second.c_str(), worst[i].first);
      }
    }
    fflush(stdout);
    if (r.verdict == vec::CheckResult::Verdict::kIncompatible)
      throw Error(p->model, "vector " + p->vector + " is not compatible (see above)");
  });
}

}  // namespace rv::cli
