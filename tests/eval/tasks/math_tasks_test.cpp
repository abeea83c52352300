// The competition-math tasks on the real files: document counts, the exact
// prompts of both formats (typed here from Qwen2.5-Math's qwen25-math-cot
// template and lm-eval's minerva_math layout), the gold-answer rules of
// math/SOURCES.md, and scoring through the math checker API.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "eval/tasks/task.h"
#include "task_test_util.h"

namespace rv::eval {
namespace {

using testing::shared_data;

bool have_math_data() {
  return std::filesystem::exists(shared_data() / "math" / "math500" / "test.jsonl");
}

TaskOptions opts(bool chat) {
  TaskOptions o;
  o.data_dir = shared_data();
  o.apply_chat_template = chat;
  return o;
}

const char* kMath500Doc0 =
    "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your "
    "answer in the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$";

TEST(MathTasks, DocumentCountsAndRegistration) {
  if (!have_math_data()) GTEST_SKIP() << "no math data under " << shared_data();
  const std::pair<const char*, size_t> expect[] = {{"math500", 500},      {"aime24", 30},
                                                   {"aime25", 30},        {"amc23", 40},
                                                   {"minerva_math", 272}, {"olympiadbench", 675}};
  auto names = task_names();
  for (const auto& [name, n] : expect) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    auto t = make_task(name);
    EXPECT_EQ(t->name(), name);
    EXPECT_EQ(t->primary_metric(), "math_verify");
    ASSERT_EQ(t->data_files().size(), 1u);
    EXPECT_EQ(t->data_files()[0], std::string("math/") + name + "/test.jsonl");
    size_t total = 0;
    auto insts = t->instances(opts(true), &total);
    EXPECT_EQ(insts.size(), n) << name;
    EXPECT_EQ(total, n) << name;
  }
}

TEST(MathTasks, ChatPromptIsQwen25MathCot) {
  if (!have_math_data()) GTEST_SKIP();
  auto insts = make_task("math500")->instances(opts(true));
  const auto& g = insts[0].gen;
  ASSERT_TRUE(g.chat);
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[0].role, "system");
  EXPECT_EQ(g.messages[0].content,
            "Please reason step by step, and put your final answer within \\boxed{}.");
  EXPECT_EQ(g.messages[1].role, "user");
  EXPECT_EQ(g.messages[1].content, kMath500Doc0);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"</s>", "<|im_end|>", "<|endoftext|>"}));
  EXPECT_EQ(g.max_tokens, 2048);
  EXPECT_EQ(g.temperature, 0.0f);
  EXPECT_EQ(insts[0].group, "Precalculus");
  EXPECT_EQ(insts[0].facets.at("level"), "2");
  // --system-prompt replaces the default system message.
  auto o = opts(true);
  o.system_prompt = "Be brief.";
  EXPECT_EQ(make_task("aime24")->instances(o)[0].gen.messages[0].content, "Be brief.");
  EXPECT_EQ(make_task("aime24")->instances(o)[0].gen.max_tokens, 4096);
  // The chat format is 0-shot only.
  o.num_fewshot = 2;
  EXPECT_THROW(make_task("aime24")->instances(o), Error);
}

TEST(MathTasks, RawPromptIsMinervaFourShot) {
  if (!have_math_data()) GTEST_SKIP();
  auto insts = make_task("math500")->instances(opts(false));
  const auto& g = insts[0].gen;
  ASSERT_FALSE(g.chat);
  const std::string p = g.prompt;
  EXPECT_EQ(p.rfind("Problem:\nFind the domain of the expression  "
                    "$\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}\n\nSolution: The expressions inside",
                    0),
            0u)
      << p.substr(0, 200);
  const std::string tail = std::string("\n\nProblem:\n") + kMath500Doc0 + "\n\nSolution:";
  ASSERT_GE(p.size(), tail.size());
  EXPECT_EQ(p.substr(p.size() - tail.size()), tail);
  // Exemplar 3's align block keeps lm-eval's single backslash line break.
  EXPECT_NE(p.find("Solution: If Terrell lifts"), std::string::npos);
  EXPECT_NE(p.find("30n&=480\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}\n"
                   "Final Answer: The final answer is $16$. I hope it is correct.\n\nProblem:"),
            std::string::npos);
  EXPECT_NE(p.find("=\\boxed{-\\frac{2}{3}}.$$\nFinal Answer: The final answer is "
                   "$-\\frac{2}{3}$. I hope it is correct.\n\nProblem:\n"),
            std::string::npos);
  size_t shots = 0;
  for (size_t at = 0; (at = p.find("Problem:\n", at)) != std::string::npos; ++at) ++shots;
  EXPECT_EQ(shots, 5u);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"Problem:", "</s>", "<|im_end|>", "<|endoftext|>"}));
  auto o = opts(false);
  o.num_fewshot = 0;
  EXPECT_EQ(make_task("math500")->instances(o)[0].gen.prompt,
            std::string("Problem:\n") + kMath500Doc0 + "\n\nSolution:");
  o.num_fewshot = 5;
  EXPECT_THROW(make_task("math500")->instances(o), Error);
}

TEST(MathTasks, GoldAnswersFollowSourcesMd) {
  if (!have_math_data()) GTEST_SKIP();
  EXPECT_EQ(make_task("math500")->instances(opts(true))[0].gold,
            "\\left( 3, \\frac{\\pi}{2} \\right)");
  EXPECT_EQ(make_task("aime24")->instances(opts(true))[7].gold, "025");  // id 67, zero-padded
  auto amc = make_task("amc23")->instances(opts(true));
  EXPECT_EQ(amc[0].gold, "27.0");  // a JSON float, written as Python's str()
  EXPECT_EQ(make_task("minerva_math")->instances(opts(true))[0].gold, "1.6");
  auto ob = make_task("olympiadbench")->instances(opts(true));
  EXPECT_EQ(ob[13].gold, "69,84");  // "$69$,$84$", is_multiple_answer
  EXPECT_EQ(ob[183].gold, "\\frac{41}{12}");
  EXPECT_EQ(ob[183].doc_meta["unit"], "km");
  EXPECT_EQ(ob[0].group, "Combinatorics");
  // olympiadbench reads `question`, the others `problem`.
  EXPECT_EQ(ob[0].gen.messages[1].content.rfind("Xenia and Sergey play", 0), 0u);
}

TEST(MathTasks, ScoresBoxedAnswersWithTheChecker) {
  if (!have_math_data()) GTEST_SKIP();
  auto t = make_task("minerva_math");
  auto o = opts(true);
  o.limit = 1;
  auto insts = t->instances(o);
  auto score = [&](const std::string& text) {
    GenResponse r;
    r.text = text;
    return t->score(insts[0], {r}, {}, o);
  };
  auto good = score("So s = 1.6 cm, i.e. \\boxed{1.6}.");
  EXPECT_EQ(good.metrics.at("math_verify"), 1.0);
  EXPECT_TRUE(good.correct);
  EXPECT_EQ(good.extracted, "1.6");
  EXPECT_EQ(score("\\boxed{2.5}").metrics.at("math_verify"), 0.0);
  // A reasoning block is removed first; an unterminated one scores 0.
  EXPECT_EQ(score("<think>maybe \\boxed{2}</think> \\boxed{1.6}").metrics.at("math_verify"), 1.0);
  auto cut = score("<think>\\boxed{1.6} and still thinking");
  EXPECT_EQ(cut.metrics.at("math_verify"), 0.0);
  EXPECT_EQ(cut.details["unterminated_think"], true);
}

TEST(MathTasks, Math500LevelBreakdownInAggregate) {
  if (!have_math_data()) GTEST_SKIP();
  auto t = make_task("math500");
  auto o = opts(true);
  o.limit = 20;
  auto insts = t->instances(o);
  std::vector<SampleScore> scores;
  for (const auto& inst : insts) {
    GenResponse r;
    r.text = "\\boxed{" + inst.gold.get<std::string>() + "}";
    scores.push_back(t->score(inst, {r}, {}, o));
  }
  auto agg = aggregate(*t, o, insts, scores);
  ASSERT_TRUE(agg.contains("groups"));
  ASSERT_TRUE(agg.contains("breakdowns"));
  size_t n = 0;
  for (const auto& [level, e] : agg["breakdowns"]["level"].items()) {
    n += e["n-samples"].get<size_t>();
    EXPECT_TRUE(e.contains("math_verify")) << level;
  }
  EXPECT_EQ(n, 20u);
  EXPECT_DOUBLE_EQ(agg["math_verify"].get<double>(), 1.0);
}

}  // namespace
}  // namespace rv::eval
