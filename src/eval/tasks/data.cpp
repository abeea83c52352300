#include "eval/tasks/data.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace rv::eval {

namespace {

const char* kFetchHint = "run `reasonvec data fetch` or pass --data-dir";

void check_fields(const nlohmann::json& rec, const std::vector<std::string>& required,
                  const std::string& where) {
  if (!rec.is_object()) throw Error(where, "record is not a JSON object");
  for (const auto& f : required)
    if (!rec.contains(f)) throw Error(where, "record has no field \"" + f + "\"");
}

std::string gunzip_file(const fs::path& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) throw Error(path.string(), "cannot open: " + errno_text(errno));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(gz, buf, sizeof buf);
    if (n < 0) {
      int errnum = 0;
      std::string msg = gzerror(gz, &errnum);
      gzclose(gz);
      throw Error(path.string(), "corrupt gzip data (" + msg + "); " + kFetchHint);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  int rc = gzclose(gz);
  if (rc != Z_OK) throw Error(path.string(), std::string("truncated gzip data; ") + kFetchHint);
  return out;
}

}  // namespace

std::string bbh_task_file(const std::string& subtask) {
  return "bbh/tasks/" + subtask + ".json";
}
std::string bbh_prompt_file(const std::string& subtask) {
  return "bbh/cot-prompts/" + subtask + ".txt";
}

fs::path default_data_dir() {
  if (const char* d = std::getenv("RV_DATA_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "reasonvec";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "reasonvec";
  return fs::path(".cache") / "reasonvec";
}

fs::path require_data_file(const fs::path& data_dir, const std::string& rel) {
  fs::path p = data_dir / rel;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) throw Error(p.string(), std::string("missing; ") + kFetchHint);
  return p;
}

std::string read_data_text(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw Error(path.string(), std::string("missing; ") + kFetchHint);
  if (path.extension() == ".gz") return gunzip_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), "cannot open: " + errno_text(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path.string(), "read failed");
  return ss.str();
}

template <class J>
std::vector<LocatedRecord<J>> parse_json_objects(const fs::path& path, const std::string& text,
                                                 bool arrays, const std::string& hint) {
  const std::string tail = hint.empty() ? "" : "; " + hint;
  std::vector<LocatedRecord<J>> out;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (arrays && first != std::string::npos && text[first] == '[') {
    J arr;
    try {
      arr = J::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(path.string(), std::string("invalid JSON (") + e.what() + ")" + tail);
    }
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string where = path.string() + ": element " + std::to_string(i);
      if (!arr[i].is_object()) throw Error(where, "record is not a JSON object");
      out.push_back({std::move(arr[i]), std::move(where)});
    }
    return out;
  }
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string where = path.string() + ":" + std::to_string(line_no);
    J rec;
    try {
      rec = J::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(where, std::string("invalid JSON (") + e.what() + ")" + tail);
    }
    if (!rec.is_object()) throw Error(where, "record is not a JSON object");
    out.push_back({std::move(rec), std::move(where)});
  }
  return out;
}

template std::vector<LocatedRecord<nlohmann::json>> parse_json_objects(const fs::path&,
                                                                       const std::string&, bool,
                                                                       const std::string&);
template std::vector<LocatedRecord<nlohmann::ordered_json>> parse_json_objects(const fs::path&,
                                                                               const std::string&,
                                                                               bool,
                                                                               const std::string&);

// The records of a data file holding every field in `required`.
static std::vector<nlohmann::json> records(const fs::path& path, const std::string& text,
                                           bool arrays, const std::vector<std::string>& required) {
  std::vector<nlohmann::json> out;
  for (auto& r : parse_json_objects<nlohmann::json>(path, text, arrays, kFetchHint)) {
    check_fields(r.rec, required, r.where);
    out.push_back(std::move(r.rec));
  }
  if (out.empty()) throw Error(path.string(), std::string("no records; ") + kFetchHint);
  return out;
}

std::vector<nlohmann::json> load_jsonl(const fs::path& path,
                                       const std::vector<std::string>& required) {
  return records(path, read_data_text(path), false, required);
}

std::vector<nlohmann::json> load_json_records(const fs::path& path,
                                              const std::vector<std::string>& required) {
  std::string text = read_data_text(path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error(path.string(), std::string("empty; ") + kFetchHint);
  return records(path, text, true, required);
}

const std::vector<std::string>& bbh_subtasks() {
  static const std::vector<std::string> names = {"boolean_expressions",
                                                 "causal_judgement",
                                                 "date_understanding",
                                                 "disambiguation_qa",
                                                 "dyck_languages",
                                                 "formal_fallacies",
                                                 "geometric_shapes",
                                                 "hyperbaton",
                                                 "logical_deduction_five_objects",
                                                 "logical_deduction_seven_objects",
                                                 "logical_deduction_three_objects",
                                                 "movie_recommendation",
                                                 "multistep_arithmetic_two",
                                                 "navigate",
                                                 "object_counting",
                                                 "penguins_in_a_table",
                                                 "reasoning_about_colored_objects",
                                                 "ruin_names",
                                                 "salient_translation_error_detection",
                                                 "snarks",
                                                 "sports_understanding",
                                                 "temporal_sequences",
                                                 "tracking_shuffled_objects_five_objects",
                                                 "tracking_shuffled_objects_seven_objects",
                                                 "tracking_shuffled_objects_three_objects",
                                                 "web_of_lies",
                                                 "word_sorting"};
  return names;
}

std::vector<nlohmann::json> load_bbh_examples(const fs::path& data_dir,
                                              const std::string& subtask) {
  fs::path p = require_data_file(data_dir, bbh_task_file(subtask));
  std::string text = read_data_text(p);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(p.string(), std::string("invalid JSON (") + e.what() + "); " + kFetchHint);
  }
  if (!j.is_object() || !j.contains("examples") || !j["examples"].is_array())
    throw Error(p.string(), "no \"examples\" array");
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < j["examples"].size(); ++i) {
    auto& ex = j["examples"][i];
    std::string where = p.string() + ": example " + std::to_string(i);
    check_fields(ex, {"input", "target"}, where);
    if (!ex["input"].is_string() || !ex["target"].is_string())
      throw Error(where, "\"input\" and \"target\" must be strings");
    out.push_back(std::move(ex));
  }
  if (out.empty()) throw Error(p.string(), "no examples");
  return out;
}

std::string load_bbh_cot_prompt(const fs::path& data_dir, const std::string& subtask) {
  fs::path p = require_data_file(data_dir, bbh_prompt_file(subtask));
  std::string text = read_data_text(p);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    if (std::string_view(text.data() + pos, nl - pos) == "-----") return text.substr(nl + 1);
    pos = nl + 1;
  }
  throw Error(p.string(), "no \"-----\" line separating the canary header from the prompt");
}

}  // namespace rv::eval
