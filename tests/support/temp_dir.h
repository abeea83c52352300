// A scratch directory for one test: created empty under the system temp
// directory with a name unique to this process and object, removed with its
// contents when the object is destroyed.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace rv_test {

struct TmpDir {
  std::filesystem::path p;
  explicit TmpDir(const std::string& tag = "test") {
    static std::atomic<int> counter{0};
    p = std::filesystem::temp_directory_path() /
        ("rv_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
  }
  ~TmpDir() {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
  }
  TmpDir(const TmpDir&) = delete;
  TmpDir& operator=(const TmpDir&) = delete;
};

}  // namespace rv_test
