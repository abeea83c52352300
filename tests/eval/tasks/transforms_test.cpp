// Adversarial transforms: deterministic, seeded, and doing what they say.
#include <gtest/gtest.h>

#include "common/error.h"
#include "eval/tasks/transforms.h"

namespace rv::eval {
namespace {

const char* kQ =
    "Natalia sold clips to 48 of her friends in April. She sold half as many clips in May. How "
    "many clips did Natalia sell altogether in April and May?";

TEST(Transforms, ParseAndCanonical) {
  auto ts = parse_transforms({"distractor", "typos:0.1", "misleading-hint", "shuffled-fewshot"});
  ASSERT_EQ(ts.size(), 4u);
  EXPECT_EQ(ts[1].kind, "typos");
  EXPECT_DOUBLE_EQ(ts[1].rate, 0.1);
  EXPECT_EQ(ts[1].canonical(), "typos:0.1");
  EXPECT_EQ(parse_transforms({"typos"})[0].canonical(), "typos:0.05");
  EXPECT_THROW(parse_transforms({"typos:abc"}), Error);
  EXPECT_THROW(parse_transforms({"typos:2"}), Error);
  EXPECT_THROW(parse_transforms({"distractor", "distractor"}), Error);
  try {
    parse_transforms({"paraphrase"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("transform 'paraphrase': unknown"), std::string::npos);
  }
}

TEST(Transforms, SeedsAreStableAndDistinct) {
  // FNV-1a (64-bit) over "1234\xff" "7\xff" "typos\xff", top bit cleared, as
  // computed by a few lines of Python.
  EXPECT_EQ(transform_seed(1234, "7", "typos"), 8524581053434873382ull);
  EXPECT_NE(transform_seed(1234, "7", "typos"), transform_seed(1234, "8", "typos"));
  EXPECT_NE(transform_seed(1234, "7", "typos"), transform_seed(1235, "7", "typos"));
  EXPECT_NE(transform_seed(1234, "7", "typos"), transform_seed(1234, "7", "distractor"));
}

TEST(Transforms, DistractorGoesBeforeTheQuestionSentence) {
  std::string out = add_distractor(kQ, 42);
  EXPECT_EQ(out, add_distractor(kQ, 42));  // deterministic
  std::string head =
      "Natalia sold clips to 48 of her friends in April. She sold half as many clips in May. ";
  std::string tail = "How many clips did Natalia sell altogether in April and May?";
  ASSERT_EQ(out.rfind(head, 0), 0u) << out;
  ASSERT_EQ(out.substr(out.size() - tail.size()), tail) << out;
  std::string inserted = out.substr(head.size(), out.size() - head.size() - tail.size());
  EXPECT_GT(inserted.size(), 10u);
  EXPECT_EQ(inserted.back(), ' ');
  EXPECT_EQ(inserted[inserted.size() - 2], '.');
  EXPECT_NE(inserted.find_first_of("0123456789"), std::string::npos) << inserted;
  bool differs = false;
  for (uint64_t s = 0; s < 20; ++s) differs = differs || add_distractor(kQ, s) != out;
  EXPECT_TRUE(differs);
  // A single sentence gets the distractor in front.
  std::string one = add_distractor("How much is 2 + 2?", 1);
  EXPECT_EQ(one.substr(one.size() - 18), "How much is 2 + 2?");
}

TEST(Transforms, TyposRateAndDigits) {
  EXPECT_EQ(add_typos(kQ, 0.0, 1), kQ);
  std::string t = add_typos(kQ, 0.2, 7);
  EXPECT_EQ(t, add_typos(kQ, 0.2, 7));
  EXPECT_NE(t, kQ);
  // Digits survive: 48 still present.
  EXPECT_NE(t.find("48"), std::string::npos) << t;
  // Roughly the rate: count differing positions in a long letter run.
  std::string letters(20000, 'k');
  std::string noisy = add_typos(letters, 0.05, 3);
  size_t changed = 0;
  for (size_t i = 0; i < std::min(noisy.size(), letters.size()); ++i) changed += noisy[i] != 'k';
  long len_delta = static_cast<long>(noisy.size()) - static_cast<long>(letters.size());
  // Replacements change a char; doubles/drops shift length. Expect ~1000 events.
  EXPECT_GT(changed + static_cast<size_t>(std::labs(len_delta)), 150u);
  EXPECT_LT(std::labs(len_delta), 1000);
}

TEST(Transforms, WrongAnswersAreWrong) {
  for (uint64_t s = 0; s < 50; ++s) {
    std::string w = wrong_answer("18", s);
    EXPECT_NE(w, "18");
    EXPECT_FALSE(w.empty());
    EXPECT_EQ(w.find_first_not_of("0123456789"), std::string::npos) << w;  // non-negative int
    std::string d = wrong_answer("4.33", s);
    EXPECT_NE(d, "4.33");
    EXPECT_EQ(d.size() - d.find('.'), 3u) << d;  // keeps two decimals
    std::string l = wrong_answer("(B)", s);
    EXPECT_NE(l, "(B)");
    EXPECT_EQ(l.size(), 3u);
  }
  // Python: r = random.Random(5); k = 1 + r._randbelow(9) -> 5; r._randbelow(2) -> 1
  // (keep the sign); 1,200 moves in steps of ceil(1200 / 50) = 24: 1200 + 5 * 24.
  EXPECT_EQ(wrong_answer("1,200", 5), "1320");
  EXPECT_NE(wrong_answer("1,200", 5), "1200");
  EXPECT_EQ(wrong_answer("Yes", 1), "No");
  EXPECT_EQ(wrong_answer("False", 1), "True");
  EXPECT_EQ(wrong_answer("None", 1), "");
  EXPECT_EQ(misleading_hint_text("7"), " I think the answer is 7.");
}

}  // namespace
}  // namespace rv::eval
