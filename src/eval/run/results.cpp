#include "eval/run/results.h"

#include <cmath>
#include <ctime>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/file.h"

namespace rv::eval {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string lm_eval_metric_key(const std::string& key) {
  return key.find(',') == std::string::npos ? key + ",none" : key;
}

std::string lm_eval_stderr_key(const std::string& key) {
  std::string k = lm_eval_metric_key(key);
  size_t comma = k.find(',');
  return k.substr(0, comma) + "_stderr" + k.substr(comma);
}

std::string group_entry_name(const std::string& task, const std::string& group) {
  std::string slug;
  for (char c : group) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum)
      slug += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    else if (!slug.empty() && slug.back() != '_')
      slug += '_';
  }
  while (!slug.empty() && slug.back() == '_') slug.pop_back();
  return task + "_" + slug;
}

namespace {

// One results entry from an aggregate() object (metric -> value, with
// "<metric>_stderr" companions, "n-samples").
json results_entry(const TaskRun& t, const json& agg, const std::string& alias) {
  json e = {{"alias", alias}};
  for (const auto& k : t.metric_keys) {
    if (agg.contains(k)) e[lm_eval_metric_key(k)] = agg[k];
    // aggregate() names the stderr "<metric>_stderr,<filter>" or "<metric>_stderr".
    std::string sk = k.find(',') == std::string::npos
                         ? k + "_stderr"
                         : k.substr(0, k.find(',')) + "_stderr" + k.substr(k.find(','));
    if (agg.contains(sk)) {
      const json& v = agg[sk];
      // NaN (one sample) is not valid JSON: lm-eval writes "N/A".
      e[lm_eval_stderr_key(k)] = v.is_number() && std::isfinite(v.get<double>()) ? v : json("N/A");
    }
  }
  return e;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

json results_json(const RunResult& r) {
  json j;
  j["results"] = json::object();
  j["groups"] = json::object();
  j["group_subtasks"] = json::object();
  j["configs"] = json::object();
  j["versions"] = json::object();
  j["n-shot"] = json::object();
  j["higher_is_better"] = json::object();
  j["n-samples"] = json::object();
  j["primary_metric"] = json::object();
  j["timing"] = json::object();
  json cache = {{"hits", r.cache_hits}, {"misses", r.cache_misses}, {"tasks", json::object()}};
  for (const auto& t : r.tasks) {
    j["results"][t.name] = results_entry(t, t.summary, t.name);
    if (t.summary.contains("groups")) {
      j["groups"][t.name] = j["results"][t.name];
      json subs = json::array();
      for (const auto& [g, agg] : t.summary["groups"].items()) {
        std::string sub = group_entry_name(t.name, g);
        j["results"][sub] = results_entry(t, agg, " - " + sub);
        j["results"][sub]["group"] = g;
        subs.push_back(sub);
        j["n-samples"][sub] = {{"effective", agg.value("n-samples", 0)}};
      }
      j["group_subtasks"][t.name] = subs;
    }
    // Not an lm-eval key: facet breakdowns (MATH-500 levels), with the metric
    // names written as in "results".
    if (t.summary.contains("breakdowns"))
      for (const auto& [facet, values] : t.summary["breakdowns"].items())
        for (const auto& [value, agg] : values.items()) {
          json e = results_entry(t, agg, value);
          e.erase("alias");
          e["n-samples"] = agg.value("n-samples", 0);
          j["breakdowns"][t.name][facet][value] = e;
        }
    j["configs"][t.name] = t.config;
    j["versions"][t.name] = t.config.contains("version") ? t.config["version"] : json(nullptr);
    if (t.config.contains("num_fewshot")) j["n-shot"][t.name] = t.config["num_fewshot"];
    json hib = json::object();
    for (const auto& k : t.metric_keys)
      hib[lm_eval_metric_key(k).substr(0, lm_eval_metric_key(k).find(','))] = true;
    j["higher_is_better"][t.name] = hib;
    j["n-samples"][t.name] = {{"original", t.n_original}, {"effective", t.instances.size()}};
    j["primary_metric"][t.name] = lm_eval_metric_key(t.primary_metric);
    size_t n = std::max<size_t>(1, t.instances.size());
    double overhead = t.seconds_total - t.seconds_backend;
    j["timing"][t.name] = {{"total_s", t.seconds_total},
                           {"backend_s", t.seconds_backend},
                           {"scoring_s", t.seconds_scoring},
                           {"harness_overhead_s_per_sample", overhead / static_cast<double>(n)}};
    if (!t.generation.is_null()) {
      if (!j.contains("generation")) j["generation"] = json::object();
      j["generation"][t.name] = t.generation;
    }
    cache["tasks"][t.name] = {
        {"requests", t.requests}, {"hits", t.cache_hits}, {"misses", t.cache_misses}};
  }
  j["cache"] = cache;
  j["config"] = r.config;
  j["total_evaluation_time_seconds"] = r.seconds_total;
  j["reasonvec_version"] = RV_VERSION;
  j["date"] = utc_now();
  return j;
}

json sample_json(const TaskRun& t, size_t i) {
  const Instance& inst = t.instances[i];
  const SampleScore& s = t.scores[i];
  json out;
  if (inst.is_loglik) {
    out = json::array();
    for (const auto& l : t.lls[i])
      out.push_back({{"logprob", l.logprob}, {"is_greedy", l.is_greedy}});
  } else if (t.gens[i].size() == 1) {
    out = t.gens[i][0].text;
  } else {
    out = json::array();
    for (const auto& g : t.gens[i]) out.push_back(g.text);
  }
  json metrics = json::object();
  for (const auto& [k, v] : s.metrics) metrics[lm_eval_metric_key(k)] = v;
  json j = {{"doc_id", inst.doc_id}, {"group", inst.group},      {"prompt", inst.prompt_text()},
            {"output", out},         {"extracted", s.extracted}, {"gold", inst.gold},
            {"correct", s.correct},  {"metrics", metrics}};
  if (!inst.is_loglik && !t.gens[i].empty()) j["finish_reason"] = t.gens[i][0].finish_reason;
  // --think strip: say when the scored text was not the whole output.
  static const char* kThink[] = {"", "stripped", "unterminated"};
  const bool have_think = i < t.think.size() && !t.think[i].empty();
  if (have_think && t.think[i][0] != 0) j["think"] = kThink[t.think[i][0]];
  if (i < t.sampled.size() && !t.sampled[i].is_null()) {
    // K > 1: every sample's own score, length and think state, and the vote.
    json per = t.sampled[i]["samples"];
    for (size_t k = 0; k < per.size() && k < t.gens[i].size(); ++k) {
      per[k]["finish_reason"] = t.gens[i][k].finish_reason;
      if (t.gens[i][k].completion_tokens >= 0)
        per[k]["completion_tokens"] = t.gens[i][k].completion_tokens;
      if (have_think && k < t.think[i].size() && t.think[i][k] != 0)
        per[k]["think"] = kThink[t.think[i][k]];
    }
    j["samples"] = per;
    j["majority"] = t.sampled[i]["majority"];
  }
  if (!s.details.is_null()) j["details"] = s.details;
  if (!inst.doc_meta.is_null()) j["doc"] = inst.doc_meta;
  return j;
}

namespace {

// K > 1: one row per task and metric with the first sample's value and the
// sampled metrics side by side.
template <typename Fmt>
std::string sampled_markdown(const json& results, const Fmt& fmt) {
  std::ostringstream md;
  bool header = false;
  for (const auto& [name, e] : results["results"].items()) {
    // "<kind>@K:<metric>,<filter>" grouped by "<metric>,<filter>", K per task.
    std::map<std::string, std::map<std::string, json>> rows;  // metric -> kind -> value
    std::string kk;
    for (const auto& [k, v] : e.items()) {
      size_t colon = k.find(':'), at = k.find('@');
      if (colon == std::string::npos || at == std::string::npos || at > colon) continue;
      std::string metric = k.substr(colon + 1);
      if (metric.find("_stderr") != std::string::npos) continue;
      rows[metric][k.substr(0, at)] = v;
      kk = k.substr(at + 1, colon - at - 1);
      if (e.contains(metric)) rows[metric]["first"] = e[metric];
    }
    if (rows.empty()) continue;
    if (!header) {
      md << "\nSampled (K generations per document; first = the first sample):\n\n"
            "| Task | K | Metric | Filter | first | avg@K | pass@K | maj@K |\n"
            "|---|---:|---|---|---:|---:|---:|---:|\n";
      header = true;
    }
    for (const auto& [metric, vals] : rows) {
      size_t comma = metric.find(',');
      auto cell = [&](const char* kind) {
        auto it = vals.find(kind);
        return it == vals.end() ? std::string() : fmt(it->second);
      };
      md << "| " << name << " | " << kk << " | " << metric.substr(0, comma) << " | "
         << (comma == std::string::npos ? "none" : metric.substr(comma + 1)) << " | "
         << cell("first") << " | " << cell("avg") << " | " << cell("pass") << " | " << cell("maj")
         << " |\n";
    }
  }
  return md.str();
}

}  // namespace

std::string results_markdown(const json& results) {
  auto fmt = [](const json& v) -> std::string {
    if (!v.is_number()) return v.is_string() ? v.get<std::string>() : "";
    char b[32];
    snprintf(b, sizeof b, "%.4f", v.get<double>());
    return b;
  };
  std::ostringstream md;
  md << "| Task | Metric | Filter | Value | ± Stderr | n |\n|---|---|---|---:|---:|---:|\n";
  auto row_block = [&](const std::string& name, bool sub) {
    const json& e = results["results"][name];
    json ns = results["n-samples"].contains(name) ? results["n-samples"][name] : json::object();
    std::string n =
        ns.contains("effective") ? std::to_string(ns["effective"].get<long long>()) : "";
    for (const auto& [k, v] : e.items()) {
      if (k == "alias" || k == "group" || k.find("_stderr") != std::string::npos) continue;
      if (k.find(':') != std::string::npos) continue;  // sampled: the table below
      size_t comma = k.find(',');
      std::string metric = k.substr(0, comma),
                  filter = comma == std::string::npos ? "none" : k.substr(comma + 1);
      std::string sk = metric + "_stderr," + filter;
      md << "| " << (sub ? " - " : "") << name << " | " << metric << " | " << filter << " | "
         << fmt(v) << " | " << (e.contains(sk) ? fmt(e[sk]) : "") << " | " << n << " |\n";
    }
  };
  for (const auto& [task, cfg] : results["configs"].items()) {
    (void)cfg;
    row_block(task, false);
    if (results["group_subtasks"].contains(task))
      for (const auto& sub : results["group_subtasks"][task])
        row_block(sub.get<std::string>(), true);
  }
  md << sampled_markdown(results, fmt);
  const json& c = results["config"];
  md << "\n";
  if (c.contains("backend")) md << "Backend: " << c["backend"].get<std::string>() << "  \n";
  if (c.contains("limit") && !c["limit"].is_null()) md << "Limit: " << c["limit"].dump() << "  \n";
  if (c.contains("seed")) md << "Seed: " << c["seed"].dump() << "  \n";
  if (c.contains("transforms") && !c["transforms"].empty())
    md << "Transforms: " << c["transforms"].dump() << "  \n";
  if (c.contains("unsent_parameters"))
    md << "Parameters the server refused (not sent): " << c["unsent_parameters"].dump() << "  \n";
  if (results.contains("generation"))
    for (const auto& [task, g] : results["generation"].items()) {
      md << "Generation " << task << ": " << g.value("responses", 0) << " responses";
      if (g.contains("mean_completion_tokens") && g["mean_completion_tokens"].is_number())
        md << ", mean " << fmt(g["mean_completion_tokens"]) << " / max "
           << g["max_completion_tokens"].dump() << " tokens";
      md << ", cut by the token budget " << g.value("cut_by_length", 0) << " ("
         << fmt(g.value("cut_by_length_share", 0.0)) << ")";
      if (g.value("think_unterminated", 0) > 0)
        md << ", unterminated <think> " << g["think_unterminated"].dump();
      md << "  \n";
    }
  return md.str();
}

void write_results(const fs::path& out_dir, const RunResult& r) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir.string(), "cannot create output directory: " + ec.message());
  for (const auto& t : r.tasks) {
    std::string lines;
    for (size_t i = 0; i < t.instances.size(); ++i) {
      lines += sample_json(t, i).dump(-1, ' ', false, json::error_handler_t::replace);
      lines += '\n';
    }
    write_file_atomic(out_dir / ("samples_" + t.name + ".jsonl"), lines);
  }
  json j = results_json(r);
  write_file_atomic(out_dir / "results.md", results_markdown(j));
  write_file_atomic(out_dir / "results.json",
                    j.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

}  // namespace rv::eval
