#include "experiment/experiment.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <tuple>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "eval/backend/make.h"
#include "eval/run/results.h"
#include "eval/run/runner.h"
#include "experiment/plan.h"
#include "experiment/report.h"
#include "experiment/server.h"
#include "formats/dtype.h"
#include "formats/model_dir.h"
#include "formats/safetensors.h"
#include "vector/lowrank.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace rv::experiment {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string subst(std::string s, const std::string& key, const std::string& val) {
  for (size_t p = 0; (p = s.find(key, p)) != std::string::npos; p += val.size())
    s.replace(p, key.size(), val);
  return s;
}

std::string join(const std::vector<std::string>& xs) {
  std::string msg;
  for (const auto& x : xs) msg += (msg.empty() ? "" : "; ") + x;
  return msg;
}

struct Variant {
  std::string label;    // "qwen-7b v α=+1"
  std::string dirname;  // file-system safe
  size_t target = 0;
  std::string vec;  // "base" | "v" | "random"
  double alpha = 0;
  size_t form = 0;     // index into the config's forms (base: 0)
  fs::path model_dir;  // what a server serves / the engine loads (in memory: the target)
  std::string model_fp;
  fs::path delta;              // the vector or adapter this variant adds (base: empty)
  bool in_memory = false;      // built-in engine: delta applied at load time, nothing written
  bool lora = false;           // an adapter on the target's shared LoRA server
  std::string adapter;         // its model name there
  std::vector<fs::path> runs;  // per task
};

// Server processes (one per replica) for one model directory, possibly with
// LoRA adapters ({adapters} in the command).
struct ServerSet {
  std::vector<std::unique_ptr<ServerProcess>> procs;
  std::vector<std::string> urls;
  std::string model;  // what requests for the base name: model_name, else /v1/models' first id
  std::string desc;

  ServerProcess* process() {
    for (auto& p : procs)
      if (!p->alive()) return p.get();
    return procs.empty() ? nullptr : procs.front().get();
  }
  void stop() {
    for (auto& p : procs) p->stop();
    procs.clear();
  }
  ~ServerSet() { stop(); }
};

// `command`: srv.command, or srv.lora_command with `adapters` for {adapters}.
std::unique_ptr<ServerSet> start_servers(const std::string& label, const std::string& log_stem,
                                         const fs::path& model_dir, const std::string& command,
                                         const std::string& adapters, const ServerSpec& srv,
                                         const fs::path& out, const Log& log) {
  auto set = std::make_unique<ServerSet>();
  const std::string model_abs = fs::absolute(model_dir).string();
  std::vector<std::string> ports, cmds;
  auto fill = [&](const std::string& s, int r) {
    return subst(subst(subst(subst(s, "{model}", model_abs), "{port}", ports[r]), "{replica}",
                       std::to_string(r)),
                 "{adapters}", adapters);
  };
  for (int r = 0; r < srv.replicas; ++r) {
    std::string port = std::to_string(free_local_port());
    for (int tries = 0; tries < 20 && std::find(ports.begin(), ports.end(), port) != ports.end();
         ++tries)
      port = std::to_string(free_local_port());  // the servers are not listening yet
    ports.push_back(port);
    cmds.push_back(fill(command, r));
    set->urls.push_back(fill(srv.base_url, r));
    if (log) log("[start ] server for " + label + ": " + cmds.back());
    const std::string log_name =
        log_stem + (r == 0 ? std::string(".server.log") : ".server" + std::to_string(r) + ".log");
    set->procs.push_back(std::make_unique<ServerProcess>(cmds.back(), out / "logs" / log_name));
  }
  for (size_t r = 0; r < set->procs.size(); ++r) {
    try {
      std::string s = set->procs[r]->wait_ready(set->urls[r], srv.startup_timeout);
      if (r == 0) set->model = srv.model_name.empty() ? s : fill(srv.model_name, 0);
    } catch (const Error& e) {
      throw Error(label, e.what());
    }
  }
  set->desc = "server: " + cmds.front();
  if (cmds.size() > 1) set->desc += " (+" + std::to_string(cmds.size() - 1) + " replicas)";
  return set;
}

// A copy of the PEFT adapter `src` whose delta is α times the original:
// every lora_B matrix scaled by α in f32 (rounded to its dtype), so a server
// applying the adapter at scale 1 adds α·B·A. The config is copied as is.
void scaled_adapter(const fs::path& src, double alpha, const fs::path& dst) {
  TensorSet ts(src / "adapter_model.safetensors");
  std::vector<TensorSpec> specs;
  for (const auto& n : ts.names()) {
    const TensorView v = ts.view(n);
    specs.push_back({n, v.dtype(), v.shape()});
  }
  AtomicOutput output(dst, AtomicOutput::Kind::kDirectory, true);
  SafetensorsWriter::Options wo;
  wo.single_name = "adapter_model.safetensors";
  wo.metadata = ts.metadata();
  SafetensorsWriter w(output.path(), specs, wo);
  std::vector<float> f;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorView v = ts.view(specs[i].name);
    const size_t bytes = v.numel() * dtype_size(v.dtype());
    if (specs[i].name.find("lora_B") == std::string::npos || !is_float_dtype(v.dtype())) {
      w.write(i, 0, v.data, bytes);
      continue;
    }
    f.resize(v.numel());
    to_f32(v.dtype(), v.data, f.data(), f.size());
    for (float& x : f) x = static_cast<float>(alpha) * x;
    std::vector<uint8_t> o(bytes);
    from_f32(v.dtype(), f.data(), o.data(), f.size());
    w.write(i, 0, o.data(), bytes);
  }
  w.finish();
  for (const auto& e : fs::directory_iterator(src))
    if (e.is_regular_file() && e.path().filename() != "adapter_model.safetensors")
      fs::copy_file(e.path(), output.path() / e.path().filename());
  output.commit();
}

// The backend a variant's evaluations use, started on first use: for a
// server target, the server process too.
class VariantBackend {
 public:
  // `shared`: when this variant is served by its target's LoRA server,
  // returns that server (not owned), starting it on first call.
  VariantBackend(const Variant& x, const TargetBackend& bs, const fs::path& out, const Log& log,
                 std::function<ServerSet*()> shared = {})
      : x_(x), bs_(bs), out_(out), log_(log), shared_fn_(std::move(shared)) {}
  ~VariantBackend() { stop(); }

  eval::Backend& get() {
    if (!backend_) start();
    return *backend_;
  }
  const std::string& describe() const { return desc_; }
  // The server process to blame for a failure: the first one that died,
  // else the first one; null for the engine.
  ServerProcess* process() {
    if (shared_) return shared_->process();
    return own_ ? own_->process() : nullptr;
  }
  void stop() {
    if (own_ && !own_->procs.empty() && log_) log_("[stop  ] server for " + x_.label);
    if (own_) own_->stop();
  }

 private:
  void start() {
    eval::BackendSpec spec;
    // The request cache keys on the variant's content identity: a server's
    // URL changes with its port between runs.
    spec.identity = "experiment|" + std::string(bs_.server ? "server|" : "engine|") + x_.model_fp;
    if (bs_.server) {
      if (shared_fn_) shared_ = shared_fn_();
      ServerSet* set = shared_;
      if (!set) {
        own_ = start_servers(x_.label, x_.dirname, x_.model_dir, bs_.srv.command, "", bs_.srv, out_,
                             log_);
        set = own_.get();
      }
      spec.kind = eval::BackendSpec::Kind::kHttp;
      spec.http.base_url = set->urls.front();
      spec.http.base_urls = set->urls;
      spec.http.model = x_.lora ? x_.adapter : set->model;
      spec.http.concurrency = bs_.srv.concurrency;
      spec.http.max_retries = 2;
      desc_ = set->desc;
      if (x_.lora) desc_ += " (LoRA adapter " + x_.adapter + ")";
    } else {
      spec.model_dir = x_.model_dir;
      spec.max_batch = bs_.max_batch;
      spec.max_context = bs_.max_context;
      spec.kv_bf16 = bs_.kv_bf16;
      spec.copy_weights = bs_.no_mmap;
      desc_ = "engine";
      if (x_.in_memory) {
        spec.vectors.push_back({x_.delta, x_.alpha});
        desc_ += " (vector applied in memory: " + x_.delta.string() +
                 ", α=" + format_alpha(x_.alpha) + ")";
      }
    }
    backend_ = eval::make_backend(spec);
  }

  const Variant& x_;
  const TargetBackend& bs_;
  fs::path out_;
  Log log_;
  std::function<ServerSet*()> shared_fn_;
  ServerSet* shared_ = nullptr;
  std::unique_ptr<ServerSet> own_;
  std::unique_ptr<eval::Backend> backend_;
  std::string desc_;
};

}  // namespace

ExperimentResult run_experiment(const ExperimentConfig& cfg, const ExperimentOptions& opt) {
  const Log log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  const fs::path out = opt.out_dir;
  fs::create_directories(out);
  ExperimentResult res;
  StepCounts counts;
  const std::string command_line = "reasonvec experiment " + cfg.source.string();

  // 1. Preflight: everything that can be wrong without heavy work.
  std::vector<std::string> problems;
  auto try_model = [&](const fs::path& d, const std::string& what) {
    try {
      if (!fs::is_directory(d)) throw Error(d.string(), "no such model directory");
      ModelDir md(d);
    } catch (const Error& e) {
      problems.push_back(what + ": " + e.what());
    }
  };
  if (cfg.vector_file.empty()) {
    try_model(cfg.base, "vector.base");
    try_model(cfg.tuned, "vector.tuned");
  } else {
    try {
      TensorSet ts(cfg.vector_file);
    } catch (const Error& e) {
      problems.push_back(std::string("vector.file: ") + e.what());
    }
  }
  for (const auto& t : cfg.targets) try_model(t.dir, "target " + t.name);
  std::vector<eval::PreparedTask> prepared;
  for (const auto& t : cfg.tasks) {
    try {
      prepared.push_back(eval::prepare_task(t.name, t.options));
    } catch (const Error& e) {
      problems.push_back("task " + t.label + ": " + e.what());
    }
  }
  if (!problems.empty()) throw Error(cfg.source.string(), join(problems));

  // Content identities, computed once per path.
  std::map<fs::path, std::string> fps;
  auto fingerprint = [&](const fs::path& p) -> const std::string& {
    auto it = fps.find(p);
    if (it == fps.end()) it = fps.emplace(p, model_fingerprint(p)).first;
    return it->second;
  };

  // 2. The vector (and the random control).
  fs::path vpath;
  std::string vfp;
  fs::create_directories(out / "vectors");
  if (!cfg.vector_file.empty()) {
    vpath = cfg.vector_file;
    vfp = sha256_hex("file|" + fingerprint(vpath));
    log("[given ] vector " + vpath.string());
  } else {
    vfp = sha256_hex("extract|f32|" + fingerprint(cfg.base) + "|" + fingerprint(cfg.tuned));
    vpath = out / "vectors" / ("v-" + vfp.substr(0, 16) + ".safetensors");
    run_step({"extract " + vpath.string(),
              "extract " + cfg.tuned.string() + " - " + cfg.base.string() + " -> " + vpath.string(),
              vfp, vpath, vpath,
              [&] {
                vec::ExtractOptions eo;
                eo.command_line = command_line;
                vec::extract(cfg.base, cfg.tuned, vpath, eo, log);
              }},
             log, counts);
  }
  fs::path rpath;
  std::string rfp;
  if (cfg.control_random) {
    rfp = sha256_hex("random|" + vfp + "|" + std::to_string(cfg.random_seed));
    rpath = out / "vectors" / ("random-" + rfp.substr(0, 16) + ".safetensors");
    run_step({"random control " + rpath.string(),
              "random control (seed " + std::to_string(cfg.random_seed) + ") -> " + rpath.string(),
              rfp, rpath, rpath, [&] { vec::random_like(vpath, cfg.random_seed, rpath); }},
             log, counts);
  }

  // 2b. The vector in each configured form: itself, or a sparsified copy /
  // a LoRA adapter derived from it (each a cached step).
  std::vector<fs::path> form_path(cfg.forms.size());
  std::vector<std::string> form_fp(cfg.forms.size());
  for (size_t f = 0; f < cfg.forms.size(); ++f) {
    const VectorForm& F = cfg.forms[f];
    if (F.kind == VectorForm::Kind::kFull) {
      form_path[f] = vpath;
      form_fp[f] = vfp;
      continue;
    }
    const bool sparse = F.kind == VectorForm::Kind::kSparse;
    form_fp[f] = sha256_hex(std::string(sparse ? "sparse|" : "lowrank|") + vfp + "|" + F.key());
    const std::string stem = (sparse ? "sparse-" : "lowrank-") + form_fp[f].substr(0, 16);
    form_path[f] = out / "vectors" / (sparse ? stem + ".safetensors" : stem);
    const fs::path p = form_path[f];
    run_step(
        {F.label() + " " + p.string(), F.label() + " of " + vpath.string() + " -> " + p.string(),
         form_fp[f], p, sparse ? p : p / "adapter_config.json",
         [&, p] {
           if (sparse) {
             vec::SparsifyOptions so;
             so.method = F.method;
             so.params.density = F.density;
             so.params.epsilon = F.epsilon;
             so.params.gamma = F.gamma;
             so.params.rescale = F.rescale ? *F.rescale : vec::sparsify_default_rescale(F.method);
             so.seed = F.seed;
             so.force = true;
             so.command_line = command_line;
             vec::sparsify(vpath, p, so, log);
           } else {
             vec::LowrankOptions lo;
             lo.rank = F.rank;
             lo.energy = F.energy;
             lo.force = true;  // a leftover partial dir from a killed run
             lo.command_line = command_line;
             vec::lowrank(vpath, p, lo, log);
           }
         }},
        log, counts);
  }

  // 3. check every (target, vector) pair before applying anything.
  {
    std::vector<std::string> errs;
    for (const auto& t : cfg.targets) {
      std::vector<fs::path> vs = {vpath};
      if (!rpath.empty()) vs.push_back(rpath);
      for (const auto& vp : vs) {
        vec::CheckResult cr = vec::check(t.dir, vp, vec::CheckOptions{});
        for (const auto& w : cr.warnings)
          log("warning: " + t.name + " + " + vp.filename().string() + ": " + w);
        if (cr.verdict == vec::CheckResult::Verdict::kIncompatible)
          for (const auto& e : cr.errors)
            errs.push_back(t.name + " (" + t.dir.string() + "): " + e);
      }
    }
    if (!errs.empty()) throw Error("check", "incompatible target/vector: " + join(errs));
    log("[ok    ] check: " + std::to_string(cfg.targets.size()) + " target(s) compatible");
  }

  // 4. Variants and their model directories.
  std::vector<double> alphas = cfg.alphas;
  if (cfg.control_reverse)
    for (double a : cfg.alphas)
      if (std::find(alphas.begin(), alphas.end(), -a) == alphas.end()) alphas.push_back(-a);
  std::sort(alphas.begin(), alphas.end());
  std::vector<Variant> variants;
  for (size_t ti = 0; ti < cfg.targets.size(); ++ti) {
    const auto& t = cfg.targets[ti];
    Variant b;
    b.label = t.name;
    b.dirname = safe_name(t.name) + "__base";
    b.target = ti;
    b.vec = "base";
    b.model_dir = t.dir;
    b.model_fp = sha256_hex("model|" + fingerprint(t.dir));
    variants.push_back(b);
    for (size_t f = 0; f < cfg.forms.size(); ++f) {
      const VectorForm& F = cfg.forms[f];
      const bool full = F.kind == VectorForm::Kind::kFull;
      std::vector<std::tuple<std::string, std::string, fs::path>> vecs = {
          {"v", form_fp[f], form_path[f]}};
      if (full && cfg.control_random) vecs.push_back({"random", rfp, rpath});
      for (const auto& [vname, fp, path] : vecs)
        for (double a : alphas) {
          if (a == 0) continue;
          Variant x;
          x.target = ti;
          x.vec = vname;
          x.alpha = a;
          x.form = f;
          x.delta = path;
          // A full vector's rows keep the labels and names they had before forms existed.
          const std::string tag = full ? vname : vname + "[" + F.label() + "]";
          x.label = t.name + " " + tag + " α=" + format_alpha(a);
          x.dirname = safe_name(t.name) + "__" +
                      (full ? vname : vname + "_" + safe_name(F.label())) + "_a" + format_alpha(a);
          x.model_fp = sha256_hex("apply|" + b.model_fp + "|" + fp + "|" + format_alpha(a));
          if (!t.backend.server &&
              (!t.backend.write_models || F.kind == VectorForm::Kind::kLowrank)) {
            x.in_memory = true;
            x.model_dir = t.dir;
          } else if (t.backend.server && F.kind == VectorForm::Kind::kLowrank) {
            x.lora = true;
            // No '+' in adapter names and paths: servers' adapter lists use it
            // (reasonvec serve --variant A:1+B:1).
            x.adapter = safe_name(x.dirname);
            x.model_dir = out / "adapters" / (x.adapter + "-" + x.model_fp.substr(0, 12));
          } else {
            x.model_dir = out / "models" / (x.dirname + "-" + x.model_fp.substr(0, 12));
          }
          variants.push_back(x);
        }
    }
  }
  for (const auto& x : variants) {
    if (x.vec == "base" || x.in_memory) continue;
    if (x.lora) {
      fs::create_directories(out / "adapters");
      run_step({"adapter " + x.label, "adapter " + x.label + " (α·B) -> " + x.model_dir.string(),
                x.model_fp, x.model_dir, x.model_dir / "adapter_config.json",
                [&] { scaled_adapter(x.delta, x.alpha, x.model_dir); }},
               log, counts);
      continue;
    }
    fs::create_directories(out / "models");
    run_step({"apply " + x.label, "apply " + x.label + " -> " + x.model_dir.string(), x.model_fp,
              x.model_dir, x.model_dir / "config.json",
              [&] {
                vec::ApplyOptions ao;
                ao.force = true;  // a leftover partial dir (no config.json) from a killed run
                ao.command_line = command_line;
                vec::apply(cfg.targets[x.target].dir, {{x.delta, x.alpha}}, x.model_dir, ao, log);
              }},
             log, counts);
  }

  // 5. Evaluate every (variant, task); one backend (and server) per variant,
  // started only when one of its evaluations is not cached.
  const fs::path cache = out / "eval-cache.sqlite";
  // A server target with LoRA variants: one server for its base and all of
  // them, started when the first of its evaluations is not cached.
  std::map<size_t, std::string> adapters_arg;
  for (const auto& x : variants)
    if (x.lora) {
      const ServerSpec& srv = cfg.targets[x.target].backend.srv;
      std::string& a = adapters_arg[x.target];
      a += (a.empty() ? "" : " ") + subst(subst(srv.adapter_arg, "{name}", x.adapter), "{path}",
                                          fs::absolute(x.model_dir).string());
    }
  std::map<size_t, std::unique_ptr<ServerSet>> shared;
  for (auto& x : variants) {
    const auto& t = cfg.targets[x.target];
    const TargetBackend& bs = t.backend;
    const bool on_shared = adapters_arg.count(x.target) && (x.lora || x.vec == "base");
    // Servers of targets already done are no longer needed.
    for (auto it = shared.begin(); it != shared.end();)
      if (it->first != x.target) {
        log("[stop  ] LoRA server for " + cfg.targets[it->first].name);
        it = shared.erase(it);
      } else {
        ++it;
      }
    auto shared_for = [&]() -> ServerSet* {
      auto& p = shared[x.target];
      if (!p)
        p = start_servers(t.name + " (base + " +
                              std::to_string(std::count_if(variants.begin(), variants.end(),
                                                           [&](const Variant& y) {
                                                             return y.lora && y.target == x.target;
                                                           })) +
                              " LoRA adapters)",
                          safe_name(t.name) + "__lora", t.dir, bs.srv.lora_command,
                          adapters_arg[x.target], bs.srv, out, log);
      return p.get();
    };
    VariantBackend backend(
        x, bs, out, log,
        on_shared ? std::function<ServerSet*()>(shared_for) : std::function<ServerSet*()>());
    std::vector<Step> steps;
    for (size_t k = 0; k < cfg.tasks.size(); ++k) {
      const auto& et = cfg.tasks[k];
      json key = {{"model", x.model_fp},          {"task", et.name},
                  {"config", prepared[k].config}, {"limit", et.options.limit},
                  {"seed", et.options.seed},      {"backend", bs.server ? "server" : "engine"}};
      // Only when set, so runs cached before the key existed stay valid.
      if (!bs.server && bs.kv_bf16) key["kv_bf16"] = true;
      if (!et.options.strip_think) key["think"] = "keep";  // scoring only: not in the config
      std::string fp = sha256_hex(key.dump());
      fs::path run = out / "runs" / x.dirname / (et.label + "-" + fp.substr(0, 12));
      x.runs.push_back(run);
      steps.push_back(
          {"eval " + x.label + " / " + et.label, "", fp, run, run / "results.json", [&, k, run] {
             eval::RunOptions ro;
             ro.task = et.options;
             ro.cache_path = cache;
             ro.config["model"] = x.label;
             ro.config["model_dir"] = x.model_dir.string();
             eval::Backend& sb = backend.get();
             ro.config["backend"] = backend.describe();
             ro.config["experiment"] = {{"target", t.name},
                                        {"vector", x.vec},
                                        {"alpha", x.alpha},
                                        {"form", cfg.forms[x.form].label()},
                                        {"task_label", cfg.tasks[k].label}};
             if (!x.delta.empty()) ro.config["experiment"]["delta"] = x.delta.string();
             eval::RunResult rr;
             try {
               rr = eval::run_eval(sb, ro, {&prepared[k]});
             } catch (const Error& e) {
               if (ServerProcess* p = backend.process()) {
                 const char* why = p->alive() ? "" : "; the server exited during the run";
                 throw Error(x.label + " / " + cfg.tasks[k].label,
                             std::string(e.what()) + why + "; server log tail" + p->log_tail());
               }
               throw;
             }
             eval::write_results(run, rr);
             res.cache_hits += rr.cache_hits;
             res.cache_misses += rr.cache_misses;
           }});
    }
    // Cached evaluations are reported before a server starts for the rest.
    for (const auto& s : steps)
      if (step_done(s)) run_step(s, log, counts);
    if (std::any_of(steps.begin(), steps.end(), [](const Step& s) { return !step_done(s); }))
      backend.get();
    for (const auto& s : steps)
      if (!step_done(s)) run_step(s, log, counts);
    backend.stop();
  }
  for (auto& [ti, set] : shared) log("[stop  ] LoRA server for " + cfg.targets[ti].name);
  shared.clear();

  // 6. Report.
  Report rep;
  rep.config = cfg.source.string();
  rep.vector_path = vpath.string();
  if (!rpath.empty()) rep.random_control = {{rpath.string(), cfg.random_seed}};
  rep.alphas = alphas;
  for (const auto& et : cfg.tasks)
    rep.tasks.push_back({et.label, et.name, et.options.limit, et.options.seed,
                         et.options.transforms, et.options.cot_hint,
                         et.options.apply_chat_template});
  for (const auto& x : variants) {
    Row row;
    row.label = x.label;
    row.target = cfg.targets[x.target].name;
    row.vector = x.vec;
    row.alpha = x.alpha;
    row.model_dir = x.model_dir.string();
    const VectorForm& F = cfg.forms[x.form];
    row.form = x.vec == "base" ? "" : F.label();
    if (x.vec != "base" && F.kind == VectorForm::Kind::kLowrank) {
      row.rank = F.rank;
      row.energy = F.energy;
    }
    if (x.vec != "base" && F.kind == VectorForm::Kind::kSparse) row.density = F.density;
    row.delta = x.delta.string();
    row.in_memory = x.in_memory;
    rep.rows.push_back(row);
  }
  for (size_t ti = 0; ti < cfg.targets.size(); ++ti) {
    std::vector<size_t> members;  // base first
    for (size_t vi = 0; vi < variants.size(); ++vi)
      if (variants[vi].target == ti) members.push_back(vi);
    std::vector<Row*> rows;
    for (size_t vi : members) rows.push_back(&rep.rows[vi]);
    for (size_t k = 0; k < cfg.tasks.size(); ++k) {
      std::vector<fs::path> dirs;
      for (size_t vi : members) dirs.push_back(variants[vi].runs[k]);
      // The name results.json uses: a task file's `task`, not its path.
      add_task_cells(rows, dirs, prepared[k].task->name(), cfg.tasks[k].label, rep.stats);
    }
  }
  {
    vec::InspectResult ir = vec::inspect(vpath, "");
    for (const auto& [l, st] : ir.layers) rep.vector_layers.push_back({l, st.l2()});
    rep.vector_total_l2 = ir.total.l2();
    rep.vector_other_l2 = ir.other.l2();
  }
  rep.steps_run = res.steps_run = counts.run;
  rep.steps_cached = res.steps_cached = counts.cached;
  write_report(rep, out);
  res.report = to_json(rep);
  res.markdown = to_markdown(rep);
  return res;
}

}  // namespace rv::experiment
