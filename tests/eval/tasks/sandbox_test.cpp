// The code-execution sandbox: hostile programs are contained and reported
// as failures; normal programs pass; timeouts kill the whole tree.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "eval/tasks/sandbox.h"
#include "task_test_util.h"

namespace rv::eval {
namespace {

SandboxOptions fast() {
  SandboxOptions o;
  o.timeout_s = 3.0;
  return o;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sandbox_isolation_available())
      GTEST_SKIP() << "user/network namespaces unavailable here; run_python refuses (tested below)";
  }
};

TEST_F(SandboxTest, PassAndFail) {
  auto ok = run_python("assert 1 + 1 == 2\nprint('hi')\n", fast());
  EXPECT_EQ(ok.status, ExecStatus::kPassed);
  EXPECT_TRUE(ok.isolated);
  EXPECT_NE(ok.output_tail.find("hi"), std::string::npos);
  auto bad = run_python("assert 1 + 1 == 3\n", fast());
  EXPECT_EQ(bad.status, ExecStatus::kFailed);
  EXPECT_NE(bad.output_tail.find("AssertionError"), std::string::npos);
  auto syntax = run_python("def f(:\n", fast());
  EXPECT_EQ(syntax.status, ExecStatus::kFailed);
}

TEST_F(SandboxTest, EmptyEnvironmentAndOwnTempDir) {
  auto r = run_python(
      "import os\nassert dict(os.environ) == {} or set(os.environ) <= {'LC_CTYPE'}, os.environ\n"
      "open('scratch.txt', 'w').write('x' * 1000)\nassert "
      "os.getcwd().split('/')[-1].startswith('rv-sandbox-')\n",
      fast());
  EXPECT_EQ(r.status, ExecStatus::kPassed) << r.output_tail;
}

TEST_F(SandboxTest, InfiniteLoopTimesOut) {
  auto t0 = std::chrono::steady_clock::now();
  SandboxOptions o = fast();
  o.timeout_s = 1.0;
  auto r = run_python("while True:\n    pass\n", o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.status, ExecStatus::kPassed);
  EXPECT_LT(s, 5.0);
}

TEST_F(SandboxTest, SleepingChildrenAreKilledWithTheTree) {
  SandboxOptions o = fast();
  o.timeout_s = 1.0;
  auto t0 = std::chrono::steady_clock::now();
  // A child that escapes the process group and outlives its parent.
  auto r = run_python(
      "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nelse:\n    "
      "time.sleep(60)\n",
      o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, ExecStatus::kTimeout);
  EXPECT_LT(s, 5.0);
}

TEST_F(SandboxTest, ForkBombIsContained) {
  SandboxOptions o = fast();
  o.timeout_s = 2.0;
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_python("import os\nwhile True:\n    os.fork()\n", o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.status, ExecStatus::kPassed);
  EXPECT_LT(s, 8.0);
  // The machine still forks normally afterwards.
  EXPECT_EQ(
      run_python("import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\n",
                 fast())
          .status,
      ExecStatus::kPassed);
}

TEST_F(SandboxTest, MemoryBombFails) {
  SandboxOptions o = fast();
  o.memory_bytes = 512ull << 20;
  auto r = run_python("x = bytearray(4 * 1024 * 1024 * 1024)\n", o);
  EXPECT_EQ(r.status, ExecStatus::kFailed);
  EXPECT_NE(r.output_tail.find("MemoryError"), std::string::npos) << r.output_tail;
}

TEST_F(SandboxTest, CannotWriteOutsideTempDir) {
  testing::ScratchDir outside;  // writable by us, outside the sandbox's directory
  std::filesystem::permissions(outside.path, std::filesystem::perms::all);
  auto target = outside.path / "escaped.txt";
  auto r = run_python("open('" + target.string() + "', 'w').write('pwned')\n", fast());
  EXPECT_EQ(r.status, ExecStatus::kFailed);
  EXPECT_FALSE(std::filesystem::exists(target));
  auto r2 = run_python("open('/tmp/rv-sandbox-escape-test', 'w').write('x')\n", fast());
  EXPECT_EQ(r2.status, ExecStatus::kFailed);
  EXPECT_FALSE(std::filesystem::exists("/tmp/rv-sandbox-escape-test"));
}

TEST_F(SandboxTest, NoNetwork) {
  auto r = run_python(
      "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\ns.settimeout(1)\n"
      "s.connect(('1.1.1.1', 80))\n",
      fast());
  EXPECT_EQ(r.status, ExecStatus::kFailed);
  EXPECT_NE(r.output_tail.find("unreachable"), std::string::npos) << r.output_tail;
  // Only a (down) loopback interface exists.
  auto r2 = run_python(
      "import socket\nprint(socket.if_nameindex())\nassert [n for _, n in socket.if_nameindex()] "
      "== ['lo']\n",
      fast());
  EXPECT_EQ(r2.status, ExecStatus::kPassed) << r2.output_tail;
}

TEST_F(SandboxTest, FileSizeLimit) {
  SandboxOptions o = fast();
  o.max_file_bytes = 1 << 20;
  auto r = run_python("open('big', 'wb').write(b'x' * (4 << 20))\n", o);
  EXPECT_EQ(r.status, ExecStatus::kFailed);
}

TEST_F(SandboxTest, RunManyKeepsOrder) {
  std::vector<std::string> progs;
  for (int i = 0; i < 8; ++i) progs.push_back(i % 2 ? "raise SystemExit(3)\n" : "pass\n");
  SandboxOptions o = fast();
  o.workers = 4;
  auto rs = run_many(progs, o);
  ASSERT_EQ(rs.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(rs[i].status, i % 2 ? ExecStatus::kFailed : ExecStatus::kPassed) << i;
    if (i % 2) {
      EXPECT_EQ(rs[i].exit_code, 3);
    }
  }
}

TEST(SandboxRefusal, RefusesWithoutIsolationUnlessAllowed) {
  if (sandbox_isolation_available())
    GTEST_SKIP() << "isolation available; refusal path not reachable";
  EXPECT_THROW(run_python("pass\n", SandboxOptions{}), Error);
  SandboxOptions o;
  o.allow_unisolated = true;
  EXPECT_EQ(run_python("pass\n", o).status, ExecStatus::kPassed);
}

}  // namespace
}  // namespace rv::eval
