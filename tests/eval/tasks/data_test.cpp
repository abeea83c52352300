// Loaders on the real files (row counts from SOURCES.md) and bad input.
#include <gtest/gtest.h>
#include <zlib.h>

#include <functional>

#include "common/error.h"
#include "eval/tasks/data.h"
#include "eval/tasks/task.h"
#include "task_test_util.h"

namespace rv::eval {
namespace {

using testing::shared_data;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DataReal, RowCountsMatchSources) {
  auto d = shared_data();
  EXPECT_EQ(load_jsonl(d / "gsm8k/test.jsonl", {"question", "answer"}).size(), 1319u);
  EXPECT_EQ(load_jsonl(d / "gsm8k/train.jsonl", {"question", "answer"}).size(), 7473u);
  auto he = load_jsonl(d / "humaneval/HumanEval.jsonl.gz", {"task_id", "prompt", "test"});
  ASSERT_EQ(he.size(), 164u);
  EXPECT_EQ(he[0]["task_id"], "HumanEval/0");
  EXPECT_EQ(he[163]["task_id"], "HumanEval/163");
  auto sciq = load_json_records(d / "sciq/sciq_test.json", {"question", "support"});
  ASSERT_EQ(sciq.size(), 1000u);
  EXPECT_EQ(sciq[0]["correct_answer"], "oxidants");
  EXPECT_EQ(load_jsonl(d / "gsm-plus/gsmplus_testmini.jsonl", {"perturbation_type"}).size(), 2400u);
  // No newline after the last row: still 2500 records.
  EXPECT_EQ(load_jsonl(d / "gsm-symbolic/GSM_p2.jsonl").size(), 2500u);
  size_t bbh = 0;
  for (const auto& t : bbh_subtasks()) bbh += load_bbh_examples(d, t).size();
  EXPECT_EQ(bbh_subtasks().size(), 27u);
  EXPECT_EQ(bbh, 6511u);
  for (const auto& name : task_names())
    for (const auto& rel : make_task(name)->data_files())
      EXPECT_NO_THROW(require_data_file(d, rel)) << name << ": " << rel;
}

TEST(DataReal, BbhPromptDropsCanaryHeader) {
  std::string p = load_bbh_cot_prompt(shared_data(), "boolean_expressions");
  EXPECT_EQ(
      p.rfind(
          "Evaluate the result of a random Boolean expression.\n\nQ: not ( ( not not True ) ) is\n"
          "A: Let's think step by step.\n",
          0),
      0u);
  EXPECT_EQ(p.substr(p.size() - 22), "So the answer is True.");
}

TEST(DataErrors, MissingFileSaysHowToFetch) {
  testing::ScratchDir dir;
  std::string msg = error_of([&] { require_data_file(dir.path, "gsm8k/test.jsonl"); });
  EXPECT_NE(msg.find((dir.path / "gsm8k/test.jsonl").string() + ": missing"), std::string::npos);
  EXPECT_NE(msg.find("reasonvec data fetch"), std::string::npos);
  EXPECT_NE(msg.find("--data-dir"), std::string::npos);
}

TEST(DataErrors, CorruptJsonlNamesLine) {
  testing::ScratchDir dir;
  testing::write_text(dir.path / "x.jsonl",
                      "{\"question\": \"a\", \"answer\": \"b\"}\n{\"question\": oops\n");
  std::string msg = error_of([&] { load_jsonl(dir.path / "x.jsonl"); });
  EXPECT_NE(msg.find("x.jsonl:2: invalid JSON"), std::string::npos) << msg;
  testing::write_text(dir.path / "y.jsonl", "{\"question\": \"a\"}\n");
  msg = error_of([&] { load_jsonl(dir.path / "y.jsonl", {"question", "answer"}); });
  EXPECT_NE(msg.find("y.jsonl:1: record has no field \"answer\""), std::string::npos) << msg;
  testing::write_text(dir.path / "z.jsonl", "[1, 2]\n");
  msg = error_of([&] { load_jsonl(dir.path / "z.jsonl"); });
  EXPECT_NE(msg.find("z.jsonl:1: record is not a JSON object"), std::string::npos) << msg;
  testing::write_text(dir.path / "empty.jsonl", "\n\n");
  EXPECT_NE(error_of([&] { load_jsonl(dir.path / "empty.jsonl"); }).find("no records"),
            std::string::npos);
}

TEST(DataErrors, TruncatedGzip) {
  testing::ScratchDir dir;
  std::string full = testing::read_text(shared_data() / "humaneval/HumanEval.jsonl.gz");
  testing::write_text(dir.path / "HumanEval.jsonl.gz", full.substr(0, full.size() / 2));
  std::string msg = error_of([&] { load_jsonl(dir.path / "HumanEval.jsonl.gz"); });
  EXPECT_NE(msg.find("HumanEval.jsonl.gz"), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("gzip") != std::string::npos ||
              msg.find("invalid JSON") != std::string::npos)
      << msg;
}

TEST(DataFormats, SciqAsJsonlOrArray) {
  testing::ScratchDir dir;
  testing::write_text(dir.path / "a.json", "  [{\"question\": \"q1\"}, {\"question\": \"q2\"}]");
  testing::write_text(dir.path / "b.jsonl", "{\"question\": \"q1\"}\n{\"question\": \"q2\"}");
  auto a = load_json_records(dir.path / "a.json", {"question"});
  auto b = load_json_records(dir.path / "b.jsonl", {"question"});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a, b);
  testing::write_text(dir.path / "c.json", "[{\"question\": 1}, 5]");
  EXPECT_NE(
      error_of([&] { load_json_records(dir.path / "c.json"); }).find("element 1: record is not"),
      std::string::npos);
}

TEST(DataFormats, GzipRoundTrip) {
  testing::ScratchDir dir;
  std::string text = "{\"k\": \"v\\u00e9\"}\n{\"k\": \"w\"}\n";
  gzFile gz = gzopen((dir.path / "t.jsonl.gz").c_str(), "wb");
  gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
  gzclose(gz);
  auto recs = load_jsonl(dir.path / "t.jsonl.gz", {"k"});
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0]["k"], "v\xc3\xa9");
}

TEST(DataErrors, BbhPromptWithoutSeparator) {
  testing::ScratchDir dir;
  testing::write_text(dir.path / "bbh/cot-prompts/navigate.txt", "no header here\nQ: x");
  EXPECT_NE(error_of([&] { load_bbh_cot_prompt(dir.path, "navigate"); }).find("no \"-----\" line"),
            std::string::npos);
  testing::write_text(dir.path / "bbh/tasks/navigate.json", "{\"examples\": [{\"input\": 1}]}");
  EXPECT_NE(error_of([&] { load_bbh_examples(dir.path, "navigate"); }).find("example 0"),
            std::string::npos);
}

}  // namespace
}  // namespace rv::eval
