#include "common/progress.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace rv {
namespace {

// Captures what is written to file descriptor 2 while fn runs.
template <class Fn>
std::string capture_stderr(Fn fn) {
  fflush(stderr);
  FILE* tmp = tmpfile();
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string out;
  rewind(tmp);
  char buf[256];
  for (size_t n; (n = fread(buf, 1, sizeof buf, tmp)) > 0;) out.append(buf, n);
  fclose(tmp);
  return out;
}

TEST(Progress, FormatsBytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(1.5 * 1024 * 1024 * 1024), "1.50 GiB");
  EXPECT_EQ(format_bytes(2048.0 * 1024 * 1024 * 1024 * 1024), "2048.00 TiB");  // largest unit
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "0.0s");
  EXPECT_EQ(format_duration(4.25), "4.2s");
  EXPECT_EQ(format_duration(59.4), "59.4s");
  EXPECT_EQ(format_duration(60), "1m00s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3600), "1h00m");
  EXPECT_EQ(format_duration(7322), "2h02m");
  EXPECT_EQ(format_duration(-1), "?");  // unknown ETA
  EXPECT_EQ(format_duration(1e8), "?");
  EXPECT_EQ(format_duration(0.0 / 0.0), "?");
}

TEST(Progress, PrintsNothingWhenStderrIsNotATerminal) {
  std::string out = capture_stderr([] {
    EXPECT_FALSE(progress_enabled());  // stderr is a file now
    Progress p("load", 100, Progress::Unit::kItems, "tensors");
    for (int k = 0; k < 100; ++k) p.add(1);
    EXPECT_EQ(p.done(), 100u);
    p.finish();
  });
  EXPECT_EQ(out, "");
}

TEST(Progress, QuietDisablesAndCountsStillWork) {
  set_progress_enabled(false);
  EXPECT_FALSE(progress_enabled());
  std::string out = capture_stderr([] {
    Progress p("copy", 1 << 20, Progress::Unit::kBytes);
    p.add(1000);
    p.add(24);
    EXPECT_EQ(p.done(), 1024u);
    EXPECT_GE(p.elapsed_seconds(), 0.0);
  });  // destructor finishes silently
  EXPECT_EQ(out, "");
  set_progress_enabled(true);
}

}  // namespace
}  // namespace rv
