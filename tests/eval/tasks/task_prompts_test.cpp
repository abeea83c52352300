// Every task loads its full real file and produces exactly the prompt text
// lm-evaluation-harness would for known documents. Expected strings are
// written out here by hand from the data files and lm-eval's task YAMLs, or
// (for the random few-shot choice) computed by python3's own `random`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/error.h"
#include "eval/tasks/task.h"
#include "task_test_util.h"

namespace rv::eval {
namespace {

using testing::shared_data;

TaskOptions prompt_opts() {
  TaskOptions o;
  o.data_dir = shared_data();
  return o;
}

const char* kJanet =
    "Janet\xe2\x80\x99s ducks lay 16 eggs per day. She eats three for breakfast every morning and "
    "bakes muffins for her friends every day with four. She sells the remainder at the farmers' "
    "market daily for $2 per fresh duck egg. How much in dollars does she make every day at the "
    "farmers' market?";

// The 8 exemplars of lm-eval's gsm8k-cot.yaml, typed from the YAML.
const char* kCotPrefix =
    "Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After "
    "they are done, there will be 21 trees. How many trees did the grove workers plant today?\n"
    "A: There are 15 trees originally. Then there were 21 trees after some more were planted. So "
    "there must have been 21 - 15 = 6. The answer is 6.\n\n"
    "Q: If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
    "parking lot?\nA: There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is "
    "5.\n\n"
    "Q: Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have "
    "left in total?\nA: Originally, Leah had 32 chocolates. Her sister had 42. So in total they "
    "had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39.\n\n"
    "Q: Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
    "lollipops did Jason give to Denny?\nA: Jason started with 20 lollipops. Then he had 12 after "
    "giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.\n\n"
    "Q: Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many "
    "toys does he have now?\nA: Shawn started with 5 toys. If he got 2 toys each from his mom and "
    "dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.\n\n"
    "Q: There were nine computers in the server room. Five more computers were installed each "
    "day, from monday to thursday. How many computers are now in the server room?\nA: There were "
    "originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
    "computers were added. 9 + 20 is 29. The answer is 29.\n\n"
    "Q: Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 "
    "more. How many golf balls did he have at the end of wednesday?\nA: Michael started with 58 "
    "golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - "
    "2 = 33 golf balls. The answer is 33.\n\n"
    "Q: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\n"
    "A: Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has "
    "23 - 15 dollars left. 23 - 15 is 8. The answer is 8.\n\n";

TEST(TaskPrompts, Gsm8kCotDoc0) {
  auto task = make_task("gsm8k_cot");
  auto insts = task->instances(prompt_opts());
  ASSERT_EQ(insts.size(), 1319u);
  const auto& g = insts[0].gen;
  EXPECT_FALSE(g.chat);
  EXPECT_EQ(g.prompt, std::string(kCotPrefix) + "Q: " + kJanet + "\nA:");
  EXPECT_EQ(g.stop, (std::vector<std::string>{"Q:", "</s>", "<|im_end|>"}));
  EXPECT_EQ(g.max_tokens, 256);
  EXPECT_EQ(g.temperature, 0.0f);
  EXPECT_EQ(insts[0].gold, "18");
}

TEST(TaskPrompts, Gsm8kFiveShotMatchesPythonSampler) {
  // lm-eval: random.Random(1234).sample(train, 5) per test document, in order.
  std::string res = testing::python_oracle(
      "import random, json\nr = random.Random(1234)\n"
      "print(json.dumps([r.sample(range(7473), 5) for _ in range(3)]))\n");
  ASSERT_NE(res, "ORACLE FAILED");
  auto idx = nlohmann::json::parse(res);
  // Cross-check of the oracle itself (python 3.11 on this machine).
  EXPECT_EQ(idx[0], nlohmann::json({6374, 3610, 957, 61, 742}));
  std::vector<nlohmann::json> train;
  std::ifstream in(shared_data() / "gsm8k/train.jsonl");
  for (std::string line; std::getline(in, line);) train.push_back(nlohmann::json::parse(line));
  std::vector<nlohmann::json> test;
  std::ifstream tin(shared_data() / "gsm8k/test.jsonl");
  for (std::string line; std::getline(tin, line);) test.push_back(nlohmann::json::parse(line));

  auto task = make_task("gsm8k");
  TaskOptions o = prompt_opts();
  o.limit = 3;
  auto insts = task->instances(o);
  ASSERT_EQ(insts.size(), 3u);
  for (size_t d = 0; d < 3; ++d) {
    std::string want;
    for (const auto& j : idx[d])
      want += "Question: " + train[j.get<size_t>()]["question"].get<std::string>() +
              "\nAnswer: " + train[j.get<size_t>()]["answer"].get<std::string>() + "\n\n";
    want += "Question: " + test[d]["question"].get<std::string>() + "\nAnswer:";
    EXPECT_EQ(insts[d].gen.prompt, want) << "doc " << d;
    EXPECT_EQ(insts[d].gold, test[d]["answer"]);
  }
  EXPECT_EQ(insts[0].gen.stop, (std::vector<std::string>{"Question:", "</s>", "<|im_end|>"}));
  // The full file loads and --limit does not change a document's exemplars.
  auto all = task->instances(prompt_opts());
  ASSERT_EQ(all.size(), 1319u);
  EXPECT_EQ(all[2].gen.prompt, insts[2].gen.prompt);
}

TEST(TaskPrompts, SciqDoc0AndEmptySupport) {
  auto task = make_task("sciq");
  auto insts = task->instances(prompt_opts());
  ASSERT_EQ(insts.size(), 1000u);
  const auto& i0 = insts[0];
  ASSERT_TRUE(i0.is_loglik);
  ASSERT_EQ(i0.choices.size(), 4u);
  std::string ctx =
      "Oxidants and Reductants Compounds that are capable of accepting electrons, such as O 2 or "
      "F2, are calledoxidants (or oxidizing agents) because they can oxidize other compounds. In "
      "the process of accepting electrons, an oxidant is reduced. Compounds that are capable of "
      "donating electrons, such as sodium metal or cyclohexane (C6H12), are calledreductants (or "
      "reducing agents) because they can cause the reduction of another compound. In the process "
      "of donating electrons, a reductant is oxidized. These relationships are summarized in "
      "Equation 3.30: Equation 3.30 Saylor URL: http://www. saylor. org/books.\nQuestion: "
      "Compounds that are capable of accepting electrons, such as o 2 or f2, are called "
      "what?\nAnswer:";
  EXPECT_EQ(i0.choices[0].context, ctx);
  EXPECT_EQ(i0.choices[0].continuation, " antioxidants");
  EXPECT_EQ(i0.choices[1].continuation, " Oxygen");
  EXPECT_EQ(i0.choices[2].continuation, " residues");
  EXPECT_EQ(i0.choices[3].continuation, " oxidants");
  EXPECT_EQ(i0.gold, 3);
  // Document 35 has an empty support: the context starts with the newline.
  EXPECT_EQ(insts[35].choices[0].context,
            "\nQuestion: In what type of animals may a body cavity be present or absent?\nAnswer:");
  EXPECT_EQ(insts[35].choices[3].continuation, " triploblastic");
}

TEST(TaskPrompts, BbhBooleanExpressionsDoc0AndTrailingSpaceGuard) {
  auto task = make_task("bbh_cot_fewshot");
  auto insts = task->instances(prompt_opts());
  ASSERT_EQ(insts.size(), 6511u);
  std::string file = testing::read_text(shared_data() / "bbh/cot-prompts/boolean_expressions.txt");
  std::string body = file.substr(file.find("-----\n") + 6);
  const auto& i0 = insts[0];
  EXPECT_EQ(i0.group, "boolean_expressions");
  EXPECT_EQ(i0.doc_id, "boolean_expressions/0");
  EXPECT_EQ(i0.gen.prompt,
            body + "\n\nQ: not ( True ) and ( True ) is\nA: Let's think step by step.\n");
  EXPECT_EQ(i0.gold, "False");
  EXPECT_EQ(i0.gen.stop, (std::vector<std::string>{"</s>", "Q", "\n\n"}));
  EXPECT_EQ(i0.gen.max_tokens, 1024);
  // Trailing-space pitfall: no prompt may end in a space (a lone " " token
  // changes the model's continuation); every one ends "step by step.\n".
  size_t sizes = 0;
  for (const auto& in : insts) {
    ASSERT_NE(in.gen.prompt.back(), ' ') << in.doc_id;
    const std::string cue = "\nA: Let's think step by step.\n";
    ASSERT_EQ(in.gen.prompt.substr(in.gen.prompt.size() - cue.size()), cue) << in.doc_id;
    ++sizes;
  }
  EXPECT_EQ(sizes, 6511u);
  // Every subtask: doc 0's prompt is its whole prompt file body, a blank line
  // and the question (inputs read straight from the task file).
  for (const char* sub : {"sports_understanding", "dyck_languages", "word_sorting", "navigate"}) {
    std::string f =
        testing::read_text(shared_data() / "bbh/cot-prompts" / (std::string(sub) + ".txt"));
    auto j = nlohmann::json::parse(
        testing::read_text(shared_data() / "bbh/tasks" / (std::string(sub) + ".json")));
    auto it = std::find_if(insts.begin(), insts.end(),
                           [&](const Instance& x) { return x.doc_id == std::string(sub) + "/0"; });
    ASSERT_NE(it, insts.end());
    EXPECT_EQ(it->gen.prompt, f.substr(f.find("-----\n") + 6) +
                                  "\n\nQ: " + j["examples"][0]["input"].get<std::string>() +
                                  "\nA: Let's think step by step.\n")
        << sub;
    EXPECT_EQ(it->gold, j["examples"][0]["target"]);
  }
  // Another subtask, by hand: the first penguins document starts its own prompt.
  auto it = std::find_if(insts.begin(), insts.end(),
                         [](const Instance& x) { return x.doc_id == "penguins_in_a_table/0"; });
  ASSERT_NE(it, insts.end());
  std::string pfile = testing::read_text(shared_data() / "bbh/cot-prompts/penguins_in_a_table.txt");
  EXPECT_EQ(it->gen.prompt.rfind(pfile.substr(pfile.find("-----\n") + 6) + "\n\nQ: ", 0), 0u);
}

TEST(TaskPrompts, BbhChatMultiturnSplitsExemplars) {
  auto task = make_task("bbh_cot_fewshot");
  TaskOptions o = prompt_opts();
  o.limit = 1;
  o.apply_chat_template = true;
  o.fewshot_as_multiturn = true;
  auto insts = task->instances(o);
  ASSERT_EQ(insts.size(), 27u);
  const auto& m = insts[0].gen.messages;
  ASSERT_EQ(m.size(), 8u);  // system + 3 x (user, assistant) + user
  EXPECT_EQ(m[0].role, "system");
  EXPECT_EQ(m[0].content, "Evaluate the result of a random Boolean expression.");
  EXPECT_EQ(m[1].content, "Q: not ( ( not not True ) ) is\nA: Let's think step by step.");
  EXPECT_EQ(m[2].content.rfind("Remember that (i)", 0), 0u);
  EXPECT_EQ(m[2].role, "assistant");
  const std::string end = "So the answer is False.";
  EXPECT_EQ(m[2].content.substr(m[2].content.size() - end.size()), end);
  EXPECT_EQ(m[7].content, "Q: not ( True ) and ( True ) is\nA: Let's think step by step.\n");
}

TEST(TaskPrompts, HumanEvalDoc2) {
  auto task = make_task("humaneval");
  auto insts = task->instances(prompt_opts());
  ASSERT_EQ(insts.size(), 164u);
  const auto& i2 = insts[2];
  EXPECT_EQ(i2.doc_id, "HumanEval/2");
  EXPECT_EQ(
      i2.gen.prompt,
      "\n\ndef truncate_number(number: float) -> float:\n    \"\"\" Given a positive floating "
      "point number, it can be decomposed into\n    and integer part (largest integer smaller "
      "than given number) and decimals\n    (leftover part always smaller than 1).\n\n    "
      "Return the decimal part of the number.\n    >>> truncate_number(3.5)\n    0.5\n    "
      "\"\"\"\n");
  EXPECT_EQ(i2.gen.stop, (std::vector<std::string>{"\nclass", "\ndef", "\n#", "\nif", "\nprint"}));
  EXPECT_EQ(i2.gen.max_tokens, 1024);
  EXPECT_EQ(i2.gold.get<std::string>().substr(i2.gold.get<std::string>().size() - 22),
            "check(truncate_number)");
}

TEST(TaskPrompts, HumanEvalInstructIsChat) {
  auto task = make_task("humaneval_instruct");
  TaskOptions o = prompt_opts();
  o.limit = 3;
  auto insts = task->instances(o);
  ASSERT_EQ(insts.size(), 3u);
  ASSERT_TRUE(insts[2].gen.chat);
  ASSERT_EQ(insts[2].gen.messages.size(), 1u);
  EXPECT_EQ(
      insts[2].gen.messages[0].content,
      "Write a solution to the following problem and make sure that it passes the "
      "tests:\n```\n\ndef truncate_number(number: float) -> float:\n    \"\"\" Given a positive "
      "floating point number, it can be decomposed into\n    and integer part (largest "
      "integer smaller than given number) and decimals\n    (leftover part always smaller "
      "than 1).\n\n    Return the decimal part of the number.\n    >>> truncate_number(3.5)\n"
      "    0.5\n    \"\"\"\n");
  // lm-eval's gen_prefix pre-fills the answer with the prompt itself.
  const std::string prompt = insts[2].doc_meta["prompt"];
  EXPECT_EQ(insts[2].gen.assistant_prefix,
            "Here is the completed function:\n```python\n" + prompt + "\n");
  EXPECT_EQ(insts[2].gen.stop,
            (std::vector<std::string>{"\nclass", "\ndef", "\n#", "\nif", "\nprint"}));
  EXPECT_EQ(insts[2].gen.max_tokens, 1024);
}

TEST(TaskPrompts, GsmPlusGroupsAndCriticalThinking) {
  auto task = make_task("gsm_plus");
  auto insts = task->instances(prompt_opts());
  ASSERT_EQ(insts.size(), 2400u);
  std::map<std::string, int> groups;
  for (const auto& i : insts) ++groups[i.group];
  EXPECT_EQ(groups.size(), 8u);
  for (const auto& [g, n] : groups) EXPECT_EQ(n, 300) << g;
  EXPECT_EQ(groups.count("distraction insertion"), 1u);
  const auto& i7 = insts[7];
  EXPECT_EQ(i7.group, "critical thinking");
  EXPECT_EQ(i7.gold, "None");
  std::string q =
      "Three of the women at the cocktail party are wearing 4 inch heels and three are "
      "wearing other-inch heels. What is the average height of heels at this party?";
  EXPECT_EQ(i7.gen.prompt.substr(i7.gen.prompt.size() - q.size() - 20),
            "\n\nQuestion: " + q + "\nAnswer:");
}

TEST(TaskPrompts, GsmSymbolicP2Doc0) {
  auto task = make_task("gsm_symbolic_p2");
  auto insts = task->instances(prompt_opts());
  ASSERT_EQ(insts.size(), 2500u);
  EXPECT_EQ(insts[0].gold, "32.5");
  std::string tail =
      "\n\nQuestion: Yara saw a 32-foot whale with 16 remoras, each 12 inches long attached to it. "
      "Then, 1/2 of the remoras swam away. Later, Yara saw another 10-foot whale with 6 remoras, "
      "each 8 inches long, attached to it. On average, what percentage of each whale's body length "
      "is covered by the remoras?\nAnswer:";
  EXPECT_EQ(insts[0].gen.prompt.substr(insts[0].gen.prompt.size() - tail.size()), tail);
}

TEST(TaskPrompts, ChatSystemPromptAndCotHint) {
  auto task = make_task("gsm8k_cot");
  TaskOptions o = prompt_opts();
  o.limit = 1;
  o.apply_chat_template = true;
  o.system_prompt = "You are a careful solver.";
  o.cot_hint = true;
  auto g = task->instances(o)[0].gen;
  ASSERT_TRUE(g.chat);
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[0].role, "system");
  EXPECT_EQ(g.messages[0].content, "You are a careful solver.");
  EXPECT_EQ(g.messages[1].content,
            std::string(kCotPrefix) + "Q: " + kJanet + "\nA: Let's think step by step.");
  o.fewshot_as_multiturn = true;
  auto m = task->instances(o)[0].gen.messages;
  ASSERT_EQ(m.size(), 18u);
  EXPECT_EQ(m[1].content,
            "Q: There are 15 trees in the grove. Grove workers will plant trees in "
            "the grove today. After they are done, there will be 21 trees. How many "
            "trees did the grove workers plant today?\nA:");
  EXPECT_EQ(m[2].content,
            "There are 15 trees originally. Then there were 21 trees after some more "
            "were planted. So there must have been 21 - 15 = 6. The answer is 6.");
  // Raw prompt with a system prompt: text + "\n\n" in front.
  o.apply_chat_template = false;
  o.cot_hint = false;
  EXPECT_EQ(task->instances(o)[0].gen.prompt,
            "You are a careful solver.\n\n" + std::string(kCotPrefix) + "Q: " + kJanet + "\nA:");
}

TEST(TaskPrompts, TransformsAreDeterministicAndRecorded) {
  auto task = make_task("gsm8k_cot");
  TaskOptions o = prompt_opts();
  o.limit = 5;
  o.transforms = {"misleading-hint", "shuffled-fewshot"};
  auto a = task->instances(o), b = task->instances(o);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].gen.prompt, b[i].gen.prompt);
  EXPECT_NE(a[0].gen.prompt.find("farmers' market? I think the answer is "), std::string::npos);
  EXPECT_EQ(a[0].gen.prompt.find("I think the answer is 18."), std::string::npos);
  // Shuffled: same 8 exemplars, different order for some document.
  auto plain = task->instances(prompt_opts());
  bool reordered = false;
  for (size_t i = 0; i < a.size(); ++i)
    reordered = reordered || a[i].gen.prompt.substr(0, 200) != plain[i].gen.prompt.substr(0, 200);
  EXPECT_TRUE(reordered);
  auto cfg = task->config(o);
  EXPECT_EQ(cfg["transforms"], nlohmann::json({"misleading-hint", "shuffled-fewshot"}));
  EXPECT_NE(cfg.dump(), task->config(prompt_opts()).dump());
  // Transforms are rejected where they make no sense.
  TaskOptions s = prompt_opts();
  s.transforms = {"typos:0.1"};
  EXPECT_THROW(make_task("sciq")->instances(s), Error);
  EXPECT_THROW(make_task("humaneval")->config(s), Error);
}

TEST(TaskPrompts, MissingDataAndUnknownTask) {
  TaskOptions o;
  testing::ScratchDir empty;
  o.data_dir = empty.path;
  for (const auto& name : task_names()) {
    try {
      make_task(name)->instances(o);
      ADD_FAILURE() << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("reasonvec data fetch"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(make_task("mmlu"), Error);
}

}  // namespace
}  // namespace rv::eval
