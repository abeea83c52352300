// Ctrl-C during `reasonvec lab`: a non-zero exit with "interrupted", no
// half-written stage, a checkpoint left behind, and a rerun that resumes
// from it and finishes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "common/file.h"

extern char** environ;
namespace fs = std::filesystem;

namespace {

pid_t spawn_cli(const std::vector<std::string>& args, const fs::path& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  std::string exe = RV_CLI_PATH;
  argv.push_back(exe.data());
  std::vector<std::string> a = args;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

int wait_exit(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST(LabInterrupt, CtrlCLeavesAResumableDirectory) {
  const fs::path dir = fs::temp_directory_path() / ("rv_lab_int_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  rv::write_file(dir / "lab.yaml", R"(preset: quick
task: {min_ops: 1, max_ops: 2, max_operand: 9, max_value: 50}
tokenizer: {vocab_size: 300, corpus_docs: 300}
model: {hidden: 32, layers: 1, heads: 2, kv_heads: 1, intermediate: 64, max_position: 192}
pretrain: {steps: 1500, rows: 4, seq_len: 128, warmup: 2, docs: 300}
instruct: {steps: 2, rows: 2, seq_len: 128, warmup: 1, problems: 20, skills: 20}
sft: {steps: 2, rows: 2, seq_len: 128, warmup: 1, problems: 20}
grpo: {steps: 1, warmup: 0, prompts: 2, group: 2, max_tokens: 16}
eval: {n: 4, splits: [test_id], alphas: [0, 1], random: false}
threads: 1
)");
  const fs::path out = dir / "out", err = dir / "err.txt";
  pid_t pid = spawn_cli({"lab", (dir / "lab.yaml").string(), "-o", out.string()}, err);
  // Wait until pretraining is past its first checkpoint (every 150 steps).
  const std::regex step_re("base +step +([0-9]+)/1500");
  bool past = false;
  for (int i = 0; i < 1200 && !past; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(err);
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if (std::regex_search(line, m, step_re) && std::stoi(m[1]) >= 300) past = true;
    }
  }
  ASSERT_TRUE(past) << rv::read_file(err);
  kill(pid, SIGINT);
  const int code = wait_exit(pid);
  const std::string log = rv::read_file(err);
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("interrupted"), std::string::npos) << log;
  // No stage directory for the unfinished pretraining; its checkpoint is there.
  bool ckpt = false;
  for (const auto& e : fs::directory_iterator(out / "seed-0")) {
    const std::string n = e.path().filename().string();
    EXPECT_NE(n.rfind("base-", 0), 0u) << n;
    if (n.rfind(".base-", 0) == 0 && fs::exists(e.path() / "state.json")) ckpt = true;
  }
  EXPECT_TRUE(ckpt);

  pid = spawn_cli({"lab", (dir / "lab.yaml").string(), "-o", out.string()}, err);
  EXPECT_EQ(wait_exit(pid), 0) << rv::read_file(err);
  const std::string log2 = rv::read_file(err);
  EXPECT_NE(log2.find("[cached] data seed 0"), std::string::npos) << log2;
  EXPECT_NE(log2.find("base resumed from its checkpoint at step"), std::string::npos) << log2;
  EXPECT_TRUE(fs::exists(out / "lab_report.md"));
  fs::remove_all(dir);
}

}  // namespace
