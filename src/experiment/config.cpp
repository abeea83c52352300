#include "experiment/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/yaml_reader.h"
#include "eval/backend/http.h"
#include "eval/tasks/data.h"
#include "eval/tasks/yaml_task.h"

namespace rv::experiment {

namespace fs = std::filesystem;

namespace {

// The experiment schema over the shared typed accessors.
struct Parser : YamlReader {
  // One number or a list of numbers (a sweep).
  std::vector<double> reals(const YAML::Node& n, const std::string& key) const {
    std::vector<double> r;
    if (n.IsSequence()) {
      if (n.size() == 0) fail(n, key, "expected a number or a non-empty list of numbers");
      for (const auto& x : n) r.push_back(real(x, key));
    } else {
      r.push_back(real(n, key));
    }
    return r;
  }

  // vector_form: one form or a list of forms (sweeps expanded).
  void forms(const YAML::Node& n, std::vector<VectorForm>& out) const {
    const std::string key = "vector_form";
    if (n.IsSequence()) {
      if (n.size() == 0) fail(n, key, "expected a form or a non-empty list of forms");
      for (const auto& x : n) forms(x, out);
      return;
    }
    if (n.IsScalar()) {
      const std::string s = n.Scalar();
      if (s == "full") {
        out.push_back(VectorForm{});
        return;
      }
      fail(n, key, "expected 'full', {lowrank: {...}} or {sparse: {...}}, got '" + s + "'");
    }
    only_keys(n, key, {"full", "lowrank", "sparse"});
    if (n.size() != 1) fail(n, key, "give one of full, lowrank, sparse per list entry");
    if (n["full"]) {
      out.push_back(VectorForm{});
      return;
    }
    if (const auto l = n["lowrank"]) {
      const std::string k = key + ".lowrank";
      only_keys(l, k, {"rank", "energy"});
      if (!!l["rank"] == !!l["energy"]) fail(l, k, "give exactly one of 'rank' and 'energy'");
      if (l["rank"]) {
        for (double r : reals(l["rank"], k + ".rank")) {
          if (!(r >= 1) || r != std::floor(r) || r > 1e6)
            fail(l["rank"], k + ".rank", "must be a positive integer");
          VectorForm f;
          f.kind = VectorForm::Kind::kLowrank;
          f.rank = static_cast<int>(r);
          out.push_back(f);
        }
      } else {
        for (double e : reals(l["energy"], k + ".energy")) {
          if (!(e > 0 && e <= 1)) fail(l["energy"], k + ".energy", "must be in (0, 1]");
          VectorForm f;
          f.kind = VectorForm::Kind::kLowrank;
          f.energy = e;
          out.push_back(f);
        }
      }
      return;
    }
    const auto sp = n["sparse"];
    const std::string k = key + ".sparse";
    only_keys(sp, k, {"method", "density", "seed", "epsilon", "gamma", "rescale"});
    VectorForm f;
    f.kind = VectorForm::Kind::kSparse;
    if (!sp["method"])
      fail(sp, k + ".method", "missing (dare, ties, magnitude, della, breadcrumbs)");
    f.method = str(sp["method"], k + ".method");
    if (sp["seed"]) f.seed = num<uint64_t>(sp["seed"], k + ".seed", "a non-negative integer");
    if (sp["epsilon"]) f.epsilon = real(sp["epsilon"], k + ".epsilon");
    if (sp["gamma"]) f.gamma = real(sp["gamma"], k + ".gamma");
    if (sp["rescale"]) f.rescale = boolean(sp["rescale"], k + ".rescale");
    if (!sp["density"]) fail(sp, k + ".density", "missing (the kept fraction, in (0, 1])");
    for (double d : reals(sp["density"], k + ".density")) {
      if (!(d > 0 && d <= 1)) fail(sp["density"], k + ".density", "must be in (0, 1]");
      f.density = d;
      out.push_back(f);
    }
  }

  TargetBackend backend(const YAML::Node& n, const std::string& key) const {
    TargetBackend b;
    if (n.IsScalar()) {
      std::string s = n.as<std::string>();
      if (s == "engine") return b;
      fail(n, key, "expected 'engine' or a mapping with 'engine' or 'server'");
    }
    only_keys(n, key, {"engine", "server"});
    if (n["engine"] && n["server"]) fail(n, key, "give either 'engine' or 'server', not both");
    if (const auto e = n["engine"]) {
      if (!e.IsNull()) {
        only_keys(e, key + ".engine",
                  {"max_batch", "max_context", "kv_bf16", "write_models", "no_mmap"});
        if (e["kv_bf16"]) b.kv_bf16 = boolean(e["kv_bf16"], key + ".engine.kv_bf16");
        if (e["no_mmap"]) b.no_mmap = boolean(e["no_mmap"], key + ".engine.no_mmap");
        if (e["write_models"])
          b.write_models = boolean(e["write_models"], key + ".engine.write_models");
        if (e["max_batch"])
          b.max_batch = num<int>(e["max_batch"], key + ".engine.max_batch", "a positive integer");
        if (e["max_context"])
          b.max_context =
              num<int>(e["max_context"], key + ".engine.max_context", "a positive integer");
        if (b.max_batch <= 0) fail(e["max_batch"], key + ".engine.max_batch", "must be positive");
        if (b.max_context <= 0)
          fail(e["max_context"], key + ".engine.max_context", "must be positive");
      }
    }
    if (const auto s = n["server"]) {
      const std::string k = key + ".server";
      only_keys(s, k,
                {"command", "base_url", "model_name", "startup_timeout", "concurrency", "replicas",
                 "lora_command", "adapter_arg"});
      b.server = true;
      if (!s["command"])
        fail(s, k, "missing 'command' (e.g. \"vllm serve {model} --port {port}\")");
      b.srv.command = str(s["command"], k + ".command");
      if (b.srv.command.find("{model}") == std::string::npos)
        fail(s["command"], k + ".command", "must contain {model} (the model directory to serve)");
      if (s["base_url"]) b.srv.base_url = str(s["base_url"], k + ".base_url");
      if (s["model_name"]) b.srv.model_name = str(s["model_name"], k + ".model_name");
      if (s["startup_timeout"]) {
        b.srv.startup_timeout =
            num<double>(s["startup_timeout"], k + ".startup_timeout", "seconds");
        if (!(b.srv.startup_timeout > 0))
          fail(s["startup_timeout"], k + ".startup_timeout", "must be positive");
      }
      if (s["concurrency"]) {
        b.srv.concurrency = num<int>(s["concurrency"], k + ".concurrency", "a positive integer");
        if (b.srv.concurrency <= 0) fail(s["concurrency"], k + ".concurrency", "must be positive");
      }
      if (s["lora_command"]) {
        b.srv.lora_command = str(s["lora_command"], k + ".lora_command");
        for (const char* need : {"{model}", "{adapters}"})
          if (b.srv.lora_command.find(need) == std::string::npos)
            fail(s["lora_command"], k + ".lora_command", std::string("must contain ") + need);
      }
      if (s["adapter_arg"]) {
        b.srv.adapter_arg = str(s["adapter_arg"], k + ".adapter_arg");
        if (b.srv.adapter_arg.find("{path}") == std::string::npos)
          fail(s["adapter_arg"], k + ".adapter_arg", "must contain {path} (the adapter directory)");
      }
      if (s["replicas"]) {
        b.srv.replicas = num<int>(s["replicas"], k + ".replicas", "a positive integer");
        if (b.srv.replicas <= 0) fail(s["replicas"], k + ".replicas", "must be positive");
      }
      try {
        std::string probe = b.srv.base_url;
        for (size_t p; (p = probe.find("{port}")) != std::string::npos;) probe.replace(p, 6, "1");
        eval::HttpBackend::parse_base_url(probe);
      } catch (const Error& e) {
        fail(s["base_url"] ? s["base_url"] : s, k + ".base_url", e.what());
      }
    }
    return b;
  }
};

}  // namespace

std::string safe_name(const std::string& s) {
  std::string o;
  for (char c : s)
    o += (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return o.empty() ? "_" : o;
}

namespace {

// A YAML scalar as JSON: true/false, an integer, a number, else a string.
nlohmann::json scalar_json(const YAML::Node& n) {
  const std::string& v = n.Scalar();
  if (n.Tag() != "!") {  // unquoted
    if (v == "true" || v == "True") return true;
    if (v == "false" || v == "False") return false;
    if (v == "null" || v == "~") return nullptr;
    try {
      size_t used = 0;
      long long i = std::stoll(v, &used);
      if (used == v.size()) return i;
      double d = std::stod(v, &used);
      if (used == v.size()) return d;
    } catch (const std::exception&) {
    }
  }
  return v;
}

// The sampling / reasoning keys of a tasks[] entry.
void parse_sampling(const Parser& P, const YAML::Node& n, eval::TaskOptions& o) {
  if (n["n_samples"]) {
    o.n_samples = P.num<int>(n["n_samples"], "tasks[].n_samples", "a positive integer");
    if (o.n_samples < 1) P.fail(n["n_samples"], "tasks[].n_samples", "must be >= 1");
  }
  if (n["temperature"]) {
    o.temperature = P.num<float>(n["temperature"], "tasks[].temperature", "a number");
    if (!(o.temperature >= 0)) P.fail(n["temperature"], "tasks[].temperature", "must be >= 0");
  }
  if (n["top_p"]) {
    o.top_p = P.num<float>(n["top_p"], "tasks[].top_p", "a number");
    if (!(o.top_p > 0 && o.top_p <= 1)) P.fail(n["top_p"], "tasks[].top_p", "must be in (0, 1]");
  }
  if (n["top_k"]) {
    o.top_k = P.num<int>(n["top_k"], "tasks[].top_k", "a non-negative integer");
    if (o.top_k < 0) P.fail(n["top_k"], "tasks[].top_k", "must be >= 0");
  }
  if (n["min_p"]) {
    o.min_p = P.num<float>(n["min_p"], "tasks[].min_p", "a number");
    if (!(o.min_p >= 0 && o.min_p <= 1)) P.fail(n["min_p"], "tasks[].min_p", "must be in [0, 1]");
  }
  if (n["max_gen_toks"]) {
    o.max_gen_toks = P.num<int>(n["max_gen_toks"], "tasks[].max_gen_toks", "a positive integer");
    if (o.max_gen_toks < 1) P.fail(n["max_gen_toks"], "tasks[].max_gen_toks", "must be >= 1");
  }
  if (n["think"]) {
    std::string t = P.str(n["think"], "tasks[].think");
    if (t != "strip" && t != "keep") P.fail(n["think"], "tasks[].think", "expected strip or keep");
    o.strip_think = t == "strip";
  }
  if (const YAML::Node k = n["chat_template_kwargs"]) {
    if (!k.IsMap()) P.fail(k, "tasks[].chat_template_kwargs", "expected a mapping");
    nlohmann::json j = nlohmann::json::object();
    for (const auto& kv : k) {
      if (!kv.second.IsScalar())
        P.fail(kv.second, "tasks[].chat_template_kwargs", "values must be scalars");
      j[kv.first.as<std::string>()] = scalar_json(kv.second);
    }
    o.chat_template_kwargs = j.empty() ? "" : j.dump();
  }
}

}  // namespace

ExperimentConfig parse_experiment_config(const std::string& text, const fs::path& source) {
  Parser P{{source.string(), source.has_parent_path() ? source.parent_path() : fs::path(".")}};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw Error(P.src + ":" + std::to_string(e.mark.line + 1), "YAML syntax error: " + e.msg);
  }
  if (!root.IsMap()) throw Error(P.src, "expected a YAML mapping at the top level");
  P.only_keys(root, "",
              {"vector", "targets", "alphas", "controls", "tasks", "limit", "seed", "data_dir",
               "backend", "vector_form"});
  ExperimentConfig c;
  c.source = source;

  const YAML::Node v = root["vector"];
  if (!v) P.fail(root, "vector", "missing (give {base: DIR, tuned: DIR} or {file: PATH})");
  P.only_keys(v, "vector", {"base", "tuned", "file"});
  if (v["file"]) {
    if (v["base"] || v["tuned"])
      P.fail(v, "vector", "give either 'file' or 'base' and 'tuned', not both");
    c.vector_file = P.path(v["file"], "vector.file");
  } else {
    if (!v["base"]) P.fail(v, "vector.base", "missing (the SFT model directory)");
    if (!v["tuned"]) P.fail(v, "vector.tuned", "missing (the GRPO/RL model directory)");
    c.base = P.path(v["base"], "vector.base");
    c.tuned = P.path(v["tuned"], "vector.tuned");
  }

  TargetBackend default_backend;
  if (root["backend"]) default_backend = P.backend(root["backend"], "backend");

  const YAML::Node t = root["targets"];
  if (!t) P.fail(root, "targets", "missing (a list of model directories)");
  if (!t.IsSequence() || t.size() == 0) P.fail(t, "targets", "expected a non-empty list");
  std::set<std::string> names;
  for (const auto& n : t) {
    ExperimentTarget tg;
    tg.backend = default_backend;
    if (n.IsScalar()) {
      tg.dir = P.path(n, "targets");
    } else {
      P.only_keys(n, "targets[]", {"name", "path", "backend"});
      if (!n["path"]) P.fail(n, "targets[].path", "missing");
      tg.dir = P.path(n["path"], "targets[].path");
      if (n["name"]) tg.name = P.str(n["name"], "targets[].name");
      if (n["backend"]) tg.backend = P.backend(n["backend"], "targets[].backend");
    }
    if (tg.name.empty()) tg.name = tg.dir.lexically_normal().filename().string();
    if (tg.name.empty()) tg.name = tg.dir.lexically_normal().parent_path().filename().string();
    if (!names.insert(tg.name).second)
      P.fail(n, "targets", "duplicate target name '" + tg.name + "' (give each a distinct 'name')");
    c.targets.push_back(tg);
  }

  if (const auto a = root["alphas"]) {
    if (!a.IsSequence() || a.size() == 0)
      P.fail(a, "alphas", "expected a non-empty list of numbers");
    c.alphas.clear();
    for (const auto& x : a) {
      double d = P.num<double>(x, "alphas", "a number");
      if (!std::isfinite(d)) P.fail(x, "alphas", "must be finite");
      if (std::find(c.alphas.begin(), c.alphas.end(), d) != c.alphas.end())
        P.fail(x, "alphas", "duplicate value " + x.Scalar());
      c.alphas.push_back(d);
    }
  }

  if (const auto k = root["controls"]) {
    P.only_keys(k, "controls", {"random", "reverse"});
    if (const auto r = k["random"]) {
      if (r.IsMap()) {
        P.only_keys(r, "controls.random", {"seed"});
        c.control_random = true;
        if (r["seed"])
          c.random_seed =
              P.num<uint64_t>(r["seed"], "controls.random.seed", "a non-negative integer");
      } else {
        c.control_random = P.boolean(r, "controls.random");
      }
    }
    if (k["reverse"]) c.control_reverse = P.boolean(k["reverse"], "controls.reverse");
  }

  if (const auto f = root["vector_form"]) {
    c.forms.clear();
    P.forms(f, c.forms);
    std::set<std::string> seen;
    for (const auto& x : c.forms)
      if (!seen.insert(x.key()).second)
        P.fail(f, "vector_form", "duplicate form '" + x.label() + "'");
    const bool lowrank = std::any_of(c.forms.begin(), c.forms.end(), [](const VectorForm& x) {
      return x.kind == VectorForm::Kind::kLowrank;
    });
    for (const auto& tg : c.targets)
      if (lowrank && tg.backend.server && tg.backend.srv.lora_command.empty())
        P.fail(f, "vector_form",
               "lowrank variants of server target '" + tg.name +
                   "' are LoRA adapters served by one server: give the server a lora_command "
                   "(e.g. \"vllm serve {model} --port {port} --enable-lora --lora-modules "
                   "{adapters}\")");
  }

  int default_limit = 0;
  uint64_t default_seed = 1234;
  if (root["limit"]) default_limit = P.num<int>(root["limit"], "limit", "a non-negative integer");
  if (default_limit < 0) P.fail(root["limit"], "limit", "must be >= 0");
  if (root["seed"]) default_seed = P.num<uint64_t>(root["seed"], "seed", "a non-negative integer");
  if (root["data_dir"])
    c.data_dir = P.path(root["data_dir"], "data_dir");
  else
    c.data_dir = eval::default_data_dir();

  const YAML::Node ts = root["tasks"];
  if (!ts) P.fail(root, "tasks", "missing (e.g. [gsm8k, sciq])");
  if (!ts.IsSequence() || ts.size() == 0) P.fail(ts, "tasks", "expected a non-empty list");
  std::set<std::string> labels;
  const auto known = eval::task_names();
  for (const auto& n : ts) {
    ExperimentTask et;
    et.options.data_dir = c.data_dir;
    et.options.limit = default_limit;
    et.options.seed = default_seed;
    if (!n.IsScalar()) {
      P.only_keys(
          n, "tasks[]",
          {"name", "label", "limit", "seed", "transforms", "cot_hint", "chat_template",
           "num_fewshot", "system_prompt", "fewshot_as_multiturn", "n_samples", "temperature",
           "top_p", "top_k", "min_p", "max_gen_toks", "think", "chat_template_kwargs"});
      if (!n["name"]) P.fail(n, "tasks[].name", "missing");
      if (n["label"]) et.label = P.str(n["label"], "tasks[].label");
      if (n["limit"])
        et.options.limit = P.num<int>(n["limit"], "tasks[].limit", "a non-negative integer");
      if (et.options.limit < 0) P.fail(n["limit"], "tasks[].limit", "must be >= 0");
      if (n["seed"])
        et.options.seed = P.num<uint64_t>(n["seed"], "tasks[].seed", "a non-negative integer");
      if (n["transforms"])
        et.options.transforms = P.str_list(n["transforms"], "tasks[].transforms");
      if (n["cot_hint"]) et.options.cot_hint = P.boolean(n["cot_hint"], "tasks[].cot_hint");
      if (n["chat_template"])
        et.options.apply_chat_template = P.boolean(n["chat_template"], "tasks[].chat_template");
      if (n["fewshot_as_multiturn"])
        et.options.fewshot_as_multiturn =
            P.boolean(n["fewshot_as_multiturn"], "tasks[].fewshot_as_multiturn");
      if (n["num_fewshot"])
        et.options.num_fewshot = P.num<int>(n["num_fewshot"], "tasks[].num_fewshot", "an integer");
      if (n["system_prompt"])
        et.options.system_prompt = P.str(n["system_prompt"], "tasks[].system_prompt");
      parse_sampling(P, n, et.options);
    }
    // (yaml-cpp's Node::operator= writes through to the referenced node, so
    // this is a fresh handle, never an assignment.)
    const YAML::Node name_node = n.IsScalar() ? YAML::Node(n) : YAML::Node(n["name"]);
    et.name = P.str(name_node, "tasks[].name");
    if (eval::is_task_file(et.name)) {
      // A task file: relative to this file's folder; loaded now so its
      // errors come before any model time. Its `task` name labels the column.
      et.name = P.path(name_node, "tasks[].name").string();
      std::string task_name;
      try {
        task_name = eval::make_task(et.name)->name();
      } catch (const Error& e) {
        P.fail(name_node, "tasks", e.what());
      }
      if (et.label.empty()) et.label = task_name;
    } else if (std::find(known.begin(), known.end(), et.name) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      P.fail(
          name_node, "tasks",
          "unknown task '" + et.name + "' (known: " + list + ", or a task file ending in .yaml)");
    }
    if (et.label.empty()) et.label = et.name;
    if (safe_name(et.label) != et.label)
      P.fail(name_node, "tasks[].label",
             "'" + et.label + "' may only use letters, digits, '-', '_' and '.'");
    if (!labels.insert(et.label).second)
      P.fail(name_node, "tasks",
             "duplicate task column '" + et.label + "' (give task variants distinct 'label's)");
    c.tasks.push_back(et);
  }
  return c;
}

std::string VectorForm::label() const {
  char b[96];
  switch (kind) {
    case Kind::kFull:
      return "full";
    case Kind::kLowrank:
      if (rank > 0) return "lowrank r=" + std::to_string(rank);
      snprintf(b, sizeof b, "lowrank e=%g", energy);
      return b;
    case Kind::kSparse:
      snprintf(b, sizeof b, "sparse %s d=%g", method.c_str(), density);
      return b;
  }
  return "?";
}

std::string VectorForm::key() const {
  if (kind != Kind::kSparse) return label();
  char b[160];
  snprintf(b, sizeof b, "%s|seed=%llu|eps=%.17g|gamma=%.17g|rescale=%d", label().c_str(),
           static_cast<unsigned long long>(seed), epsilon, gamma,
           rescale ? (*rescale ? 1 : 0) : -1);
  return b;
}

ExperimentConfig load_experiment_config(const fs::path& path) {
  if (!fs::exists(path)) throw Error(path.string(), "no such file");
  return parse_experiment_config(read_file(path), path);
}

}  // namespace rv::experiment
