// AtomicOutput: outputs appear whole or not at all, and temporaries left by
// writers that were killed are swept by the next writer of the same output.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "common/file.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

using rv_test::TmpDir;

pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) _exit(0);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return pid;
}

}  // namespace

TEST(AtomicOutput, AppearsOnlyOnCommit) {
  TmpDir d("common");
  const fs::path out = d.p / "out.bin";
  {
    rv::AtomicOutput a(out, rv::AtomicOutput::Kind::kFile, false);
    rv::write_file(a.path(), "partial");
    EXPECT_FALSE(fs::exists(out));
  }  // abandoned: nothing may remain
  EXPECT_TRUE(fs::is_empty(d.p));
  {
    rv::AtomicOutput a(out, rv::AtomicOutput::Kind::kFile, false);
    rv::write_file(a.path(), "whole");
    a.commit();
  }
  EXPECT_EQ(rv::read_file(out), "whole");
  EXPECT_THROW(rv::AtomicOutput(out, rv::AtomicOutput::Kind::kFile, false), rv::Error);
}

TEST(AtomicOutput, WriteFileAtomicReplacesWholeAndLeavesNoTemporary) {
  TmpDir d("common");
  const fs::path out = d.p / "log.jsonl";
  rv::write_file_atomic(out, "first\n");
  rv::write_file_atomic(out, "second\n");
  EXPECT_EQ(rv::read_file(out), "second\n");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(d.p)) files += !e.path().empty();
  EXPECT_EQ(files, 1u);
  EXPECT_THROW(rv::write_file_atomic(d.p / "missing" / "x", "y"), rv::Error);
}

TEST(AtomicOutput, SweepsTemporariesOfDeadWritersOnly) {
  TmpDir d("common");
  const fs::path out = d.p / "results";
  const fs::path dead = d.p / (".results.tmp-" + std::to_string(dead_pid()));
  const fs::path live = d.p / (".results.tmp-" + std::to_string(::getppid()));
  const fs::path other = d.p / (".other.tmp-" + std::to_string(dead_pid()));
  const fs::path odd = d.p / ".results.tmp-12ab";
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
