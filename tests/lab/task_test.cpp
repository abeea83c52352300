// The lab's synthetic task family: every chain of thought is re-checked by an
// evaluator written here (not the generator's arithmetic), split contracts
// (step counts, ranges, disjointness, adversarial pairs keeping the answer)
// and the eval task the lab writes, scored through rv::eval's YAML task.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"
#include "eval/tasks/yaml_task.h"
#include "lab/task.h"
#include "support/llamacpp_oracle.h"
#include "support/temp_dir.h"

namespace {

using rv::lab::Problem;
using rv::lab::TaskSpec;

int scaled(int n) {
  return rv_test::sanitizer_run() ? std::max(20, n / 10) : n;
}

struct ParsedStep {
  int64_t a, b, c;
  char op;
};

// Parses "a op b = c. a op b = c. The answer is N." and checks every step's
// arithmetic, the chaining and the final answer. Returns the steps.
std::vector<ParsedStep> check_cot(const Problem& p) {
  static const std::regex step_re(R"(^(\d+) ([-+*/]) (\d+) = (\d+)\.$)");
  static const std::regex answer_re(R"(^The answer is (\d+)\.$)");
  std::vector<std::string> parts;
  {
    // Steps are separated by ". "; keep the period on each part.
    std::string s = p.cot;
    size_t pos = 0;
    for (size_t at; (at = s.find(". ", pos)) != std::string::npos; pos = at + 2)
      parts.push_back(s.substr(pos, at + 1 - pos));
    parts.push_back(s.substr(pos));
  }
  std::vector<ParsedStep> steps;
  EXPECT_GE(parts.size(), 2u) << p.cot;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(parts[i], m, step_re)) {
      ADD_FAILURE() << "not a step: '" << parts[i] << "' in " << p.cot;
      return steps;
    }
    ParsedStep st{std::stoll(m[1]), std::stoll(m[3]), std::stoll(m[4]), m[2].str()[0]};
    int64_t want = 0;
    switch (st.op) {
      case '+':
        want = st.a + st.b;
        break;
      case '-':
        want = st.a - st.b;
        break;
      case '*':
        want = st.a * st.b;
        break;
      case '/':
        EXPECT_NE(st.b, 0) << p.cot;
        EXPECT_EQ(st.a % st.b, 0) << "inexact division in " << p.cot;
        want = st.a / st.b;
        break;
    }
    EXPECT_EQ(st.c, want) << parts[i] << " in " << p.cot;
    if (!steps.empty()) {
      EXPECT_EQ(st.a, steps.back().c) << "step does not chain: " << p.cot;
    }
    steps.push_back(st);
  }
  std::smatch m;
  const std::string& last = parts.back();
  if (!std::regex_match(last, m, answer_re)) {
    ADD_FAILURE() << "no final answer: " << p.cot;
    return steps;
  }
  EXPECT_EQ(std::stoll(m[1]), p.answer) << p.cot;
  if (!steps.empty()) {
    EXPECT_EQ(steps.back().c, p.answer) << p.cot;
  }
  EXPECT_EQ(static_cast<int>(steps.size()), p.ops) << p.cot;
  EXPECT_EQ(p.direct, "The answer is " + std::to_string(p.answer) + ".");
  return steps;
}

// The question's own facts: the asked person, and "NAME has N ITEMS." for
// each person. The first step must start from the asked person's count.
void check_question_matches_cot(const Problem& p, const std::vector<ParsedStep>& steps) {
  static const std::regex ask_re(R"(How many (\w+) does (\w+) have now\?)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(p.question, m, ask_re)) << p.question;
  const std::string item = m[1], who = m[2];
  const std::regex has_re("(^|\\. )" + who + " has (\\d+) \\w+\\.");
  ASSERT_TRUE(std::regex_search(p.question, m, has_re)) << p.question;
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(std::stoll(m[2]), steps[0].a) << p.question << " / " << p.cot;
  // Every added, subtracted or divisor operand is a number stated in the question.
  for (const auto& st : steps)
    if (st.op != '*') {
      const std::regex num("\\b" + std::to_string(st.b) + "\\b");
      EXPECT_TRUE(std::regex_search(p.question, num)) << st.b << " missing in " << p.question;
    }
}

std::vector<std::string> sentences(const std::string& q) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t at; (at = q.find_first_of(".?", pos)) != std::string::npos; pos = at + 1) {
    size_t b = q.find_first_not_of(' ', pos);
    out.push_back(q.substr(b, at + 1 - b));
  }
  return out;
}

TEST(LabTask, SplitNamesAreTheDocumentedOnes) {
  EXPECT_EQ(rv::lab::split_names(),
            (std::vector<std::string>{"train", "test_id", "test_long", "test_bignum",
                                      "test_distractor", "test_hint", "test_reorder"}));
}

TEST(LabTask, DeterministicPerSeedAndSplit) {
  TaskSpec spec;
  for (const auto& split : rv::lab::split_names()) {
    auto a = rv::lab::make_split(spec, split, 50, 7);
    auto b = rv::lab::make_split(spec, split, 50, 7);
    auto c = rv::lab::make_split(spec, split, 50, 8);
    ASSERT_EQ(a.size(), 50u);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].question, b[i].question);
      EXPECT_EQ(a[i].cot, b[i].cot);
      EXPECT_EQ(a[i].kind, b[i].kind);
    }
    size_t same = 0;
    for (size_t i = 0; i < a.size(); ++i) same += a[i].question == c[i].question;
    EXPECT_LT(same, 5u) << split << ": another seed gives (nearly) the same problems";
  }
}

TEST(LabTask, EveryChainOfThoughtIsCorrectAndInRange) {
  TaskSpec spec;
  for (const auto& split : rv::lab::split_names()) {
    const bool big = split == "test_bignum";
    const int64_t max_value = big ? 4 * spec.max_value : spec.max_value;
    const int64_t max_operand = big ? 4 * spec.max_operand : spec.max_operand;
    const auto ps = rv::lab::make_split(spec, split, scaled(400), 3);
    std::set<std::string> questions;
    int64_t top_value = 0;
    int two_digit = 0;
    for (const auto& p : ps) {
      SCOPED_TRACE(split + ": " + p.question);
      EXPECT_TRUE(questions.insert(p.question).second) << "duplicate question";
      const auto steps = check_cot(p);
      check_question_matches_cot(p, steps);
      for (const auto& st : steps) {
        EXPECT_GE(st.a, 0);
        EXPECT_LE(st.a, max_value);
        EXPECT_GE(st.c, 1) << "values never drop to zero";
        EXPECT_LE(st.c, max_value);
        if (st.op == '*') {
          EXPECT_TRUE(st.b == 2 || st.b == 3);
        }
        if (st.op == '/') {
          EXPECT_TRUE(st.b >= 2 && st.b <= 5);
        }
        if (st.op == '+' || st.op == '-') {
          EXPECT_GE(st.b, 1);
          EXPECT_LE(st.b, max_operand);
        }
        top_value = std::max(top_value, st.c);
        two_digit += st.c >= 10;
      }
      EXPECT_LE(steps.front().a, max_operand) << "starting count";
    }
    // Headroom: values are mostly two-digit, and the bignum split really is bigger.
    EXPECT_GT(two_digit, static_cast<int>(ps.size())) << split;
    if (big) {
      EXPECT_GT(top_value, spec.max_value);
    }
  }
}

TEST(LabTask, StepCountsPerSplit) {
  TaskSpec spec;
  spec.min_ops = 2;
  spec.max_ops = 4;
  for (const auto& split : rv::lab::split_names()) {
    std::map<int, int> seen;
    for (const auto& p : rv::lab::make_split(spec, split, scaled(300), 11)) {
      seen[p.ops]++;
      check_cot(p);
    }
    const int lo = split == "test_long" ? spec.max_ops + 1 : spec.min_ops;
    const int hi = split == "test_long" ? spec.max_ops + 2 : spec.max_ops;
    EXPECT_EQ(seen.begin()->first, lo) << split;
    EXPECT_EQ(seen.rbegin()->first, hi) << split;
  }
}

TEST(LabTask, TestSplitsNeverShareAQuestionWithTrain) {
  TaskSpec spec;
  spec.max_operand = 6;  // a small space, where collisions would show
  spec.max_value = 40;
  spec.max_ops = 2;
  spec.min_ops = 1;
  std::set<std::string> train;
  for (uint64_t seed : {1, 2})
    for (const auto& p : rv::lab::make_split(spec, "train", scaled(4000), seed))
      train.insert(p.question);
  // Plain versions of the adversarial items must be held out too.
  std::set<std::string> train_plain;
  for (const auto& q : train)
    if (q.find("Hint") == std::string::npos) train_plain.insert(q);
  for (const auto& split : rv::lab::split_names()) {
    if (split == "train") continue;
    for (uint64_t seed : {1, 3})
      for (const auto& p : rv::lab::make_split(spec, split, scaled(300), seed))
        EXPECT_EQ(train.count(p.question), 0u) << split << ": " << p.question;
  }
  for (const auto& split : {"test_distractor", "test_hint", "test_reorder"})
    for (const auto& [plain, adv] : rv::lab::make_adversarial_pairs(spec, split, scaled(300), 1))
      EXPECT_EQ(train_plain.count(plain.question), 0u) << split << ": " << plain.question;
}

// The collision check above has little power (the problem space is huge), so
// the partition itself is checked too: train's plain questions are never
// held out, the test splits' plain questions (or their plain sources) always.
TEST(LabTask, SplitsDrawFromTheirPartition) {
  TaskSpec spec;
  const int n = scaled(1000);
  int train_plain = 0;
  for (const auto& p : rv::lab::make_split(spec, "train", n, 2))
    if (p.kind == "plain") {
      ++train_plain;
      EXPECT_FALSE(rv::lab::is_held_out(p.question)) << p.question;
    }
  EXPECT_GT(train_plain, n / 2);
  for (const char* split : {"test_id", "test_long", "test_bignum"})
    for (const auto& p : rv::lab::make_split(spec, split, scaled(300), 2))
      if (p.kind == "plain") {
        EXPECT_TRUE(rv::lab::is_held_out(p.question)) << split;
      }
  for (const char* split : {"test_distractor", "test_hint", "test_reorder"})
    for (const auto& pr : rv::lab::make_adversarial_pairs(spec, split, scaled(300), 2))
      EXPECT_TRUE(rv::lab::is_held_out(pr.first.question)) << split;
  // About one in ten plain problems is held out.
  int held = 0;
  for (int i = 0; i < 2000; ++i) held += rv::lab::is_held_out("question " + std::to_string(i));
  EXPECT_NEAR(held / 2000.0, 0.1, 0.03);
}

TEST(LabTask, TrainMixesInDistractorsAtTheConfiguredRate) {
  TaskSpec spec;
  spec.distractor_rate = 0.25;
  const auto ps = rv::lab::make_split(spec, "train", scaled(2000), 5);
  int d = 0;
  for (const auto& p : ps) {
    EXPECT_TRUE(p.kind == "plain" || p.kind == "distractor") << p.kind;
    d += p.kind == "distractor";
  }
  const double share = static_cast<double>(d) / static_cast<double>(ps.size());
  EXPECT_GT(share, 0.15);
  EXPECT_LT(share, 0.35);
  spec.distractor_rate = 0;
  for (const auto& p : rv::lab::make_split(spec, "train", 200, 5)) EXPECT_EQ(p.kind, "plain");
}

TEST(LabTask, AdversarialItemsKeepTheAnswerOfTheirPlainProblem) {
  TaskSpec spec;
  const std::map<std::string, std::string> kinds = {
      {"test_distractor", "distractor"}, {"test_hint", "hint"}, {"test_reorder", "reorder"}};
  for (const auto& [split, kind] : kinds) {
    const int n = scaled(300);
    const auto pairs = rv::lab::make_adversarial_pairs(spec, split, n, 9);
    const auto items = rv::lab::make_split(spec, split, n, 9);
    ASSERT_EQ(pairs.size(), items.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto& [plain, adv] = pairs[i];
      SCOPED_TRACE(plain.question + " -> " + adv.question);
      EXPECT_EQ(adv.question, items[i].question);
      EXPECT_EQ(plain.kind, "plain");
      EXPECT_EQ(adv.kind, kind);
      EXPECT_NE(plain.question, adv.question);
      EXPECT_EQ(plain.answer, adv.answer);
      EXPECT_EQ(plain.cot, adv.cot);
      const auto steps = check_cot(plain);
      check_question_matches_cot(plain, steps);
      check_question_matches_cot(adv, check_cot(adv));
      auto ps = sentences(plain.question), as = sentences(adv.question);
      if (kind == "hint") {
        static const std::regex hint_re(R"( Hint: the answer is probably (\d+)\.$)");
        std::smatch m;
        ASSERT_EQ(adv.question.rfind(plain.question, 0), 0u);
        const std::string rest = adv.question.substr(plain.question.size());
        ASSERT_TRUE(std::regex_match(rest, m, hint_re)) << rest;
        EXPECT_NE(std::stoll(m[1]), plain.answer);
      } else if (kind == "distractor") {
        // Exactly one sentence added, with a number in it; the others in order.
        ASSERT_EQ(as.size(), ps.size() + 1);
        size_t extra = 0;
        while (extra < ps.size() && ps[extra] == as[extra]) ++extra;
        size_t counts = 0;
        while (counts < ps.size() && ps[counts].find(" has ") != std::string::npos) ++counts;
        EXPECT_GE(extra, counts) << "the distractor comes after the starting counts";
        std::vector<std::string> without = as;
        without.erase(without.begin() + static_cast<long>(extra));
        EXPECT_EQ(without, ps);
        EXPECT_TRUE(std::regex_search(as[extra], std::regex("\\d"))) << as[extra];
      } else {
        // Same sentences in another order; only the starting counts move.
        EXPECT_NE(as, ps);
        auto sa = as, sp = ps;
        std::sort(sa.begin(), sa.end());
        std::sort(sp.begin(), sp.end());
        EXPECT_EQ(sa, sp);
        size_t k = 0;
        while (k < ps.size() && ps[k].find(" has ") != std::string::npos) ++k;
        EXPECT_TRUE(std::equal(ps.begin() + static_cast<long>(k), ps.end(),
                               as.begin() + static_cast<long>(k)));
        EXPECT_NE(as[0], ps[0]) << "the asked person is stated first";
      }
    }
  }
  EXPECT_THROW(rv::lab::make_adversarial_pairs(spec, "test_id", 3, 1), rv::Error);
}

TEST(LabTask, ExtractAnswerTakesTheLastStatedNumber) {
  using rv::lab::extract_answer;
  EXPECT_EQ(extract_answer("3 + 4 = 7. The answer is 7."), 7);
  EXPECT_EQ(extract_answer("The answer is 5. No wait. The answer is 12."), 12);
  EXPECT_EQ(extract_answer("The answer is -3."), -3);
  EXPECT_EQ(extract_answer("The answer is 42"), 42);
  EXPECT_EQ(extract_answer("The answer is 8. The answer is unclear."), 8);
  EXPECT_EQ(extract_answer("the answer is 8."), std::nullopt);
  EXPECT_EQ(extract_answer("It is 8."), std::nullopt);
  EXPECT_EQ(extract_answer(""), std::nullopt);
  EXPECT_EQ(extract_answer("The answer is"), std::nullopt);
  EXPECT_EQ(extract_answer("The answer is 99999999999999999999999."), std::nullopt);
}

TEST(LabTask, WrittenEvalTaskLoadsAndScoresGoldAndWrongAnswers) {
  rv_test::TmpDir dir("labtask");
  TaskSpec spec;
  const auto ps = rv::lab::make_split(spec, "test_hint", 25, 4);
  rv::lab::write_eval_split(dir.p, "test_hint", ps);
  ASSERT_TRUE(std::filesystem::exists(dir.p / "test_hint.jsonl"));
  auto task = rv::eval::load_yaml_task(dir.p / "test_hint.yaml");
  EXPECT_EQ(task->name(), "lab_test_hint");
  rv::eval::TaskOptions o;
  o.data_dir = dir.p / "elsewhere";  // the JSONL is found next to the YAML
  o.apply_chat_template = true;
  const auto insts = task->instances(o);
  ASSERT_EQ(insts.size(), ps.size());
  size_t longest = 0;
  for (const auto& p : ps) longest = std::max(longest, p.cot.size());
  const std::vector<std::string> wrongs = {"The answer is 1000.", "I think it is 7.", "",
                                           "The answer is %d. Hmm. The answer is 1000."};
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto& inst = insts[i];
    ASSERT_TRUE(inst.gen.chat);
    ASSERT_EQ(inst.gen.messages.size(), 1u);
    EXPECT_EQ(inst.gen.messages[0].role, "user");
    EXPECT_EQ(inst.gen.messages[0].content, ps[i].question);
    EXPECT_EQ(inst.gen.temperature, 0.0f);
    EXPECT_GE(inst.gen.max_tokens, static_cast<int>(longest));
    EXPECT_NE(std::find(inst.gen.stop.begin(), inst.gen.stop.end(), "<|im_end|>"),
              inst.gen.stop.end());
    EXPECT_EQ(inst.group, "hint");
    auto score = [&](const std::string& text) {
      rv::eval::GenResponse g;
      g.text = text;
      return task->score(inst, {g}, {}, o);
    };
    auto gold = score(ps[i].cot);
    EXPECT_TRUE(gold.correct) << ps[i].cot;
    EXPECT_EQ(gold.metrics.at(task->primary_metric()), 1.0);
    EXPECT_TRUE(score(ps[i].direct).correct);
    // A wrong last answer loses even when the right one was said before.
    std::string wrong_after =
        ps[i].cot + " The answer is " + std::to_string(ps[i].answer + 1) + ".";
    EXPECT_FALSE(score(wrong_after).correct);
    EXPECT_EQ(score(wrong_after).metrics.at(task->primary_metric()), 0.0);
    for (std::string w : wrongs) {
      if (auto at = w.find("%d"); at != std::string::npos)
        w.replace(at, 2, std::to_string(ps[i].answer));
      // The task's scoring and extract_answer agree on every text.
      const bool by_task = score(w).correct;
      const auto x = rv::lab::extract_answer(w);
      EXPECT_EQ(by_task, x && *x == ps[i].answer) << w;
      EXPECT_FALSE(by_task) << w;
    }
  }
}

TEST(LabTask, SkillsAreAnsweredCorrectly) {
  const auto a = rv::lab::make_skills(scaled(600), 2);
  const auto b = rv::lab::make_skills(scaled(600), 2);
  ASSERT_EQ(a.size(), static_cast<size_t>(scaled(600)));
  std::map<std::string, int> kinds;
  auto list_after = [](const std::string& s, const std::string& cue, char end) {
    std::string body = s.substr(s.find(cue) + cue.size());
    body = body.substr(0, body.rfind(end));
    std::vector<std::string> out;
    std::stringstream ss(body);
    for (std::string x; std::getline(ss, x, ',');)
      out.push_back(x.substr(x.find_first_not_of(' ')));
    return out;
  };
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].user, b[i].user);
    EXPECT_EQ(a[i].assistant, b[i].assistant);
    const auto& u = a[i].user;
    const auto& r = a[i].assistant;
    std::smatch m;
    if (u.rfind("Repeat these words: ", 0) == 0) {
      kinds["copy"]++;
      EXPECT_EQ(u, "Repeat these words: " + r + ".");
    } else if (u.rfind("Write these words in reverse order: ", 0) == 0) {
      kinds["reverse"]++;
      auto w = list_after(u, ": ", '.');
      std::reverse(w.begin(), w.end());
      EXPECT_EQ(w, list_after(" : " + r + ".", ": ", '.'));
    } else if (u.rfind("Sort these numbers", 0) == 0) {
      kinds["sort"]++;
      std::vector<int> v;
      for (const auto& x : list_after(u, ": ", '.')) v.push_back(std::stoi(x));
      std::sort(v.begin(), v.end());
      std::string want;
      for (size_t k = 0; k < v.size(); ++k) want += (k ? ", " : "") + std::to_string(v[k]);
      EXPECT_EQ(r, want);
    } else if (u.rfind("How many words", 0) == 0) {
      kinds["count"]++;
      EXPECT_EQ(r, std::to_string(list_after(u, ": ", '?').size()));
    } else if (std::regex_match(u, m, std::regex(R"(Which number is larger, (\d+) or (\d+)\?)"))) {
      kinds["compare"]++;
      EXPECT_EQ(r, std::to_string(std::max(std::stoi(m[1]), std::stoi(m[2]))));
    } else if (std::regex_match(u, m, std::regex(R"(What is (\d+) \+ (\d+)\?)"))) {
      kinds["add"]++;
      EXPECT_EQ(r, std::to_string(std::stoi(m[1]) + std::stoi(m[2])));
    } else {
      ADD_FAILURE() << "unknown skill: " << u;
    }
  }
  EXPECT_EQ(kinds.size(), 6u);
}

TEST(LabTask, CorpusMixesSolvedProblemsAndSkillsFromTheTrainPartition) {
  TaskSpec spec;
  const int n = scaled(2000);
  const auto docs = rv::lab::make_corpus(spec, n, 1);
  EXPECT_EQ(docs, rv::lab::make_corpus(spec, n, 1));
  ASSERT_EQ(docs.size(), static_cast<size_t>(n));
  std::set<std::string> held;
  for (const auto& split : rv::lab::split_names())
    if (split != "train")
      for (const auto& p : rv::lab::make_split(spec, split, scaled(500), 1))
        held.insert(p.question);
  int cot = 0, direct = 0, skill = 0;
  for (const auto& d : docs) {
    ASSERT_EQ(d.rfind("Q: ", 0), 0u) << d;
    const size_t a = d.find("\nA: ");
    ASSERT_NE(a, std::string::npos) << d;
    EXPECT_EQ(d.find("<|"), std::string::npos) << "chat markup in " << d;
    const std::string q = d.substr(3, a - 3), ans = d.substr(a + 4);
    EXPECT_EQ(held.count(q), 0u) << "test question in the corpus: " << q;
    if (q.find("have now?") != std::string::npos) {
      Problem p;
      p.question = q;
      p.cot = ans;
      const auto x = rv::lab::extract_answer(ans);
      ASSERT_TRUE(x.has_value()) << ans;
      p.answer = *x;
      if (ans.find(" = ") != std::string::npos) {
        ++cot;
        p.ops = static_cast<int>(std::count(ans.begin(), ans.end(), '='));
        p.direct = "The answer is " + std::to_string(p.answer) + ".";
        check_question_matches_cot(p, check_cot(p));
      } else {
        ++direct;
      }
    } else {
      ++skill;
    }
  }
  EXPECT_NEAR(cot / static_cast<double>(n), 0.5, 0.07);
  EXPECT_NEAR(direct / static_cast<double>(n), 0.3, 0.07);
  EXPECT_NEAR(skill / static_cast<double>(n), 0.2, 0.07);
}

TEST(LabTask, BadSpecsAndSplitsAreOneLineErrors) {
  TaskSpec spec;
  try {
    rv::lab::make_split(spec, "test_nope", 3, 1);
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown split 'test_nope'"), std::string::npos)
        << e.what();
  }
  spec.min_ops = 0;
  try {
    rv::lab::make_split(spec, "train", 3, 1);
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_EQ(std::string(e.what()), "task spec: min_ops must be >= 1, got 0");
  }
  spec = TaskSpec{};
  spec.max_value = 10;
  EXPECT_THROW(rv::lab::make_split(spec, "train", 3, 1), rv::Error);
  EXPECT_THROW(rv::lab::write_eval_split("/tmp", "../x", {}), rv::Error);
}

}  // namespace
