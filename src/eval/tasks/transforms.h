// Seeded, deterministic adversarial transforms for generative tasks.
//
// Each transform is a pure function of (text, seed): the same options give
// byte-identical prompts on every run and machine. Tasks derive the seed per
// document and transform with transform_seed(), so adding --limit or
// reordering documents does not change a document's perturbation.
//
//   distractor        insert one irrelevant but plausible sentence with a
//                     number just before the question's final sentence
//   misleading-hint   append " I think the answer is X." with a wrong X
//   shuffled-fewshot  present the few-shot exemplars in a seeded random order
//   typos[:RATE]      character noise on letters (swap with the next letter,
//                     drop, double, or replace by a keyboard neighbour) with
//                     probability RATE per letter (default 0.05); digits and
//                     everything else are kept so the problem stays solvable
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rv::eval {

struct TransformSpec {
  std::string kind;               // "distractor" | "misleading-hint" | "shuffled-fewshot" | "typos"
  double rate = 0;                // typos only
  std::string canonical() const;  // "typos:0.05", "distractor", ...
};

// Parses "distractor", "misleading-hint", "shuffled-fewshot", "typos",
// "typos:0.1". Throws rv::Error naming the bad entry (and the valid ones).
std::vector<TransformSpec> parse_transforms(const std::vector<std::string>& specs);

// A per-(seed, document, transform) seed (FNV-1a mix; stable across builds).
uint64_t transform_seed(uint64_t seed, std::string_view doc_id, std::string_view kind);

// Inserts a distractor sentence before the last sentence of `question`
// (at the start when it has a single sentence).
std::string add_distractor(std::string_view question, uint64_t seed);
// Character noise at `rate` per ASCII letter.
std::string add_typos(std::string_view text, double rate, uint64_t seed);
// A wrong answer for a numeric gold ("18", "4.33", "-3", "1,200"): the gold
// plus a non-zero offset, keeping the gold's number of decimals. For a
// non-numeric gold: another option letter "(X)" when gold is one, "No"/"Yes"
// for yes/no, "False"/"True", "invalid"/"valid"; else returns "" (no hint).
std::string wrong_answer(std::string_view gold, uint64_t seed);
// " I think the answer is X." (with the leading space).
std::string misleading_hint_text(std::string_view wrong);

}  // namespace rv::eval
