// GSM8K-style math word problems: gsm8k, gsm8k_cot, gsm_plus, gsm_symbolic_p2.
//
// gsm8k (lm-eval gsm8k.yaml, version 3): "Question: {q}\nAnswer:" with target
//   " {answer}" (the full solution ending "#### n"); 5 exemplars from the
//   train split chosen as lm-eval's default sampler does:
//   random.Random(seed).sample(train, 5), one call per test document in
//   document order (so --limit keeps each document's exemplars); joined by
//   "\n\n". Stops "Question:", "</s>", "<|im_end|>"; greedy; 256 tokens.
// gsm8k_cot (lm-eval gsm8k-cot.yaml, version 3): the 8 fixed Wei et al.
//   exemplars, "Q: {q}\nA:" + " " + chain of thought; stops "Q:", "</s>",
//   "<|im_end|>"; gold = text after "####".
// Both score exact_match (ignore_case, regexes_to_ignore ",", "\$",
//   "(?s).*#### ", "\.$") under two filters: strict-match (gsm8k
//   "#### (\-?[0-9\.\,]+)", gsm8k_cot "The answer is (\-?[0-9\.\,]+)."; first
//   match) and flexible-extract ("(-?[$0-9.,]{2,})|(-?[0-9]+)", last match).
// gsm_plus: GSM-Plus testmini with gsm8k's prompt and metrics, grouped by
//   perturbation_type. "critical thinking" rows have gold "None": as in the
//   GSM-Plus evaluation script (extract_pred_ans_none), a response is correct
//   iff its lower-cased text (commas removed) contains one of the phrases
//   saying the question cannot be answered (kNoneMarkers); both filters use it.
// gsm_symbolic_p2: GSM-Symbolic P2 with gsm8k's prompt and metrics.
#include <cstring>

#include "common/error.h"
#include "eval/tasks/common.h"
#include "eval/tasks/data.h"
#include "eval/tasks/extract.h"
#include "eval/tasks/metrics.h"
#include "eval/tasks/pyrandom.h"

namespace rv::eval::detail {

namespace {

// Wei et al. (2022) chain-of-thought exemplars as in lm-eval's gsm8k-cot.yaml.
const Shot kCotShots[] = {
    {"There are 15 trees in the grove. Grove workers will plant trees in the grove today. After "
     "they are done, there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So "
     "there must have been 21 - 15 = 6. The answer is 6."},
    {"If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
     "parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."},
    {"Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have "
     "left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. "
     "After eating 35, they had 74 - 35 = 39. The answer is 39."},
    {"Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
     "lollipops did Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny "
     "20 - 12 = 8. The answer is 8."},
    {"Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys "
     "does he have now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more "
     "toys. 5 + 4 = 9. The answer is 9."},
    {"There were nine computers in the server room. Five more computers were installed each day, "
     "from monday to thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 "
     "= 20 computers were added. 9 + 20 is 29. The answer is 29."},
    {"Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. "
     "How many golf balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After "
     "losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33."},
    {"Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 "
     "- 15 dollars left. 23 - 15 is 8. The answer is 8."},
};

// GSM-Plus's phrases for "the question cannot be answered" (lower case).
const char* kNoneMarkers[] = {"does not provide enough information",
                              "does not specify",
                              "does not provide",
                              "can't provide",
                              "can not provide",
                              "don't know",
                              "do not know",
                              "doesn't specify",
                              "not specify",
                              "not mention",
                              "doesn't mention",
                              "don't have enough information",
                              "do not have enough",
                              "not provide",
                              "doesn't provide",
                              "cannot calculate",
                              "can't calculate",
                              "can't determine",
                              "cannot determine",
                              "missing necessary information",
                              "none"};

const char* kStrictQa = "#### (\\-?[0-9\\.\\,]+)";
const char* kStrictCot = "The answer is (\\-?[0-9\\.\\,]+).";
const char* kFlexible = "(-?[$0-9.,]{2,})|(-?[0-9]+)";

ExactMatchOptions gsm_em_options() {
  ExactMatchOptions o;
  o.ignore_case = true;
  o.ignore_punctuation = false;
  o.regexes_to_ignore = {",", "\\$", "(?s).*#### ", "\\.$"};
  return o;
}

std::string final_answer(const std::string& solution) {
  size_t p = solution.rfind("####");
  std::string s = p == std::string::npos ? solution : solution.substr(p + 4);
  return py_strip(s);
}

struct GsmSpec {
  std::string name;
  std::string file;         // relative data path
  bool cot = false;         // gsm8k_cot prompt
  std::string group_field;  // "" or "perturbation_type"
  std::string version;
};

constexpr const char* kTrainFile = "gsm8k/train.jsonl";

class GsmTask : public Task {
 public:
  explicit GsmTask(GsmSpec s)
      : spec_(std::move(s)),
        strict_(spec_.cot ? kStrictCot : kStrictQa),
        flexible_(kFlexible),
        em_(gsm_em_options()) {}

  std::string name() const override { return spec_.name; }

  int num_fewshot(const TaskOptions& o) const {
    if (o.num_fewshot >= 0) return o.num_fewshot;
    return spec_.cot ? 8 : 5;
  }

  std::vector<std::string> data_files() const override {
    if (spec_.cot) return {spec_.file};
    return {spec_.file, kTrainFile};  // few-shot exemplars come from the train split
  }

  nlohmann::json config(const TaskOptions& o) const override {
    auto ts = checked_transforms(spec_.name, o, kSupported);
    nlohmann::json c = {
        {"task", spec_.name},
        {"version", spec_.version},
        {"data_files", data_files()},
        {"doc_to_text", spec_.cot ? "Q: {{question}}\nA:" : "Question: {{question}}\nAnswer:"},
        {"doc_to_target", spec_.cot ? "{{cot}}" : "{{answer}}"},
        {"target_delimiter", " "},
        {"fewshot_delimiter", "\n\n"},
        {"num_fewshot", num_fewshot(o)},
        {"fewshot_sampler", spec_.cot ? "first_n (8 fixed Wei et al. exemplars)"
                                      : "python random.Random(seed).sample(train, k) per doc"},
        {"fewshot_seed", o.seed},
        {"generation_kwargs",
         {{"until", stops()}, {"max_gen_toks", 256}, {"do_sample", false}, {"temperature", 0.0}}},
        {"filters",
         {{"strict-match", {{"regex", strict_.pattern()}, {"group_select", 0}}},
          {"flexible-extract", {{"regex", flexible_.pattern()}, {"group_select", -1}}}}},
        {"metric",
         {{"exact_match",
           {{"ignore_case", true},
            {"ignore_punctuation", false},
            {"regexes_to_ignore", em_.regexes_to_ignore}}}}},
        {"prompt", prompt_options_json(o, true)},
        {"cot_hint_text", kCotHint},
        {"transforms", transforms_json(ts)},
    };
    if (spec_.name == "gsm_plus")
      c["critical_thinking"] =
          "correct iff the response (lower-cased, commas removed) contains a GSM-Plus "
          "'cannot answer' phrase";
    return c;
  }

  std::vector<std::string> stops() const {
    return spec_.cot ? std::vector<std::string>{"Q:", "</s>", "<|im_end|>"}
                     : std::vector<std::string>{"Question:", "</s>", "<|im_end|>"};
  }

  std::vector<Instance> instances(const TaskOptions& o, size_t* n_documents) const override {
    auto ts = checked_transforms(spec_.name, o, kSupported);
    std::vector<std::string> required = {"question", "answer"};
    if (!spec_.group_field.empty()) required.push_back(spec_.group_field);
    auto docs = load_jsonl(require_data_file(o.data_dir, spec_.file), required);
    for (size_t i = 0; i < docs.size(); ++i)
      if (!docs[i]["question"].is_string() || !docs[i]["answer"].is_string())
        throw Error(o.data_dir.string() + "/" + spec_.file + ":" + std::to_string(i + 1),
                    "\"question\" and \"answer\" must be strings");
    int k = num_fewshot(o);
    std::vector<nlohmann::json> train;
    if (!spec_.cot && k > 0)
      train = load_jsonl(require_data_file(o.data_dir, kTrainFile), {"question", "answer"});
    if (!spec_.cot && static_cast<size_t>(k) > train.size() && k > 0)
      throw Error(spec_.name, "num_fewshot " + std::to_string(k) + " exceeds the train split");
    if (spec_.cot && k > 8) throw Error(spec_.name, "num_fewshot must be <= 8 (fixed exemplars)");

    if (n_documents) *n_documents = 0;
    const size_t n = limited(docs.size(), o, n_documents);
    PyRandom sampler(o.seed);
    bool chat = o.apply_chat_template;
    std::vector<Instance> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const auto& d = docs[i];
      std::string doc_id = std::to_string(i);
      PromptSpec ps;
      if (spec_.cot) {
        for (int s = 0; s < k; ++s)
          ps.shots.push_back({"Q: " + kCotShots[s].text + "\nA:", kCotShots[s].target});
      } else if (k > 0) {
        for (size_t j : sampler.sample(train.size(), static_cast<size_t>(k)))
          ps.shots.push_back({"Question: " + train[j]["question"].get<std::string>() + "\nAnswer:",
                              train[j]["answer"].get<std::string>()});
      }
      if (has_transform(ts, "shuffled-fewshot")) {
        auto order =
            PyRandom(transform_seed(o.seed, doc_id, "shuffled-fewshot")).shuffled(ps.shots.size());
        std::vector<Shot> sh;
        for (size_t j : order) sh.push_back(ps.shots[j]);
        ps.shots = std::move(sh);
      }
      std::string answer = d["answer"].get<std::string>();
      std::string gold_final = final_answer(answer);
      std::string question = d["question"].get<std::string>();
      if (const auto* t = find_transform(ts, "typos"))
        question = add_typos(question, t->rate, transform_seed(o.seed, doc_id, "typos"));
      if (has_transform(ts, "distractor"))
        question = add_distractor(question, transform_seed(o.seed, doc_id, "distractor"));
      if (has_transform(ts, "misleading-hint")) {
        std::string wrong =
            wrong_answer(gold_final, transform_seed(o.seed, doc_id, "misleading-hint"));
        if (!wrong.empty()) question += misleading_hint_text(wrong);
      }
      ps.query = (spec_.cot ? "Q: " : "Question: ") + question + (spec_.cot ? "\nA:" : "\nAnswer:");
      if (o.cot_hint) ps.query += std::string(" ") + kCotHint;

      Instance inst;
      inst.doc_id = doc_id;
      inst.index = i;
      if (!spec_.group_field.empty()) inst.group = d[spec_.group_field].get<std::string>();
      inst.gen = build_gen_request(ps, o, chat, stops(), 256);
      inst.repeats = 1;
      // lm-eval's reference: the full solution for gsm8k (the metric's
      // regexes strip up to "#### "), the final answer elsewhere.
      inst.gold = spec_.name == "gsm8k" ? answer : gold_final;
      inst.doc_meta = {{"question", d["question"]}, {"answer", answer}};
      if (!spec_.group_field.empty()) inst.doc_meta[spec_.group_field] = inst.group;
      out.push_back(std::move(inst));
    }
    return out;
  }

  SampleScore score(const Instance& inst, const std::vector<GenResponse>& gens,
                    const std::vector<LoglikResponse>&, const TaskOptions&) const override {
    if (gens.empty()) throw Error(spec_.name, "doc " + inst.doc_id + ": no generation to score");
    const std::string& text = gens[0].text;
    SampleScore s;
    std::string strict = regex_extract(strict_, text, 0);
    std::string flex = regex_extract(flexible_, text, -1);
    std::string gold = inst.gold.get<std::string>();
    if (inst.group == "critical thinking") {
      bool says_none = critical_thinking_correct(text);
      s.metrics["exact_match,strict-match"] = says_none ? 1.0 : 0.0;
      s.metrics["exact_match,flexible-extract"] = says_none ? 1.0 : 0.0;
      s.extracted = says_none ? "None" : strict;
    } else {
      s.metrics["exact_match,strict-match"] = exact_match(strict, gold, em_);
      s.metrics["exact_match,flexible-extract"] = exact_match(flex, gold, em_);
      s.extracted = strict;
    }
    s.correct = s.metrics["exact_match,strict-match"] == 1.0;
    s.details = {{"strict-match", strict}, {"flexible-extract", flex}};
    return s;
  }

  std::vector<MetricInfo> metrics(const TaskOptions&) const override {
    return {{"exact_match,strict-match", true}, {"exact_match,flexible-extract", true}};
  }
  std::string primary_metric() const override { return "exact_match,strict-match"; }

  static bool critical_thinking_correct(const std::string& response) {
    std::string t = response;
    while (!t.empty() && t.back() == '.') t.pop_back();
    std::string no_commas;
    for (char c : t)
      if (c != ',') no_commas += c;
    std::string low = py_lower(no_commas);
    for (const char* m : kNoneMarkers)
      if (low.find(m) != std::string::npos) return true;
    return false;
  }

 private:
  inline static const std::vector<std::string> kSupported = {"distractor", "misleading-hint",
                                                             "shuffled-fewshot", "typos"};
  GsmSpec spec_;
  Regex strict_, flexible_;
  ExactMatchOptions em_;
};

}  // namespace

std::unique_ptr<Task> make_gsm_task(const std::string& name) {
  GsmSpec s;
  s.name = name;
  if (name == "gsm8k") {
    s.file = "gsm8k/test.jsonl";
    s.version = "3.0";
  } else if (name == "gsm8k_cot") {
    s.file = "gsm8k/test.jsonl";
    s.cot = true;
    s.version = "3.0";
  } else if (name == "gsm_plus") {
    s.file = "gsm-plus/gsmplus_testmini.jsonl";
    s.group_field = "perturbation_type";
    s.version = "1.0";
  } else if (name == "gsm_symbolic_p2") {
    s.file = "gsm-symbolic/GSM_p2.jsonl";
    s.version = "1.0";
  } else {
    throw Error("task '" + name + "'", "not a GSM task");
  }
  return std::make_unique<GsmTask>(std::move(s));
}

}  // namespace rv::eval::detail
