// Plain-text tables for terminal output: columns sized to content, numbers
// right-aligned. Not thread-safe; build, then print once.
#pragma once

#include <string>
#include <vector>

namespace rv::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void separator() { rows_.push_back({}); }
  std::string str() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "%.4g"-style formatting that prints "-" for NaN.
std::string fmt(double x, const char* f = "%.4g");

}  // namespace rv::cli
