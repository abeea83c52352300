// The lab's synthetic reasoning task: multi-step arithmetic word problems
// about people and their items, generated from a seed, with a worked chain of
// thought ("12 + 7 = 19. 19 * 2 = 38. The answer is 38.") and a direct answer.
//
// Start here: make_split(spec, "train", n, seed) for training items,
// write_eval_split() for the held-out splits as reasonvec eval tasks.
//
// A problem states the starting counts of two or three people (the asked
// person first in every split except "test_reorder"), then 1..N operations
// on the asked person's count: gets/buys/finds N more, receives all of
// another person's items, gives/loses/eats N, doubles/triples, shares the
// items equally among a group and keeps one share. Every step of the chain
// of thought is one binary operation on the running count, so the steps
// cannot be skipped without doing the arithmetic in one's head; with
// two-digit values and several steps the direct answer is hard (the
// headroom LAB-NOTES.md asks for).
//
// Splits and disjointness: every plain problem is assigned to "train" or to
// "held-out" by a hash of its question text (one in ten is held out), and
// every test split is built from held-out problems only, so no test question
// equals a training question, whatever n and seed were used for "train".
// The adversarial splits are derived from plain held-out problems without
// changing their answer (make_adversarial_pairs returns both).
//
// Determinism: all outputs depend only on (spec, split, n, seed); the
// generator uses its own integer RNG (no std::*_distribution), so results
// are the same on every platform and compiler.
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rv::lab {

// Shape of the problems; all fields come from the lab YAML.
struct TaskSpec {
  int min_ops = 2, max_ops = 4;  // operations per training problem (1 <= min_ops <= max_ops)
  int max_operand = 20;          // operands and starting counts 1..max_operand (multipliers 2..3)
  int max_value = 199;           // every intermediate value stays in [1, max_value]
  // Share of "train" (and "test_id") problems with an irrelevant sentence,
  // so that the models have seen the kind before "test_distractor".
  double distractor_rate = 0.1;
};

struct Problem {
  std::string question;  // the problem text, one paragraph
  std::string cot;       // the worked solution, one step per operation, ending "The answer is N."
  std::string direct;    // "The answer is N." only
  int64_t answer = 0;
  int ops = 0;       // number of operations (= steps of the chain of thought)
  std::string kind;  // "plain", "distractor", "hint", "reorder"
};

// The split names make_split accepts, in a fixed order:
//   "train"           min_ops..max_ops steps, distractor_rate of them "distractor"
//   "test_id"         held out, same distribution as "train"
//   "test_long"       max_ops+1 .. max_ops+2 steps
//   "test_bignum"     operands and starting counts up to 4 x max_operand,
//                     values up to 4 x max_value
//   "test_distractor" an irrelevant sentence with a number inserted
//   "test_hint"       a misleading hint appended ("Hint: the answer is probably 12.")
//   "test_reorder"    the starting counts stated in another order, the asked
//                     person never first (always first elsewhere)
std::vector<std::string> split_names();

// n problems of `split` (n >= 0), distinct question texts within the split.
// Throws rv::Error("split: ...") for an unknown split name and
// rv::Error("task spec: ...") for an inconsistent spec.
std::vector<Problem> make_split(const TaskSpec& spec, const std::string& split, int n,
                                uint64_t seed);

// For the adversarial splits ("test_distractor", "test_hint",
// "test_reorder"): each item of make_split(spec, split, n, seed) paired with
// the plain problem it was derived from (.first plain, .second the split's
// item, same answer and chain of thought). Lets tests check that the
// perturbation leaves the answer unchanged. Throws for other splits.
std::vector<std::pair<Problem, Problem>> make_adversarial_pairs(const TaskSpec& spec,
                                                                const std::string& split, int n,
                                                                uint64_t seed);

// The partition rule behind the disjointness of the splits: true when a
// plain question (a kind "plain" problem's text) is in the held-out tenth
// that only the test splits draw from. For tests and checks of stored data.
bool is_held_out(const std::string& plain_question);

// The number in the last match of "The answer is <integer>" in `text` (what
// the eval task's regex filter takes: regex "The answer is (-?[0-9]+)",
// last match), or nullopt when there is none or it does not fit an int64.
std::optional<int64_t> extract_answer(const std::string& text);

// Short chat skills for the instruct target's mix, answered directly
// without reasoning: copy or reverse a word list, sort numbers, count items,
// compare two numbers, add two numbers. Deterministic for (n, seed).
struct ChatPair {
  std::string user, assistant;
};
std::vector<ChatPair> make_skills(int n, uint64_t seed);

// Pretraining documents, plain text without chat markup, each one "Q: ...\nA:
// ..." item: training-partition problems with the worked solution (half),
// with the direct answer (three in ten) and skills (one in five). Problems
// come from the "train" partition only (never a test question).
std::vector<std::string> make_corpus(const TaskSpec& spec, int n_docs, uint64_t seed);

// Writes DIR/<split>.jsonl (one {"question","answer","ops","kind"} object per
// problem; answer an integer) and DIR/<split>.yaml, a reasonvec task file
// (docs/eval.md, "Tasks as YAML files") named "lab_<split>" that reads the
// JSONL next to it: the question alone as the prompt (run it with
// apply_chat_template so it becomes the user turn of the model's chat
// template with the generation prompt), greedy, stops at the ChatML end
// tokens, max_gen_toks = longest chain of thought in bytes + 32 (byte-level
// BPE never needs more tokens than bytes), filter = the number of the last
// "The answer is N", metric exact_match against `answer`, results grouped by
// kind. Creates DIR if needed; throws rv::Error("path: ...") on I/O failure
// and for a split name that is not a file-name-safe word.
void write_eval_split(const std::filesystem::path& dir, const std::string& split,
                      const std::vector<Problem>& problems);

}  // namespace rv::lab
