// AtomicOutput: outputs appear whole or not at all, and temporaries left by
// writers that were killed are swept by the next writer of the same output.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "common/file.h"

namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("rv_common_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) _exit(0);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return pid;
}

}  // namespace

TEST(AtomicOutput, AppearsOnlyOnCommit) {
  TempDir d;
  const fs::path out = d.path / "out.bin";
  {
    rv::AtomicOutput a(out, rv::AtomicOutput::Kind::kFile, false);
    rv::write_file(a.path(), "partial");
    EXPECT_FALSE(fs::exists(out));
  }  // abandoned: nothing may remain
  EXPECT_TRUE(fs::is_empty(d.path));
  {
    rv::AtomicOutput a(out, rv::AtomicOutput::Kind::kFile, false);
    rv::write_file(a.path(), "whole");
    a.commit();
  }
  EXPECT_EQ(rv::read_file(out), "whole");
  EXPECT_THROW(rv::AtomicOutput(out, rv::AtomicOutput::Kind::kFile, false), rv::Error);
}

TEST(AtomicOutput, SweepsTemporariesOfDeadWritersOnly) {
  TempDir d;
  const fs::path out = d.path / "results";
  const fs::path dead = d.path / (".results.tmp-" + std::to_string(dead_pid()));
  const fs::path live = d.path / (".results.tmp-" + std::to_string(::getppid()));
  const fs::path other = d.path / (".other.tmp-" + std::to_string(dead_pid()));
  const fs::path odd = d.path / ".results.tmp-12ab";
  for (const auto& p : {dead, live, other, odd}) fs::create_directories(p / "sub");
  {
    rv::AtomicOutput a(out, rv::AtomicOutput::Kind::kDirectory, false);
    EXPECT_FALSE(fs::exists(dead));
    EXPECT_TRUE(fs::exists(live));   // its writer may still be running
    EXPECT_TRUE(fs::exists(other));  // another output's business
    EXPECT_TRUE(fs::exists(odd));    // not a name we write
    a.commit();
  }
  EXPECT_TRUE(fs::is_directory(out));
}
