// Tasks written as YAML files: examples/tasks/gsm8k_cot.yaml re-expresses
// the built-in gsm8k_cot and must give the same prompts and per-document
// scores on the real GSM8K data; gsm8k_relaxed.yaml is a task defined only
// by its file; errors name file, line and key before any request is sent.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "eval/tasks/task.h"
#include "eval/tasks/yaml_task.h"
#include "task_test_util.h"

namespace rv::eval {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;
using testing::shared_data;
using testing::write_text;

fs::path example(const std::string& name) {
  return fs::path(RV_SOURCE_DIR) / "examples" / "tasks" / name;
}

bool have_gsm8k() {
  return fs::exists(shared_data() / "gsm8k" / "test.jsonl");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

GenResponse resp(const std::string& text) {
  GenResponse r;
  r.text = text;
  return r;
}

// Synthetic responses for one document with final answer `gold`.
std::vector<std::string> responses(const std::string& gold) {
  long long g = 0;
  try {
    g = std::stoll(gold);
  } catch (const std::exception&) {
  }
  const std::string wrong = std::to_string(g + 7);
  return {
      "Let me compute. 3 + 4 = 7. The answer is " + gold + ".",  // correct, strict format
      "Let me compute. The answer is " + wrong + ".",            // wrong
      "So the total is " + gold + " dollars",                    // flexible only
      "#### " + gold,                                            // gsm8k-style marker
      "The answer is $" + gold + ".00. Then 12 more.",           // currency, trailing number
      "I do not know.",                                          // nothing to extract
      "The answer is " + gold + ",000.",                         // commas
      "",                                                        // empty
  };
}

TEST(YamlTask, Gsm8kCotFileMatchesBuiltinPromptsAndScores) {
  if (!have_gsm8k()) GTEST_SKIP() << "no GSM8K data under " << shared_data();
  auto builtin = make_task("gsm8k_cot");
  auto yaml = make_task(example("gsm8k_cot.yaml").string());
  EXPECT_EQ(yaml->name(), "gsm8k_cot_yaml");
  EXPECT_EQ(yaml->data_files(), builtin->data_files());
  EXPECT_EQ(yaml->primary_metric(), builtin->primary_metric());
  std::vector<TaskOptions> variants(6);
  for (auto& o : variants) {
    o.data_dir = shared_data();
    o.limit = 50;
  }
  variants[1].apply_chat_template = true;
  variants[2].apply_chat_template = true;
  variants[2].fewshot_as_multiturn = true;
  variants[2].system_prompt = "You are careful.";
  variants[3].num_fewshot = 3;
  variants[4].system_prompt = "Answer in English.";
  variants[5].apply_chat_template = true;
  variants[5].cot_hint = true;
  for (size_t v = 0; v < variants.size(); ++v) {
    const auto& o = variants[v];
    SCOPED_TRACE("variant " + std::to_string(v));
    auto mb = builtin->metrics(o), my = yaml->metrics(o);
    ASSERT_EQ(mb.size(), my.size());
    for (size_t i = 0; i < mb.size(); ++i) EXPECT_EQ(mb[i].key, my[i].key);
    size_t nb = 0, ny = 0;
    auto ib = builtin->instances(o, &nb);
    auto iy = yaml->instances(o, &ny);
    EXPECT_EQ(nb, ny);
    ASSERT_EQ(ib.size(), 50u);
    ASSERT_EQ(iy.size(), ib.size());
    for (size_t i = 0; i < ib.size(); ++i) {
      ASSERT_EQ(iy[i].gen.chat, ib[i].gen.chat) << i;
      EXPECT_EQ(iy[i].gen.prompt, ib[i].gen.prompt) << i;
      EXPECT_EQ(iy[i].prompt_text(), ib[i].prompt_text()) << i;
      EXPECT_EQ(iy[i].gen.stop, ib[i].gen.stop) << i;
      EXPECT_EQ(iy[i].gen.max_tokens, ib[i].gen.max_tokens) << i;
      EXPECT_EQ(iy[i].gen.temperature, ib[i].gen.temperature) << i;
      EXPECT_EQ(iy[i].gold, ib[i].gold) << i;
      if (v != 0) continue;
      for (const auto& text : responses(ib[i].gold.get<std::string>())) {
        auto sb = builtin->score(ib[i], {resp(text)}, {}, o);
        auto sy = yaml->score(iy[i], {resp(text)}, {}, o);
        EXPECT_EQ(sy.metrics, sb.metrics) << i << ": " << text;
        EXPECT_EQ(sy.extracted, sb.extracted) << i << ": " << text;
        EXPECT_EQ(sy.correct, sb.correct) << i << ": " << text;
        EXPECT_EQ(sy.details, sb.details) << i << ": " << text;
      }
    }
  }
  // The synthetic set exercises both outcomes of both filters.
  TaskOptions o = variants[0];
  o.limit = 1;
  auto inst = yaml->instances(o)[0];
  auto gold = inst.gold.get<std::string>();
  auto r = responses(gold);
  EXPECT_EQ(yaml->score(inst, {resp(r[0])}, {}, o).metrics.at("exact_match,strict-match"), 1.0);
  EXPECT_EQ(yaml->score(inst, {resp(r[1])}, {}, o).metrics.at("exact_match,strict-match"), 0.0);
  auto flex = yaml->score(inst, {resp(r[2])}, {}, o);
  EXPECT_EQ(flex.metrics.at("exact_match,strict-match"), 0.0);
  EXPECT_EQ(flex.metrics.at("exact_match,flexible-extract"), 1.0);
}

TEST(YamlTask, RelaxedTaskFromFileOnly) {
  if (!have_gsm8k()) GTEST_SKIP();
  auto t = make_task(example("gsm8k_relaxed.yaml").string());
  EXPECT_EQ(t->name(), "gsm8k_relaxed");
  EXPECT_EQ(t->primary_metric(), "exact_match,relaxed-match");
  TaskOptions o;
  o.data_dir = shared_data();
  o.limit = 1;
  o.apply_chat_template = true;
  auto inst = t->instances(o)[0];
  EXPECT_EQ(inst.gold, "18");  // Janet's ducks
  ASSERT_EQ(inst.gen.messages.size(), 2u);
  EXPECT_EQ(inst.gen.messages[0].role, "system");
  EXPECT_EQ(inst.gen.messages[1].content.rfind("Janet", 0), 0u);
  EXPECT_EQ(inst.gen.max_tokens, 1024);
  auto em = [&](const std::string& text, const std::string& key) {
    return t->score(inst, {resp(text)}, {}, o).metrics.at("exact_match," + key);
  };
  EXPECT_EQ(em("16 - 3 - 4 = 9 eggs, 9 * 2 = 18. The answer is 18.", "relaxed-match"), 1.0);
  EXPECT_EQ(em("Final answer: $18.00", "relaxed-match"), 1.0);
  EXPECT_EQ(em("So she makes \\boxed{18} dollars.", "relaxed-match"), 1.0);
  EXPECT_EQ(em("The answer is 18, wait, the answer is 20.", "relaxed-match"), 0.0);
  EXPECT_EQ(em("She makes 18 dollars", "relaxed-match"), 0.0);
  EXPECT_EQ(em("She makes 18 dollars", "last-number"), 1.0);
  EXPECT_EQ(em("It is 1,018 or 18", "last-number"), 1.0);
  // A --system-prompt replaces the file's system_prompt.
  o.system_prompt = "Be brief.";
  EXPECT_EQ(t->instances(o)[0].gen.messages[0].content, "Be brief.");
}

TEST(YamlTask, LocalDatasetJinjaFewshotFiltersAndMetrics) {
  ScratchDir d;
  write_text(d.path / "qa.jsonl",
             "{\"q\": \"2+2\", \"a\": 4, \"kind\": \"add\"}\n"
             "{\"q\": \"3*3\", \"a\": 9, \"kind\": \"mul\"}\n"
             "\n"
             "{\"q\": \"1/2\", \"a\": \"\\\\frac{1}{2}\", \"kind\": \"div\"}\n");
  write_text(d.path / "shots.json",
             "[{\"q\": \"1+1\", \"a\": 2, \"kind\": \"add\"}, {\"q\": \"2*3\", \"a\": 6, "
             "\"kind\": \"mul\"}]");
  write_text(d.path / "t.yaml",
             "task: tiny\n"
             "dataset: qa.jsonl\n"
             "doc_to_text: \"Compute {{ q }}.{% if kind == 'div' %} (fraction){% endif %}\"\n"
             "doc_to_target: a\n"
             "group_by: kind\n"
             "description: \"Arithmetic.\\n\\n\"\n"
             "fewshot: {source: shots.json, sampler: first_n, num_fewshot: 2,\n"
             "          target_delimiter: \" = \", fewshot_delimiter: \"\\n\"}\n"
             "filter_list:\n"
             "  - name: boxed\n"
             "    filter: [{function: math}]\n"
             "  - name: trimmed\n"
             "    filter: [{function: remove_whitespace}, {function: take_first}]\n"
             "metric_list: [{metric: math_verify}, {metric: exact_match}]\n");
  auto t = make_task((d.path / "t.yaml").string());
  EXPECT_TRUE(t->data_files().empty());  // everything is next to the YAML file
  TaskOptions o;
  o.data_dir = d.path / "nowhere";
  auto insts = t->instances(o);
  ASSERT_EQ(insts.size(), 3u);
  EXPECT_EQ(insts[0].gen.prompt, "Arithmetic.\n\nCompute 1+1. = 2\nCompute 2*3. = 6\nCompute 2+2.");
  EXPECT_EQ(insts[0].gen.stop, std::vector<std::string>{"\n"});  // lm-eval: until = delimiter
  EXPECT_EQ(insts[0].gen.max_tokens, 256);
  EXPECT_EQ(insts[2].gen.prompt.substr(insts[2].gen.prompt.size() - 23), "Compute 1/2. (fraction)");
  EXPECT_EQ(insts[0].gold, "4");
  EXPECT_EQ(insts[2].gold, "\\frac{1}{2}");
  EXPECT_EQ(insts[1].group, "mul");
  auto s = t->score(insts[2], {resp("We get \\boxed{\\frac{1}{2}}")}, {}, o);
  EXPECT_EQ(s.metrics.at("math_verify,boxed"), 1.0);
  EXPECT_EQ(s.extracted, "\\frac{1}{2}");
  EXPECT_EQ(s.metrics.at("exact_match,boxed"), 1.0);
  EXPECT_EQ(s.metrics.at("exact_match,trimmed"), 0.0);
  EXPECT_EQ(t->score(insts[0], {resp("  4")}, {}, o).metrics.at("exact_match,trimmed"), 1.0);
  EXPECT_EQ(t->primary_metric(), "math_verify,boxed");
  EXPECT_EQ(t->metrics(o).size(), 4u);
  auto cfg = t->config(o);
  EXPECT_EQ(cfg["num_fewshot"], 2);
  EXPECT_EQ(cfg["task"], "tiny");
}

// fewshot.split: lm-eval's fewshot_split as a file. first_n takes the split's
// first N rows; random is lm-eval's seeded sampler (the same draws as
// sampler: default), never showing a document its own row when the split is
// the evaluated file.
TEST(YamlTask, FewshotSplitFirstNAndRandom) {
  ScratchDir d;
  std::string rows;
  for (int i = 0; i < 6; ++i)
    rows += "{\"q\": \"q" + std::to_string(i) + "\", \"a\": " + std::to_string(i) + "}\n";
  write_text(d.path / "data" / "eval.jsonl", rows);
  write_text(d.path / "data" / "train.jsonl",
             "{\"q\": \"t0\", \"a\": 10}\n{\"q\": \"t1\", \"a\": 11}\n"
             "{\"q\": \"t2\", \"a\": 12}\n");
  const std::string head =
      "task: s\ndataset: eval.jsonl\ndoc_to_text: q\ndoc_to_target: a\n"
      "metric_list: [{metric: exact_match}]\n";
  auto task_with = [&](const std::string& name, const std::string& fewshot) {
    write_text(d.path / name, head + "fewshot: " + fewshot + "\n");
    return make_task((d.path / name).string());
  };
  TaskOptions o;
  o.data_dir = d.path / "data";  // the split is found in the data directory, like dataset
  auto first = task_with("first.yaml", "{split: train.jsonl, num_fewshot: 2, sampler: first_n}");
  EXPECT_EQ(first->data_files(), (std::vector<std::string>{"eval.jsonl", "train.jsonl"}));
  auto fi = first->instances(o);
  ASSERT_EQ(fi.size(), 6u);
  EXPECT_EQ(fi[0].gen.prompt, "t0 10\n\nt1 11\n\nq0");
  EXPECT_EQ(fi[5].gen.prompt, "t0 10\n\nt1 11\n\nq5");

  auto rnd = task_with("rnd.yaml", "{split: eval.jsonl, num_fewshot: 3, sampler: random}");
  auto legacy = task_with("legacy.yaml", "{source: eval.jsonl, num_fewshot: 3, sampler: default}");
  o.seed = 1234;
  auto ri = rnd->instances(o);
  auto li = legacy->instances(o);
  ASSERT_EQ(ri.size(), 6u);
  std::set<std::string> distinct;
  for (size_t i = 0; i < ri.size(); ++i) {
    EXPECT_EQ(ri[i].gen.prompt, li[i].gen.prompt) << i;
    const std::string& p = ri[i].gen.prompt;
    const std::string self = "q" + std::to_string(i) + " " + std::to_string(i) + "\n\n";
    EXPECT_EQ(p.find(self), std::string::npos) << p;          // its own row is not an exemplar
    EXPECT_EQ(std::count(p.begin(), p.end(), '\n'), 6) << p;  // 3 exemplars
    EXPECT_TRUE(p.ends_with("q" + std::to_string(i))) << p;
    distinct.insert(p.substr(0, p.rfind("\n\n")));
  }
  EXPECT_GT(distinct.size(), 1u);  // drawn per document, not one fixed set
  EXPECT_EQ(rnd->instances(o)[3].gen.prompt, ri[3].gen.prompt);  // seeded
  TaskOptions o2 = o;
  o2.seed = 99;
  auto ri2 = rnd->instances(o2);
  bool any_differs = false;
  for (size_t i = 0; i < ri.size(); ++i) any_differs |= ri[i].gen.prompt != ri2[i].gen.prompt;
  EXPECT_TRUE(any_differs);  // TaskOptions::seed seeds the sampler

  write_text(d.path / "bad.yaml", head + "fewshot: {split: a.jsonl, source: b.jsonl}\n");
  EXPECT_EQ(
      error_of([&] { make_task((d.path / "bad.yaml").string()); }),
      (d.path / "bad.yaml").string() + ":6: fewshot.split: give either split or source, not both");
  write_text(d.path / "bad2.yaml", head + "fewshot: {split: train.jsonl, sampler: shuffled}\n");
  EXPECT_EQ(
      error_of([&] { make_task((d.path / "bad2.yaml").string()); }),
      (d.path / "bad2.yaml").string() + ":6: fewshot.sampler: expected first_n, random or default");
}

TEST(YamlTask, ChoiceAndNumberFilters) {
  ScratchDir d;
  write_text(d.path / "mc.jsonl", "{\"q\": \"Pick\", \"gold\": \"C\"}\n");
  write_text(d.path / "t.yml",
             "task: mc\ndataset: mc.jsonl\ndoc_to_text: q\ndoc_to_target: gold\n"
             "filter_list:\n  - {name: letter, filter: [{function: choice, choices: ABCD}]}\n"
             "  - {name: num, filter: [{function: number}]}\n"
             "metric_list: [{metric: exact_match}]\n");
  auto t = make_task((d.path / "t.yml").string());
  TaskOptions o;
  auto inst = t->instances(o)[0];
  EXPECT_EQ(inst.gen.prompt, "Pick");
  auto letter = [&](const std::string& text) {
    return t->score(inst, {resp(text)}, {}, o).details["letter"].get<std::string>();
  };
  EXPECT_EQ(letter("A is wrong, B too. The answer is (C)."), "C");
  EXPECT_EQ(letter("Answer: C"), "C");
  EXPECT_EQ(letter("I pick (D) over (C)"), "C");
  EXPECT_EQ(letter("no idea"), "[invalid]");
  EXPECT_EQ(t->score(inst, {resp("x = -1,234.5 then 7")}, {}, o).details["num"], "7");
  EXPECT_EQ(t->score(inst, {resp("x = -1,234.5")}, {}, o).details["num"], "-1234.5");
}

TEST(YamlTask, ErrorsNameFileLineAndKey) {
  ScratchDir d;
  write_text(d.path / "data.jsonl", "{\"q\": \"a\", \"a\": \"1\"}\n{\"q\": \"b\" \"a\": 2}\n");
  const std::string head = "task: t\ndataset: data.jsonl\ndoc_to_text: q\ndoc_to_target: a\n";
  auto err = [&](const std::string& body) {
    write_text(d.path / "e.yaml", head + body);
    return error_of([&] { make_task((d.path / "e.yaml").string()); });
  };
  const std::string f = (d.path / "e.yaml").string();
  EXPECT_EQ(err("metric_list: [{metric: bleu}]\n"),
            f + ":5: metric_list[0].metric: unknown metric 'bleu' (expected exact_match or "
                "math_verify)");
  EXPECT_EQ(err("filter_list:\n  - name: x\n    filter:\n      - function: regexp\n"
                "metric_list: [{metric: exact_match}]\n"),
            f + ":8: filter_list[0].filter[0].function: unknown filter function 'regexp' "
                "(expected one of: regex, take_first, remove_whitespace, math, choice, number)");
  EXPECT_EQ(err("filter_list: [{name: x, filter: [{function: regex, regex_pattern: \"(\"}]}]\n"
                "metric_list: [{metric: exact_match}]\n")
                .rfind(f + ":5: filter_list[0].filter[0].regex_pattern: regex '(':", 0),
            0u);
  EXPECT_EQ(err("metric_list: [{metric: exact_match}]\nnum_fewshot: 3\n")
                .rfind(f + ":6: num_fewshot: unknown key", 0),
            0u);
  EXPECT_EQ(err(""), f + ":1: metric_list: missing (e.g. [{metric: exact_match}])");
  EXPECT_EQ(err("metric_list: [{metric: exact_match}]\ngeneration_kwargs: {max_gen_toks: x}\n"),
            f + ":6: generation_kwargs.max_gen_toks: expected an integer, got 'x'");
  EXPECT_EQ(err("metric_list: [{metric: math_verify, ignore_case: true}]\n"),
            f + ":5: metric_list[0].ignore_case: applies to exact_match only");
  // Jinja syntax errors are found while loading, with the YAML line.
  write_text(d.path / "j.yaml",
             "task: t\ndataset: data.jsonl\ndoc_to_text: \"{{ q \"\ndoc_to_target: a\n"
             "metric_list: [{metric: exact_match}]\n");
  EXPECT_EQ(error_of([&] {
              make_task((d.path / "j.yaml").string());
            }).rfind((d.path / "j.yaml").string() + ":3: doc_to_text", 0),
            0u);
  // A malformed dataset row names the dataset file and line.
  write_text(d.path / "ok.yaml", head + "metric_list: [{metric: exact_match}]\n");
  auto t = make_task((d.path / "ok.yaml").string());
  TaskOptions o;
  EXPECT_EQ(error_of([&] {
              t->instances(o);
            }).rfind((d.path / "data.jsonl").string() + ":2: invalid JSON", 0),
            0u);
  // A row without the field doc_to_text names.
  write_text(d.path / "data.jsonl", "{\"q\": \"a\", \"a\": \"1\"}\n{\"a\": \"2\"}\n");
  EXPECT_EQ(error_of([&] { t->instances(o); }),
            (d.path / "data.jsonl").string() + ":2: doc_to_text: the record has no field \"q\"");
  // A dataset that is neither next to the file nor in the data directory.
  write_text(d.path / "m.yaml",
             "task: t\ndataset: sub/none.jsonl\ndoc_to_text: q\ndoc_to_target: a\n"
             "metric_list: [{metric: exact_match}]\n");
  auto m = make_task((d.path / "m.yaml").string());
  EXPECT_EQ(m->data_files(), std::vector<std::string>{"sub/none.jsonl"});
  o.data_dir = d.path / "data";
  EXPECT_NE(error_of([&] { m->instances(o); }).find("sub/none.jsonl: missing"), std::string::npos);
  EXPECT_EQ(error_of([&] { make_task((d.path / "absent.yaml").string()); }),
            (d.path / "absent.yaml").string() + ": no such task file");
}

}  // namespace
}  // namespace rv::eval
