// Benchmark data loaders.
//
// A data directory holds the canonical files under fixed relative paths (the
// layout of ../shared/data and of `reasonvec data fetch`):
//   gsm8k/{train,test}.jsonl, humaneval/HumanEval.jsonl.gz,
//   bbh/tasks/<subtask>.json, bbh/cot-prompts/<subtask>.txt,
//   sciq/sciq_test.json (JSON array or JSONL), gsm-plus/gsmplus_testmini.jsonl,
//   gsm-symbolic/GSM_p2.jsonl.
// Every loader validates the fields the tasks need and throws rv::Error
// "<file>: <problem>" (with the 1-based line for JSONL); a missing file's
// message says to run `reasonvec data fetch` or pass --data-dir.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rv::eval {

namespace fs = std::filesystem;

// $RV_DATA_DIR, else $XDG_CACHE_HOME/reasonvec, else ~/.cache/reasonvec.
fs::path default_data_dir();

// data_dir / rel, throwing the "how to fetch" error when the file is absent.
fs::path require_data_file(const fs::path& data_dir, const std::string& rel);

// Whole file as text; ".gz" files are gunzipped (zlib). Throws on missing,
// unreadable or corrupt-gzip files.
std::string read_data_text(const fs::path& path);

// One record of a JSON data file and where it came from ("<file>:<line>" or
// "<file>: element N").
template <class J>
struct LocatedRecord {
  J rec;
  std::string where;
};

// The objects in `text`, the contents of `path`: JSONL (one object per
// non-empty line) or, when `arrays` is set and the first non-space byte is
// '[', a JSON array of objects. J is nlohmann::json or nlohmann::ordered_json
// (which keeps each record's key order). Invalid JSON and records that are
// not objects throw rv::Error naming the line or element, with "; <hint>"
// appended when `hint` is not empty. An empty result is returned as such.
template <class J>
std::vector<LocatedRecord<J>> parse_json_objects(const fs::path& path, const std::string& text,
                                                 bool arrays, const std::string& hint);

// One JSON object per non-empty line (".gz" allowed). Each record must be an
// object holding every name in `required` (any JSON type).
std::vector<nlohmann::json> load_jsonl(const fs::path& path,
                                       const std::vector<std::string>& required = {});
// A JSON array of objects or JSONL, detected from the first non-space byte.
std::vector<nlohmann::json> load_json_records(const fs::path& path,
                                              const std::vector<std::string>& required = {});

// The 27 BIG-Bench Hard subtasks, sorted by name.
const std::vector<std::string>& bbh_subtasks();
// A BBH subtask's examples and its chain-of-thought prompt, relative to the
// data directory.
std::string bbh_task_file(const std::string& subtask);
std::string bbh_prompt_file(const std::string& subtask);
// bbh/tasks/<subtask>.json "examples" ({input, target} strings).
std::vector<nlohmann::json> load_bbh_examples(const fs::path& data_dir, const std::string& subtask);
// bbh/cot-prompts/<subtask>.txt without its canary header: everything after
// the first line that is exactly "-----". Throws if that line is missing.
std::string load_bbh_cot_prompt(const fs::path& data_dir, const std::string& subtask);

}  // namespace rv::eval
