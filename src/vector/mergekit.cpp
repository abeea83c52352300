#include "vector/mergekit.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <memory>

#include "common/error.h"
#include "common/file.h"
#include "common/progress.h"
#include "vector/internal.h"
#include "vector/sparsify.h"

namespace rv::vec {

using namespace detail;

namespace {

struct WeightRule {
  std::string filter;  // empty: default
  double value = 0;
};

using Rules = std::vector<WeightRule>;

// The value of the first rule that applies to `tensor`, if any.
std::optional<double> rule_for(const Rules& rules, const std::string& tensor) {
  for (const auto& r : rules)
    if (r.filter.empty() || tensor.find(r.filter) != std::string::npos) return r.value;
  return std::nullopt;
}

// Per-tensor parameters of the GTA methods (mergekit's tensor_parameters).
const char* const kTensorParams[] = {"weight", "density", "epsilon", "gamma", "lambda"};

struct Source {
  fs::path path;
  std::map<std::string, Rules> params;  // model's own parameters, by name
  std::unique_ptr<ModelDir> model;

  // The model's rule, else the config-wide `parameters` rule, else `dflt`.
  double param(const std::map<std::string, Rules>& global, const std::string& name,
               const std::string& tensor, double dflt) const {
    if (auto it = params.find(name); it != params.end())
      if (auto v = rule_for(it->second, tensor)) return *v;
    if (auto it = global.find(name); it != global.end())
      if (auto v = rule_for(it->second, tensor)) return *v;
    return dflt;
  }
  double weight_for(const std::map<std::string, Rules>& global, const std::string& tensor) const {
    // mergekit: no matching rule means the model does not contribute
    return param(global, "weight", tensor, 0.0);
  }
};

std::string where(const fs::path& cfg, const YAML::Node& n) {
  return cfg.string() + ":" + std::to_string(n.Mark().line + 1);
}

std::vector<WeightRule> parse_weight(const fs::path& cfg, const YAML::Node& n) {
  if (n.IsScalar()) return {{"", n.as<double>()}};
  if (n.IsSequence()) {
    std::vector<WeightRule> rules;
    for (const auto& e : n) {
      if (!e.IsMap())
        throw Error(where(cfg, e), "weight gradients (lists of numbers) are not supported yet; use "
                                   "{filter, value} entries");
      WeightRule r;
      if (e["filter"]) r.filter = e["filter"].as<std::string>();
      if (!e["value"]) throw Error(where(cfg, e), "weight entry lacks 'value'");
      r.value = e["value"].as<double>();
      rules.push_back(r);
    }
    return rules;
  }
  throw Error(where(cfg, n), "weight must be a number or a list of {filter, value}");
}

DType parse_mk_dtype(const fs::path& cfg, const YAML::Node& n) {
  auto d = parse_user_dtype(n.as<std::string>());
  if (!d) throw Error(where(cfg, n), "unsupported dtype '" + n.as<std::string>() + "'");
  return *d;
}

// f32 result rounded to the compute dtype (identity for f32).
inline float rd(DType d, float x) {
  return round_to(d, x);
}

}  // namespace

ApplyResult run_mergekit(const fs::path& cfg_path, const fs::path& out, const MergekitOptions& opt,
                         const Log& log) {
  YAML::Node cfg;
  try {
    cfg = YAML::LoadFile(cfg_path.string());
  } catch (const YAML::BadFile&) {
    throw Error(cfg_path.string(), "cannot read mergekit config");
  } catch (const YAML::Exception& e) {
    throw Error(cfg_path.string() + ":" + std::to_string(e.mark.line + 1), "YAML error: " + e.msg);
  }
  try {
    if (!cfg.IsMap() || !cfg["merge_method"]) throw Error(cfg_path.string(), "missing 'merge_method'");
    const std::string method = cfg["merge_method"].as<std::string>();
    const MergeMethod* mm = find_merge_method(method);
    if (!mm)
      throw Error(where(cfg_path, cfg["merge_method"]),
                  "merge_method '" + method + "' is not supported (" + merge_method_names() + ")");
    // ta: every method relative to base_model; the plain task_arithmetic
    // streams tile by tile, the others (gta) need whole tensors.
    const bool ta = method != "linear";
    const bool gta = ta && method != "task_arithmetic";
    if (cfg["slices"])
      throw Error(where(cfg_path, cfg["slices"]), "'slices' configs are not supported yet");
    const fs::path dir = cfg_path.parent_path();
    auto resolve = [&](const YAML::Node& n) {
      fs::path p = n.as<std::string>();
      if (p.is_relative() && !fs::exists(p)) p = dir / p;
      if (!is_model_dir(p))
        throw Error(where(cfg_path, n), "model '" + n.as<std::string>() +
                                            "' is not a local model directory (download it first, e.g. "
                                            "with huggingface-cli download)");
      return p;
    };
    bool normalize = mm->default_normalize;  // mergekit: linear, ties, della true
    bool rescale = mm->default_rescale;
    // Config-wide parameters: normalize / rescale / int8_mask, and defaults
    // for the per-tensor ones. int8_mask only changes the dtype of mergekit's
    // sign mask, not the result: accepted and ignored.
    std::map<std::string, Rules> global;
    if (auto p = cfg["parameters"]) {
      if (p["normalize"]) normalize = p["normalize"].as<bool>();
      if (p["rescale"]) rescale = p["rescale"].as<bool>();
      if (p["int8_mask"]) (void)p["int8_mask"].as<bool>();
      for (const char* k : kTensorParams)
        if (p[k]) global[k] = parse_weight(cfg_path, p[k]);
    }
    std::vector<Source> srcs;
    if (!cfg["models"] || !cfg["models"].IsSequence()) throw Error(cfg_path.string(), "missing 'models' list");
    for (const auto& m : cfg["models"]) {
      Source s;
      s.path = resolve(m["model"]);
      if (const auto p = m["parameters"])
        for (const char* k : kTensorParams)
          if (p[k]) s.params[k] = parse_weight(cfg_path, p[k]);
      srcs.push_back(std::move(s));
    }
    std::unique_ptr<ModelDir> base;
    fs::path base_path;
    if (ta) {
      if (!cfg["base_model"]) throw Error(cfg_path.string(), method + " needs 'base_model'");
      base_path = resolve(cfg["base_model"]);
      base = std::make_unique<ModelDir>(base_path);
      // A base listed among the models contributes no task vector.
      std::erase_if(srcs, [&](const Source& s) { return fs::equivalent(s.path, base_path); });
    } else {
      if (srcs.empty()) throw Error(cfg_path.string(), "linear merge needs at least one model");
      base_path = srcs[0].path;
    }
    for (const auto& s : srcs)
      if (!s.params.count("weight") && !global.count("weight"))
        throw Error(cfg_path.string(),
                    "model entry " + s.path.string() + " lacks parameters.weight");
    for (auto& s : srcs) s.model = std::make_unique<ModelDir>(s.path);
    const ModelDir& ref = base ? *base : *srcs[0].model;
    DType D = cfg["dtype"] ? parse_mk_dtype(cfg_path, cfg["dtype"]) : ref.weight_dtype();
    DType O = cfg["out_dtype"] ? parse_mk_dtype(cfg_path, cfg["out_dtype"]) : D;

    const TensorSet& R = ref.tensors();
    std::vector<TensorSpec> specs;
    for (const auto& n : R.names()) {
      const TensorView v = R.view(n);
      if (!is_float_dtype(v.dtype())) throw Error(ref.path().string(), "tensor '" + n + "' is not a float tensor");
      for (const auto& s : srcs) {
        if (!s.model->tensors().has(n))
          throw Error(s.path.string(), "has no tensor '" + n + "' (mergekit needs every model to have it)");
        if (s.model->tensors().view(n).shape() != v.shape())
          throw Error(s.path.string(), "tensor '" + n + "' has shape " +
                                           shape_str(s.model->tensors().view(n).shape()) + ", " +
                                           ref.path().string() + " has " + shape_str(v.shape()));
      }
      specs.push_back({n, O, v.shape()});
    }
    // Every model's parameters for every tensor, checked before any work.
    auto params_of = [&](const Source& s, const std::string& tensor) {
      return SparsifyParams{s.param(global, "density", tensor, 1.0),
                            s.param(global, "epsilon", tensor, 0.15),
                            s.param(global, "gamma", tensor, 0.01), rescale};
    };
    if (gta)
      for (const auto& spec : specs)
        for (const auto& s : srcs) {
          validate_sparsify(
              mm->sparsification, params_of(s, spec.name),
              cfg_path.string() + ": model " + s.path.string() + ", tensor " + spec.name);
          if (!std::isfinite(s.param(global, "lambda", spec.name, 1.0)))
            throw Error(cfg_path.string(), "lambda must be a finite number");
        }

    auto meta = base_metadata("model", opt.command_line);
    meta["reasonvec.mergekit_config"] = read_file(cfg_path);
    AtomicOutput output(out, AtomicOutput::Kind::kDirectory, opt.force);
    SafetensorsWriter::Options wo;
    wo.shard_size = opt.shard_size;
    wo.metadata = meta;
    SafetensorsWriter w(output.path(), specs, wo);
    Progress prog("merge", R.total_bytes() * (srcs.size() + 1), Progress::Unit::kBytes);
    const size_t osz = dtype_size(O);
    // Per output tensor: the reference view, the sources' views, their
    // weights rounded to D (as torch.tensor(weights, dtype=D)) and the divisor.
    struct Job {
      TensorView bv;
      std::vector<TensorView> xs;
      std::vector<float> wts;
      float divisor = 1;
    };
    std::vector<Job> jobs;
    std::vector<uint64_t> numel;
    for (const auto& spec : specs) {
      Job j{R.view(spec.name), {}, {}, 1};
      float wsum = 0;
      for (const auto& s : srcs) {
        j.xs.push_back(s.model->tensors().view(spec.name));
        j.wts.push_back(rd(D, float(s.weight_for(global, spec.name))));
      }
      for (float x : j.wts) wsum += x;
      wsum = rd(D, wsum);
      j.divisor = ta ? (std::fabs(wsum) < 1e-8f ? 1.0f : wsum) : wsum;
      numel.push_back(j.bv.numel());
      jobs.push_back(std::move(j));
    }
    // TIES / DARE / DELLA / breadcrumbs: tensor by tensor, as mergekit's
    // GTATask: δ_j = x_j ⊖ base, sparsified, merged (sparsify.h), base ⊕ m.
    if (gta) {
      for_each_item(numel, [&](size_t i) {  // tensors in parallel
        const std::string& name = specs[i].name;
        const TensorView& bv = jobs[i].bv;
        const uint64_t n = numel[i];
        std::vector<float> b(n), mixed(n);
        for_tiles(n, [&](uint64_t lo, uint64_t hi) {
          load_f32(bv, lo, hi, b.data() + lo);
          for (uint64_t k = lo; k < hi; ++k) b[k] = rd(D, b[k]);
          release(R, bv, lo, hi);
        });
        std::vector<std::vector<float>> deltas(srcs.size());
        std::vector<const float*> ptrs;
        for (size_t j = 0; j < srcs.size(); ++j) {
          deltas[j].resize(n);
          float* d = deltas[j].data();
          const TensorView& xv = jobs[i].xs[j];
          for_tiles(n, [&](uint64_t lo, uint64_t hi) {
            load_f32(xv, lo, hi, d + lo);
            for (uint64_t k = lo; k < hi; ++k) d[k] = rd(D, rd(D, d[k]) - b[k]);
            release(srcs[j].model->tensors(), xv, lo, hi);
          });
          sparsify_tensor(mm->sparsification, params_of(srcs[j], name), bv.shape(), opt.seed,
                          sparsify_stream(name, j), d);
          for_tiles(n, [&](uint64_t lo, uint64_t hi) {
            for (uint64_t k = lo; k < hi; ++k) d[k] = rd(D, d[k]);
          });
          ptrs.push_back(d);
        }
        // mergekit takes lambda from the first model.
        std::optional<float> lambda;
        if (mm->uses_lambda && !srcs.empty())
          lambda = rd(D, static_cast<float>(srcs[0].param(global, "lambda", name, 1.0)));
        merge_deltas(D, mm->consensus, normalize, lambda, ptrs,
                     std::vector<uint64_t>(srcs.size(), n), jobs[i].wts, n, mixed.data());
        deltas.clear();
        for_tiles(n, [&](uint64_t lo, uint64_t hi) {
          for (uint64_t k = lo; k < hi; ++k) mixed[k] = rd(D, b[k] + mixed[k]);
          std::vector<uint8_t>& ob = scratch_bytes((hi - lo) * osz);
          from_f32(O, mixed.data() + lo, ob.data(), hi - lo);
          w.write(i, lo * osz, ob.data(), (hi - lo) * osz);
          prog.add((hi - lo) * dtype_size(bv.dtype()) * (srcs.size() + 1));
        });
      });
    }
    if (!gta)
      for_all_tiles(numel, [&](size_t i, uint64_t lo, uint64_t hi) {
        const TensorView& bv = jobs[i].bv;
        const auto& xs = jobs[i].xs;
        const auto& wts = jobs[i].wts;
        const float divisor = jobs[i].divisor;
        const size_t n = hi - lo;
        uint8_t* ob = scratch_bytes(n * osz).data();
        float* base_v = scratch(2, kChunk).data();
        for_chunks(lo, hi, [&](uint64_t c0, uint64_t c1, float* acc, float* x) {
          const size_t m = c1 - c0;
          if (ta) {
            load_f32(bv, c0, c1, base_v);
            for (size_t k = 0; k < m; ++k) base_v[k] = rd(D, base_v[k]);
          }
          std::fill(acc, acc + m, 0.0f);
          for (size_t j = 0; j < xs.size(); ++j) {
            load_f32(xs[j], c0, c1, x);
            for (size_t k = 0; k < m; ++k) {
              float xv = rd(D, x[k]);
              float term = ta ? rd(D, rd(D, xv - base_v[k]) * wts[j]) : rd(D, wts[j] * xv);
              acc[k] += term;  // torch sums in an f32 accumulator, rounding once
            }
          }
          for (size_t k = 0; k < m; ++k) {
            float s = rd(D, acc[k]);
            if (normalize) s = rd(D, s / divisor);
            acc[k] = ta ? rd(D, base_v[k] + s) : s;
          }
          from_f32(O, acc, ob + (c0 - lo) * osz, m);
        });
        w.write(i, lo * osz, ob, n * osz);
        if (ta) release(R, bv, lo, hi);
        for (size_t j = 0; j < xs.size(); ++j) release(srcs[j].model->tensors(), xs[j], lo, hi);
        prog.add(n * dtype_size(bv.dtype()) * (xs.size() + 1));
      });
    prog.finish();
    w.finish();
    std::vector<std::string> extras;
    for (const auto& f : ref.extra_files())
      if (f != "README.md") extras.push_back(f);
    copy_extra_files(ref.path(), extras, output.path());
    std::string card = "---\ntags:\n- reasonvec\n- merge\n---\n\n# Merged with reasonvec " RV_VERSION
                       " from a mergekit config\n\nmerge_method: `" + method + "`, computed in " +
                       std::string(dtype_name(D)) + " as mergekit does, written as " +
                       std::string(dtype_name(O)) + ".\n\n```yaml\n" + read_file(cfg_path) + "```\n";
    if (!opt.command_line.empty()) card += "\nCommand: `" + opt.command_line + "`\n";
    write_file(output.path() / "README.md", card);
    ApplyResult r;
    r.tensors_changed = specs.size();
    r.files = w.files();
    r.bytes_written = w.total_bytes();
    output.commit();
    log("merged " + std::to_string(srcs.size()) + " model(s) with " + method + " (normalize: " +
        (normalize ? "true" : "false") + ")");
    return r;
  } catch (const YAML::Exception& e) {
    throw Error(cfg_path.string() + ":" + std::to_string(e.mark.line + 1), "invalid config: " + e.msg);
  }
}

}  // namespace rv::vec
