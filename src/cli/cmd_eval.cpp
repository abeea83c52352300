// `reasonvec eval`, `reasonvec report` and `reasonvec data`.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "cli/vector_flags.h"
#include "common/error.h"
#include "eval/backend/cache.h"
#include "eval/backend/make.h"
#include "eval/report/report.h"
#include "eval/run/results.h"
#include "eval/run/runner.h"
#include "eval/tasks/data.h"
#include "eval/tasks/fetch.h"

namespace rv::cli {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// --chat-template-kwargs: a JSON object, stored in canonical form.
std::string canonical_template_kwargs(const std::string& text) {
  if (text.empty()) return "";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("--chat-template-kwargs", std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error("--chat-template-kwargs", "must be a JSON object");
  return j.empty() ? "" : j.dump();
}

struct EvalArgs {
  VectorFlags vectors;
  std::string model, api_key, tasks, out, data_dir, cache, system_prompt;
  std::string think = "strip", chat_template_kwargs;
  std::vector<std::string> base_urls, adversarial;
  float temperature = -1, top_p = -1, min_p = 0;
  int top_k = 0;
  bool no_n = false;
  int limit = 0, concurrency = 8, max_batch = 64, max_context = 4096, num_fewshot = -1,
      n_samples = 1, max_gen_toks = 0;
  uint64_t seed = 1234;
  bool chat = false, multiturn = false, cot_hint = false, no_cache = false,
       allow_network_exec = false, kv_bf16 = false, no_mmap = false;
  double exec_timeout = 3.0;
};

void run_eval_command(const EvalArgs& a) {
  using namespace rv::eval;
  RunOptions ro;
  ro.tasks = split_commas(a.tasks);
  if (ro.tasks.empty()) throw Error("--tasks: no task names given");
  ro.task.data_dir = a.data_dir.empty() ? default_data_dir() : std::filesystem::path(a.data_dir);
  ro.task.limit = a.limit;
  ro.task.seed = a.seed;
  ro.task.apply_chat_template = a.chat;
  ro.task.fewshot_as_multiturn = a.multiturn;
  ro.task.system_prompt = a.system_prompt;
  ro.task.cot_hint = a.cot_hint;
  ro.task.transforms = a.adversarial;
  ro.task.num_fewshot = a.num_fewshot;
  ro.task.n_samples = a.n_samples;
  ro.task.max_gen_toks = a.max_gen_toks;
  ro.task.temperature = a.temperature;
  ro.task.top_p = a.top_p;
  ro.task.top_k = a.top_k;
  ro.task.min_p = a.min_p;
  ro.task.strip_think = a.think == "strip";
  ro.task.chat_template_kwargs = canonical_template_kwargs(a.chat_template_kwargs);
  ro.task.sandbox.timeout_s = a.exec_timeout;
  ro.task.sandbox.allow_unisolated = a.allow_network_exec;
  if (!a.no_cache)
    ro.cache_path = a.cache.empty() ? default_cache_path() : std::filesystem::path(a.cache);
  ro.config["model"] = a.model;
  ro.config["data_dir"] = ro.task.data_dir.string();

  BackendSpec spec;
  // With --base-url make_backend refuses them (one-line error).
  spec.vectors = load_vectors(a.vectors);
  if (!a.base_urls.empty()) {
    spec.kind = BackendSpec::Kind::kHttp;
    spec.http.base_url = a.base_urls.front();
    spec.http.base_urls = a.base_urls;
    spec.http.use_n = !a.no_n;
    spec.http.model = a.model;
    spec.http.api_key = a.api_key;
    spec.http.concurrency = a.concurrency;
    ro.config["concurrency"] = a.concurrency;
  } else {
    // What the run measured: the model plus these vectors, in order.
    if (!spec.vectors.empty()) {
      nlohmann::json vs = nlohmann::json::array();
      for (const auto& v : spec.vectors)
        vs.push_back({{"vector", v.path.string()}, {"alpha", v.alpha}});
      ro.config["vectors"] = vs;
    }
    spec.model_dir = a.model;
    spec.max_batch = a.max_batch;
    spec.max_context = a.max_context;
    spec.kv_bf16 = a.kv_bf16;
    spec.copy_weights = a.no_mmap;  // same numbers: not part of the config
    ro.config["max_batch"] = a.max_batch;
    ro.config["max_context"] = a.max_context;
    if (a.kv_bf16) ro.config["kv_bf16"] = true;
  }
  std::unique_ptr<Backend> backend = make_backend(spec);
  RunResult r = run_eval(*backend, ro);
  write_results(a.out, r);
  nlohmann::json j = results_json(r);
  fputs(results_markdown(j).c_str(), stdout);
  fprintf(stdout, "\nWrote %s/results.json (cache: %llu hits, %llu misses)\n", a.out.c_str(),
          static_cast<unsigned long long>(r.cache_hits),
          static_cast<unsigned long long>(r.cache_misses));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* a = keep_alive<EvalArgs>();
  auto* sub = app.add_subcommand(
      "eval", "Evaluate a model on benchmarks (built-in engine or an OpenAI-compatible server)");
  sub->add_option(
         "--model", a->model,
         "Model directory or .gguf from export-gguf (built-in engine), or the server's model "
         "name with --base-url")
      ->required();
  sub->add_option("--base-url", a->base_urls,
                  "OpenAI-compatible server, e.g. http://localhost:8000/v1; give it several times "
                  "(or comma-separated) to spread requests over several servers of one model")
      ->delimiter(',');
  sub->add_option("--api-key", a->api_key, "Bearer token for --base-url (default: $OPENAI_API_KEY)")
      ->envname("OPENAI_API_KEY");
  std::string names;
  for (const auto& n : rv::eval::task_names()) names += (names.empty() ? "" : ", ") + n;
  sub->add_option("--tasks", a->tasks,
                  "Comma-separated tasks: " + names + ", or task files (path.yaml)")
      ->required();
  sub->add_option("--limit", a->limit,
                  "Only the first N documents of each task (per subtask for BBH)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", a->seed,
                  "Seed for few-shot sampling, transforms and sampled generation (sample k of "
                  "document d uses sha256(seed|d) + k)")
      ->capture_default_str();
  sub->add_option("--adversarial", a->adversarial,
                  "Transform(s) applied to prompts: distractor, misleading-hint, shuffled-fewshot, "
                  "typos[:RATE]")
      ->delimiter(',');
  sub->add_flag("--apply-chat-template", a->chat,
                "Send prompts as chat messages with the model's template");
  sub->add_flag("--fewshot-as-multiturn", a->multiturn,
                "With --apply-chat-template: one turn per exemplar");
  sub->add_option("--system-prompt", a->system_prompt, "System prompt");
  sub->add_flag("--cot-hint", a->cot_hint, "Append \"Let's think step by step.\" to each question");
  sub->add_option("--num-fewshot", a->num_fewshot, "Override the number of few-shot exemplars");
  sub->add_option("--n-samples", a->n_samples,
                  "Generations per document K: HumanEval reports pass@k, every other generative "
                  "task avg@K, pass@K and maj@K beside the first sample's metrics")
      ->check(CLI::PositiveNumber);
  sub->add_option("--temperature", a->temperature,
                  "Sampling temperature for generative tasks (default: the task's own; 1.0 "
                  "when --n-samples > 1 and the task is greedy)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", a->top_p, "Nucleus sampling: smallest set with this much mass")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--top-k", a->top_k, "Sample only among the K most likely tokens (0: off)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--min-p", a->min_p,
                  "Keep tokens with p >= MIN_P * p(most likely token) (0: off)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--think", a->think,
                  "Reasoning models: strip = score only what follows </think> (a <think> never "
                  "closed scores as no answer, counted as think_unterminated); keep = score "
                  "the whole response")
      ->check(CLI::IsMember({"strip", "keep"}))
      ->capture_default_str();
  sub->add_option("--chat-template-kwargs", a->chat_template_kwargs,
                  "JSON object of extra chat template variables, e.g. "
                  "'{\"enable_thinking\":false}' (engine: passed to the template; server: "
                  "sent as chat_template_kwargs)");
  sub->add_flag("--no-n", a->no_n,
                "With --base-url: one request per sample instead of one request with n = K "
                "per document");
  sub->add_option("--max-gen-toks", a->max_gen_toks,
                  "Token budget for every generative task, instead of each task's own "
                  "(smoke runs; reasoning models need more: the length report in results.json "
                  "says how many answers the budget cut)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--data-dir", a->data_dir,
                  "Benchmark files (default: $RV_DATA_DIR or ~/.cache/reasonvec)");
  sub->add_option("--concurrency", a->concurrency, "Requests in flight to each --base-url server")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-batch", a->max_batch, "Engine: sequences decoded together")
      ->capture_default_str();
  sub->add_option("--max-context", a->max_context, "Engine: tokens per sequence")
      ->capture_default_str();
  sub->add_flag("--kv-bf16", a->kv_bf16,
                "Engine: store the KV cache in bf16 (half the memory, scores change slightly)");
  add_no_mmap_flag(sub, &a->no_mmap);
  sub->add_option("--cache", a->cache,
                  "Result cache file (default ~/.cache/reasonvec/eval-cache.sqlite)");
  sub->add_flag("--no-cache", a->no_cache, "Do not read or write the result cache");
  sub->add_option("--exec-timeout", a->exec_timeout, "HumanEval: seconds per program")
      ->capture_default_str();
  sub->add_flag("--allow-network-exec", a->allow_network_exec,
                "HumanEval: run programs even where no network namespace can be made");
  sub->add_option("-o,--output", a->out,
                  "Output directory (results.json, samples_<task>.jsonl, results.md)")
      ->required();
  add_vector_flags(sub, &a->vectors);
  sub->callback([a] { run_eval_command(*a); });
}

void add_report_command(CLI::App& app) {
  auto* runs = keep_alive<std::vector<std::string>>();
  auto* out = keep_alive<std::string>("report.md");
  auto* opt = keep_alive<rv::eval::ReportOptions>();
  auto* sub = app.add_subcommand(
      "report",
      "Compare eval runs sample by sample: accuracy, deltas, bootstrap CIs, McNemar tests");
  sub->add_option("runs", *runs, "Run directories (eval -o); the first is the baseline")
      ->required();
  sub->add_option("-o,--output", *out, "Markdown report; .json and .svg are written next to it")
      ->capture_default_str();
  sub->add_option("--bootstrap", opt->bootstrap, "Bootstrap resamples")->capture_default_str();
  sub->add_option("--seed", opt->seed, "Bootstrap seed")->capture_default_str();
  sub->callback([=] {
    std::vector<std::filesystem::path> dirs(runs->begin(), runs->end());
    auto rep = rv::eval::build_report(dirs, *opt);
    rv::eval::write_report(rep, *out);
    fputs(rv::eval::report_markdown(rep).c_str(), stdout);
  });
}

void add_data_command(CLI::App& app) {
  auto* dir = keep_alive<std::string>();
  auto* force = keep_alive<bool>(false);
  auto* only = keep_alive<std::vector<std::string>>();
  auto* sub = app.add_subcommand(
      "data", "Benchmark data: fetch, list or verify (sha256) the files tasks read");
  sub->require_subcommand(1);
  sub->add_option("--data-dir", *dir,
                  "Data directory (default: $RV_DATA_DIR or ~/.cache/reasonvec)");
  auto resolve = [dir] {
    return dir->empty() ? rv::eval::default_data_dir() : std::filesystem::path(*dir);
  };
  auto* fetch = sub->add_subcommand("fetch", "Download missing or corrupt files (verifies sha256)");
  fetch->add_flag("--force", *force, "Download again even if valid");
  fetch->add_option("--only", *only, "Path prefixes to fetch (e.g. gsm8k,bbh)")->delimiter(',');
  fetch->callback([=] {
    rv::eval::FetchOptions o;
    o.dir = resolve();
    o.force = *force;
    o.only = *only;
    int n =
        rv::eval::fetch_data(o, [](const std::string& l) { fprintf(stderr, "%s\n", l.c_str()); });
    fprintf(stdout, "%d file(s) downloaded into %s\n", n, o.dir.c_str());
  });
  auto print = [resolve](bool hash) {
    auto d = resolve();
    auto st = rv::eval::check_data(d, hash);
    int bad = 0;
    for (const auto& s : st) {
      const char* state = s.state == rv::eval::FileState::kOk          ? "ok"
                          : s.state == rv::eval::FileState::kUnchecked ? "present"
                          : s.state == rv::eval::FileState::kCorrupt   ? "CORRUPT"
                                                                       : "missing";
      if (s.state == rv::eval::FileState::kCorrupt || s.state == rv::eval::FileState::kMissing)
        ++bad;
      if (hash)
        fprintf(stdout, "%-8s %s\n", state, s.file->path.c_str());
      else
        fprintf(stdout, "%-8s %-55s %s\n", state, s.file->path.c_str(), s.file->url().c_str());
    }
    fprintf(stdout, "%zu files in %s: %d missing or corrupt\n", st.size(), d.c_str(), bad);
    return bad;
  };
  sub->add_subcommand("list", "List the known files, their URLs and whether they are present")
      ->callback([=] { print(false); });
  sub->add_subcommand("verify", "Check every file's sha256 (exit 1 if any is missing or corrupt)")
      ->callback([=] {
        int bad = print(true);
        if (bad)
          throw Error(
              resolve().string(),
              std::to_string(bad) + " file(s) missing or corrupt; run `reasonvec data fetch`");
      });
}

}  // namespace rv::cli
