// data list/verify (no network): the built-in table matches SOURCES.md,
// covers every file the tasks read, and verify detects missing and corrupt
// files. The real shared data must verify clean.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "eval/data.h"
#include "eval/fetch.h"

namespace fs = std::filesystem;
using namespace rv::eval;

TEST(Fetch, TableMatchesSourcesMd) {
  std::string md = rv::read_file(fs::path(RV_SHARED_DIR) / "data" / "SOURCES.md");
  // | `path` | repo | `repo path` | `commit` | licence | `sha256` | rows |
  std::regex row(
      R"(\| `([^`]+)` \| ([^|]+?) \| `([^`]+)` \| `([0-9a-f]{40})` \| [^|]+ \| `([0-9a-f]{64})` \|)");
  size_t matched = 0;
  std::map<std::string, const DataFile*> by_path;
  for (const auto& f : known_data_files()) by_path[f.path] = &f;
  for (auto it = std::sregex_iterator(md.begin(), md.end(), row); it != std::sregex_iterator();
       ++it) {
    std::string path = (*it)[1];
    if (path.rfind("tokenizer/", 0) == 0) continue;  // not benchmark data
    auto f = by_path.find(path);
    ASSERT_NE(f, by_path.end()) << path;
    EXPECT_EQ(f->second->repo_path, (*it)[3].str());
    EXPECT_EQ(f->second->commit, (*it)[4].str());
    EXPECT_EQ(f->second->sha256, (*it)[5].str());
    EXPECT_EQ(f->second->url(), "https://raw.githubusercontent.com/" + f->second->repo + "/" +
                                    (*it)[4].str() + "/" + (*it)[3].str());
    ++matched;
  }
  EXPECT_EQ(matched, known_data_files().size());
  EXPECT_EQ(matched, 61u);
}

TEST(Fetch, CoversEveryFileTheTasksRead) {
  std::set<std::string> known;
  for (const auto& f : known_data_files()) known.insert(f.path);
  for (const auto& p : data_file_paths()) EXPECT_TRUE(known.count(p)) << p;
}

TEST(Fetch, SharedDataVerifiesClean) {
  auto st = check_data(fs::path(RV_SHARED_DIR) / "data", /*hash=*/true);
  ASSERT_EQ(st.size(), 61u);
  for (const auto& s : st)
    EXPECT_EQ(s.state, FileState::kOk) << s.file->path << " " << s.actual_sha256;
}

TEST(Fetch, DetectsMissingAndCorruptFiles) {
  fs::path d = fs::temp_directory_path() / ("rv_fetch_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d / "gsm8k");
  fs::copy_file(fs::path(RV_SHARED_DIR) / "data/gsm8k/test.jsonl", d / "gsm8k/test.jsonl");
  rv::write_file(d / "gsm8k/train.jsonl", "{\"question\": \"tampered\"}\n");
  auto st = check_data(d, true);
  for (const auto& s : st) {
    if (s.file->path == "gsm8k/test.jsonl")
      EXPECT_EQ(s.state, FileState::kOk);
    else if (s.file->path == "gsm8k/train.jsonl")
      EXPECT_EQ(s.state, FileState::kCorrupt);
    else
      EXPECT_EQ(s.state, FileState::kMissing) << s.file->path;
  }
  auto quick = check_data(d, false);
  EXPECT_EQ(quick[0].state, FileState::kUnchecked);
  // sha256_file against an independent value: SHA-256("abc").
  rv::write_file(d / "abc", "abc");
  EXPECT_EQ(sha256_file(d / "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THROW(sha256_file(d / "nope"), rv::Error);
  fs::remove_all(d);
}
