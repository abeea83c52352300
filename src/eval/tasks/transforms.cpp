#include "eval/tasks/transforms.h"

#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "eval/tasks/pyrandom.h"

namespace rv::eval {

std::string TransformSpec::canonical() const {
  if (kind != "typos") return kind;
  char buf[64];
  std::snprintf(buf, sizeof buf, "typos:%g", rate);
  return buf;
}

std::vector<TransformSpec> parse_transforms(const std::vector<std::string>& specs) {
  std::vector<TransformSpec> out;
  for (const auto& s : specs) {
    TransformSpec t;
    if (s == "distractor" || s == "misleading-hint" || s == "shuffled-fewshot") {
      t.kind = s;
    } else if (s == "typos" || s.rfind("typos:", 0) == 0) {
      t.kind = "typos";
      t.rate = 0.05;
      if (s.size() > 6) {
        std::string r = s.substr(6);
        char* end = nullptr;
        t.rate = std::strtod(r.c_str(), &end);
        if (r.empty() || *end != '\0' || !(t.rate >= 0 && t.rate <= 1))
          throw Error("transform '" + s + "'", "typo rate must be a number in [0, 1]");
      }
    } else {
      throw Error(
          "transform '" + s + "'",
          "unknown; expected distractor, misleading-hint, shuffled-fewshot or typos[:RATE]");
    }
    for (const auto& prev : out)
      if (prev.kind == t.kind) throw Error("transform '" + s + "'", "given twice");
    out.push_back(t);
  }
  return out;
}

uint64_t transform_seed(uint64_t seed, std::string_view doc_id, std::string_view kind) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  mix(std::to_string(seed));
  mix(doc_id);
  mix(kind);
  return h & 0x7fffffffffffffffull;
}

namespace {

// Sentence boundaries: ". ", "! ", "? " followed by a capital or digit.
size_t last_sentence_start(std::string_view q) {
  size_t best = 0;
  for (size_t i = 0; i + 2 < q.size(); ++i) {
    char c = q[i];
    if ((c == '.' || c == '!' || c == '?') && q[i + 1] == ' ') {
      size_t j = i + 1;
      while (j < q.size() && q[j] == ' ') ++j;
      if (j < q.size() && ((q[j] >= 'A' && q[j] <= 'Z') || (q[j] >= '0' && q[j] <= '9'))) best = j;
    }
  }
  return best;
}

const char* kNames[] = {"Maria", "Tom",    "Aisha", "Kenji", "Lucas",
                        "Priya", "Olivia", "Omar",  "Sofia", "Ethan"};
const char* kTemplates[] = {
    "{N}'s neighbor has {K} cats that sleep most of the day.",
    "The store down the street was painted {K} years ago.",
    "{N} once read a book with {K} chapters about sailing.",
    "A nearby park has {K} benches along its main path.",
    "{N}'s cousin collects stamps and owns {K} of them.",
    "The bus that passes by runs every {K} minutes.",
    "{N} has a bicycle that weighs {K} pounds.",
    "The local library is open {K} hours on Sundays.",
};

std::string fill(std::string tmpl, const std::string& name, const std::string& num) {
  for (size_t p; (p = tmpl.find("{N}")) != std::string::npos;) tmpl.replace(p, 3, name);
  for (size_t p; (p = tmpl.find("{K}")) != std::string::npos;) tmpl.replace(p, 3, num);
  return tmpl;
}

bool parse_number(std::string_view s, double* value, int* decimals) {
  std::string clean;
  for (char c : s)
    if (c != ',' && c != '$') clean += c;
  while (!clean.empty() && clean.back() == '.') clean.pop_back();
  if (clean.empty()) return false;
  size_t i = 0;
  if (clean[0] == '-') i = 1;
  if (i >= clean.size()) return false;
  bool dot = false;
  int dec = 0;
  for (; i < clean.size(); ++i) {
    if (clean[i] == '.') {
      if (dot) return false;
      dot = true;
    } else if (clean[i] >= '0' && clean[i] <= '9') {
      if (dot) ++dec;
    } else {
      return false;
    }
  }
  *value = std::strtod(clean.c_str(), nullptr);
  *decimals = dec;
  return true;
}

const char* kKeyboardRows[] = {"qwertyuiop", "asdfghjkl", "zxcvbnm"};

char keyboard_neighbour(char c, PyRandom& rng) {
  bool upper = c >= 'A' && c <= 'Z';
  char lc = upper ? static_cast<char>(c + 32) : c;
  for (const char* row : kKeyboardRows) {
    std::string_view r(row);
    size_t p = r.find(lc);
    if (p == std::string_view::npos) continue;
    std::vector<char> opts;
    if (p > 0) opts.push_back(r[p - 1]);
    if (p + 1 < r.size()) opts.push_back(r[p + 1]);
    char n = opts[rng.randbelow(static_cast<uint32_t>(opts.size()))];
    return upper ? static_cast<char>(n - 32) : n;
  }
  return c;
}

bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

std::string add_distractor(std::string_view question, uint64_t seed) {
  PyRandom rng(seed);
  constexpr size_t nt = sizeof kTemplates / sizeof kTemplates[0];
  constexpr size_t nn = sizeof kNames / sizeof kNames[0];
  std::string tmpl = kTemplates[rng.randbelow(nt)];
  std::string name = kNames[rng.randbelow(nn)];
  std::string num = std::to_string(2 + rng.randbelow(48));
  std::string sentence = fill(tmpl, name, num);
  size_t at = last_sentence_start(question);
  std::string out(question.substr(0, at));
  out += sentence;
  out += ' ';
  out += question.substr(at);
  return out;
}

std::string add_typos(std::string_view text, double rate, uint64_t seed) {
  PyRandom rng(seed);
  std::string out;
  out.reserve(text.size() + 16);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (!is_letter(c) || rng.random() >= rate) {
      out += c;
      continue;
    }
    switch (rng.randbelow(4)) {
      case 0:  // swap with the next letter
        if (i + 1 < text.size() && is_letter(text[i + 1])) {
          out += text[i + 1];
          out += c;
          ++i;
        } else {
          out += c;
        }
        break;
      case 1:  // drop
        break;
      case 2:  // double
        out += c;
        out += c;
        break;
      default:
        out += keyboard_neighbour(c, rng);
    }
  }
  return out;
}

std::string wrong_answer(std::string_view gold, uint64_t seed) {
  PyRandom rng(seed);
  double v;
  int dec;
  if (parse_number(gold, &v, &dec)) {
    double mag = std::fabs(v);
    double step = dec > 0 ? std::pow(10.0, -dec) : 1.0;
    long k = 1 + static_cast<long>(rng.randbelow(mag >= 20 ? 9 : 4));
    if (rng.randbelow(2) == 0 && v - k * step >= 0) k = -k;
    double w = v + static_cast<double>(k) * (mag >= 100 && dec == 0 ? std::ceil(mag / 50) : step);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", dec, w);
    return buf;
  }
  std::string g(gold);
  if (g.size() == 3 && g[0] == '(' && g[2] == ')' && g[1] >= 'A' && g[1] <= 'R') {
    char other;
    do other = static_cast<char>('A' + rng.randbelow(4));
    while (other == g[1]);
    return std::string("(") + other + ")";
  }
  if (g == "Yes") return "No";
  if (g == "No") return "Yes";
  if (g == "yes") return "no";
  if (g == "no") return "yes";
  if (g == "True") return "False";
  if (g == "False") return "True";
  if (g == "valid") return "invalid";
  if (g == "invalid") return "valid";
  return "";
}

std::string misleading_hint_text(std::string_view wrong) {
  return " I think the answer is " + std::string(wrong) + ".";
}

}  // namespace rv::eval
