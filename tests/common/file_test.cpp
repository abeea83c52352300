// AtomicOutput: outputs appear whole or not at all, and temporaries left by
// writers that were killed are swept by the next writer of the same output.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>

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

namespace {

// The VmFlags line of the mapping that starts at `addr` in /proc/self/smaps
// ("" if none).
std::string vm_flags(const void* addr) {
  std::istringstream in(rv::read_file("/proc/self/smaps"));
  char start[32];
  snprintf(start, sizeof start, "%lx-", reinterpret_cast<unsigned long>(addr));
  // VmFlags is the last line of each mapping's block, so the first one after
  // the mapping's header line is its own.
  bool ours = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(start, 0) == 0)
      ours = true;
    else if (ours && line.rfind("VmFlags:", 0) == 0)
      return line;
  }
  return "";
}

}  // namespace

// Large mappings ask for huge pages (VM_HUGEPAGE shows as "hg"); small ones
// are left alone. Where the kernel has no transparent huge pages the advice
// cannot be given, and there is nothing to check.
TEST(MappedFile, LargeMappingsAskForHugePages) {
  if (!fs::exists("/sys/kernel/mm/transparent_hugepage"))
    GTEST_SKIP() << "no transparent huge pages in this kernel";
  TmpDir d("common");
  rv::write_file(d.p / "big", std::string(size_t{4} << 20, 'x'));
  rv::write_file(d.p / "small", std::string(size_t{64} << 10, 'x'));
  const rv::MappedFile big(d.p / "big"), small(d.p / "small");
  const std::string fb = vm_flags(big.data()), fs_ = vm_flags(small.data());
  ASSERT_FALSE(fb.empty());
  ASSERT_FALSE(fs_.empty());
  EXPECT_NE(fb.find(" hg"), std::string::npos) << fb;
  EXPECT_EQ(fs_.find(" hg"), std::string::npos) << fs_;
}
