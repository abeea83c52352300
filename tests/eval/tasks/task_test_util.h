// Shared helpers for the eval task-side tests: a python3 oracle and paths.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include "support/llamacpp_oracle.h"

namespace rv::eval::testing {

inline std::filesystem::path shared_data() {
  return std::filesystem::path(RV_SHARED_DIR) / "data";
}

using rv_test::sanitizer_run;

// A private temporary directory removed at scope exit.
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "rv-evtest-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline void write_text(const std::filesystem::path& p, const std::string& s) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `script` with python3 (the independent oracle) and returns stdout.
inline std::string python_oracle(const std::string& script) {
  ScratchDir d;
  write_text(d.path / "oracle.py", script);
  std::string cmd = "python3 '" + (d.path / "oracle.py").string() + "'";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int rc = ::pclose(f);
  if (rc != 0) return "ORACLE FAILED";
  return out;
}

}  // namespace rv::eval::testing
