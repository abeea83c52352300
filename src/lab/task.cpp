#include "lab/task.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"

namespace rv::lab {
namespace {

// splitmix64: a tiny RNG whose output is the same everywhere (the standard
// distributions are implementation-defined).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi] (modulo bias is irrelevant at these ranges).
  int64_t uniform(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  template <class T, size_t N>
  const T& pick(const std::array<T, N>& a) {
    return a[static_cast<size_t>(uniform(0, static_cast<int64_t>(N) - 1))];
  }
};

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// The RNG stream of one use (split, corpus, skills) of a seed.
Rng stream(uint64_t seed, std::string_view use) {
  Rng r(seed ^ fnv1a(use));
  r.next();
  return r;
}

constexpr std::array<const char*, 20> kNames = {
    "Tom",  "Ann",  "Ben",  "Lucy", "Sam",  "Mia",  "Max",  "Zoe",  "Leo",  "Ella",
    "Jack", "Nora", "Owen", "Ruth", "Paul", "Lily", "Ivan", "Rosa", "Hugo", "Vera"};

struct Item {
  const char* one;
  const char* many;
  bool edible;
};
constexpr std::array<Item, 15> kItems = {{{"apple", "apples", true},
                                          {"marble", "marbles", false},
                                          {"sticker", "stickers", false},
                                          {"coin", "coins", false},
                                          {"pencil", "pencils", false},
                                          {"cookie", "cookies", true},
                                          {"card", "cards", false},
                                          {"shell", "shells", false},
                                          {"stamp", "stamps", false},
                                          {"book", "books", false},
                                          {"balloon", "balloons", false},
                                          {"candy", "candies", true},
                                          {"egg", "eggs", true},
                                          {"toy", "toys", false},
                                          {"bead", "beads", false}}};

std::string count_of(int64_t n, const Item& it) {
  return std::to_string(n) + " " + (n == 1 ? it.one : it.many);
}

enum class Op { kAdd, kReceive, kSub, kMul, kDiv };

struct Step {
  Op op;
  int64_t arg = 0;  // the operand (for kReceive: the giver's count)
  int other = -1;   // kReceive: index of the giver
  int64_t before = 0, after = 0;
  int wording = 0;  // which sentence template
};

// A plain problem before rendering. names[0] is the asked person.
struct Scenario {
  std::vector<std::string> names;
  std::vector<int64_t> start;
  Item item{};
  std::vector<Step> steps;
  std::vector<int> order;  // the order the starting counts are stated in
  int64_t answer = 0;
};

// Value limits of one split.
struct Limits {
  int min_ops, max_ops;
  int64_t max_operand, max_value;
};

Scenario make_scenario(Rng& r, const Limits& L) {
  Scenario s;
  const int people = static_cast<int>(r.uniform(2, 3));
  while (static_cast<int>(s.names.size()) < people) {
    std::string n = r.pick(kNames);
    if (std::find(s.names.begin(), s.names.end(), n) == s.names.end()) s.names.push_back(n);
  }
  s.item = r.pick(kItems);
  for (int i = 0; i < people; ++i) s.start.push_back(r.uniform(1, L.max_operand));
  for (int i = 0; i < people; ++i) s.order.push_back(i);
  std::vector<bool> given(static_cast<size_t>(people), false);
  const int ops = static_cast<int>(r.uniform(L.min_ops, L.max_ops));
  int64_t v = s.start[0];
  for (int k = 0; k < ops; ++k) {
    // Feasible operations with weights; add or subtract is always possible
    // because max_value >= max_operand >= 2.
    struct Choice {
      Op op;
      int weight;
    };
    std::vector<Choice> c;
    if (v + 1 <= L.max_value) c.push_back({Op::kAdd, 6});
    // Never down to zero: "loses all" problems are trivial.
    if (v >= 2) c.push_back({Op::kSub, 5});
    if (v >= 1 && v * 2 <= L.max_value) c.push_back({Op::kMul, 3});
    for (int64_t d = 2; d <= 5; ++d)
      if (v >= 2 * d && v % d == 0) {
        c.push_back({Op::kDiv, 3});
        break;
      }
    for (int i = 1; i < people; ++i)
      if (!given[static_cast<size_t>(i)] && v + s.start[static_cast<size_t>(i)] <= L.max_value) {
        c.push_back({Op::kReceive, 3});
        break;
      }
    int total = 0;
    for (const auto& x : c) total += x.weight;
    int64_t roll = r.uniform(0, total - 1);
    Op op = c.back().op;
    for (const auto& x : c) {
      if (roll < x.weight) {
        op = x.op;
        break;
      }
      roll -= x.weight;
    }
    Step st;
    st.op = op;
    st.before = v;
    switch (op) {
      case Op::kAdd:
        st.arg = r.uniform(1, std::min(L.max_operand, L.max_value - v));
        st.after = v + st.arg;
        st.wording = static_cast<int>(r.uniform(0, 2));
        break;
      case Op::kSub:
        st.arg = r.uniform(1, std::min(L.max_operand, v - 1));
        st.after = v - st.arg;
        st.wording = static_cast<int>(r.uniform(0, s.item.edible ? 2 : 1));
        break;
      case Op::kMul:
        st.arg = v * 3 <= L.max_value && r.uniform(0, 1) == 1 ? 3 : 2;
        st.after = v * st.arg;
        break;
      case Op::kDiv: {
        std::vector<int64_t> ds;
        for (int64_t d = 2; d <= 5; ++d)
          if (v >= 2 * d && v % d == 0) ds.push_back(d);
        st.arg = ds[static_cast<size_t>(r.uniform(0, static_cast<int64_t>(ds.size()) - 1))];
        st.after = v / st.arg;
        st.wording = static_cast<int>(r.uniform(0, 1));
        break;
      }
      case Op::kReceive: {
        std::vector<int> who;
        for (int i = 1; i < people; ++i)
          if (!given[static_cast<size_t>(i)] && v + s.start[static_cast<size_t>(i)] <= L.max_value)
            who.push_back(i);
        st.other = who[static_cast<size_t>(r.uniform(0, static_cast<int64_t>(who.size()) - 1))];
        given[static_cast<size_t>(st.other)] = true;
        st.arg = s.start[static_cast<size_t>(st.other)];
        st.after = v + st.arg;
        break;
      }
    }
    v = st.after;
    s.steps.push_back(st);
  }
  s.answer = v;
  return s;
}

std::string step_sentence(const Scenario& s, const Step& st) {
  const std::string& p = s.names[0];
  const Item& it = s.item;
  switch (st.op) {
    case Op::kAdd: {
      static constexpr std::array<const char*, 3> verbs = {"buys", "finds", "gets"};
      return p + " " + verbs[static_cast<size_t>(st.wording)] + " " + std::to_string(st.arg) +
             " more " + (st.arg == 1 ? it.one : it.many) + ".";
    }
    case Op::kSub:
      if (st.wording == 0) return p + " gives " + count_of(st.arg, it) + " to a friend.";
      if (st.wording == 1) return p + " loses " + count_of(st.arg, it) + ".";
      return p + " eats " + count_of(st.arg, it) + ".";
    case Op::kMul:
      return "The number of " + p + "'s " + it.many + (st.arg == 2 ? " doubles." : " triples.");
    case Op::kDiv:
      if (st.wording == 0)
        return p + " splits the " + it.many + " into " + std::to_string(st.arg) +
               " equal piles and keeps one pile.";
      return p + " shares the " + it.many + " equally among " + std::to_string(st.arg) +
             " children, " + p + " included, and keeps one share.";
    case Op::kReceive:
      return s.names[static_cast<size_t>(st.other)] + " gives all of their " + it.many + " to " +
             p + ".";
  }
  return "";
}

char op_symbol(Op op) {
  switch (op) {
    case Op::kAdd:
    case Op::kReceive:
      return '+';
    case Op::kSub:
      return '-';
    case Op::kMul:
      return '*';
    case Op::kDiv:
      return '/';
  }
  return '?';
}

// The sentences of the question, in order, without the final question.
std::vector<std::string> body_sentences(const Scenario& s) {
  std::vector<std::string> out;
  for (int i : s.order)
    out.push_back(s.names[static_cast<size_t>(i)] + " has " +
                  count_of(s.start[static_cast<size_t>(i)], s.item) + ".");
  for (const auto& st : s.steps) out.push_back(step_sentence(s, st));
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string final_question(const Scenario& s) {
  return "How many " + std::string(s.item.many) + " does " + s.names[0] + " have now?";
}

Problem render(const Scenario& s, const std::vector<std::string>& body, std::string kind) {
  Problem p;
  p.question = join(body, " ") + " " + final_question(s);
  std::vector<std::string> steps;
  for (const auto& st : s.steps)
    steps.push_back(std::to_string(st.before) + " " + op_symbol(st.op) + " " +
                    std::to_string(st.arg) + " = " + std::to_string(st.after) + ".");
  p.direct = "The answer is " + std::to_string(s.answer) + ".";
  p.cot = join(steps, " ") + " " + p.direct;
  p.answer = s.answer;
  p.ops = static_cast<int>(s.steps.size());
  p.kind = std::move(kind);
  return p;
}

// An irrelevant sentence with a number, about the people of the problem,
// inserted anywhere after the starting counts and before the question.
Problem with_distractor(Rng& r, const Scenario& s, int64_t max_operand) {
  const std::string& other =
      s.names[static_cast<size_t>(r.uniform(1, static_cast<int64_t>(s.names.size()) - 1))];
  const std::string& anyone =
      s.names[static_cast<size_t>(r.uniform(0, static_cast<int64_t>(s.names.size()) - 1))];
  const int64_t n = r.uniform(2, max_operand);
  Item other_item = r.pick(kItems);
  while (std::string(other_item.many) == s.item.many) other_item = r.pick(kItems);
  std::string d;
  switch (r.uniform(0, 3)) {
    case 0:
      d = other + " is " + std::to_string(n) + " years old.";
      break;
    case 1:
      d = other + " also has " + count_of(n, other_item) + ".";
      break;
    case 2:
      d = anyone + "'s house is " + std::to_string(n) + " minutes from the park.";
      break;
    default:
      d = "A shop sells " + std::string(s.item.many) + " in bags of " + std::to_string(n) + ".";
      break;
  }
  std::vector<std::string> body = body_sentences(s);
  const auto at =
      r.uniform(static_cast<int64_t>(s.names.size()), static_cast<int64_t>(body.size()));
  body.insert(body.begin() + at, d);
  return render(s, body, "distractor");
}

Problem with_hint(Rng& r, const Scenario& s) {
  int64_t wrong = s.answer;
  while (wrong == s.answer || wrong < 0) wrong = s.answer + r.uniform(-10, 10);
  Problem p = render(s, body_sentences(s), "hint");
  p.question += " Hint: the answer is probably " + std::to_string(wrong) + ".";
  return p;
}

// The starting counts in another order, the asked person never first (plain
// problems always state it first). Meaning is unchanged: the counts are all
// stated before any operation.
Problem with_reorder(Rng& r, Scenario s) {
  const int n = static_cast<int>(s.order.size());
  do {
    for (int i = n - 1; i > 0; --i)
      std::swap(s.order[static_cast<size_t>(i)], s.order[static_cast<size_t>(r.uniform(0, i))]);
  } while (s.order[0] == 0);
  return render(s, body_sentences(s), "reorder");
}

void check_spec(const TaskSpec& spec) {
  auto bad = [](const std::string& what) { throw Error("task spec", what); };
  if (spec.min_ops < 1) bad("min_ops must be >= 1, got " + std::to_string(spec.min_ops));
  if (spec.max_ops < spec.min_ops)
    bad("max_ops " + std::to_string(spec.max_ops) + " < min_ops " + std::to_string(spec.min_ops));
  if (spec.max_ops > 30) bad("max_ops must be <= 30, got " + std::to_string(spec.max_ops));
  if (spec.max_operand < 2)
    bad("max_operand must be >= 2, got " + std::to_string(spec.max_operand));
  if (spec.max_operand > 1000000)
    bad("max_operand must be <= 1000000, got " + std::to_string(spec.max_operand));
  if (spec.max_value < spec.max_operand)
    bad("max_value " + std::to_string(spec.max_value) + " < max_operand " +
        std::to_string(spec.max_operand));
  if (spec.max_value > 100000000)
    bad("max_value must be <= 100000000, got " + std::to_string(spec.max_value));
  if (!(spec.distractor_rate >= 0 && spec.distractor_rate <= 1))
    bad("distractor_rate must be in [0, 1], got " + std::to_string(spec.distractor_rate));
}

bool is_adversarial(const std::string& split) {
  return split == "test_distractor" || split == "test_hint" || split == "test_reorder";
}

// The generator behind every split: .first is the plain problem, .second the
// split's item (the same problem for non-adversarial splits).
// `partition` chooses "train" (not held out) or held-out scenarios.
std::vector<std::pair<Problem, Problem>> generate(const TaskSpec& spec, const std::string& split,
                                                  int n, uint64_t seed, bool train_partition,
                                                  std::string_view stream_name) {
  check_spec(spec);
  if (n < 0) throw Error("split " + split, "n must be >= 0, got " + std::to_string(n));
  Limits L{spec.min_ops, spec.max_ops, spec.max_operand, spec.max_value};
  if (split == "test_long") {
    L.min_ops = spec.max_ops + 1;
    L.max_ops = spec.max_ops + 2;
  } else if (split == "test_bignum") {
    L.max_operand = 4 * static_cast<int64_t>(spec.max_operand);
    L.max_value = 4 * static_cast<int64_t>(spec.max_value);
  }
  Rng r = stream(seed, stream_name);
  std::vector<std::pair<Problem, Problem>> out;
  out.reserve(static_cast<size_t>(n));
  std::unordered_set<std::string> seen;
  // Small specs have few distinct problems; give up rather than loop forever.
  const int64_t max_tries = 2000 + 200 * static_cast<int64_t>(n);
  for (int64_t tries = 0; static_cast<int>(out.size()) < n; ++tries) {
    if (tries > max_tries)
      throw Error("split " + split, "could not find " + std::to_string(n) +
                                        " distinct problems (found " + std::to_string(out.size()) +
                                        "); widen the task spec");
    Scenario s = make_scenario(r, L);
    Problem plain = render(s, body_sentences(s), "plain");
    if (is_held_out(plain.question) == train_partition) continue;
    Problem item;
    if (split == "test_distractor")
      item = with_distractor(r, s, L.max_operand);
    else if (split == "test_hint")
      item = with_hint(r, s);
    else if (split == "test_reorder")
      item = with_reorder(r, s);
    else if ((split == "train" || split == "test_id") && r.unit() < spec.distractor_rate)
      item = with_distractor(r, s, L.max_operand);
    else
      item = plain;
    if (!seen.insert(item.question).second) continue;
    out.emplace_back(std::move(plain), std::move(item));
  }
  return out;
}

void check_split(const std::string& split) {
  const auto names = split_names();
  if (std::find(names.begin(), names.end(), split) == names.end())
    throw Error("split", "unknown split '" + split + "' (known: " + join(names, ", ") + ")");
}

}  // namespace

// One problem in ten is held out, decided by a hash of its plain text
// only, so the rule needs neither n nor seed of the training split.
bool is_held_out(const std::string& plain_question) {
  return fnv1a(plain_question) % 10 == 0;
}

std::vector<std::string> split_names() {
  return {"train",           "test_id",   "test_long",   "test_bignum",
          "test_distractor", "test_hint", "test_reorder"};
}

std::vector<Problem> make_split(const TaskSpec& spec, const std::string& split, int n,
                                uint64_t seed) {
  check_split(split);
  std::vector<Problem> out;
  for (auto& pr : generate(spec, split, n, seed, split == "train", split))
    out.push_back(std::move(pr.second));
  return out;
}

std::vector<std::pair<Problem, Problem>> make_adversarial_pairs(const TaskSpec& spec,
                                                                const std::string& split, int n,
                                                                uint64_t seed) {
  check_split(split);
  if (!is_adversarial(split)) throw Error("split", "'" + split + "' is not an adversarial split");
  return generate(spec, split, n, seed, false, split);
}

std::optional<int64_t> extract_answer(const std::string& text) {
  static constexpr std::string_view kCue = "The answer is ";
  std::optional<int64_t> last;
  for (size_t at = text.find(kCue); at != std::string::npos; at = text.find(kCue, at + 1)) {
    size_t i = at + kCue.size();
    const bool neg = i < text.size() && text[i] == '-';
    if (neg) ++i;
    const size_t digits = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == digits) continue;  // no number here: the regex does not match
    if (i - digits > 18) {      // a match, but beyond int64
      last.reset();
      continue;
    }
    const int64_t v = std::stoll(text.substr(digits, i - digits));
    last = neg ? -v : v;
  }
  return last;
}

std::vector<ChatPair> make_skills(int n, uint64_t seed) {
  if (n < 0) throw Error("skills", "n must be >= 0, got " + std::to_string(n));
  static constexpr std::array<const char*, 32> kWords = {
      "cat",  "dog",  "sun",  "tree", "book", "milk", "red",  "blue", "fish", "bird", "rain",
      "star", "cup",  "hat",  "door", "lamp", "road", "ship", "moon", "leaf", "rock", "bell",
      "kite", "nest", "coat", "desk", "ring", "frog", "corn", "wolf", "pear", "drum"};
  Rng r = stream(seed, "skills");
  std::vector<ChatPair> out;
  out.reserve(static_cast<size_t>(n));
  auto words = [&](int k) {
    std::vector<std::string> w;
    while (static_cast<int>(w.size()) < k) {
      std::string x = r.pick(kWords);
      if (std::find(w.begin(), w.end(), x) == w.end()) w.push_back(x);
    }
    return w;
  };
  auto numbers = [&](int k) {
    std::vector<int64_t> v;
    while (static_cast<int>(v.size()) < k) {
      int64_t x = r.uniform(1, 99);
      if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
    }
    return v;
  };
  auto num_list = [](const std::vector<int64_t>& v) {
    std::vector<std::string> s;
    for (auto x : v) s.push_back(std::to_string(x));
    return join(s, ", ");
  };
  for (int i = 0; i < n; ++i) {
    ChatPair c;
    switch (r.uniform(0, 5)) {
      case 0: {
        auto w = words(static_cast<int>(r.uniform(3, 6)));
        c = {"Repeat these words: " + join(w, ", ") + ".", join(w, ", ")};
        break;
      }
      case 1: {
        auto w = words(static_cast<int>(r.uniform(3, 6)));
        auto rev = w;
        std::reverse(rev.begin(), rev.end());
        c = {"Write these words in reverse order: " + join(w, ", ") + ".", join(rev, ", ")};
        break;
      }
      case 2: {
        auto v = numbers(static_cast<int>(r.uniform(3, 5)));
        auto sorted = v;
        std::sort(sorted.begin(), sorted.end());
        c = {"Sort these numbers from smallest to largest: " + num_list(v) + ".", num_list(sorted)};
        break;
      }
      case 3: {
        auto w = words(static_cast<int>(r.uniform(2, 7)));
        c = {"How many words are in this list: " + join(w, ", ") + "?", std::to_string(w.size())};
        break;
      }
      case 4: {
        auto v = numbers(2);
        c = {
            "Which number is larger, " + std::to_string(v[0]) + " or " + std::to_string(v[1]) + "?",
            std::to_string(std::max(v[0], v[1]))};
        break;
      }
      default: {
        auto v = numbers(2);
        c = {"What is " + std::to_string(v[0]) + " + " + std::to_string(v[1]) + "?",
             std::to_string(v[0] + v[1])};
        break;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> make_corpus(const TaskSpec& spec, int n_docs, uint64_t seed) {
  if (n_docs < 0) throw Error("corpus", "n_docs must be >= 0, got " + std::to_string(n_docs));
  Rng r = stream(seed, "corpus-mix");
  int n_problems = 0, n_skills = 0;
  std::vector<int> which(static_cast<size_t>(n_docs));  // 0 cot, 1 direct, 2 skill
  for (auto& w : which) {
    const double u = r.unit();
    w = u < 0.5 ? 0 : u < 0.8 ? 1 : 2;
    (w == 2 ? n_skills : n_problems)++;
  }
  // Distinctness within the corpus is not needed; the train partition and
  // its own stream are.
  std::vector<std::pair<Problem, Problem>> problems;
  problems.reserve(static_cast<size_t>(n_problems));
  {
    Rng pr = stream(seed, "corpus-problems");
    Limits L{spec.min_ops, spec.max_ops, spec.max_operand, spec.max_value};
    check_spec(spec);
    while (static_cast<int>(problems.size()) < n_problems) {
      Scenario s = make_scenario(pr, L);
      Problem plain = render(s, body_sentences(s), "plain");
      if (is_held_out(plain.question)) continue;
      Problem item =
          pr.unit() < spec.distractor_rate ? with_distractor(pr, s, L.max_operand) : plain;
      problems.emplace_back(std::move(plain), std::move(item));
    }
  }
  const auto skills = make_skills(n_skills, seed);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n_docs));
  size_t pi = 0, si = 0;
  for (int w : which) {
    if (w == 2) {
      out.push_back("Q: " + skills[si].user + "\nA: " + skills[si].assistant);
      ++si;
    } else {
      const Problem& p = problems[pi++].second;
      out.push_back("Q: " + p.question + "\nA: " + (w == 0 ? p.cot : p.direct));
    }
  }
  return out;
}

void write_eval_split(const std::filesystem::path& dir, const std::string& split,
                      const std::vector<Problem>& problems) {
  if (split.empty() || !std::all_of(split.begin(), split.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      }))
    throw Error(dir.string(), "split name '" + split + "' must be letters, digits, '_' or '-'");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string(), "cannot create directory: " + ec.message());
  std::string jsonl;
  size_t longest = 0;
  for (const auto& p : problems) {
    nlohmann::ordered_json row;
    row["question"] = p.question;
    row["answer"] = p.answer;
    row["ops"] = p.ops;
    row["kind"] = p.kind;
    jsonl += row.dump() + "\n";
    longest = std::max(longest, p.cot.size());
  }
  write_file(dir / (split + ".jsonl"), jsonl);
  // Byte-level BPE needs at most one token per byte; the margin lets a model
  // that words its steps a little differently still finish.
  const size_t max_gen_toks = longest + 32;
  std::string yaml;
  yaml += "# The lab's \"" + split + "\" split (" + std::to_string(problems.size()) +
          " problems), written by reasonvec lab.\n";
  yaml += "# Run with apply_chat_template: the question is the user turn, the model answers\n";
  yaml += "# with its chain of thought, scored on the number after the last \"The answer is\".\n";
  yaml += "task: lab_" + split + "\n";
  yaml += "version: \"1.0\"\n";
  yaml += "dataset: " + split + ".jsonl\n";
  yaml += "doc_to_text: question\n";
  yaml += "doc_to_target: answer\n";
  yaml += "group_by: kind\n";
  yaml += "generation_kwargs:\n";
  yaml += "  until: [\"<|im_end|>\", \"<|endoftext|>\"]\n";
  yaml += "  max_gen_toks: " + std::to_string(max_gen_toks) + "\n";
  yaml += "  do_sample: false\n";
  yaml += "filter_list:\n";
  yaml += "  - name: strict-match\n";
  yaml += "    filter:\n";
  yaml += "      - function: regex\n";
  yaml += "        regex_pattern: \"The answer is (\\\\-?[0-9]+)\"\n";
  yaml += "        group_select: -1\n";
  yaml += "        fallback: \"[invalid]\"\n";
  yaml += "      - function: take_first\n";
  yaml += "metric_list:\n";
  yaml += "  - metric: exact_match\n";
  write_file(dir / (split + ".yaml"), yaml);
}

}  // namespace rv::lab
