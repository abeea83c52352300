// bbh_cot_fewshot: BIG-Bench Hard, all 27 subtasks with their 3-shot
// chain-of-thought prompts (lm-eval bbh/cot_fewshot, version 2 layout).
//
// Prompt per document = the subtask's cot-prompts file after its canary
// header (task description, blank line, three "Q: ...\nA: Let's think step by
// step.\n<reasoning>" exemplars separated by blank lines), then "\n\n", then
// "Q: {input}\nA: Let's think step by step.\n". The prompt ends in a newline
// and never in a space: a trailing space would be tokenised as its own token
// and change what the model sees (the trailing-space pitfall; tested).
// The file is split into description and exemplars so chat/multiturn and
// shuffled-fewshot work; joining them back reproduces the file exactly.
// Stops "</s>", "Q", "\n\n"; greedy; 1024 tokens. Answer: first match of
// "(?<=the answer is )(.*)(?=.)" (everything after "the answer is " on that
// line but its last character), exact match against the target (no
// normalisation). Groups = subtasks; the task score is weighted by size.
#include "common/error.h"
#include "eval/tasks/common.h"
#include "eval/tasks/data.h"
#include "eval/tasks/extract.h"
#include "eval/tasks/metrics.h"
#include "eval/tasks/pyrandom.h"

namespace rv::eval::detail {

namespace {

// The exemplar's answer cue; the reasoning follows on the next line, or on
// the same line after a space (sports_understanding).
const char* kCue = "\nA: Let's think step by step.";

struct BbhPrompt {
  std::string description;  // ends with "\n\n"
  std::vector<Shot> shots;  // text "Q: ...\nA: Let's think step by step.\n", target = reasoning
};

BbhPrompt split_prompt(const std::string& text, const std::string& where) {
  BbhPrompt p;
  size_t first = text.find("\n\nQ: ");
  if (text.rfind("Q: ", 0) == 0) first = 0;
  if (first == std::string::npos) throw Error(where, "no \"Q: \" exemplar in the cot prompt");
  size_t body = first == 0 ? 0 : first + 2;
  p.description = text.substr(0, body);
  size_t pos = body;
  while (pos < text.size()) {
    size_t next = text.find("\n\nQ: ", pos);
    std::string ex = text.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    size_t cue = ex.find(kCue);
    if (cue == std::string::npos)
      throw Error(where, "exemplar without \"A: Let's think step by step.\"");
    p.shots.push_back(
        {ex.substr(0, cue + std::string(kCue).size()), ex.substr(cue + std::string(kCue).size())});
    if (next == std::string::npos) break;
    pos = next + 2;
  }
  return p;
}

class BbhTask : public Task {
 public:
  BbhTask() : answer_re_("(?<=the answer is )(.*)(?=.)") {}
  std::string name() const override { return "bbh_cot_fewshot"; }
  std::vector<std::string> data_files() const override {
    std::vector<std::string> files;
    for (const auto& t : bbh_subtasks()) {
      files.push_back(bbh_task_file(t));
      files.push_back(bbh_prompt_file(t));
    }
    return files;
  }

  nlohmann::json config(const TaskOptions& o) const override {
    auto ts = checked_transforms(name(), o, kSupported);
    nlohmann::json c = {
        {"task", name()},
        {"version", "2.0"},
        {"subtasks", bbh_subtasks()},
        {"data_files", {"bbh/tasks/<subtask>.json", "bbh/cot-prompts/<subtask>.txt"}},
        {"description", "cot-prompts/<subtask>.txt after the \"-----\" line, + \"\\n\\n\""},
        {"doc_to_text", "Q: {{input}}\nA: Let's think step by step.\n"},
        {"num_fewshot", 3},
        {"generation_kwargs",
         {{"until", stops()}, {"max_gen_toks", 1024}, {"do_sample", false}, {"temperature", 0.0}}},
        {"filters", {{"get-answer", {{"regex", answer_re_.pattern()}, {"group_select", 0}}}}},
        {"metric", {{"exact_match", {{"ignore_case", false}, {"ignore_punctuation", false}}}}},
        {"aggregate", "weight_by_size"},
        {"prompt", prompt_options_json(o, true)},
        {"transforms", transforms_json(ts)}};
    c["prompt"]["cot_hint"] = false;  // the prompts already end with the hint
    return c;
  }

  static std::vector<std::string> stops() { return {"</s>", "Q", "\n\n"}; }

  std::vector<Instance> instances(const TaskOptions& o, size_t* n_documents) const override {
    auto ts = checked_transforms(name(), o, kSupported);
    if (o.num_fewshot >= 0 && o.num_fewshot != 3)
      throw Error(name(), "num_fewshot is fixed at 3 (the published CoT prompts)");
    std::vector<Instance> out;
    if (n_documents) *n_documents = 0;
    for (const auto& sub : bbh_subtasks()) {
      auto examples = load_bbh_examples(o.data_dir, sub);
      std::string prompt_text = load_bbh_cot_prompt(o.data_dir, sub);
      BbhPrompt prompt =
          split_prompt(prompt_text, (o.data_dir / ("bbh/cot-prompts/" + sub + ".txt")).string());
      const size_t n = limited(examples.size(), o, n_documents);
      for (size_t i = 0; i < n; ++i) {
        std::string doc_id = sub + "/" + std::to_string(i);
        std::string input = examples[i]["input"].get<std::string>();
        std::string target = examples[i]["target"].get<std::string>();
        PromptSpec ps;
        ps.description = prompt.description;
        ps.shots = prompt.shots;
        ps.target_delimiter = "";
        if (has_transform(ts, "shuffled-fewshot")) {
          auto order = PyRandom(transform_seed(o.seed, doc_id, "shuffled-fewshot"))
                           .shuffled(ps.shots.size());
          std::vector<Shot> sh;
          for (size_t j : order) sh.push_back(prompt.shots[j]);
          ps.shots = std::move(sh);
        }
        if (const auto* t = find_transform(ts, "typos"))
          input = add_typos(input, t->rate, transform_seed(o.seed, doc_id, "typos"));
        if (has_transform(ts, "distractor"))
          input = add_distractor(input, transform_seed(o.seed, doc_id, "distractor"));
        if (has_transform(ts, "misleading-hint")) {
          std::string wrong =
              wrong_answer(target, transform_seed(o.seed, doc_id, "misleading-hint"));
          if (!wrong.empty()) input += misleading_hint_text(wrong);
        }
        ps.query = "Q: " + input + kCue + "\n";
        Instance inst;
        inst.doc_id = doc_id;
        inst.index = out.size();
        inst.group = sub;
        inst.gen = build_gen_request(ps, o, o.apply_chat_template, stops(), 1024);
        inst.gold = target;
        inst.doc_meta = {{"subtask", sub}, {"input", examples[i]["input"]}};
        out.push_back(std::move(inst));
      }
    }
    return out;
  }

  SampleScore score(const Instance& inst, const std::vector<GenResponse>& gens,
                    const std::vector<LoglikResponse>&, const TaskOptions&) const override {
    if (gens.empty()) throw Error(name(), "doc " + inst.doc_id + ": no generation to score");
    SampleScore s;
    s.extracted = regex_extract(answer_re_, gens[0].text, 0);
    double em = s.extracted == inst.gold.get<std::string>() ? 1.0 : 0.0;
    s.metrics["exact_match,get-answer"] = em;
    s.correct = em == 1.0;
    s.details = {{"get-answer", s.extracted}};
    return s;
  }

  std::vector<MetricInfo> metrics(const TaskOptions&) const override {
    return {{"exact_match,get-answer", true}};
  }
  std::string primary_metric() const override { return "exact_match,get-answer"; }

 private:
  inline static const std::vector<std::string> kSupported = {"distractor", "misleading-hint",
                                                             "shuffled-fewshot", "typos"};
  Regex answer_re_;
};

}  // namespace

std::unique_ptr<Task> make_bbh_task() {
  return std::make_unique<BbhTask>();
}

}  // namespace rv::eval::detail
