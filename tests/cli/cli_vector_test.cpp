// The CLI as users meet it: exit codes, one-line errors naming the file,
// no partial outputs on failure (bad input, full disk, Ctrl-C).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "formats/synth.h"
#include "support/st_checker.h"

namespace fs = std::filesystem;
using rvtest::run_cli;

namespace {

bool one_line_error(const rvtest::RunResult& r) {
  return r.code == 1 && r.err.rfind("reasonvec: ", 0) == 0 && r.err.find('\n') == r.err.size() - 1;
}

bool no_temporaries(const std::string& dir) {
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return false;
  return true;
}

struct Models {
  std::string dir, sft, grpo, v;
};

const Models& models() {
  static Models m = [] {
    Models x;
    x.dir = rvtest::temp_dir("cli");
    x.sft = x.dir + "/sft";
    x.grpo = x.dir + "/grpo";
    x.v = x.dir + "/v.safetensors";
    rvtest::RunResult r =
        run_cli({"synth", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
                 "--intermediate", "48", "--vocab", "64", "-o", x.sft});
    EXPECT_EQ(r.code, 0) << r.err;
    r = run_cli({"synth", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
                 "--intermediate", "48", "--vocab", "64", "--delta-scale", "0.01", "-o", x.grpo});
    EXPECT_EQ(r.code, 0) << r.err;
    r = run_cli({"extract", "--base", x.sft, "--tuned", x.grpo, "-o", x.v});
    EXPECT_EQ(r.code, 0) << r.err;
    return x;
  }();
  return m;
}

}  // namespace

TEST(Cli, HelpListsCommands) {
  auto r = run_cli({"--help"});
  EXPECT_EQ(r.code, 0);
  for (auto c : {"extract", "apply", "inspect", "compare", "check", "synth", "demo"})
    EXPECT_NE(r.out.find(c), std::string::npos) << c;
  auto s = run_cli({"apply", "--help"});
  EXPECT_EQ(s.code, 0);
  EXPECT_NE(s.out.find("--vocab-mismatch"), std::string::npos);
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_cli({}).code, 2);
  EXPECT_EQ(run_cli({"extract", "--base", "x"}).code, 2);
  EXPECT_EQ(run_cli({"no-such-command"}).code, 2);
  EXPECT_EQ(
      run_cli({"apply", "--model", "a", "--vector", "v", "--vocab-mismatch", "maybe", "-o", "o"})
          .code,
      2);
}

TEST(Cli, ExtractApplyInspectCompareCheck) {
  const Models& m = models();
  auto r = run_cli(
      {"apply", "--model", m.sft, "--vector", m.v, "--alpha", "-1", "-o", m.dir + "/minus"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(m.dir + "/minus/model.safetensors"));
  r = run_cli({"inspect", m.v, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["total"]["l2"].get<double>(), 0);
  r = run_cli({"inspect", m.v, "--model", m.sft});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("|v|/|theta|"), std::string::npos);
  EXPECT_NE(r.out.find("total"), std::string::npos);
  r = run_cli({"compare", m.v, m.v, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["total"]["cosine"].get<double>(), 1.0, 1e-12);
  r = run_cli({"check", "--model", m.sft, "--vector", m.v, "--base", m.sft});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("compatible"), std::string::npos);
}

// --no-sync only skips fsync: the same tensors come out, through the same
// temporary-and-rename publication (no temporaries left behind).
TEST(Cli, NoSyncWritesTheSameTensors) {
  const Models& m = models();
  const std::string v2 = m.dir + "/v_nosync.safetensors", out = m.dir + "/plus_nosync";
  auto r = run_cli({"--no-sync", "extract", "--base", m.sft, "--tuned", m.grpo, "-o", v2});
  ASSERT_EQ(r.code, 0) << r.err;
  auto a = rvtest::read_safetensors_checked(m.v), b = rvtest::read_safetensors_checked(v2);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    EXPECT_EQ(t.bytes, b.tensors.at(name).bytes) << name;
  }
  r = run_cli({"--no-sync", "apply", "--model", m.sft, "--vector", v2, "-o", out});
  ASSERT_EQ(r.code, 0) << r.err;
  auto applied = rvtest::read_model_checked(out), grpo = rvtest::read_model_checked(m.grpo);
  EXPECT_EQ(applied.tensors.size(), grpo.tensors.size());
  EXPECT_TRUE(no_temporaries(m.dir));
}

TEST(Cli, BadInputsGiveOneLineErrors) {
  const Models& m = models();
  std::string d = rvtest::temp_dir("bad");
  // Truncated shard.
  fs::copy(m.sft, d + "/trunc", fs::copy_options::recursive);
  fs::resize_file(d + "/trunc/model.safetensors",
                  fs::file_size(d + "/trunc/model.safetensors") - 100);
  auto r =
      run_cli({"extract", "--base", d + "/trunc", "--tuned", m.grpo, "-o", d + "/v.safetensors"});
  EXPECT_TRUE(one_line_error(r)) << r.code << r.err;
  EXPECT_NE(r.err.find(d + "/trunc/model.safetensors: "), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d + "/v.safetensors"));
  // Malformed config.
  fs::copy(m.sft, d + "/badcfg", fs::copy_options::recursive);
  std::ofstream(d + "/badcfg/config.json") << "{ not json";
  r = run_cli({"apply", "--model", d + "/badcfg", "--vector", m.v, "-o", d + "/o"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_NE(r.err.find("badcfg/config.json: malformed JSON"), std::string::npos) << r.err;
  // Missing directory.
  r = run_cli({"apply", "--model", d + "/nope", "--vector", m.v, "-o", d + "/o"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  // Output exists: refused without --force.
  fs::create_directory(d + "/exists");
  r = run_cli({"apply", "--model", m.sft, "--vector", m.v, "-o", d + "/exists"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_NE(r.err.find("already exists (use --force"), std::string::npos) << r.err;
  // NaN in inputs: warning by default, error with --fail-on-nonfinite.
  fs::copy(m.grpo, d + "/nan", fs::copy_options::recursive);
  {
    std::fstream f(d + "/nan/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0);
    uint64_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 8);
    f.seekp(8 + n + 10);
    const char nan_bf16[2] = {'\xc0', '\x7f'};
    f.write(nan_bf16, 2);
  }
  r = run_cli({"extract", "--base", m.sft, "--tuned", d + "/nan", "-o", d + "/vn.safetensors"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("1 non-finite value(s)"), std::string::npos) << r.err;
  r = run_cli({"extract", "--base", m.sft, "--tuned", d + "/nan", "--fail-on-nonfinite", "-o",
               d + "/vn2.safetensors"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_FALSE(fs::exists(d + "/vn2.safetensors"));
  // Incompatible vector: check exits 1.
  r = run_cli({"synth", "--hidden", "48", "--heads", "4", "--kv-heads", "2", "--intermediate", "48",
               "--vocab", "64", "-o", d + "/other"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_cli({"check", "--model", d + "/other", "--vector", m.v});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("INCOMPATIBLE"), std::string::npos);
  EXPECT_TRUE(no_temporaries(d));
}

TEST(Cli, FullDiskLeavesNoPartialOutput) {
  const Models& m = models();
  std::string d = rvtest::temp_dir("full");
  // RLIMIT_FSIZE makes writes past 20 kB fail (EFBIG) as on a full disk.
  auto r = rvtest::run_cmd(
      {RV_CLI_PATH, "apply", "--model", m.sft, "--vector", m.v, "-o", d + "/out"}, 20000);
  EXPECT_TRUE(one_line_error(r)) << r.code << " " << r.err;
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d + "/out"));
  EXPECT_TRUE(no_temporaries(d));
  r = rvtest::run_cmd(
      {RV_CLI_PATH, "extract", "--base", m.sft, "--tuned", m.grpo, "-o", d + "/v.safetensors"},
      20000);
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_FALSE(fs::exists(d + "/v.safetensors"));
  EXPECT_TRUE(no_temporaries(d));
}

TEST(Cli, InterruptLeavesNoPartialOutput) {
  std::string d = rvtest::temp_dir("sigint");
  // Big enough that extraction is still running when it is interrupted.
  const bool asan = getenv("RV_SANITIZER_RUN") != nullptr;
  std::vector<std::string> shape = {
      "synth",      "--layers", asan ? "2" : "8", "--hidden", "1024",    "--heads", "8",
      "--kv-heads", "2",        "--intermediate", "2816",     "--vocab", "8000",    "-q"};
  auto a = shape, b = shape;
  a.insert(a.end(), {"-o", d + "/a"});
  b.insert(b.end(), {"--delta-scale", "0.01", "-o", d + "/b"});
  ASSERT_EQ(run_cli(a).code, 0);
  ASSERT_EQ(run_cli(b).code, 0);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execl(RV_CLI_PATH, RV_CLI_PATH, "-t", "1", "extract", "--base", (d + "/a").c_str(), "--tuned",
          (d + "/b").c_str(), "-o", (d + "/v.safetensors").c_str(), (char*)nullptr);
    _exit(127);
  }
  // Interrupt only once the output's temporary exists: the handler is
  // installed before any output is opened, so the signal always meets it
  // however slowly a loaded machine starts the process.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (no_temporaries(d) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const bool started = !no_temporaries(d);
  kill(pid, started ? SIGINT : SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(started) << "extract never started writing";
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_FALSE(fs::exists(d + "/v.safetensors"));
  EXPECT_TRUE(no_temporaries(d));
}

TEST(Cli, SparsifyThenApplyInspectCompareCheck) {
  const Models& m = models();
  const std::string sp = m.dir + "/v_sparse.safetensors";
  auto r =
      run_cli({"sparsify", m.v, "--method", "dare", "--density", "0.1", "--seed", "3", "-o", sp});
  ASSERT_EQ(r.code, 0) << r.err;
  // The summary: kept fraction and size against the dense f32 file.
  EXPECT_NE(r.out.find("stored sparse"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dense f32"), std::string::npos) << r.out;
  EXPECT_LT(fs::file_size(sp), fs::file_size(m.v) / 3);
  rvtest::CheckedFile f = rvtest::read_safetensors_checked(sp);
  EXPECT_EQ(f.metadata["reasonvec.kind"], "sparse-vector");
  EXPECT_EQ(run_cli({"inspect", sp, "--summary"}).code, 0);
  r = run_cli({"compare", sp, m.v, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const double cos = nlohmann::json::parse(r.out)["total"]["cosine"].get<double>();
  EXPECT_GT(cos, 0.2);  // a 10 % DARE sample of v: cosine ≈ √0.1
  EXPECT_LT(cos, 0.45);
  EXPECT_EQ(run_cli({"check", "--model", m.sft, "--vector", sp}).code, 0);
  r = run_cli({"apply", "--model", m.sft, "--vector", sp, "-o", m.dir + "/from_sparse"});
  EXPECT_EQ(r.code, 0) << r.err;
  // apply --method dare_linear with the same seed and density gives the same weights.
  r = run_cli({"apply", "--model", m.sft, "--vector", m.v, "--method", "dare_linear", "--density",
               "0.1", "--seed", "3", "-o", m.dir + "/dare"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto a = rvtest::read_model_checked(m.dir + "/from_sparse"),
       b = rvtest::read_model_checked(m.dir + "/dare");
  for (auto& [name, t] : a.tensors) EXPECT_TRUE(t.bytes == b.tensors[name].bytes) << name;
}

TEST(Cli, ApplyMethodAndPartialErrors) {
  const Models& m = models();
  auto r = run_cli({"apply", "--model", m.sft, "--vector", m.v, "--method", "ties", "--density",
                    "0", "-o", m.dir + "/bad1"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_NE(r.err.find("density must be in (0, 1]"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(m.dir + "/bad1"));
  r = run_cli(
      {"apply", "--model", m.sft, "--vector", m.v, "--method", "slerp", "-o", m.dir + "/bad2"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_NE(r.err.find("unknown merge method 'slerp'"), std::string::npos) << r.err;
  r = run_cli({"sparsify", m.v, "--method", "breadcrumbs", "--density", "0.5", "--gamma", "-1",
               "-o", m.dir + "/bad3.safetensors"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_FALSE(fs::exists(m.dir + "/bad3.safetensors"));
  // A 3-layer target: refused, then accepted with --partial.
  const std::string three = m.dir + "/three";
  ASSERT_EQ(run_cli({"synth", "--layers", "3", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
                     "--intermediate", "48", "--vocab", "64", "-o", three})
                .code,
            0);
  r = run_cli({"apply", "--model", three, "--vector", m.v, "-o", m.dir + "/p"});
  EXPECT_TRUE(one_line_error(r)) << r.err;
  EXPECT_NE(r.err.find("num_hidden_layers 2"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(m.dir + "/p"));
  r = run_cli({"apply", "--model", three, "--vector", m.v, "--partial", "-o", m.dir + "/p"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("left unchanged"), std::string::npos) << r.out;
}
