// sciq (lm-eval sciq.yaml, version 1): multiple choice by log-likelihood.
// Context "{support.lstrip()}\nQuestion: {question}\nAnswer:", choices
// [distractor1, distractor2, distractor3, correct_answer] each scored as the
// continuation " " + choice; gold index 3. acc = argmax of summed log-prob,
// acc_norm = argmax of log-prob / len(choice) in characters. 0-shot.
// Chat templates, system prompts and the CoT hint do not apply to
// log-likelihood scoring and are ignored (recorded as false in config());
// transforms are rejected.
#include "common/error.h"
#include "eval/tasks/common.h"
#include "eval/tasks/data.h"
#include "eval/tasks/extract.h"
#include "eval/tasks/metrics.h"

namespace rv::eval::detail {

namespace {

std::string py_lstrip(const std::string& s) {
  std::string stripped = py_strip(s + "x");  // strip only the left side
  return stripped.substr(0, stripped.size() - 1);
}

}  // namespace

constexpr const char* kFile = "sciq/sciq_test.json";

class SciqTask : public Task {
 public:
  std::string name() const override { return "sciq"; }
  std::vector<std::string> data_files() const override { return {kFile}; }
  nlohmann::json config(const TaskOptions& o) const override {
    checked_transforms(name(), o, {});
    return {{"task", name()},
            {"version", "1.0"},
            {"data_files", data_files()},
            {"output_type", "multiple_choice"},
            {"doc_to_text", "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:"},
            {"doc_to_choice", "{{[distractor1, distractor2, distractor3, correct_answer]}}"},
            {"doc_to_target", 3},
            {"target_delimiter", " "},
            {"num_fewshot", 0},
            {"acc_norm", "log-likelihood / len(choice) in characters"},
            {"prompt", prompt_options_json(o, false)},
            {"transforms", nlohmann::json::array()}};
  }

  std::vector<Instance> instances(const TaskOptions& o, size_t* n_documents) const override {
    checked_transforms(name(), o, {});
    if (o.num_fewshot > 0) throw Error(name(), "few-shot is not supported (0-shot task)");
    const std::vector<std::string> fields = {"question",    "correct_answer", "distractor1",
                                             "distractor2", "distractor3",    "support"};
    fs::path path = require_data_file(o.data_dir, kFile);
    auto docs = load_json_records(path, fields);
    if (n_documents) *n_documents = 0;
    const size_t n = limited(docs.size(), o, n_documents);
    std::vector<Instance> out;
    for (size_t i = 0; i < n; ++i) {
      const auto& d = docs[i];
      for (const auto& f : fields)
        if (!d[f].is_string())
          throw Error(path.string() + ": element " + std::to_string(i),
                      "\"" + f + "\" must be a string");
      Instance inst;
      inst.doc_id = std::to_string(i);
      inst.index = i;
      inst.is_loglik = true;
      std::string ctx = py_lstrip(d["support"].get<std::string>()) +
                        "\nQuestion: " + d["question"].get<std::string>() + "\nAnswer:";
      nlohmann::json choices = nlohmann::json::array();
      for (const char* f : {"distractor1", "distractor2", "distractor3", "correct_answer"}) {
        inst.choices.push_back({ctx, " " + d[f].get<std::string>()});
        choices.push_back(d[f]);
      }
      inst.gold = 3;
      inst.doc_meta = {{"question", d["question"]}, {"choices", choices}};
      out.push_back(std::move(inst));
    }
    return out;
  }

  SampleScore score(const Instance& inst, const std::vector<GenResponse>&,
                    const std::vector<LoglikResponse>& lls, const TaskOptions&) const override {
    if (lls.size() != inst.choices.size())
      throw Error(name(), "doc " + inst.doc_id + ": expected " +
                              std::to_string(inst.choices.size()) + " log-likelihoods, got " +
                              std::to_string(lls.size()));
    std::vector<double> ll;
    std::vector<std::string> choice_text;
    for (size_t i = 0; i < lls.size(); ++i) {
      ll.push_back(lls[i].logprob);
      choice_text.push_back(inst.choices[i].continuation.substr(1));  // without the delimiter
    }
    size_t gold = inst.gold.get<size_t>();
    size_t pick = argmax_first(ll), pick_norm = acc_norm_choice(ll, choice_text);
    SampleScore s;
    s.metrics["acc,none"] = pick == gold ? 1.0 : 0.0;
    s.metrics["acc_norm,none"] = pick_norm == gold ? 1.0 : 0.0;
    s.extracted = std::to_string(pick);
    s.correct = pick == gold;
    s.details = {{"loglikelihoods", ll}, {"pred", pick}, {"pred_norm", pick_norm}};
    return s;
  }

  std::vector<MetricInfo> metrics(const TaskOptions&) const override {
    return {{"acc,none", true}, {"acc_norm,none", true}};
  }
  std::string primary_metric() const override { return "acc,none"; }
};

std::unique_ptr<Task> make_sciq_task() {
  return std::make_unique<SciqTask>();
}

}  // namespace rv::eval::detail
