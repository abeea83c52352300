// `reasonvec experiment` end to end on synthesized models with the real
// Qwen2.5 tokenizer: two targets, three alphas, a random control, the
// built-in engine and our own server started as an external command.
// Expectations are computed independently: report cells against each run's
// results.json, deltas from the two runs' values, the random control's norms
// from the vector's tensors read back here, applied weights from the inputs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/file.h"
#include "experiment/experiment.h"
#include "formats/dtype.h"
#include "formats/model_dir.h"
#include "formats/synth.h"
#include "support/llamacpp_oracle.h"
#include "support/st_checker.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const fs::path kData = fs::path(RV_SHARED_DIR) / "data";

struct Fixture {
  fs::path dir;
  Fixture() {
    dir = fs::temp_directory_path() / ("rv_exp_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto make = [&](const std::string& name, float delta, uint64_t delta_seed) {
      rv::SynthOptions o;
      o.arch = "qwen2";
      o.layers = 2;
      o.hidden = 32;
      o.heads = 4;
      o.kv_heads = 2;
      o.intermediate = 64;
      o.init_scale = 0.2f;
      o.seed = 7;
      o.delta_scale = delta;
      o.delta_seed = delta_seed;
      o.tokenizer_dir = rv_test::oracle_tokenizer_dir("qwen2_5");
      rv::synth_model(o, dir / name, true);
    };
    make("sft", 0.0f, 0);
    make("grpo", 0.05f, 1);
    make("instruct-a", 0.03f, 2);
    make("instruct-b", 0.03f, 3);
  }
  ~Fixture() { fs::remove_all(dir); }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

json read_json(const fs::path& p) {
  return json::parse(rv::read_file(p));
}

std::vector<float> tensor_f32(const rv::TensorSet& ts, const std::string& name) {
  auto v = ts.view(name);
  std::vector<float> out(v.numel());
  rv::to_f32(v.dtype(), v.data, out.data(), out.size());
  return out;
}

// The `output` of every sample of every report cell, keyed by row label
// and task: what two runs must agree on to count as identical.
std::map<std::string, std::vector<json>> cell_outputs(const json& report) {
  std::map<std::string, std::vector<json>> out;
  for (const auto& row : report["rows"])
    for (const auto& [task, c] : row["cells"].items()) {
      auto& v = out[row["label"].get<std::string>() + " / " + task];
      std::ifstream in(fs::path(c["run_dir"].get<std::string>()) / ("samples_" + task + ".jsonl"));
      std::string line;
      while (std::getline(in, line)) v.push_back(json::parse(line)["output"]);
      v.push_back(c["accuracy"]);
    }
  return out;
}

std::string error_of(const std::string& yaml) {
  try {
    rv::experiment::parse_experiment_config(yaml, "exp.yaml");
  } catch (const rv::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// gsm8k generates up to 256 tokens per document; instrumented, each token
// through the 151k-row LM head costs a noticeable fraction of a second, so
// the sanitizer run caps it (the tests compare runs, not answers).
std::string gsm_budget() {
  return rv_test::sanitizer_run() ? ", max_gen_toks: 24" : "";
}

}  // namespace

TEST(ExperimentConfig, ErrorsNameLineAndKey) {
  const std::string ok_head = "vector: {base: a, tuned: b}\ntargets: [t]\n";
  EXPECT_EQ(error_of(ok_head + "tasks: [gsm8k]\nalphas: [0, x]\n"),
            "exp.yaml:4: alphas: expected a number, got 'x'");
  EXPECT_EQ(error_of(ok_head + "tasks:\n  - name: nosuch\n")
                .rfind("exp.yaml:4: tasks: unknown task 'nosuch'", 0),
            0u)
      << error_of(ok_head + "tasks:\n  - name: nosuch\n");
  EXPECT_EQ(error_of(ok_head + "tasks: [gsm8k]\ncontrol: {random: true}\n")
                .rfind("exp.yaml:4: control: unknown key", 0),
            0u);
  EXPECT_EQ(error_of("targets: [t]\ntasks: [sciq]\n"),
            "exp.yaml:1: vector: missing (give {base: DIR, tuned: DIR} or {file: PATH})");
  EXPECT_EQ(error_of(ok_head + "tasks: [sciq]\nbackend: {server: {base_url: x}}\n")
                .rfind("exp.yaml:4: backend.server: missing 'command'", 0),
            0u);
  EXPECT_EQ(
      error_of(ok_head + "tasks: [sciq, sciq]\n"),
      "exp.yaml:3: tasks: duplicate task column 'sciq' (give task variants distinct 'label's)");
  EXPECT_EQ(error_of(ok_head + "tasks: [sciq\n").rfind("exp.yaml:", 0), 0u);
  EXPECT_EQ(error_of(ok_head + "tasks: [sciq]\nlimit: -2\n"), "exp.yaml:4: limit: must be >= 0");
  EXPECT_EQ(error_of(ok_head + "tasks: [sciq]\nbackend: {engine: {kv_bf16: 3}}\n"),
            "exp.yaml:4: backend.engine.kv_bf16: expected true or false, got '3'");
  EXPECT_TRUE(rv::experiment::parse_experiment_config(
                  ok_head + "tasks: [sciq]\nbackend: {engine: {kv_bf16: true}}\n", "e.yaml")
                  .targets[0]
                  .backend.kv_bf16);
  EXPECT_FALSE(rv::experiment::parse_experiment_config(ok_head + "tasks: [sciq]\n", "e.yaml")
                   .targets[0]
                   .backend.kv_bf16);
  EXPECT_TRUE(rv::experiment::parse_experiment_config(
                  ok_head + "tasks: [sciq]\nbackend: {engine: {no_mmap: true}}\n", "e.yaml")
                  .targets[0]
                  .backend.no_mmap);
  EXPECT_EQ(error_of(ok_head + "tasks: [sciq]\nbackend: {engine: {no_mmap: x}}\n"),
            "exp.yaml:4: backend.engine.no_mmap: expected true or false, got 'x'");

  auto c = rv::experiment::parse_experiment_config(
      ok_head +
          "tasks: [sciq, {name: gsm8k, label: gsm8k_cot, cot_hint: true, limit: 3}]\nlimit: 5\n",
      "/x/e.yaml");
  ASSERT_EQ(c.tasks.size(), 2u);
  EXPECT_EQ(c.tasks[0].options.limit, 5);
  EXPECT_EQ(c.tasks[1].options.limit, 3);
  EXPECT_TRUE(c.tasks[1].options.cot_hint);
  EXPECT_EQ(c.tasks[1].label, "gsm8k_cot");
  EXPECT_EQ(c.base, fs::path("/x/a"));
  EXPECT_EQ(c.alphas, (std::vector<double>{-1, 0, 1}));
  EXPECT_EQ(c.targets[0].name, "t");
}

TEST(ExperimentConfig, VectorFormsAndSweeps) {
  const std::string head = "vector: {base: a, tuned: b}\ntargets: [t]\ntasks: [sciq]\n";
  auto c = rv::experiment::parse_experiment_config(
      head +
          "vector_form: [full, {lowrank: {rank: [4, 16]}}, {lowrank: {energy: 0.9}},\n"
          "  {sparse: {method: dare, density: [0.1, 0.5], seed: 3, rescale: false}}]\n",
      "e.yaml");
  std::vector<std::string> labels;
  for (const auto& f : c.forms) labels.push_back(f.label());
  EXPECT_EQ(labels,
            (std::vector<std::string>{"full", "lowrank r=4", "lowrank r=16", "lowrank e=0.9",
                                      "sparse dare d=0.1", "sparse dare d=0.5"}));
  EXPECT_EQ(c.forms[4].seed, 3u);
  EXPECT_FALSE(*c.forms[5].rescale);
  EXPECT_FALSE(c.forms[0].rescale.has_value());
  EXPECT_EQ(rv::experiment::parse_experiment_config(head, "e.yaml").forms.size(), 1u);
  EXPECT_EQ(error_of(head + "vector_form: {sparse: {method: dare, density: 1.5}}\n"),
            "exp.yaml:4: vector_form.sparse.density: must be in (0, 1]");
  EXPECT_EQ(error_of(head + "vector_form: {lowrank: {rank: 4, energy: 0.5}}\n"),
            "exp.yaml:4: vector_form.lowrank: give exactly one of 'rank' and 'energy'");
  EXPECT_EQ(error_of(head + "vector_form: {lowrank: {rank: 0}}\n"),
            "exp.yaml:4: vector_form.lowrank.rank: must be a positive integer");
  EXPECT_EQ(error_of(head + "vector_form: [full, full]\n"),
            "exp.yaml:4: vector_form: duplicate form 'full'");
  EXPECT_EQ(error_of(head + "vector_form: half\n"),
            "exp.yaml:4: vector_form: expected 'full', {lowrank: {...}} or {sparse: {...}}, got "
            "'half'");
  // A server target's LoRA variants need {adapters} in its command.
  EXPECT_EQ(error_of(head + "backend: {server: {command: \"vllm serve {model}\"}}\n"
                            "vector_form: {lowrank: {rank: 8}}\n")
                .rfind("exp.yaml:5: vector_form: lowrank variants of server target 't' are LoRA "
                       "adapters served by one server: give the server a lora_command",
                       0),
            0u)
      << error_of(head +
                  "backend: {server: {command: \"vllm serve {model}\"}}\n"
                  "vector_form: {lowrank: {rank: 8}}\n");
}

TEST(ExperimentConfig, PerTaskSamplingAndReasoningKeys) {
  const std::string head = "vector: {base: a, tuned: b}\ntargets: [t]\n";
  auto c = rv::experiment::parse_experiment_config(
      head +
          "tasks:\n"
          "  - {name: gsm8k, n_samples: 8, temperature: 0.6, top_p: 0.95, top_k: 20,\n"
          "     min_p: 0.05, max_gen_toks: 32768, think: keep,\n"
          "     chat_template_kwargs: {enable_thinking: false, mode: \"x\", depth: 2}}\n"
          "  - sciq\n",
      "e.yaml");
  const auto& o = c.tasks[0].options;
  EXPECT_EQ(o.n_samples, 8);
  EXPECT_FLOAT_EQ(o.temperature, 0.6f);
  EXPECT_FLOAT_EQ(o.top_p, 0.95f);
  EXPECT_EQ(o.top_k, 20);
  EXPECT_FLOAT_EQ(o.min_p, 0.05f);
  EXPECT_EQ(o.max_gen_toks, 32768);
  EXPECT_FALSE(o.strip_think);
  EXPECT_EQ(json::parse(o.chat_template_kwargs),
            json({{"enable_thinking", false}, {"mode", "x"}, {"depth", 2}}));
  const auto& d = c.tasks[1].options;  // defaults
  EXPECT_EQ(d.n_samples, 1);
  EXPECT_LT(d.temperature, 0);
  EXPECT_TRUE(d.strip_think);
  EXPECT_EQ(d.chat_template_kwargs, "");
  EXPECT_EQ(error_of(head + "tasks: [{name: gsm8k, think: maybe}]\n"),
            "exp.yaml:3: tasks[].think: expected strip or keep");
  EXPECT_EQ(error_of(head + "tasks: [{name: gsm8k, n_samples: 0}]\n"),
            "exp.yaml:3: tasks[].n_samples: must be >= 1");
}

TEST(ExperimentConfig, TaskFilesAreRelativeToTheExperimentFile) {
  const std::string head = "vector: {base: a, tuned: b}\ntargets: [t]\n";
  const fs::path examples = fs::path(RV_SOURCE_DIR) / "examples";
  auto c = rv::experiment::parse_experiment_config(
      head + "tasks: [tasks/gsm8k_cot.yaml, {name: tasks/gsm8k_relaxed.yaml, label: relaxed}]\n",
      examples / "e.yaml");
  ASSERT_EQ(c.tasks.size(), 2u);
  EXPECT_EQ(c.tasks[0].name, (examples / "tasks/gsm8k_cot.yaml").string());
  EXPECT_EQ(c.tasks[0].label, "gsm8k_cot_yaml");  // the file's `task` name
  EXPECT_EQ(c.tasks[1].label, "relaxed");
  // A broken task file fails while the experiment is read.
  EXPECT_EQ(error_of(head + "tasks: [nope/t.yaml]\n").rfind("exp.yaml:3: tasks: ", 0), 0u)
      << error_of(head + "tasks: [nope/t.yaml]\n");
}

TEST(Experiment, MissingModelIsReportedBeforeAnyWork) {
  Fixture& f = fx();
  fs::path out = f.dir / "out-missing";
  std::string y =
      "vector: {base: sft, tuned: grpo}\ntargets: [instruct-a, nope]\ntasks: [sciq]\ndata_dir: " +
      kData.string() + "\n";
  rv::write_file(f.dir / "missing.yaml", y);
  auto cfg = rv::experiment::load_experiment_config(f.dir / "missing.yaml");
  rv::experiment::ExperimentOptions o;
  o.out_dir = out;
  try {
    rv::experiment::run_experiment(cfg, o);
    FAIL() << "no error";
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("target nope: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no such model directory"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out / "vectors") && !fs::is_empty(out / "vectors"));
}

TEST(Experiment, EngineEndToEndCachedAndReportMatchesRuns) {
  Fixture& f = fx();
  fs::path out = f.dir / "out";
  std::string y =
      "vector: {base: sft, tuned: grpo}\n"
      "targets:\n  - instruct-a\n  - {name: b, path: instruct-b}\n"
      "alphas: [-1, 0, 1]\n"
      "controls: {random: {seed: 3}}\n"
      "tasks:\n  - {name: gsm8k, limit: 1" +
      gsm_budget() +
      "}\n  - {name: sciq, limit: 3}\n"
      "data_dir: " +
      kData.string() +
      "\n"
      "backend: {engine: {max_batch: 8, max_context: 2048}}\n";
  rv::write_file(f.dir / "exp.yaml", y);
  auto cfg = rv::experiment::load_experiment_config(f.dir / "exp.yaml");
  std::vector<std::string> lines;
  rv::experiment::ExperimentOptions o;
  o.out_dir = out;
  o.log = [&](const std::string& s) { lines.push_back(s); };
  auto r1 = rv::experiment::run_experiment(cfg, o);
  // extract + random + 2 x 5 variants x 2 tasks; the engine applies the
  // vectors in memory, so there are no apply steps and no model copies.
  EXPECT_EQ(r1.steps_run, 1 + 1 + 20);
  EXPECT_FALSE(fs::exists(out / "models"));
  EXPECT_EQ(r1.steps_cached, 0);
  EXPECT_TRUE(fs::exists(out / "report.md"));
  EXPECT_TRUE(fs::exists(out / "plots/accuracy_gsm8k.svg"));
  EXPECT_TRUE(fs::exists(out / "plots/accuracy_sciq.svg"));
  EXPECT_TRUE(fs::exists(out / "plots/vector_norms.svg"));

  json rep = read_json(out / "report.json");
  ASSERT_EQ(rep["rows"].size(), 10u);
  std::map<std::string, std::map<std::string, double>> base_acc;  // target -> task -> acc
  for (const auto& row : rep["rows"])
    if (row["vector"] == "base")
      for (const auto& [task, c] : row["cells"].items())
        base_acc[row["target"]][task] = c["accuracy"];
  int cells = 0;
  for (const auto& row : rep["rows"]) {
    for (const auto& [task, c] : row["cells"].items()) {
      // The run's own results.json, read here.
      json rj = read_json(fs::path(c["run_dir"].get<std::string>()) / "results.json");
      std::string metric = rj["primary_metric"][task];
      double v = rj["results"][task][metric];
      EXPECT_NEAR(c["accuracy"].get<double>(), v, 1e-12) << row["label"] << " " << task;
      EXPECT_EQ(c["n"].get<size_t>(), task == "gsm8k" ? 1u : 3u);
      EXPECT_EQ(rj["config"]["experiment"]["alpha"].get<double>(), row["alpha"].get<double>());
      if (row["vector"] != "base") {
        double d = v - base_acc[row["target"]][task];
        EXPECT_NEAR(c["delta"].get<double>(), d, 1e-12) << row["label"] << " " << task;
      }
      ++cells;
    }
  }
  EXPECT_EQ(cells, 20);
  // The table has one line per variant and the task columns.
  std::string md = rv::read_file(out / "report.md");
  EXPECT_NE(md.find("| model | gsm8k | sciq |"), std::string::npos) << md;
  EXPECT_NE(md.find("| b random α=-1 |"), std::string::npos) << md;

  // The random control: v's shapes and per-tensor L2 norms, different values.
  rv::TensorSet v(rep["vector"]["path"].get<std::string>());
  rv::TensorSet rnd(rep["random_control"]["path"].get<std::string>());
  ASSERT_EQ(v.names(), rnd.names());
  for (const auto& name : v.names()) {
    auto a = tensor_f32(v, name), b = tensor_f32(rnd, name);
    double na = 0, nb = 0, dot = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      na += double(a[i]) * a[i];
      nb += double(b[i]) * b[i];
      dot += double(a[i]) * b[i];
    }
    EXPECT_NEAR(std::sqrt(nb), std::sqrt(na), 1e-5 * std::sqrt(na) + 1e-12) << name;
    if (na > 0) {
      EXPECT_LT(std::abs(dot) / (std::sqrt(na) * std::sqrt(nb)), 0.5) << name;
    }
  }
  // Every variant row says which vector it added, in memory, to its target.
  for (const auto& row : rep["rows"]) {
    if (row["vector"] == "base") continue;
    EXPECT_EQ(row["form"], "full") << row["label"];
    EXPECT_TRUE(row["in_memory"].get<bool>()) << row["label"];
    EXPECT_EQ(row["delta"],
              row["vector"] == "v" ? rep["vector"]["path"] : rep["random_control"]["path"])
        << row["label"];
    EXPECT_EQ(row["model_dir"],
              (f.dir / (row["target"] == "b" ? "instruct-b" : "instruct-a")).string());
  }

  // Rerun: nothing is recomputed and the report is unchanged.
  auto r2 = rv::experiment::run_experiment(cfg, o);
  EXPECT_EQ(r2.steps_run, 0);
  EXPECT_EQ(r2.steps_cached, r1.steps_run);
  json rep2 = read_json(out / "report.json");
  rep2.erase("steps");
  rep.erase("steps");
  EXPECT_EQ(rep, rep2);

  // A run that died before writing its results resumes from the request cache.
  fs::path victim = rep["rows"][3]["cells"]["sciq"]["run_dir"].get<std::string>();
  fs::remove_all(victim);
  auto r3 = rv::experiment::run_experiment(cfg, o);
  EXPECT_EQ(r3.steps_run, 1);
  EXPECT_EQ(r3.cache_misses, 0u);
  EXPECT_EQ(r3.cache_hits, 12u);  // 3 documents x 4 choices
  json rep3 = read_json(out / "report.json");
  rep3.erase("steps");
  EXPECT_EQ(rep, rep3);

  // A changed option reruns only what it affects.
  auto cfg2 = cfg;
  cfg2.tasks[1].options.limit = 4;
  auto r4 = rv::experiment::run_experiment(cfg2, o);
  EXPECT_EQ(r4.steps_run, 10);  // sciq for every variant
  EXPECT_EQ(r4.cache_hits, 10u * 12u);
  EXPECT_EQ(r4.cache_misses, 10u * 4u);

  // A bf16 KV cache changes the numbers: every evaluation runs again and
  // nothing comes from the f32 runs' request cache; the models are reused.
  // (20 more evaluations: left to the optimised build.)
  if (rv_test::sanitizer_run()) return;
  auto cfg3 = cfg;
  for (auto& t : cfg3.targets) t.backend.kv_bf16 = true;
  auto r5 = rv::experiment::run_experiment(cfg3, o);
  EXPECT_EQ(r5.steps_run, 20);
  EXPECT_EQ(r5.cache_hits, 0u);
}

// A task file's column is filled from its runs: results.json names the
// task by the file's `task`, not by its path.
TEST(Experiment, TaskFileColumnHasTheRunsNumbers) {
  Fixture& f = fx();
  rv::write_file(f.dir / "sums.jsonl",
                 "{\"q\": \"2 + 3\", \"a\": \"5\"}\n{\"q\": \"4 + 4\", \"a\": \"8\"}\n");
  rv::write_file(
      f.dir / "sums.yaml",
      "task: sums\ndataset: sums.jsonl\ndoc_to_text: \"{{q}} =\"\n"
      "doc_to_target: \"{{a}}\"\ngeneration_kwargs: {until: [\"\\n\"], max_gen_toks: 4}\n"
      "filter_list:\n  - name: n\n    filter: [{function: number}, {function: take_first}]\n"
      "metric_list:\n  - metric: exact_match\n");
  rv::write_file(f.dir / "file-task.yaml",
                 "vector: {base: sft, tuned: grpo}\ntargets: [instruct-a]\nalphas: [0]\n"
                 "tasks: [sums.yaml]\n");
  rv::experiment::ExperimentOptions o;
  o.out_dir = f.dir / "out-file-task";
  auto r = rv::experiment::run_experiment(
      rv::experiment::load_experiment_config(f.dir / "file-task.yaml"), o);
  ASSERT_EQ(r.report["rows"].size(), 1u);
  const json& c = r.report["rows"][0]["cells"]["sums"];
  ASSERT_TRUE(c.contains("accuracy")) << r.report["rows"][0].dump();
  json rj = read_json(fs::path(c["run_dir"].get<std::string>()) / "results.json");
  EXPECT_EQ(c["accuracy"].get<double>(), rj["results"]["sums"]["exact_match,n"].get<double>());
  EXPECT_EQ(c["n"].get<size_t>(), 2u);
}

TEST(Experiment, OwnServerAsExternalCommandMatchesEngine) {
  Fixture& f = fx();
  // Scoring over HTTP echoes every prompt position through the 151k-row LM
  // head; instrumented, that is minutes per document, so the sanitizer run
  // compares a short gsm8k generation instead (the eval suite's e2e test
  // still scores over HTTP there).
  const bool san = rv_test::sanitizer_run();
  const std::string task = san ? "gsm8k" : "sciq";
  const std::string entry =
      san ? "{name: gsm8k, limit: 1, max_gen_toks: 24}" : "{name: sciq, limit: 3}";
  auto write_cfg = [&](const std::string& name, const std::string& backend) {
    std::string y =
        "vector: {base: sft, tuned: grpo}\ntargets: [instruct-a]\nalphas: [0, 1]\n"
        "tasks:\n  - " +
        entry + "\ndata_dir: " + kData.string() + "\n" + backend;
    rv::write_file(f.dir / name, y);
    return rv::experiment::load_experiment_config(f.dir / name);
  };
  auto eng = write_cfg("eng.yaml", "");
  auto srv = write_cfg("srv.yaml",
                       std::string("backend:\n  server:\n    command: \"exec ") + RV_CLI_PATH +
                           " -q serve --model {model} --port {port}\"\n    startup_timeout: 60\n");
  rv::experiment::ExperimentOptions o;
  o.out_dir = f.dir / "out-eng";
  auto a = rv::experiment::run_experiment(eng, o);
  o.out_dir = f.dir / "out-srv";
  auto b = rv::experiment::run_experiment(srv, o);
  ASSERT_EQ(a.report["rows"].size(), 2u);
  ASSERT_EQ(b.report["rows"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const json &ca = a.report["rows"][i]["cells"][task], &cb = b.report["rows"][i]["cells"][task];
    EXPECT_EQ(ca["accuracy"], cb["accuracy"]) << i;
  }
  // Greedy text is the same from the engine and from the server.
  if (san) {
    EXPECT_EQ(cell_outputs(a.report), cell_outputs(b.report));
  }
  // Each variant was served by its own server process, whose log we kept.
  for (const char* v : {"instruct-a__base", "instruct-a__v_a+1"}) {
    fs::path l = f.dir / "out-srv/logs" / (std::string(v) + ".server.log");
    ASSERT_TRUE(fs::exists(l)) << l;
    EXPECT_NE(rv::read_file(l).find("listening on http://"), std::string::npos) << l;
  }

  // Two replicas per variant: requests spread over both, same numbers.
  auto rep =
      write_cfg("rep.yaml", std::string("backend:\n  server:\n    command: \"exec ") + RV_CLI_PATH +
                                " -q serve --model {model} --port {port}\"\n"
                                "    startup_timeout: 60\n    replicas: 2\n");
  o.out_dir = f.dir / "out-rep";
  auto c = rv::experiment::run_experiment(rep, o);
  ASSERT_EQ(c.report["rows"].size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(a.report["rows"][i]["cells"][task]["accuracy"],
              c.report["rows"][i]["cells"][task]["accuracy"])
        << i;
  for (const char* l : {"instruct-a__base.server.log", "instruct-a__base.server1.log"})
    EXPECT_NE(rv::read_file(f.dir / "out-rep/logs" / l).find("listening on http://"),
              std::string::npos)
        << l;

  // A server that dies at start is reported with its log tail.
  auto bad = write_cfg("bad.yaml",
                       "backend:\n  server:\n    command: \"echo boom {model} >&2; exit 3\"\n");
  o.out_dir = f.dir / "out-bad";
  try {
    rv::experiment::run_experiment(bad, o);
    FAIL() << "no error";
  } catch (const rv::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("exited before answering"), std::string::npos) << m;
    EXPECT_NE(m.find("| boom "), std::string::npos) << m;
  }
}

// Sparse and low-rank forms of v next to v itself: with the built-in engine
// every variant is applied in memory (only the derived vectors are written);
// with our own server as the backend, full and sparse variants are written
// model directories and the low-rank ones are LoRA adapters of ONE server.
// Both paths give the same outputs (α = 1: the adapter the server gets is
// the one the engine applies, bit for bit).
TEST(Experiment, VectorFormsInMemoryMatchWrittenModelsAndOneLoraServer) {
  Fixture& f = fx();
  const bool san = rv_test::sanitizer_run();
  const std::string task = san ? "gsm8k" : "sciq";
  const std::string entry =
      san ? "{name: gsm8k, limit: 1, max_gen_toks: 16}" : "{name: sciq, limit: 3}";
  auto write_cfg = [&](const std::string& name, const std::string& backend) {
    std::string y =
        "vector: {base: sft, tuned: grpo}\ntargets: [instruct-a]\nalphas: [0, 1]\n"
        "vector_form: [full, {lowrank: {rank: [2, 8]}}, {sparse: {method: dare, density: 0.5, "
        "seed: 1}}]\ntasks:\n  - " +
        entry + "\ndata_dir: " + kData.string() + "\n" + backend;
    rv::write_file(f.dir / name, y);
    return rv::experiment::load_experiment_config(f.dir / name);
  };
  auto eng = write_cfg("forms-eng.yaml", "");
  rv::experiment::ExperimentOptions o;
  o.out_dir = f.dir / "out-forms-eng";
  auto a = rv::experiment::run_experiment(eng, o);
  // extract + sparse + 2 lowrank + 5 evaluations; nothing else written.
  EXPECT_EQ(a.steps_run, 1 + 1 + 2 + 5);
  EXPECT_FALSE(fs::exists(o.out_dir / "models"));
  const json& rows = a.report["rows"];
  ASSERT_EQ(rows.size(), 5u);
  std::vector<std::string> labels;
  for (const auto& r : rows) labels.push_back(r["label"]);
  EXPECT_EQ(labels, (std::vector<std::string>{
                        "instruct-a", "instruct-a v α=+1", "instruct-a v[lowrank r=2] α=+1",
                        "instruct-a v[lowrank r=8] α=+1", "instruct-a v[sparse dare d=0.5] α=+1"}));
  EXPECT_EQ(rows[2]["rank"], 2);
  EXPECT_EQ(rows[4]["density"], 0.5);
  EXPECT_TRUE(fs::exists(fs::path(rows[2]["delta"].get<std::string>()) / "adapter_config.json"));
  EXPECT_TRUE(fs::is_regular_file(rows[4]["delta"].get<std::string>()));
  EXPECT_TRUE(fs::exists(o.out_dir / "plots" / ("accuracy_vs_rank_" + task + ".svg")));
  EXPECT_TRUE(fs::exists(o.out_dir / "plots" / ("accuracy_vs_density_" + task + ".svg")));
  std::string md = rv::read_file(o.out_dir / "report.md");
  EXPECT_NE(md.find("| instruct-a v[lowrank r=2] α=+1 | lowrank r=2 (in memory) |"),
            std::string::npos)
      << md;

  // The same with the full and sparse variants written by apply and loaded
  // from disk: the same outputs.
  auto wm = write_cfg("forms-wm.yaml", "backend: {engine: {write_models: true}}\n");
  o.out_dir = f.dir / "out-forms-wm";
  auto w = rv::experiment::run_experiment(wm, o);
  EXPECT_EQ(w.steps_run, 1 + 1 + 2 + 2 + 5);  // + 2 applies
  EXPECT_EQ(w.report["rows"][1]["in_memory"], false);
  EXPECT_EQ(w.report["rows"][2]["in_memory"], true);  // lowrank stays in memory
  EXPECT_EQ(cell_outputs(a.report), cell_outputs(w.report));

  auto srv = write_cfg(
      "forms-srv.yaml",
      std::string("backend:\n  server:\n    command: \"exec ") + RV_CLI_PATH +
          " -q serve --model {model} --port {port}\"\n    lora_command: \"exec " + RV_CLI_PATH +
          " -q serve --model {model} --port {port} {adapters}\"\n"
          "    adapter_arg: \"--variant {name}={path}:1\"\n    startup_timeout: 60\n");
  o.out_dir = f.dir / "out-forms-srv";
  std::vector<std::string> lines;
  o.log = [&](const std::string& s) { lines.push_back(s); };
  auto b = rv::experiment::run_experiment(srv, o);
  // Two applied model directories (full, sparse) and two adapters.
  int models = 0, adapters = 0;
  for (const auto& e : fs::directory_iterator(o.out_dir / "models")) models += e.is_directory();
  for (const auto& e : fs::directory_iterator(o.out_dir / "adapters")) adapters += e.is_directory();
  EXPECT_EQ(models, 2);
  EXPECT_EQ(adapters, 2);
  // One server for the base and both LoRA variants, one per written model.
  int starts = 0;
  for (const auto& l : lines) starts += l.rfind("[start ] server for", 0) == 0;
  EXPECT_EQ(starts, 3);
  EXPECT_TRUE(fs::exists(o.out_dir / "logs" / "instruct-a__lora.server.log"));
  EXPECT_EQ(cell_outputs(a.report), cell_outputs(b.report));
}

TEST(Experiment, ServerThatDiesMidRunIsReportedAndTheRunResumes) {
  Fixture& f = fx();
  // A server that is SIGKILLed right after it has answered its first
  // request; with one request in flight at a time the other one is lost.
  fs::path script = f.dir / "dying-server.sh";
  rv::write_file(script, std::string("set -u\nerr=$(mktemp)\n") + RV_CLI_PATH +
                             " -q serve --model \"$1\" --port \"$2\" --log-requests "
                             "2> >(tee \"$err\" >&2) &\n"
                             "pid=$!\n"
                             "until grep -q 'POST /v1/' \"$err\"; do\n"
                             "  kill -0 $pid 2>/dev/null || exit 1\n  sleep 0.01\ndone\n"
                             "echo 'dying-server: killing the server' >&2\n"
                             "kill -9 $pid\nrm -f \"$err\"\nexit 137\n");
  auto write_cfg = [&](const std::string& name, const std::string& backend) {
    std::string y =
        "vector: {base: sft, tuned: grpo}\ntargets: [instruct-a]\nalphas: [0]\n"
        "tasks:\n  - {name: gsm8k, limit: 2" +
        gsm_budget() + "}\ndata_dir: " + kData.string() + "\n" + backend;
    rv::write_file(f.dir / name, y);
    return rv::experiment::load_experiment_config(f.dir / name);
  };
  auto dies = write_cfg("dies.yaml", "backend:\n  server:\n    command: \"bash " + script.string() +
                                         " {model} {port}\"\n    concurrency: 1\n");
  auto heals = write_cfg("heals.yaml", std::string("backend:\n  server:\n    command: \"exec ") +
                                           RV_CLI_PATH +
                                           " -q serve --model {model} --port {port}\"\n"
                                           "    concurrency: 1\n");
  rv::experiment::ExperimentOptions o;
  o.out_dir = f.dir / "out-dies";
  try {
    rv::experiment::run_experiment(dies, o);
    FAIL() << "the run finished before the server died";
  } catch (const rv::Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), m.find("\n  | ")) << m;  // one line, then the log tail
    EXPECT_NE(m.find("instruct-a / gsm8k: "), std::string::npos) << m;
    EXPECT_NE(m.find("connection error: cannot connect"), std::string::npos) << m;
    EXPECT_NE(m.find("the server exited during the run"), std::string::npos) << m;
    EXPECT_NE(m.find("| reasonvec serve: POST /v1/completions 200"), std::string::npos) << m;
    EXPECT_NE(m.find("| dying-server: killing the server"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(o.out_dir / "report.json"));

  // After a restart with a working server the run completes; the answer the
  // dead server gave is reused, and the result equals the built-in engine's.
  auto healed = rv::experiment::run_experiment(heals, o);
  EXPECT_EQ(healed.cache_hits, 1u);
  EXPECT_EQ(healed.cache_misses, 1u);
  auto eng = write_cfg("eng4.yaml", "");
  o.out_dir = f.dir / "out-eng4";
  auto direct = rv::experiment::run_experiment(eng, o);
  EXPECT_EQ(cell_outputs(healed.report), cell_outputs(direct.report));
}

TEST(ExperimentCli, KilledMidRunResumesToTheSameResults) {
  Fixture& f = fx();
  fs::path cfg = f.dir / "kill.yaml";
  rv::write_file(cfg,
                 "vector: {base: sft, tuned: grpo}\ntargets: [instruct-a]\nalphas: [0, 1]\n"
                 "tasks:\n  - {name: sciq, limit: 3}\n  - {name: gsm8k, limit: 1" +
                     gsm_budget() + "}\ndata_dir: " + kData.string() + "\n");
  const fs::path out = f.dir / "out-kill";
  auto finished_runs = [&] {
    int n = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(out / "runs", ec), end; !ec && it != end;
         it.increment(ec))
      n += it->path().filename() == "results.json";
    return n;
  };
  pid_t pid = rvtest::spawn_cli({"-q", "experiment", cfg.string(), "-o", out.string()},
                                (f.dir / "kill.log").string());
  for (int i = 0; i < 6000 && finished_runs() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the experiment finished before it could be killed: "
                               << rv::read_file(f.dir / "kill.log");
  ASSERT_GE(finished_runs(), 1);
  ASSERT_LT(finished_runs(), 4);
  EXPECT_FALSE(fs::exists(out / "report.json"));

  auto again = rvtest::run_cli({"-q", "experiment", cfg.string(), "-o", out.string()});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(finished_runs(), 4);
  // Nothing half-written is left behind, the killed writer's temporaries included.
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();

  auto ref_cfg = rv::experiment::load_experiment_config(cfg);
  rv::experiment::ExperimentOptions o;
  o.out_dir = f.dir / "out-nokill";
  auto ref = rv::experiment::run_experiment(ref_cfg, o);
  EXPECT_EQ(cell_outputs(read_json(out / "report.json")), cell_outputs(ref.report));
}

TEST(ExperimentCli, BadConfigIsOneLineWithFileLineAndKey) {
  Fixture& f = fx();
  fs::path cfg = f.dir / "bad-alphas.yaml", log = f.dir / "bad-alphas.log";
  rv::write_file(
      cfg, "vector: {base: sft, tuned: grpo}\ntargets: [instruct-a]\ntasks: [sciq]\nalphas: 3\n");
  std::string cmd = std::string(RV_CLI_PATH) + " -q experiment " + cfg.string() + " -o " +
                    (f.dir / "o").string() + " > " + log.string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  EXPECT_EQ(rv::read_file(log),
            "reasonvec: " + cfg.string() + ":4: alphas: expected a non-empty list of numbers\n");
  EXPECT_FALSE(fs::exists(f.dir / "o"));
}
