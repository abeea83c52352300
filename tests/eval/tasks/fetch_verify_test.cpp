// data list/verify/fetch: the built-in table matches SOURCES.md, covers
// every file the tasks read, and verify detects missing and corrupt files;
// the real shared data must verify clean. fetch runs against a loopback
// server (tests never leave the machine).
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/file.h"
#include "eval/tasks/data.h"
#include "eval/tasks/fetch.h"
#include "eval/tasks/task.h"

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
  // The competition-math files are documented in math/SOURCES.md:
  // | `name/test.jsonl` | rows | bytes | `sha256` | `git blob` |
  std::string math_md = rv::read_file(fs::path(RV_SHARED_DIR) / "data" / "math" / "SOURCES.md");
  std::regex math_row(
      R"(\| `([a-z0-9_]+/test\.jsonl)` \| ([0-9]+) \| ([0-9,]+) \| `([0-9a-f]{64})` \|)");
  size_t math_matched = 0;
  for (auto it = std::sregex_iterator(math_md.begin(), math_md.end(), math_row);
       it != std::sregex_iterator(); ++it) {
    std::string path = "math/" + (*it)[1].str();
    auto f = by_path.find(path);
    ASSERT_NE(f, by_path.end()) << path;
    std::string bytes = (*it)[3];
    bytes.erase(std::remove(bytes.begin(), bytes.end(), ','), bytes.end());
    EXPECT_EQ(f->second->sha256, (*it)[4].str()) << path;
    EXPECT_EQ(f->second->size, std::stoull(bytes)) << path;
    ++math_matched;
  }
  EXPECT_EQ(math_matched, 6u);
  EXPECT_EQ(matched + math_matched, known_data_files().size());
  EXPECT_EQ(matched, 61u);
}

TEST(Fetch, CoversEveryFileTheTasksRead) {
  std::set<std::string> known;
  for (const auto& f : known_data_files()) known.insert(f.path);
  size_t declared = 0;
  for (const auto& name : task_names())
    for (const auto& p : make_task(name)->data_files()) {
      EXPECT_TRUE(known.count(p)) << name << " reads " << p;
      ++declared;
    }
  EXPECT_GE(declared, 66u);  // gsm8k x2, humaneval, sciq, gsm-plus, gsm-symbolic, 27 BBH x2, 6 math
}

TEST(Fetch, SharedDataVerifiesClean) {
  auto st = check_data(fs::path(RV_SHARED_DIR) / "data", /*hash=*/true);
  ASSERT_EQ(st.size(), 67u);
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

// `data fetch` for real over HTTP: a loopback server stands in for
// raw.githubusercontent.com and serves the shared data files by their
// canonical paths (repo/commit/path), optionally corrupted or missing.
class FetchOverHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    srv_.Get(R"(/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      for (const auto& f : known_data_files()) {
        if (req.path != "/" + f.repo + "/" + f.commit + "/" + f.repo_path) continue;
        if (f.path == missing_) break;
        std::string body = rv::read_file(fs::path(RV_SHARED_DIR) / "data" / f.path);
        if (f.path == corrupt_) body[body.size() / 2] ^= 1;
        res.set_content(body, "application/octet-stream");
        ++served_;
        return;
      }
      res.status = 404;
    });
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    while (!srv_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    dir_ = fs::temp_directory_path() / ("rv_fetch_http_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    srv_.stop();
    thread_.join();
    fs::remove_all(dir_);
  }
  FetchOptions opts(std::vector<std::string> only) const {
    FetchOptions o;
    o.dir = dir_;
    o.only = std::move(only);
    o.base_url = "http://127.0.0.1:" + std::to_string(port_);
    return o;
  }
  std::string error_of(const FetchOptions& o) {
    try {
      fetch_data(o, nullptr);
    } catch (const rv::Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  httplib::Server srv_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> served_{0};
  std::string corrupt_, missing_;
  fs::path dir_;
};

TEST_F(FetchOverHttp, DownloadsVerifiesAndSkipsWhatIsValid) {
  std::vector<std::string> lines;
  int n =
      fetch_data(opts({"gsm8k/", "humaneval/"}), [&](const std::string& l) { lines.push_back(l); });
  EXPECT_EQ(n, 3);  // gsm8k test + train, HumanEval
  EXPECT_EQ(served_.load(), 3);
  for (const auto& s : check_data(dir_, true)) {
    bool wanted = s.file->path.rfind("gsm8k/", 0) == 0 || s.file->path.rfind("humaneval/", 0) == 0;
    EXPECT_EQ(s.state, wanted ? FileState::kOk : FileState::kMissing) << s.file->path;
  }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind("fetched   ", 0), 0u) << lines[0];
  // Valid files are not downloaded again; --force does.
  EXPECT_EQ(fetch_data(opts({"gsm8k/"}), nullptr), 0);
  EXPECT_EQ(served_.load(), 3);
  auto f = opts({"gsm8k/test"});
  f.force = true;
  EXPECT_EQ(fetch_data(f, nullptr), 1);
  EXPECT_EQ(served_.load(), 4);
}

TEST_F(FetchOverHttp, CorruptOrMissingDownloadsLeaveNothingBehind) {
  corrupt_ = "sciq/sciq_test.json";
  auto o = opts({"sciq/"});
  std::string e = error_of(o);
  EXPECT_NE(e.find("/sciq_test.json: SHA-256 mismatch"), std::string::npos) << e;
  EXPECT_NE(e.find("(download discarded)"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir_ / "sciq/sciq_test.json"));
  corrupt_.clear();
  missing_ = "sciq/sciq_test.json";
  e = error_of(o);
  EXPECT_NE(e.find("download failed: HTTP 404"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir_ / "sciq/sciq_test.json"));
  // No file at all: neither the bad download nor a temporary.
  size_t files = 0;
  for (const auto& p : fs::recursive_directory_iterator(dir_)) files += p.is_regular_file();
  EXPECT_EQ(files, 0u);
}

TEST_F(FetchOverHttp, CompetitionMathFilesAndTheirSizes) {
  EXPECT_EQ(fetch_data(opts({"math/"}), nullptr), 6);
  EXPECT_EQ(served_.load(), 6);
  size_t ok = 0;
  for (const auto& s : check_data(dir_, true))
    if (s.file->path.rfind("math/", 0) == 0) {
      EXPECT_EQ(s.state, FileState::kOk) << s.file->path;
      EXPECT_EQ(s.size, s.file->size) << s.file->path;
      ++ok;
    }
  EXPECT_EQ(ok, 6u);
  // The recorded size catches a changed file without hashing.
  { std::ofstream(dir_ / "math/amc23/test.jsonl", std::ios::app) << "\n"; }
  for (const auto& s : check_data(dir_, false)) {
    if (s.file->path == "math/amc23/test.jsonl") {
      EXPECT_EQ(s.state, FileState::kCorrupt);
    } else if (s.file->path.rfind("math/", 0) == 0) {
      EXPECT_EQ(s.state, FileState::kUnchecked) << s.file->path;
    }
  }
}
