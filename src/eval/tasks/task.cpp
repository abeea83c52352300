#include "eval/tasks/task.h"

#include <map>

#include "common/error.h"
#include "eval/tasks/common.h"
#include "eval/tasks/metrics.h"
#include "eval/tasks/yaml_task.h"

namespace rv::eval {

std::vector<GenRequest> Instance::requests() const {
  std::vector<GenRequest> out;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    out.push_back(gen);
    out.back().seed = gen.seed + static_cast<uint64_t>(i);
  }
  return out;
}

std::string Instance::prompt_text() const {
  if (is_loglik) return choices.empty() ? std::string() : choices[0].context;
  if (!gen.chat) return gen.prompt + gen.assistant_prefix;
  nlohmann::json msgs = nlohmann::json::array();
  for (const auto& m : gen.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  if (!gen.assistant_prefix.empty())
    msgs.push_back({{"role", "assistant"}, {"content", gen.assistant_prefix}});
  return msgs.dump();
}

std::vector<SampleScore> Task::score_many(const std::vector<Instance>& insts,
                                          const std::vector<std::vector<GenResponse>>& gens,
                                          const std::vector<std::vector<LoglikResponse>>& lls,
                                          const TaskOptions& opts) const {
  std::vector<SampleScore> out;
  out.reserve(insts.size());
  static const std::vector<GenResponse> kNoGens;
  static const std::vector<LoglikResponse> kNoLls;
  for (size_t i = 0; i < insts.size(); ++i)
    out.push_back(score(insts[i], i < gens.size() ? gens[i] : kNoGens,
                        i < lls.size() ? lls[i] : kNoLls, opts));
  return out;
}

namespace {

std::string stderr_key(const std::string& key) {
  size_t comma = key.find(',');
  if (comma == std::string::npos) return key + "_stderr";
  return key.substr(0, comma) + "_stderr" + key.substr(comma);
}

}  // namespace

nlohmann::json aggregate(const Task& task, const TaskOptions& opts,
                         const std::vector<Instance>& insts,
                         const std::vector<SampleScore>& scores) {
  if (insts.size() != scores.size())
    throw Error(task.name(), "aggregate: " + std::to_string(insts.size()) + " instances but " +
                                 std::to_string(scores.size()) + " scores");
  auto metrics = task.metrics(opts);
  {
    // Sampled metrics (K > 1): per-document values under "<kind>@K:<metric>".
    std::map<std::string, bool> extra;
    for (const auto& s : scores)
      for (const auto& [k, v] : s.metrics)
        if (k.find(':') != std::string::npos) extra[k] = true;
    for (const auto& [k, b] : extra) metrics.push_back({k, b});
  }
  std::map<std::string, std::vector<size_t>> by_group;
  bool grouped = false;
  for (size_t i = 0; i < insts.size(); ++i) {
    by_group[insts[i].group].push_back(i);
    if (!insts[i].group.empty()) grouped = true;
  }
  nlohmann::json out = nlohmann::json::object();
  nlohmann::json groups = nlohmann::json::object();
  for (const auto& m : metrics) {
    std::vector<double> all, gmeans, gstderrs;
    std::vector<size_t> gsizes;
    for (const auto& [g, idx] : by_group) {
      std::vector<double> v;
      for (size_t i : idx) {
        auto it = scores[i].metrics.find(m.key);
        if (it != scores[i].metrics.end()) v.push_back(it->second);
      }
      if (v.empty()) continue;
      all.insert(all.end(), v.begin(), v.end());
      gmeans.push_back(mean(v));
      gstderrs.push_back(mean_stderr(v));
      gsizes.push_back(v.size());
      if (grouped) {
        groups[g][m.key] = gmeans.back();
        groups[g][stderr_key(m.key)] = gstderrs.back();
        groups[g]["n-samples"] = v.size();
      }
    }
    if (all.empty()) continue;
    if (grouped) {
      out[m.key] = weighted_mean(gmeans, gsizes);
      out[stderr_key(m.key)] = pooled_stderr(gstderrs, gsizes);
    } else {
      out[m.key] = mean(all);
      out[stderr_key(m.key)] = mean_stderr(all);
    }
  }
  out["n-samples"] = insts.size();
  if (grouped) out["groups"] = groups;
  // Facet breakdowns: plain means over the instances with each value.
  std::map<std::string, std::map<std::string, std::vector<size_t>>> by_facet;
  for (size_t i = 0; i < insts.size(); ++i)
    for (const auto& [f, v] : insts[i].facets) by_facet[f][v].push_back(i);
  if (!by_facet.empty()) {
    nlohmann::json bd = nlohmann::json::object();
    for (const auto& [f, values] : by_facet)
      for (const auto& [v, idx] : values) {
        nlohmann::json e = nlohmann::json::object();
        for (const auto& m : metrics) {
          std::vector<double> x;
          for (size_t i : idx) {
            auto it = scores[i].metrics.find(m.key);
            if (it != scores[i].metrics.end()) x.push_back(it->second);
          }
          if (x.empty()) continue;
          e[m.key] = mean(x);
          e[stderr_key(m.key)] = mean_stderr(x);
        }
        e["n-samples"] = idx.size();
        bd[f][v] = e;
      }
    out["breakdowns"] = bd;
  }
  return out;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names = {"gsm8k", "gsm8k_cot",       "humaneval", "humaneval_instruct",
                                    "sciq",  "bbh_cot_fewshot", "gsm_plus",  "gsm_symbolic_p2"};
  for (const auto& m : detail::math_task_names()) names.push_back(m);
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name) {
  if (is_task_file(name)) return load_yaml_task(name);
  if (name == "gsm8k" || name == "gsm8k_cot" || name == "gsm_plus" || name == "gsm_symbolic_p2")
    return detail::make_gsm_task(name);
  if (name == "humaneval") return detail::make_humaneval_task(false);
  if (name == "humaneval_instruct") return detail::make_humaneval_task(true);
  if (name == "sciq") return detail::make_sciq_task();
  if (name == "bbh_cot_fewshot" || name == "bbh") return detail::make_bbh_task();
  for (const auto& m : detail::math_task_names())
    if (name == m) return detail::make_math_task(name);
  std::string all;
  for (const auto& n : task_names()) all += (all.empty() ? "" : ", ") + n;
  throw Error("task '" + name + "'",
              "unknown; available: " + all + " (or a task file ending in .yaml)");
}

namespace detail {

static std::string rstrip_ws(std::string s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r'))
    s.pop_back();
  return s;
}

GenRequest build_gen_request(const PromptSpec& spec, const TaskOptions& opts, bool chat,
                             std::vector<std::string> stops, int max_tokens) {
  GenRequest r;
  r.stop = std::move(stops);
  r.max_tokens = max_tokens;
  r.temperature = 0.0f;
  r.seed = opts.seed;
  auto shots_text = [&] {
    std::string s;
    for (const auto& sh : spec.shots)
      s += sh.text + spec.target_delimiter + sh.target + spec.fewshot_delimiter;
    return s;
  };
  if (!chat) {
    if (!opts.system_prompt.empty()) r.prompt = opts.system_prompt + spec.fewshot_delimiter;
    r.prompt += spec.description + shots_text() + spec.query;
    return r;
  }
  r.chat = true;
  std::string system = opts.system_prompt;
  if (!spec.description.empty()) system += (system.empty() ? "" : "\n\n") + spec.description;
  system = rstrip_ws(system);
  if (!system.empty()) r.messages.push_back({"system", system});
  if (opts.fewshot_as_multiturn) {
    for (const auto& sh : spec.shots) {
      r.messages.push_back({"user", sh.text});
      // Exemplar targets may start with the newline/space that separated
      // them from the cue in the raw layout; a chat turn does not need it.
      size_t b = sh.target.find_first_not_of(" \n");
      r.messages.push_back({"assistant", b == std::string::npos ? "" : sh.target.substr(b)});
    }
    r.messages.push_back({"user", spec.query});
  } else {
    r.messages.push_back({"user", shots_text() + spec.query});
  }
  return r;
}

nlohmann::json prompt_options_json(const TaskOptions& opts, bool chat_applies) {
  return {{"apply_chat_template", chat_applies && opts.apply_chat_template},
          {"fewshot_as_multiturn",
           chat_applies && opts.apply_chat_template && opts.fewshot_as_multiturn},
          {"system_prompt", chat_applies ? opts.system_prompt : std::string()},
          {"cot_hint", chat_applies && opts.cot_hint}};
}

std::vector<TransformSpec> checked_transforms(const std::string& task, const TaskOptions& opts,
                                              const std::vector<std::string>& supported) {
  auto ts = parse_transforms(opts.transforms);
  for (const auto& t : ts) {
    bool ok = false;
    for (const auto& s : supported) ok = ok || s == t.kind;
    if (!ok) {
      std::string list;
      for (const auto& s : supported) list += (list.empty() ? "" : ", ") + s;
      throw Error("task " + task, "transform '" + t.kind + "' does not apply" +
                                      (list.empty() ? std::string(" (no transforms do)")
                                                    : " (supported: " + list + ")"));
    }
  }
  return ts;
}

nlohmann::json transforms_json(const std::vector<TransformSpec>& ts) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& t : ts) a.push_back(t.canonical());
  return a;
}

const TransformSpec* find_transform(const std::vector<TransformSpec>& ts, const std::string& kind) {
  for (const auto& t : ts)
    if (t.kind == kind) return &t;
  return nullptr;
}

bool has_transform(const std::vector<TransformSpec>& ts, const std::string& kind) {
  return find_transform(ts, kind) != nullptr;
}

}  // namespace detail

}  // namespace rv::eval
