#include "experiment/experiment.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "eval/backend/make.h"
#include "eval/run/results.h"
#include "eval/run/runner.h"
#include "experiment/plan.h"
#include "experiment/report.h"
#include "experiment/server.h"
#include "formats/model_dir.h"
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
  fs::path model_dir;
  std::string model_fp;
  std::vector<fs::path> runs;  // per task
};

// The backend a variant's evaluations use, started on first use: for a
// server target, the server process too.
class VariantBackend {
 public:
  VariantBackend(const Variant& x, const TargetBackend& bs, const fs::path& out, const Log& log)
      : x_(x), bs_(bs), out_(out), log_(log) {}
  ~VariantBackend() { stop(); }

  eval::Backend& get() {
    if (!backend_) start();
    return *backend_;
  }
  const std::string& describe() const { return desc_; }
  // The server process to blame for a failure: the first one that died,
  // else the first one; null for the engine.
  ServerProcess* process() {
    for (auto& p : procs_)
      if (!p->alive()) return p.get();
    return procs_.empty() ? nullptr : procs_.front().get();
  }
  void stop() {
    if (!procs_.empty() && log_) log_("[stop  ] server for " + x_.label);
    for (auto& p : procs_) p->stop();
    procs_.clear();
  }

 private:
  void start() {
    eval::BackendSpec spec;
    // The request cache keys on the variant's content identity: a server's
    // URL changes with its port between runs.
    spec.identity = "experiment|" + std::string(bs_.server ? "server|" : "engine|") + x_.model_fp;
    if (bs_.server) {
      const std::string model_abs = fs::absolute(x_.model_dir).string();
      std::vector<std::string> urls, cmds;
      auto fill_for = [&](const std::string& s, const std::string& port, int r) {
        return subst(subst(subst(s, "{model}", model_abs), "{port}", port), "{replica}",
                     std::to_string(r));
      };
      std::string first_port;
      std::vector<std::string> ports;
      for (int r = 0; r < bs_.srv.replicas; ++r) {
        std::string port = std::to_string(free_local_port());
        for (int tries = 0;
             tries < 20 && std::find(ports.begin(), ports.end(), port) != ports.end(); ++tries)
          port = std::to_string(free_local_port());  // the servers are not listening yet
        ports.push_back(port);
        if (r == 0) first_port = port;
        auto fill = [&](const std::string& s) { return fill_for(s, port, r); };
        cmds.push_back(fill(bs_.srv.command));
        urls.push_back(fill(bs_.srv.base_url));
        if (log_) log_("[start ] server for " + x_.label + ": " + cmds.back());
        const std::string log_name = x_.dirname + (r == 0 ? std::string(".server.log")
                                                          : ".server" + std::to_string(r) + ".log");
        procs_.push_back(std::make_unique<ServerProcess>(cmds.back(), out_ / "logs" / log_name));
      }
      std::string served;
      for (size_t r = 0; r < procs_.size(); ++r) {
        try {
          std::string s = procs_[r]->wait_ready(urls[r], bs_.srv.startup_timeout);
          if (r == 0) served = s;
        } catch (const Error& e) {
          throw Error(x_.label, e.what());
        }
      }
      spec.kind = eval::BackendSpec::Kind::kHttp;
      spec.http.base_url = urls.front();
      spec.http.base_urls = urls;
      spec.http.model =
          bs_.srv.model_name.empty() ? served : fill_for(bs_.srv.model_name, first_port, 0);
      spec.http.concurrency = bs_.srv.concurrency;
      spec.http.max_retries = 2;
      desc_ = "server: " + cmds.front();
      if (cmds.size() > 1) desc_ += " (+" + std::to_string(cmds.size() - 1) + " replicas)";
    } else {
      spec.model_dir = x_.model_dir;
      spec.max_batch = bs_.max_batch;
      spec.max_context = bs_.max_context;
      spec.kv_bf16 = bs_.kv_bf16;
      desc_ = "engine";
    }
    backend_ = eval::make_backend(spec);
  }

  const Variant& x_;
  const TargetBackend& bs_;
  fs::path out_;
  Log log_;
  std::vector<std::unique_ptr<ServerProcess>> procs_;
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
    std::vector<std::pair<std::string, std::string>> vecs = {{"v", vfp}};
    if (cfg.control_random) vecs.push_back({"random", rfp});
    for (const auto& [vname, fp] : vecs)
      for (double a : alphas) {
        if (a == 0) continue;
        Variant x;
        x.target = ti;
        x.vec = vname;
        x.alpha = a;
        x.label = t.name + " " + vname + " α=" + format_alpha(a);
        x.dirname = safe_name(t.name) + "__" + vname + "_a" + format_alpha(a);
        x.model_fp = sha256_hex("apply|" + b.model_fp + "|" + fp + "|" + format_alpha(a));
        x.model_dir = out / "models" / (x.dirname + "-" + x.model_fp.substr(0, 12));
        variants.push_back(x);
      }
  }
  fs::create_directories(out / "models");
  for (const auto& x : variants) {
    if (x.vec == "base") continue;
    run_step({"apply " + x.label, "apply " + x.label + " -> " + x.model_dir.string(), x.model_fp,
              x.model_dir, x.model_dir / "config.json",
              [&] {
                vec::ApplyOptions ao;
                ao.force = true;  // a leftover partial dir (no config.json) from a killed run
                ao.command_line = command_line;
                vec::apply(cfg.targets[x.target].dir, {{x.vec == "v" ? vpath : rpath, x.alpha}},
                           x.model_dir, ao, log);
              }},
             log, counts);
  }

  // 5. Evaluate every (variant, task); one backend (and server) per variant,
  // started only when one of its evaluations is not cached.
  const fs::path cache = out / "eval-cache.sqlite";
  for (auto& x : variants) {
    const auto& t = cfg.targets[x.target];
    const TargetBackend& bs = t.backend;
    VariantBackend backend(x, bs, out, log);
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
                                        {"task_label", cfg.tasks[k].label}};
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
  for (const auto& x : variants)
    rep.rows.push_back(
        {x.label, cfg.targets[x.target].name, x.vec, x.alpha, x.model_dir.string(), {}});
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
