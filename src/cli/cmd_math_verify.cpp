// reasonvec math-verify: is a predicted math answer equivalent to the gold one?
//
//   reasonvec math-verify [FILE]          JSON Lines in (FILE or stdin), one JSON line out per case
//   reasonvec math-verify --gold G --pred P [--no-strict] [--precision N]
//                                         one pair; exit 0 equivalent, 1 not, 2 usage error
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "eval/math/config_json.h"
#include "eval/math/math_verify.h"

namespace rv::cli {

namespace {

namespace m = rv::eval::math;

std::string as_text(const nlohmann::json& v) {
  // Answers may be JSON numbers (amc23's 27.0): their JSON text is the answer text.
  return v.is_string() ? v.get<std::string>() : v.dump();
}

nlohmann::json judge(const std::string& gold, const std::string& pred, const m::ExtractConfig& e,
                     const m::VerifyConfig& v) {
  m::Answer g = m::parse(gold, e), p = m::parse(pred, e);
  bool ok = m::verify(g, p, v);
  nlohmann::json out;
  out["equivalent"] = ok;
  out["gold_parsed"] = g.canonical();
  out["pred_parsed"] = p.canonical();
  out["gold_extracted"] = g.text();
  out["pred_extracted"] = p.text();
  return out;
}

}  // namespace

void add_math_verify_command(CLI::App& app) {
  struct Opts {
    std::string file, gold, pred;
    bool strict = true, no_latex = false, no_expr = false, allow_set_rel = false;
    int precision = 6, boxed_priority = 0;
  };
  auto* o = keep_alive<Opts>();
  auto* sub = app.add_subcommand(
      "math-verify",
      "Check math answers for equivalence (a native counterpart of Hugging Face math_verify)");
  sub->add_option("file", o->file,
                  "JSON Lines file of {\"gold\": ..., \"pred\": ...} cases ('-' or none: stdin). "
                  "Optional per case: \"strict\", \"precision\", \"allow_set_relation_comp\", "
                  "\"config\" (as in shared/data/math/verify-cases.jsonl), \"expected\" (0/1)");
  auto* gold = sub->add_option("--gold,-g", o->gold, "Gold answer text (one-pair mode)");
  auto* pred = sub->add_option("--pred,-p", o->pred, "Predicted answer or whole response");
  gold->needs(pred);
  pred->needs(gold);
  sub->add_flag("--strict,!--no-strict", o->strict,
                "Variable names must match (default); --no-strict matches them by position");
  sub->add_option("--precision", o->precision,
                  "Decimal places floats are rounded to before comparing (default 6)")
      ->check(CLI::Range(0, 30));
  sub->add_option("--boxed-priority", o->boxed_priority,
                  "Priority of \\boxed{} extraction: 0 first (default), 50 after 'final answer "
                  "is', -1 off");
  sub->add_flag("--no-latex", o->no_latex, "Do not extract LaTeX");
  sub->add_flag("--no-expr", o->no_expr, "Do not extract plain numbers/expressions");
  sub->add_flag("--allow-set-relation", o->allow_set_rel,
                "Also compare a predicted relation with a gold set (x < 2 vs (-oo, 2))");
  sub->footer(
      "Output: one JSON line per case: {\"line\", \"equivalent\", \"gold_parsed\", "
      "\"pred_parsed\", \"gold_extracted\", \"pred_extracted\"} plus \"expected\" and \"agree\" "
      "when the case had \"expected\". A summary goes to stderr.\n"
      "Both answers are extracted as math_verify's parse() does: from \\boxed{}, \"the answer "
      "is\", $...$ / \\[...\\] or a plain number; write a bare LaTeX answer as $...$.\n"
      "Exit status: file mode 0 (1 on unreadable input); pair mode 0 equivalent, 1 not; 2 usage.\n"
      "Examples:\n"
      "  reasonvec math-verify --gold '\\frac{1}{2}' --pred 'so the answer is $\\boxed{0.5}$'\n"
      "  reasonvec math-verify ../shared/data/math/verify-cases.jsonl");
  sub->callback([o, gold] {
    m::ExtractConfig e;
    e.latex = !o->no_latex;
    e.expr = !o->no_expr;
    e.boxed_match_priority = o->boxed_priority;
    m::VerifyConfig v;
    v.precision = o->precision;
    v.strict = o->strict;
    v.allow_set_relation_comp = o->allow_set_rel;
    if (gold->count()) {
      if (!o->file.empty()) throw CLI::ValidationError("give FILE or --gold/--pred, not both");
      nlohmann::json out = judge(o->gold, o->pred, e, v);
      printf("%s\n", out.dump().c_str());
      exit_status() = out["equivalent"].get<bool>() ? 0 : 1;
      return;
    }
    std::ifstream f;
    std::istream* in = &std::cin;
    std::string where = "stdin";
    if (!o->file.empty() && o->file != "-") {
      f.open(o->file, std::ios::binary);
      if (!f) throw Error(o->file, "cannot open: " + errno_text(errno));
      in = &f;
      where = o->file;
    }
    std::string line;
    long n = 0, cases = 0, equiv = 0, with_expected = 0, agree = 0;
    while (std::getline(*in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& ex) {
        throw Error(where + ":" + std::to_string(n), std::string("not JSON: ") + ex.what());
      }
      if (!j.is_object() || !j.contains("gold") || !j.contains("pred"))
        throw Error(where + ":" + std::to_string(n), "needs \"gold\" and \"pred\"");
      m::ExtractConfig ce = e;
      m::VerifyConfig cv = v;
      try {
        m::configs_from_json(j, ce, cv);
      } catch (const Error& ex) {
        throw Error(where + ":" + std::to_string(n), ex.what());
      }
      nlohmann::json out;
      out["line"] = n;
      nlohmann::json r = judge(as_text(j["gold"]), as_text(j["pred"]), ce, cv);
      out.update(r);
      ++cases;
      bool ok = r["equivalent"].get<bool>();
      equiv += ok;
      if (j.contains("expected") && !j["expected"].is_null()) {
        const auto& ex = j["expected"];
        bool want = ex.is_boolean() ? ex.get<bool>() : ex.is_number() && ex.get<double>() != 0;
        out["expected"] = ex;
        out["agree"] = want == ok;
        ++with_expected;
        agree += want == ok;
      }
      printf("%s\n", out.dump().c_str());
    }
    if (with_expected)
      fprintf(stderr, "math-verify: %ld cases, %ld equivalent; agree with expected: %ld/%ld\n",
              cases, equiv, agree, with_expected);
    else
      fprintf(stderr, "math-verify: %ld cases, %ld equivalent\n", cases, equiv);
  });
}

}  // namespace rv::cli
