// An independent safetensors reader for tests, written from the format's
// spec and sharing no code with src/formats: tests use it to check what our
// writer produced, so a bug in the reader under test cannot hide one in the
// writer. Throws std::runtime_error on any layout violation.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rvtest {

struct CheckedTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;                  // raw little-endian element bytes
  std::vector<float> as_f32() const;  // F32 / BF16 / F16 only
};

struct CheckedFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, CheckedTensor> tensors;
};

// Reads one .safetensors file, checking: 8-byte little-endian header size;
// header is a JSON object padded with spaces so data starts 8-aligned;
// offsets contiguous from 0 in header order, non-overlapping, ending at EOF;
// byte spans equal shape x dtype size.
CheckedFile read_safetensors_checked(const std::string& path);

// Reads a model dir / vector path: model.safetensors, or the index json and
// every shard it names (checking metadata.total_size and the weight map).
CheckedFile read_model_checked(const std::string& path);

// Runs a program and captures its output. Returns the exit code (128+signal
// when killed). `limit_fsize` > 0 sets RLIMIT_FSIZE in the child.
struct RunResult {
  int code = -1;
  std::string out, err;
};
RunResult run_cmd(const std::vector<std::string>& argv, long limit_fsize = 0);
RunResult run_cli(const std::vector<std::string>& args);  // runs RV_CLI_PATH
// Starts RV_CLI_PATH with `args` in the background, stdout and stderr to
// `log`; the caller waits for (or kills) the returned child.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& log);

// A fresh empty directory under /tmp, removed at process exit.
std::string temp_dir(const std::string& tag);

}  // namespace rvtest
