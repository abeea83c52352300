// humaneval (lm-eval humaneval.yaml, greedy pass@1 form): 0-shot, prompt =
// the problem's `prompt`; stops "\nclass", "\ndef", "\n#", "\nif", "\nprint";
// greedy, 1024 tokens; program = prompt + completion + "\n" + test + "\n" +
// "check(<entry_point>)", run in the sandbox; pass@k with the unbiased
// estimator. With n_samples > 1 the generations are sampled (temperature
// 0.8, top_p 0.95, seed + i) and pass@1 and pass@10 (when n >= 10) reported.
//
// humaneval_instruct (lm-eval humaneval_instruct.yaml): always a chat
// prompt, user message "Write a solution to the following problem and make
// sure that it passes the tests:\n```{prompt}", and the assistant turn
// pre-filled with gen_prefix "Here is the completed function:\n```python\n
// {prompt}\n" (lm-eval's YAML escapes those newlines twice, which renders a
// literal backslash-n; we send the newlines it means). The reply continues the
// function body; same stops and budget as humaneval; program = prompt +
// reply cut at its first "```" (build_predictions_instruct).
#include <algorithm>

#include "common/error.h"
#include "eval/tasks/common.h"
#include "eval/tasks/data.h"
#include "eval/tasks/metrics.h"

namespace rv::eval::detail {

constexpr const char* kFile = "humaneval/HumanEval.jsonl.gz";

class HumanEvalTask : public Task {
 public:
  explicit HumanEvalTask(bool instruct) : instruct_(instruct) {}
  std::string name() const override { return instruct_ ? "humaneval_instruct" : "humaneval"; }
  std::vector<std::string> data_files() const override { return {kFile}; }

  static std::vector<std::string> stops() { return {"\nclass", "\ndef", "\n#", "\nif", "\nprint"}; }
  static std::string user_text(const std::string& prompt) {
    return "Write a solution to the following problem and make sure that it passes the "
           "tests:\n```" +
           prompt;
  }
  static std::string gen_prefix(const std::string& prompt) {
    return "Here is the completed function:\n```python\n" + prompt + "\n";
  }

  nlohmann::json config(const TaskOptions& o) const override {
    checked_transforms(name(), o, {});
    int n = std::max(1, o.n_samples);
    nlohmann::json gk = {{"until", stops()}, {"max_gen_toks", 1024}};
    if (n > 1)
      gk.update({{"do_sample", true}, {"temperature", 0.8}, {"top_p", 0.95}});
    else
      gk.update({{"do_sample", false}, {"temperature", 0.0}});
    nlohmann::json c = {{"task", name()},
                        {"version", "1.0"},
                        {"data_files", data_files()},
                        {"num_fewshot", 0},
                        {"repeats", n},
                        {"generation_kwargs", gk},
                        {"program", instruct_ ? "prompt + completion cut at its first \"```\" + "
                                                "\"\\n\" + test + \"\\n\" + \"check(\" + "
                                                "entry_point + \")\""
                                              : "prompt + completion + \"\\n\" + test + \"\\n\" + "
                                                "\"check(\" + entry_point + \")\""},
                        {"sandbox",
                         {{"timeout_s", o.sandbox.timeout_s},
                          {"memory_bytes", o.sandbox.memory_bytes},
                          {"max_processes", o.sandbox.max_processes}}},
                        {"transforms", nlohmann::json::array()}};
    if (instruct_) {
      c["doc_to_text"] = user_text("{{prompt}}");
      c["gen_prefix"] = gen_prefix("{{prompt}}");
      c["prompt"] = {{"apply_chat_template", true}, {"system_prompt", o.system_prompt}};
    } else {
      c["doc_to_text"] = "{{prompt}}";
      c["prompt"] = prompt_options_json(o, true);
      c["prompt"]["cot_hint"] = false;
    }
    return c;
  }

  std::vector<Instance> instances(const TaskOptions& o, size_t* n_documents) const override {
    checked_transforms(name(), o, {});
    if (o.num_fewshot > 0) throw Error(name(), "few-shot is not supported (0-shot task)");
    fs::path path = require_data_file(o.data_dir, kFile);
    auto docs = load_jsonl(path, {"task_id", "prompt", "entry_point", "test"});
    if (n_documents) *n_documents = 0;
    const size_t n = limited(docs.size(), o, n_documents);
    int repeats = std::max(1, o.n_samples);
    std::vector<Instance> out;
    for (size_t i = 0; i < n; ++i) {
      const auto& d = docs[i];
      for (const char* f : {"task_id", "prompt", "entry_point", "test"})
        if (!d[f].is_string())
          throw Error(path.string() + ":" + std::to_string(i + 1),
                      std::string("\"") + f + "\" must be a string");
      Instance inst;
      inst.doc_id = d["task_id"].get<std::string>();
      inst.index = i;
      PromptSpec ps;
      std::string prompt = d["prompt"].get<std::string>();
      if (instruct_) {
        ps.query = user_text(prompt);
        inst.gen = build_gen_request(ps, o, true, stops(), 1024);
        inst.gen.assistant_prefix = gen_prefix(prompt);
      } else {
        ps.query = prompt;
        inst.gen = build_gen_request(ps, o, o.apply_chat_template, stops(), 1024);
      }
      inst.repeats = repeats;
      if (repeats > 1) {
        inst.gen.temperature = 0.8f;
        inst.gen.top_p = 0.95f;
      }
      inst.gold =
          d["test"].get<std::string>() + "\ncheck(" + d["entry_point"].get<std::string>() + ")";
      inst.doc_meta = {
          {"task_id", d["task_id"]}, {"prompt", prompt}, {"entry_point", d["entry_point"]}};
      out.push_back(std::move(inst));
    }
    return out;
  }

  std::string program(const Instance& inst, const std::string& response) const {
    std::string prompt = inst.doc_meta["prompt"].get<std::string>();
    std::string code = prompt + (instruct_ ? response.substr(0, response.find("```")) : response);
    return code + "\n" + inst.gold.get<std::string>();
  }

  SampleScore from_results(const Instance& inst, const std::vector<ExecResult>& rs) const {
    int n = static_cast<int>(rs.size()), c = 0;
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : rs) {
      if (r.status == ExecStatus::kPassed) ++c;
      runs.push_back({{"status", exec_status_name(r.status)},
                      {"exit_code", r.exit_code},
                      {"signal", r.signal},
                      {"output_tail", r.output_tail},
                      {"wall_s", r.wall_s}});
    }
    SampleScore s;
    for (int k : {1, 10, 100})
      if (k <= n) s.metrics["pass@" + std::to_string(k) + ",create_test"] = pass_at_k(n, c, k);
    s.correct = c > 0 && rs[0].status == ExecStatus::kPassed;
    s.extracted = rs.empty() ? "" : exec_status_name(rs[0].status);
    s.details = {{"n", n}, {"passed", c}, {"runs", runs}};
    (void)inst;
    return s;
  }

  SampleScore score(const Instance& inst, const std::vector<GenResponse>& gens,
                    const std::vector<LoglikResponse>& lls, const TaskOptions& o) const override {
    return score_many({inst}, {gens}, {lls}, o)[0];
  }

  std::vector<SampleScore> score_many(const std::vector<Instance>& insts,
                                      const std::vector<std::vector<GenResponse>>& gens,
                                      const std::vector<std::vector<LoglikResponse>>&,
                                      const TaskOptions& o) const override {
    if (gens.size() != insts.size())
      throw Error(name(), "score: " + std::to_string(insts.size()) + " documents but " +
                              std::to_string(gens.size()) + " generation lists");
    std::vector<std::string> programs;
    std::vector<size_t> owner;
    for (size_t i = 0; i < insts.size(); ++i) {
      if (gens[i].empty())
        throw Error(name(), "doc " + insts[i].doc_id + ": no generation to score");
      for (const auto& g : gens[i]) {
        programs.push_back(program(insts[i], g.text));
        owner.push_back(i);
      }
    }
    auto results = run_many(programs, o.sandbox);
    std::vector<std::vector<ExecResult>> per(insts.size());
    for (size_t j = 0; j < results.size(); ++j) per[owner[j]].push_back(std::move(results[j]));
    std::vector<SampleScore> out;
    for (size_t i = 0; i < insts.size(); ++i) out.push_back(from_results(insts[i], per[i]));
    return out;
  }

  std::vector<MetricInfo> metrics(const TaskOptions& o) const override {
    std::vector<MetricInfo> m;
    for (int k : {1, 10, 100})
      if (k <= std::max(1, o.n_samples))
        m.push_back({"pass@" + std::to_string(k) + ",create_test", true});
    return m;
  }
  std::string primary_metric() const override { return "pass@1,create_test"; }

 private:
  bool instruct_;
};

std::unique_ptr<Task> make_humaneval_task(bool instruct) {
  return std::make_unique<HumanEvalTask>(instruct);
}

}  // namespace rv::eval::detail
