#include "eval/tasks/yaml_task.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/yaml_reader.h"
#include "eval/math/math_verify.h"
#include "eval/tasks/common.h"
#include "eval/tasks/data.h"
#include "eval/tasks/extract.h"
#include "eval/tasks/metrics.h"
#include "eval/tasks/pyrandom.h"
#include "tokenizer/jinja.h"

namespace rv::eval {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

using detail::checked_transforms;
using detail::prompt_options_json;
using detail::Shot;

// ---- YAML helpers: every error names file, line and key -------------------

using Parser = YamlReader;

// YAML (scalars, sequences, maps) to JSON, for inline few-shot samples.
ojson to_json(const YAML::Node& n) {
  if (n.IsSequence()) {
    ojson a = ojson::array();
    for (const auto& x : n) a.push_back(to_json(x));
    return a;
  }
  if (n.IsMap()) {
    ojson o = ojson::object();
    for (const auto& kv : n) o[kv.first.as<std::string>()] = to_json(kv.second);
    return o;
  }
  if (n.IsNull()) return nullptr;
  // Plain scalars that read as numbers or booleans keep that type; quoted
  // ones (tag "!") stay strings.
  const std::string& s = n.Scalar();
  auto numeric = [&] {
    if (s.empty()) return false;
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    for (char c : s)
      if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' ||
            c == '-' || c == '+'))
        return false;
    return true;
  };
  if (n.Tag() != "!") {
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
  }
  if (n.Tag() != "!" && numeric()) {
    try {
      size_t used = 0;
      long long v = std::stoll(s, &used);
      if (used == s.size()) return v;
      double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (const std::exception&) {
    }
  }
  return s;
}

// A data file named in the YAML: absolute; else relative to the YAML's
// folder when it exists there; else relative to the data directory.
struct DataRef {
  std::string as_written;
  fs::path local;        // set when absolute or found next to the YAML file
  std::string data_rel;  // otherwise, relative to TaskOptions::data_dir

  fs::path resolve(const fs::path& data_dir) const {
    if (!local.empty()) {
      std::error_code ec;
      if (!fs::is_regular_file(local, ec)) throw Error(local.string(), "missing");
      return local;
    }
    return require_data_file(data_dir, data_rel);
  }
};

DataRef data_ref(const Parser& P, const YAML::Node& n, const std::string& key) {
  DataRef r;
  r.as_written = P.str(n, key);
  if (r.as_written.empty()) P.fail(n, key, "empty path");
  fs::path p(r.as_written);
  std::error_code ec;
  if (p.is_absolute())
    r.local = p;
  else if (fs::exists(P.dir / p, ec))
    r.local = P.dir / p;
  else
    r.data_rel = p.generic_string();
  return r;
}

// Records of a JSONL file (or a JSON array), key order kept, each with the
// "<file>:<line>" (or "<file>: element N") it came from.
using Doc = LocatedRecord<ojson>;

std::vector<Doc> load_docs(const fs::path& path) {
  std::vector<Doc> out = parse_json_objects<ojson>(path, read_data_text(path), true, "");
  if (out.empty()) throw Error(path.string(), "no records");
  return out;
}

// doc_to_text / doc_to_target: a Jinja template over the document, or (no
// "{{" / "{%") the name of one of its fields.
struct DocText {
  std::string source;
  std::shared_ptr<const jinja::Template> tmpl;  // null: `source` is a field name

  std::string render(const ojson& doc, const std::string& where, const std::string& key) const {
    if (!tmpl) {
      if (!doc.contains(source))
        throw Error(where, key + ": the record has no field \"" + source + "\"");
      const auto& v = doc[source];
      return v.is_string() ? v.get<std::string>() : v.dump();
    }
    try {
      return tmpl->render(doc);
    } catch (const Error& e) {
      throw Error(where, key + ": " + e.what());
    }
  }
};

DocText doc_text(const Parser& P, const YAML::Node& n, const std::string& key) {
  DocText t;
  t.source = P.str(n, key);
  if (t.source.find("{{") == std::string::npos && t.source.find("{%") == std::string::npos)
    return t;
  // lm-eval's Jinja environment: no block trimming, trailing newline kept.
  jinja::Options jo;
  jo.trim_blocks = false;
  jo.lstrip_blocks = false;
  jo.keep_trailing_newline = true;
  // Syntax errors read "<file>:<line>: doc_to_text line N: ...".
  t.tmpl = std::make_shared<const jinja::Template>(t.source, P.where(n) + ": " + key, jo);
  return t;
}

// ---- filters and metrics ---------------------------------------------------

enum class Fn { kRegex, kTakeFirst, kRemoveWhitespace, kMath, kChoice, kNumber };

struct Step {
  Fn fn = Fn::kTakeFirst;
  std::shared_ptr<const Regex> re;
  int group_select = 0;
  std::string fallback = "[invalid]";
  std::string letters = "ABCD";
};

struct Filter {
  std::string name;
  std::vector<Step> steps;
  nlohmann::json spec;  // as configured, for config()
};

struct Metric {
  std::string name;  // exact_match | math_verify
  ExactMatchOptions em;
  nlohmann::json spec;
};

const Regex& number_regex() {
  static const Regex re("-?[0-9][0-9,]*(?:\\.[0-9]+)?");
  return re;
}

std::string choice_letter(const std::string& text, const std::string& letters) {
  const std::string cls = "[" + letters + "]";
  // "answer is (B)" / "answer: B" first, then the last "(B)", then the last
  // standalone letter.
  const Regex stated("(?i:answer)(?:\\s+is)?\\s*:?\\s*\\(?(" + cls + ")\\b");
  const Regex paren("\\((" + cls + ")\\)");
  const Regex bare("\\b(" + cls + ")\\b");
  for (const Regex* re : {&stated, &paren, &bare}) {
    auto m = re->findall(text);
    if (!m.empty()) return m.back()[0];
  }
  return "[invalid]";
}

std::string apply_step(const Step& s, const std::string& text) {
  switch (s.fn) {
    case Fn::kRegex:
      return regex_extract(*s.re, text, s.group_select, s.fallback);
    case Fn::kTakeFirst:
      return text;  // one response per document
    case Fn::kRemoveWhitespace: {
      size_t b = text.find_first_not_of(" \t\n\r\f\v");
      return b == std::string::npos ? std::string() : text.substr(b);
    }
    case Fn::kMath: {
      bool unterminated = false;
      std::string body = math::strip_think(text, &unterminated);
      return unterminated ? std::string() : math::parse(body).text();
    }
    case Fn::kChoice:
      return choice_letter(text, s.letters);
    case Fn::kNumber: {
      auto m = number_regex().findall(text);
      if (m.empty()) return "[invalid]";
      std::string n;
      for (char c : m.back()[0])
        if (c != ',') n += c;
      return n;
    }
  }
  return text;
}

bool ends_with_math(const Filter& f) {
  for (auto it = f.steps.rbegin(); it != f.steps.rend(); ++it) {
    if (it->fn == Fn::kTakeFirst || it->fn == Fn::kRemoveWhitespace) continue;
    return it->fn == Fn::kMath;
  }
  return false;
}

std::string boxed_unless_delimited(const std::string& s) {
  if (s.find("\\boxed") != std::string::npos || s.find('$') != std::string::npos) return s;
  return "\\boxed{" + s + "}";
}

// ---- the task ----------------------------------------------------------------

struct Def {
  std::string file;  // the YAML file
  std::string name, version = "0";
  DataRef dataset;
  DocText text, target;
  std::string group_by;
  std::string description, system_prompt;
  // few-shot
  std::vector<ojson> samples;  // inline fewshot.samples
  bool has_source = false;
  DataRef source;
  std::string sampler = "first_n";
  int num_fewshot = 0;
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
  // generation
  std::vector<std::string> until;
  bool until_set = false;
  int max_gen_toks = 256;
  double temperature = 0.0;
  bool do_sample = false;
  std::vector<Filter> filters;
  std::vector<Metric> metrics;
};

class YamlTask : public Task {
 public:
  explicit YamlTask(Def d) : d_(std::move(d)) {}

  std::string name() const override { return d_.name; }

  std::vector<std::string> data_files() const override {
    std::vector<std::string> out;
    if (!d_.dataset.data_rel.empty()) out.push_back(d_.dataset.data_rel);
    if (d_.has_source && !d_.source.data_rel.empty() && d_.source.data_rel != d_.dataset.data_rel)
      out.push_back(d_.source.data_rel);
    return out;
  }

  int num_fewshot(const TaskOptions& o) const {
    return o.num_fewshot >= 0 ? o.num_fewshot : d_.num_fewshot;
  }

  nlohmann::json config(const TaskOptions& o) const override {
    checked_transforms(d_.name, o, {});
    nlohmann::json filters = nlohmann::json::array(), metrics = nlohmann::json::array();
    for (const auto& f : d_.filters) filters.push_back(f.spec);
    for (const auto& m : d_.metrics) metrics.push_back(m.spec);
    nlohmann::json samples = nlohmann::json::array();
    for (const auto& s : d_.samples) samples.push_back(nlohmann::json::parse(s.dump()));
    return {
        {"task", d_.name},
        {"version", d_.version},
        {"task_file", fs::path(d_.file).filename().string()},
        {"dataset", d_.dataset.as_written},
        {"data_files", data_files()},
        {"doc_to_text", d_.text.source},
        {"doc_to_target", d_.target.source},
        {"group_by", d_.group_by},
        {"description", d_.description},
        {"system_prompt", d_.system_prompt},
        {"target_delimiter", d_.target_delimiter},
        {"fewshot_delimiter", d_.fewshot_delimiter},
        {"num_fewshot", num_fewshot(o)},
        {"fewshot",
         {{"sampler", d_.sampler},
          {"source", d_.has_source ? d_.source.as_written : ""},
          {"samples", samples}}},
        {"fewshot_seed", o.seed},
        {"generation_kwargs",
         {{"until", stops()},
          {"max_gen_toks", d_.max_gen_toks},
          {"do_sample", d_.do_sample},
          {"temperature", d_.temperature}}},
        {"filters", filters},
        {"metrics", metrics},
        {"prompt", prompt_options_json(o, true)},
        {"cot_hint_text", kCotHint},
        {"transforms", nlohmann::json::array()},
    };
  }

  std::vector<std::string> stops() const {
    return d_.until_set ? d_.until : std::vector<std::string>{d_.fewshot_delimiter};
  }

  std::vector<Instance> instances(const TaskOptions& o, size_t* n_documents) const override {
    checked_transforms(d_.name, o, {});
    const fs::path data_path = d_.dataset.resolve(o.data_dir);
    const auto docs = load_docs(data_path);
    const int k = num_fewshot(o);
    if (k < 0) throw Error(d_.name, "num_fewshot must be >= 0");
    // Few-shot pool: inline samples, else the source file.
    std::vector<Doc> pool;
    if (k > 0) {
      if (!d_.samples.empty()) {
        for (size_t i = 0; i < d_.samples.size(); ++i)
          pool.push_back({d_.samples[i], d_.file + ": fewshot.samples[" + std::to_string(i) + "]"});
      } else if (d_.has_source) {
        pool = load_docs(d_.source.resolve(o.data_dir));
      } else {
        throw Error(d_.file, "num_fewshot " + std::to_string(k) +
                                 " but the task has no fewshot samples or source");
      }
    }
    const bool same_file =
        k > 0 && d_.has_source && d_.samples.empty() && d_.source.resolve(o.data_dir) == data_path;
    if (k > 0 && static_cast<size_t>(k) + (same_file ? 1 : 0) > pool.size())
      throw Error(d_.name, "num_fewshot " + std::to_string(k) + " exceeds the " +
                               std::to_string(pool.size()) + " few-shot documents");
    std::vector<Shot> first_n;
    if (d_.sampler == "first_n")
      for (int s = 0; s < k; ++s) first_n.push_back(shot(pool[static_cast<size_t>(s)]));

    if (n_documents) *n_documents = 0;
    const size_t n = detail::limited(docs.size(), o, n_documents);
    PyRandom sampler(o.seed);
    std::vector<Instance> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const Doc& d = docs[i];
      detail::PromptSpec ps;
      ps.description = d_.description;
      ps.target_delimiter = d_.target_delimiter;
      ps.fewshot_delimiter = d_.fewshot_delimiter;
      if (d_.sampler == "first_n") {
        ps.shots = first_n;
      } else if (k > 0) {
        // lm-eval's default sampler: random.Random(seed).sample per document;
        // when the pool is the evaluated file, one extra is drawn and the
        // document itself dropped.
        size_t want = static_cast<size_t>(k) + (same_file ? 1 : 0);
        want = std::min(want, pool.size());
        for (size_t j : sampler.sample(pool.size(), want)) {
          if (same_file && j == i) continue;
          if (ps.shots.size() < static_cast<size_t>(k)) ps.shots.push_back(shot(pool[j]));
        }
      }
      ps.query = d_.text.render(d.rec, d.where, "doc_to_text");
      // After the answer cue doc_to_text ends with, as the built-in
      // lm-eval-style tasks do (also in chat).
      if (o.cot_hint) ps.query += std::string(" ") + kCotHint;
      TaskOptions po = o;
      if (po.system_prompt.empty()) po.system_prompt = d_.system_prompt;
      Instance inst;
      inst.doc_id = std::to_string(i);
      inst.index = i;
      if (!d_.group_by.empty()) {
        if (!d.rec.contains(d_.group_by))
          throw Error(d.where, "group_by: the record has no field \"" + d_.group_by + "\"");
        const auto& g = d.rec[d_.group_by];
        inst.group = g.is_string() ? g.get<std::string>() : g.dump();
      }
      inst.gen = detail::build_gen_request(ps, po, o.apply_chat_template, stops(), d_.max_gen_toks);
      inst.gen.temperature = d_.do_sample ? static_cast<float>(d_.temperature) : 0.0f;
      inst.gold = d_.target.render(d.rec, d.where, "doc_to_target");
      inst.doc_meta = nlohmann::json::parse(d.rec.dump());
      out.push_back(std::move(inst));
    }
    return out;
  }

  detail::Shot shot(const Doc& d) const {
    return {d_.text.render(d.rec, d.where, "doc_to_text"),
            d_.target.render(d.rec, d.where, "doc_to_target")};
  }

  SampleScore score(const Instance& inst, const std::vector<GenResponse>& gens,
                    const std::vector<LoglikResponse>&, const TaskOptions&) const override {
    if (gens.empty()) throw Error(d_.name, "doc " + inst.doc_id + ": no generation to score");
    const std::string& text = gens[0].text;
    const std::string gold = inst.gold.get<std::string>();
    SampleScore s;
    s.details = nlohmann::json::object();
    for (size_t fi = 0; fi < d_.filters.size(); ++fi) {
      const Filter& f = d_.filters[fi];
      std::string x = text;
      for (const auto& st : f.steps) x = apply_step(st, x);
      s.details[f.name] = x;
      if (fi == 0) s.extracted = x;
      for (const auto& m : d_.metrics) {
        double v = 0;
        if (m.name == "exact_match") {
          v = exact_match(x, gold, m.em);
        } else {
          math::Answer g = math::parse(boxed_unless_delimited(gold));
          math::Answer p = ends_with_math(f) ? math::parse("\\boxed{" + x + "}")
                                             : math::parse(math::strip_think(x));
          v = !x.empty() && math::verify(g, p) ? 1.0 : 0.0;
        }
        s.metrics[m.name + "," + f.name] = v;
      }
    }
    s.correct = s.metrics[primary_metric()] == 1.0;
    return s;
  }

  // For maj@K clustering: exact equality of the primary filter's answers,
  // or the math checker's when the primary metric is math_verify.
  bool answers_equivalent(const std::string& a, const std::string& b) const override {
    if (d_.metrics[0].name == "math_verify")
      return !a.empty() && !b.empty() &&
             math::equivalent(boxed_unless_delimited(a), boxed_unless_delimited(b));
    return exact_match(a, b, d_.metrics[0].em) == 1.0;
  }

  std::vector<MetricInfo> metrics(const TaskOptions&) const override {
    std::vector<MetricInfo> out;
    for (const auto& f : d_.filters)
      for (const auto& m : d_.metrics) out.push_back({m.name + "," + f.name, true});
    return out;
  }
  std::string primary_metric() const override {
    return d_.metrics[0].name + "," + d_.filters[0].name;
  }

 private:
  Def d_;
};

Step parse_step(const Parser& P, const YAML::Node& n, const std::string& key) {
  P.only_keys(n, key, {"function", "regex_pattern", "group_select", "fallback", "choices"});
  if (!n["function"]) P.fail(n, key + ".function", "missing");
  const std::string fn = P.str(n["function"], key + ".function");
  Step s;
  auto reject = [&](const char* k) {
    if (n[k]) P.fail(n[k], key + "." + k, "does not apply to function '" + fn + "'");
  };
  if (fn == "regex") {
    s.fn = Fn::kRegex;
    if (!n["regex_pattern"]) P.fail(n, key + ".regex_pattern", "missing");
    try {
      s.re = std::make_shared<const Regex>(P.str(n["regex_pattern"], key + ".regex_pattern"));
    } catch (const Error& e) {
      P.fail(n["regex_pattern"], key + ".regex_pattern", e.what());
    }
    if (n["group_select"]) s.group_select = P.integer(n["group_select"], key + ".group_select");
    if (n["fallback"]) s.fallback = P.str(n["fallback"], key + ".fallback");
    reject("choices");
    return s;
  }
  reject("regex_pattern");
  reject("group_select");
  reject("fallback");
  if (fn == "choice") {
    s.fn = Fn::kChoice;
    if (n["choices"]) {
      s.letters = P.str(n["choices"], key + ".choices");
      for (char c : s.letters)
        if (c < 'A' || c > 'Z')
          P.fail(n["choices"], key + ".choices", "expected capital letters, e.g. ABCD");
      if (s.letters.empty()) P.fail(n["choices"], key + ".choices", "empty");
    }
    return s;
  }
  reject("choices");
  if (fn == "take_first")
    s.fn = Fn::kTakeFirst;
  else if (fn == "remove_whitespace")
    s.fn = Fn::kRemoveWhitespace;
  else if (fn == "math")
    s.fn = Fn::kMath;
  else if (fn == "number")
    s.fn = Fn::kNumber;
  else
    P.fail(n["function"], key + ".function",
           "unknown filter function '" + fn +
               "' (expected one of: regex, take_first, remove_whitespace, math, choice, number)");
  return s;
}

Def parse_def(const std::string& text, const fs::path& path) {
  Parser P{path.string(), path.parent_path()};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw Error(P.src + ":" + std::to_string(e.mark.line + 1), "YAML syntax error: " + e.msg);
  }
  if (!root.IsMap()) P.fail(root, "task file", "expected a mapping of task settings");
  P.only_keys(root, "",
              {"task", "version", "dataset", "doc_to_text", "doc_to_target", "group_by",
               "description", "system_prompt", "fewshot", "generation_kwargs", "filter_list",
               "metric_list", "output_type"});
  Def d;
  d.file = P.src;
  for (const char* k : {"task", "dataset", "doc_to_text", "doc_to_target"})
    if (!root[k]) P.fail(root, k, "missing");
  d.name = P.str(root["task"], "task");
  if (d.name.empty()) P.fail(root["task"], "task", "empty");
  for (char c : d.name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      P.fail(root["task"], "task",
             "'" + d.name +
                 "' may only use letters, digits, '-', '_' and '.' (it names output files)");
  if (root["version"]) d.version = P.str(root["version"], "version");
  if (root["output_type"] && P.str(root["output_type"], "output_type") != "generate_until")
    P.fail(root["output_type"], "output_type", "only generate_until is supported");
  d.dataset = data_ref(P, root["dataset"], "dataset");
  d.text = doc_text(P, root["doc_to_text"], "doc_to_text");
  d.target = doc_text(P, root["doc_to_target"], "doc_to_target");
  if (root["group_by"]) d.group_by = P.str(root["group_by"], "group_by");
  if (root["description"]) d.description = P.str(root["description"], "description");
  if (root["system_prompt"]) d.system_prompt = P.str(root["system_prompt"], "system_prompt");

  if (const YAML::Node f = root["fewshot"]) {
    P.only_keys(f, "fewshot",
                {"samples", "source", "split", "sampler", "num_fewshot", "fewshot_delimiter",
                 "target_delimiter"});
    // `split` is lm-eval's fewshot_split, given here as a file (same path
    // rules as dataset); `source` is its older name.
    if (f["source"] && f["split"])
      P.fail(f["split"], "fewshot.split", "give either split or source, not both");
    const char* src_key = f["split"] ? "split" : "source";
    const std::string src_name = std::string("fewshot.") + src_key;
    if (f["samples"] && f[src_key])
      P.fail(f[src_key], src_name, "give either samples or " + std::string(src_key) + ", not both");
    if (f["samples"]) {
      if (!f["samples"].IsSequence()) P.fail(f["samples"], "fewshot.samples", "expected a list");
      for (const auto& s : f["samples"]) {
        if (!s.IsMap()) P.fail(s, "fewshot.samples[]", "expected a mapping (one document)");
        d.samples.push_back(to_json(s));
      }
    }
    if (f[src_key]) {
      d.has_source = true;
      d.source = data_ref(P, f[src_key], src_name);
    }
    if (f["sampler"]) {
      d.sampler = P.str(f["sampler"], "fewshot.sampler");
      // `random` and `default` both name lm-eval's seeded default sampler.
      if (d.sampler != "first_n" && d.sampler != "default" && d.sampler != "random")
        P.fail(f["sampler"], "fewshot.sampler", "expected first_n, random or default");
    } else {
      d.sampler = f["samples"] ? "first_n" : "default";
    }
    if (f["num_fewshot"]) {
      d.num_fewshot = P.integer(f["num_fewshot"], "fewshot.num_fewshot");
      if (d.num_fewshot < 0) P.fail(f["num_fewshot"], "fewshot.num_fewshot", "must be >= 0");
      if (!d.samples.empty() && static_cast<size_t>(d.num_fewshot) > d.samples.size())
        P.fail(f["num_fewshot"], "fewshot.num_fewshot",
               "larger than the " + std::to_string(d.samples.size()) + " samples given");
    }
    if (d.num_fewshot > 0 && d.samples.empty() && !d.has_source)
      P.fail(f, "fewshot", "num_fewshot > 0 needs samples or a split");
    if (f["fewshot_delimiter"])
      d.fewshot_delimiter = P.str(f["fewshot_delimiter"], "fewshot.fewshot_delimiter");
    if (f["target_delimiter"])
      d.target_delimiter = P.str(f["target_delimiter"], "fewshot.target_delimiter");
  }

  if (const YAML::Node g = root["generation_kwargs"]) {
    P.only_keys(g, "generation_kwargs", {"until", "max_gen_toks", "temperature", "do_sample"});
    if (g["until"]) {
      d.until = P.str_list(g["until"], "generation_kwargs.until");
      d.until_set = true;
    }
    if (g["max_gen_toks"]) {
      d.max_gen_toks = P.integer(g["max_gen_toks"], "generation_kwargs.max_gen_toks");
      if (d.max_gen_toks <= 0)
        P.fail(g["max_gen_toks"], "generation_kwargs.max_gen_toks", "must be > 0");
    }
    if (g["temperature"]) {
      d.temperature = P.real(g["temperature"], "generation_kwargs.temperature");
      if (d.temperature < 0)
        P.fail(g["temperature"], "generation_kwargs.temperature", "must be >= 0");
    }
    if (g["do_sample"]) d.do_sample = P.boolean(g["do_sample"], "generation_kwargs.do_sample");
  }

  if (const YAML::Node fl = root["filter_list"]) {
    if (!fl.IsSequence() || fl.size() == 0)
      P.fail(fl, "filter_list", "expected a non-empty list of {name, filter}");
    std::set<std::string> names;
    for (size_t i = 0; i < fl.size(); ++i) {
      const YAML::Node e = fl[i];
      const std::string key = "filter_list[" + std::to_string(i) + "]";
      P.only_keys(e, key, {"name", "filter"});
      if (!e["name"]) P.fail(e, key + ".name", "missing");
      if (!e["filter"]) P.fail(e, key + ".filter", "missing");
      Filter f;
      f.name = P.str(e["name"], key + ".name");
      if (f.name.empty() || f.name.find(',') != std::string::npos)
        P.fail(e["name"], key + ".name", "must be non-empty and without ','");
      if (!names.insert(f.name).second)
        P.fail(e["name"], key + ".name", "duplicate filter name '" + f.name + "'");
      const YAML::Node steps = e["filter"];
      if (!steps.IsSequence() || steps.size() == 0)
        P.fail(steps, key + ".filter", "expected a non-empty list of {function: ...}");
      f.spec = {{"name", f.name}, {"filter", nlohmann::json::array()}};
      for (size_t j = 0; j < steps.size(); ++j) {
        f.steps.push_back(parse_step(P, steps[j], key + ".filter[" + std::to_string(j) + "]"));
        f.spec["filter"].push_back(nlohmann::json::parse(to_json(steps[j]).dump()));
      }
      d.filters.push_back(std::move(f));
    }
  } else {
    Filter f;
    f.name = "none";
    f.steps.push_back(Step{});
    f.spec = {{"name", "none"}, {"filter", {{{"function", "take_first"}}}}};
    d.filters.push_back(std::move(f));
  }

  const YAML::Node ml = root["metric_list"];
  if (!ml) P.fail(root, "metric_list", "missing (e.g. [{metric: exact_match}])");
  if (!ml.IsSequence() || ml.size() == 0)
    P.fail(ml, "metric_list", "expected a non-empty list of {metric: ...}");
  std::set<std::string> seen;
  for (size_t i = 0; i < ml.size(); ++i) {
    const YAML::Node e = ml[i];
    const std::string key = "metric_list[" + std::to_string(i) + "]";
    P.only_keys(e, key,
                {"metric", "aggregation", "higher_is_better", "ignore_case", "ignore_punctuation",
                 "regexes_to_ignore"});
    if (!e["metric"]) P.fail(e, key + ".metric", "missing");
    Metric m;
    m.name = P.str(e["metric"], key + ".metric");
    if (m.name != "exact_match" && m.name != "math_verify")
      P.fail(e["metric"], key + ".metric",
             "unknown metric '" + m.name + "' (expected exact_match or math_verify)");
    if (!seen.insert(m.name).second) P.fail(e["metric"], key + ".metric", "listed twice");
    if (e["aggregation"] && P.str(e["aggregation"], key + ".aggregation") != "mean")
      P.fail(e["aggregation"], key + ".aggregation", "only mean is supported");
    if (e["higher_is_better"] && !P.boolean(e["higher_is_better"], key + ".higher_is_better"))
      P.fail(e["higher_is_better"], key + ".higher_is_better", "must be true for " + m.name);
    if (m.name == "math_verify")
      for (const char* k : {"ignore_case", "ignore_punctuation", "regexes_to_ignore"})
        if (e[k]) P.fail(e[k], key + "." + k, "applies to exact_match only");
    if (e["ignore_case"]) m.em.ignore_case = P.boolean(e["ignore_case"], key + ".ignore_case");
    if (e["ignore_punctuation"])
      m.em.ignore_punctuation = P.boolean(e["ignore_punctuation"], key + ".ignore_punctuation");
    if (e["regexes_to_ignore"]) {
      m.em.regexes_to_ignore = P.str_list(e["regexes_to_ignore"], key + ".regexes_to_ignore");
      for (const auto& r : m.em.regexes_to_ignore) {
        try {
          Regex check(r);
        } catch (const Error& err) {
          P.fail(e["regexes_to_ignore"], key + ".regexes_to_ignore", err.what());
        }
      }
    }
    m.spec = {{"metric", m.name}};
    if (m.name == "exact_match")
      m.spec.update({{"ignore_case", m.em.ignore_case},
                     {"ignore_punctuation", m.em.ignore_punctuation},
                     {"regexes_to_ignore", m.em.regexes_to_ignore}});
    d.metrics.push_back(std::move(m));
  }
  return d;
}

}  // namespace

bool is_task_file(const std::string& name) {
  auto ends = [&](const char* suf) {
    size_t n = std::char_traits<char>::length(suf);
    return name.size() > n && name.compare(name.size() - n, n, suf) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

std::unique_ptr<Task> parse_yaml_task(const std::string& text, const fs::path& path) {
  return std::make_unique<YamlTask>(parse_def(text, path));
}

std::unique_ptr<Task> load_yaml_task(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path.string(), "no such task file");
  return parse_yaml_task(read_file(path), path);
}

}  // namespace rv::eval
