// `reasonvec data fetch|list|verify`: the benchmark files every task reads,
// with their canonical public URLs (a pinned commit of the source GitHub
// repository, served by raw.githubusercontent.com) and SHA-256 digests (from
// ../shared/data/SOURCES.md, where each file's provenance is documented).
//
// Files land under a data directory in the layout data.h describes
// (default: default_data_dir(), i.e. ~/.cache/reasonvec). Downloads go to a
// temporary file that is renamed into place only after its digest matched,
// so a data directory never holds a partial or corrupt file from us.
//
// list and verify never touch the network.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace rv::eval {

struct DataFile {
  std::string path;         // relative to the data directory, e.g. "gsm8k/test.jsonl"
  std::string repo;         // "openai/grade-school-math"
  std::string commit;       // pinned source commit
  std::string repo_path;    // path inside the repository
  std::string sha256;       // lower-case hex
  uint64_t size = 0;        // bytes, where the source documents it (0: not recorded)
  std::string url() const;  // https://raw.githubusercontent.com/<repo>/<commit>/<repo_path>
};

// Every file a task reads (67 files: GSM8K, HumanEval, BBH, SciQ, GSM-Plus,
// GSM-Symbolic from ../shared/data/SOURCES.md; MATH-500, AIME 2024/2025,
// AMC 2023, Minerva math, OlympiadBench from ../shared/data/math/SOURCES.md).
const std::vector<DataFile>& known_data_files();

enum class FileState { kOk, kMissing, kCorrupt, kUnchecked };

struct FileStatus {
  const DataFile* file = nullptr;
  FileState state = FileState::kMissing;
  uint64_t size = 0;
  std::string actual_sha256;  // when hashed
};

// hash=false only checks presence and, where the table records one, the
// size (state kUnchecked for present files, kCorrupt for a wrong size).
std::vector<FileStatus> check_data(const std::filesystem::path& dir, bool hash);

// Hex SHA-256 of a whole file, streamed. Throws rv::Error("path: ...").
std::string sha256_file(const std::filesystem::path& path);

struct FetchOptions {
  std::filesystem::path dir;
  bool force = false;             // re-download files that are already valid
  std::vector<std::string> only;  // path prefixes ("gsm8k", "bbh/"); empty: all
  std::string base_url = "https://raw.githubusercontent.com";  // mirrors, tests
};

// Downloads missing or corrupt files; returns the number downloaded. Calls
// `log` with one line per file. Throws rv::Error naming the URL on network
// errors, HTTP errors or a digest mismatch (the bad download is discarded).
int fetch_data(const FetchOptions& opt, const std::function<void(const std::string&)>& log);

}  // namespace rv::eval
