// Competition math: math500, aime24, aime25, amc23, minerva_math,
// olympiadbench (data and gold-answer rules: ../shared/data/math/SOURCES.md;
// exact prompts: docs/eval.md "Competition math").
//
// Prompts. With --apply-chat-template (the intended use, instruction/chat
//   models): Qwen2.5-Math's "qwen25-math-cot" template, 0-shot: system
//   "Please reason step by step, and put your final answer within \boxed{}."
//   (replaced by --system-prompt when given), user = the problem text.
//   Raw prompts (base models): lm-eval minerva_math's layout,
//   "Problem:\n{problem}\n\nSolution:", after lm-eval's 4 fixed exemplars
//   (minerva_math utils.py list_fewshot_samples, from Lewkowycz et al. 2022),
//   each "Problem:\n{p}\n\nSolution: {solution}" joined by "\n\n".
//   Stops: "</s>", "<|im_end|>", "<|endoftext|>" (Qwen's math_eval.py), plus
//   "Problem:" for raw prompts (lm-eval). Greedy.
// Budget (max_gen_toks): 2048 (Qwen's default) for math500, minerva_math and
//   olympiadbench; 4096 for aime24, aime25 and amc23, whose solutions run
//   longer.
// Scoring: the response minus any <think>...</think> block (an unterminated
//   one scores 0) is parsed with the math checker (LaTeX + expression
//   extraction, \boxed{} first) and verified against the gold answer
//   (precision 6, strict). Metric "math_verify" (0/1), the primary metric.
// Gold: math500/aime24/aime25 `answer`, amc23 `answer` (a JSON float such as
//   27.0, parsed as an expression), minerva_math the content of the single
//   \boxed{} of `solution`, olympiadbench `final_answer[0]` with its `$`
//   delimiters removed. Each gold other than amc23's is parsed as
//   "\boxed{<gold>}".
// Breakdowns: math500 is grouped by `subject` with a per-`level` breakdown;
//   olympiadbench is grouped by `subfield`.
#include <cmath>

#include "common/error.h"
#include "eval/math/math_verify.h"
#include "eval/tasks/common.h"
#include "eval/tasks/data.h"

namespace rv::eval::detail {

namespace {

// lm-eval minerva_math utils.py list_fewshot_samples(), verbatim (its
// single-backslash align line breaks included).
const Shot kMinervaShots[] = {
    {R"(Find the domain of the expression  $\frac{\sqrt{x-2}}{\sqrt{5-x}}$.})",
     R"(The expressions inside each square root must be non-negative. Therefore, $x-2 \ge 0$, so $x\ge2$, and $5 - x \ge 0$, so $x \le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\boxed{[2,5)}$.)"
     "\n"
     R"(Final Answer: The final answer is $[2,5)$. I hope it is correct.)"},
    {R"(If $\det \mathbf{A} = 2$ and $\det \mathbf{B} = 12,$ then find $\det (\mathbf{A} \mathbf{B}).$)",
     R"(We have that $\det (\mathbf{A} \mathbf{B}) = (\det \mathbf{A})(\det \mathbf{B}) = (2)(12) = \boxed{24}.$)"
     "\n"
     R"(Final Answer: The final answer is $24$. I hope it is correct.)"},
    {R"(Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, how many times must Terrell lift them in order to lift the same total weight?)",
     R"(If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\cdot 12\cdot20=480$ pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a total of $2\cdot15\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve for $n$:)"
     "\n"
     R"(\begin{align*})"
     "\n"
     R"(30n&=480\)"
     "\n"
     R"(\Rightarrow\qquad n&=480/30=\boxed{16})"
     "\n"
     R"(\end{align*})"
     "\n"
     R"(Final Answer: The final answer is $16$. I hope it is correct.)"},
    {"If the system of equations\n\n"
     R"(\begin{align*})"
     "\n"
     R"(6x-4y&=a,\)"
     "\n"
     R"(6y-9x &=b.)"
     "\n"
     R"(\end{align*}has a solution $(x, y)$ where $x$ and $y$ are both nonzero,)"
     "\n"
     R"(find $\frac{a}{b},$ assuming $b$ is nonzero.)",
     R"(If we multiply the first equation by $-\frac{3}{2}$, we obtain)"
     "\n\n"
     R"($$6y-9x=-\frac{3}{2}a.$$Since we also know that $6y-9x=b$, we have)"
     "\n\n"
     R"($$-\frac{3}{2}a=b\Rightarrow\frac{a}{b}=\boxed{-\frac{2}{3}}.$$)"
     "\n"
     R"(Final Answer: The final answer is $-\frac{2}{3}$. I hope it is correct.)"},
};

constexpr const char* kQwenSystem =
    "Please reason step by step, and put your final answer within \\boxed{}.";

enum class Gold { kAnswer, kAnswerFloat, kBoxedInSolution, kOlympiad };

struct MathSpec {
  std::string name;
  std::string file;         // relative to the data directory
  std::string problem_key;  // "problem" or "question"
  Gold gold = Gold::kAnswer;
  std::string group_field;  // "" | "subject" | "subfield"
  std::string facet_field;  // "" | "level"
  int max_gen_toks = 2048;
};

// Content of the first \boxed{...} (braces balanced) and the number of
// \boxed{} in s; false when there is none or one is unterminated.
bool boxed_content(const std::string& s, std::string* out, size_t* count) {
  *count = 0;
  bool found = false;
  size_t p = 0;
  while ((p = s.find("\\boxed{", p)) != std::string::npos) {
    size_t i = p + 7, j = i;
    int depth = 1;
    for (; j < s.size() && depth > 0; ++j) {
      if (s[j] == '{') ++depth;
      if (s[j] == '}') --depth;
    }
    if (depth != 0) return false;
    if (!found) *out = s.substr(i, j - 1 - i);
    found = true;
    ++*count;
    p = j;
  }
  return found;
}

std::string json_number_text(const nlohmann::json& v) {
  double d = v.get<double>();
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", d);  // Python's str(27.0) == "27.0"
    return buf;
  }
  return v.dump();
}

std::string strip_dollars(const std::string& s) {
  size_t b = s.find_first_not_of('$'), e = s.find_last_not_of('$');
  if (b == std::string::npos) return "";
  std::string t = s.substr(b, e - b + 1);
  // Several answers in one string: "$69$,$84$" -> "69,84".
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '$' && i + 1 < t.size() && t[i + 1] == ',') continue;
    if (t[i] == '$' && i > 0 && (t[i - 1] == ',' || t[i - 1] == ' ')) continue;
    out += t[i];
  }
  return out;
}

class MathTask : public Task {
 public:
  explicit MathTask(MathSpec s) : spec_(std::move(s)) {}

  std::string name() const override { return spec_.name; }
  std::vector<std::string> data_files() const override { return {spec_.file}; }

  int num_fewshot(const TaskOptions& o) const {
    if (o.num_fewshot >= 0) return o.num_fewshot;
    return o.apply_chat_template ? 0 : 4;
  }

  std::vector<std::string> stops(bool chat) const {
    if (chat) return {"</s>", "<|im_end|>", "<|endoftext|>"};
    return {"Problem:", "</s>", "<|im_end|>", "<|endoftext|>"};
  }

  math::ExtractConfig gold_config() const {
    math::ExtractConfig c;
    if (spec_.gold == Gold::kAnswerFloat) c.latex = false;
    return c;
  }

  nlohmann::json config(const TaskOptions& o) const override {
    checked_transforms(spec_.name, o, {});
    const bool chat = o.apply_chat_template;
    const int k = checked_fewshot(o);
    nlohmann::json c = {
        {"task", spec_.name},
        {"version", "1.0"},
        {"data_files", data_files()},
        {"prompt_format", chat ? "qwen25-math-cot (chat, 0-shot)" : "minerva_math (raw)"},
        {"system", chat ? (o.system_prompt.empty() ? kQwenSystem : o.system_prompt) : ""},
        {"doc_to_text", chat ? "{{" + spec_.problem_key + "}}"
                             : "Problem:\n{{" + spec_.problem_key + "}}\n\nSolution:"},
        {"target_delimiter", " "},
        {"fewshot_delimiter", "\n\n"},
        {"num_fewshot", k},
        {"fewshot_sampler", "first_n (lm-eval minerva_math's 4 fixed exemplars)"},
        {"generation_kwargs",
         {{"until", stops(chat)},
          {"max_gen_toks", spec_.max_gen_toks},
          {"do_sample", false},
          {"temperature", 0.0}}},
        {"gold", gold_rule()},
        {"gold_extraction",
         {{"latex", gold_config().latex},
          {"expr", gold_config().expr},
          {"boxed_match_priority", gold_config().boxed_match_priority}}},
        {"pred_extraction",
         {{"strip_think", true}, {"latex", true}, {"expr", true}, {"boxed_match_priority", 0}}},
        {"metric", {{"math_verify", {{"precision", 6}, {"strict", true}}}}},
        {"prompt", prompt_options_json(o, true)},
        {"cot_hint_text", kCotHint},
        {"transforms", nlohmann::json::array()},
    };
    if (!spec_.group_field.empty()) c["group_by"] = spec_.group_field;
    if (!spec_.facet_field.empty()) c["breakdown_by"] = spec_.facet_field;
    return c;
  }

  std::string gold_rule() const {
    switch (spec_.gold) {
      case Gold::kAnswer:
        return "answer";
      case Gold::kAnswerFloat:
        return "answer (JSON number, as Python's str())";
      case Gold::kBoxedInSolution:
        return "content of the single \\boxed{} in solution";
      case Gold::kOlympiad:
        return "final_answer[0] without its $ delimiters";
    }
    return "";
  }

  int checked_fewshot(const TaskOptions& o) const {
    int k = num_fewshot(o);
    if (k > 4) throw Error(spec_.name, "num_fewshot must be <= 4 (fixed minerva_math exemplars)");
    if (k > 0 && o.apply_chat_template)
      throw Error(spec_.name,
                  "few-shot exemplars are for raw prompts; the chat format is 0-shot "
                  "(drop --num-fewshot or --apply-chat-template)");
    return k;
  }

  std::string gold_of(const nlohmann::json& d, const std::string& where) const {
    switch (spec_.gold) {
      case Gold::kAnswer:
        if (!d["answer"].is_string()) throw Error(where, "\"answer\" must be a string");
        return d["answer"].get<std::string>();
      case Gold::kAnswerFloat:
        if (!d["answer"].is_number()) throw Error(where, "\"answer\" must be a number");
        return json_number_text(d["answer"]);
      case Gold::kBoxedInSolution: {
        if (!d["solution"].is_string()) throw Error(where, "\"solution\" must be a string");
        std::string g;
        size_t n = 0;
        if (!boxed_content(d["solution"].get<std::string>(), &g, &n) || n != 1)
          throw Error(where, "\"solution\" must hold exactly one balanced \\boxed{}");
        return g;
      }
      case Gold::kOlympiad: {
        const auto& fa = d["final_answer"];
        if (!fa.is_array() || fa.empty() || !fa[0].is_string())
          throw Error(where, "\"final_answer\" must be a non-empty list of strings");
        return strip_dollars(fa[0].get<std::string>());
      }
    }
    return "";
  }

  std::vector<Instance> instances(const TaskOptions& o, size_t* n_documents) const override {
    checked_transforms(spec_.name, o, {});
    const int k = checked_fewshot(o);
    const bool chat = o.apply_chat_template;
    std::vector<std::string> required = {spec_.problem_key};
    if (spec_.gold == Gold::kAnswer || spec_.gold == Gold::kAnswerFloat)
      required.push_back("answer");
    if (spec_.gold == Gold::kBoxedInSolution) required.push_back("solution");
    if (spec_.gold == Gold::kOlympiad) required.push_back("final_answer");
    if (!spec_.group_field.empty()) required.push_back(spec_.group_field);
    if (!spec_.facet_field.empty()) required.push_back(spec_.facet_field);
    const auto path = require_data_file(o.data_dir, spec_.file);
    auto docs = load_jsonl(path, required);

    if (n_documents) *n_documents = 0;
    const size_t n = limited(docs.size(), o, n_documents);
    std::vector<Instance> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const auto& d = docs[i];
      const std::string where = path.string() + ":" + std::to_string(i + 1);
      if (!d[spec_.problem_key].is_string())
        throw Error(where, "\"" + spec_.problem_key + "\" must be a string");
      const std::string problem = d[spec_.problem_key].get<std::string>();
      PromptSpec ps;
      GenRequest r;
      if (chat) {
        ps.query = problem;
        if (o.cot_hint) ps.query += std::string("\n") + kCotHint;
        TaskOptions with_system = o;
        if (with_system.system_prompt.empty()) with_system.system_prompt = kQwenSystem;
        r = build_gen_request(ps, with_system, true, stops(true), spec_.max_gen_toks);
      } else {
        for (int s = 0; s < k; ++s)
          ps.shots.push_back({"Problem:\n" + std::string(kMinervaShots[s].text) + "\n\nSolution:",
                              kMinervaShots[s].target});
        ps.query = "Problem:\n" + problem + "\n\nSolution:";
        if (o.cot_hint) ps.query += std::string(" ") + kCotHint;
        r = build_gen_request(ps, o, false, stops(false), spec_.max_gen_toks);
      }
      Instance inst;
      inst.doc_id = std::to_string(i);
      inst.index = i;
      if (!spec_.group_field.empty()) {
        if (!d[spec_.group_field].is_string())
          throw Error(where, "\"" + spec_.group_field + "\" must be a string");
        inst.group = d[spec_.group_field].get<std::string>();
      }
      if (!spec_.facet_field.empty()) {
        const auto& v = d[spec_.facet_field];
        inst.facets[spec_.facet_field] = v.is_string() ? v.get<std::string>() : v.dump();
      }
      inst.gen = std::move(r);
      inst.gold = gold_of(d, where);
      inst.doc_meta = {{"problem", problem}};
      for (const char* key : {"id", "unique_id", "idx", "type", "url", "level", "subject",
                              "subfield", "unit", "is_multiple_answer", "answer_type", "error"})
        if (d.contains(key) && !d[key].is_null()) inst.doc_meta[key] = d[key];
      out.push_back(std::move(inst));
    }
    return out;
  }

  math::Answer parse_gold(const std::string& gold) const {
    if (spec_.gold == Gold::kAnswerFloat) return math::parse(gold, gold_config());
    return math::parse("\\boxed{" + gold + "}", gold_config());
  }

  SampleScore score(const Instance& inst, const std::vector<GenResponse>& gens,
                    const std::vector<LoglikResponse>&, const TaskOptions&) const override {
    if (gens.empty()) throw Error(spec_.name, "doc " + inst.doc_id + ": no generation to score");
    bool unterminated = false;
    const std::string body = math::strip_think(gens[0].text, &unterminated);
    const math::Answer pred = math::parse(body, math::ExtractConfig{});
    const math::Answer gold = parse_gold(inst.gold.get<std::string>());
    const bool ok = !unterminated && math::verify(gold, pred, math::VerifyConfig{});
    SampleScore s;
    s.metrics["math_verify"] = ok ? 1.0 : 0.0;
    s.correct = ok;
    s.extracted = pred.text();
    s.details = {{"pred", pred.text()},
                 {"pred_canonical", pred.canonical()},
                 {"gold_canonical", gold.canonical()},
                 {"unterminated_think", unterminated}};
    return s;
  }

  // For maj@K clustering: a and b are SampleScore::extracted texts.
  bool answers_equivalent(const std::string& a, const std::string& b) const override {
    if (a.empty() || b.empty()) return false;
    return math::equivalent("\\boxed{" + a + "}", "\\boxed{" + b + "}");
  }

  std::vector<MetricInfo> metrics(const TaskOptions&) const override {
    return {{"math_verify", true}};
  }
  std::string primary_metric() const override { return "math_verify"; }

 private:
  MathSpec spec_;
};

}  // namespace

const std::vector<std::string>& math_task_names() {
  static const std::vector<std::string> names = {"math500", "aime24",       "aime25",
                                                 "amc23",   "minerva_math", "olympiadbench"};
  return names;
}

std::unique_ptr<Task> make_math_task(const std::string& name) {
  MathSpec s;
  s.name = name;
  s.file = "math/" + name + "/test.jsonl";
  s.problem_key = "problem";
  if (name == "math500") {
    s.group_field = "subject";
    s.facet_field = "level";
  } else if (name == "aime24" || name == "aime25") {
    s.max_gen_toks = 4096;
  } else if (name == "amc23") {
    s.gold = Gold::kAnswerFloat;
    s.max_gen_toks = 4096;
  } else if (name == "minerva_math") {
    s.gold = Gold::kBoxedInSolution;
  } else if (name == "olympiadbench") {
    s.problem_key = "question";
    s.gold = Gold::kOlympiad;
    s.group_field = "subfield";
  } else {
    throw Error("task '" + name + "'", "not a competition-math task");
  }
  return std::make_unique<MathTask>(std::move(s));
}

}  // namespace rv::eval::detail
