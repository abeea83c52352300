#include "cli/table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace rv::cli {

namespace {
size_t width(const std::string& s) {  // UTF-8 code points, close enough for our labels
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}
bool numeric(const std::string& s) {
  return !s.empty() && (isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+') &&
         s != "-";
}
}  // namespace

std::string Table::str() const {
  std::vector<size_t> w(header_.size(), 0);
  for (size_t i = 0; i < header_.size(); ++i) w[i] = width(header_[i]);
  for (const auto& r : rows_)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& r, bool head) {
    std::string s;
    for (size_t i = 0; i < w.size(); ++i) {
      std::string c = i < r.size() ? r[i] : "";
      std::string pad(w[i] - width(c), ' ');
      bool right = !head && i > 0 && numeric(c);
      s += (i ? "  " : "") + (right ? pad + c : c + (i + 1 < w.size() ? pad : ""));
    }
    return s + "\n";
  };
  std::string out = line(header_, true);
  size_t total = 0;
  for (size_t x : w) total += x + 2;
  std::string rule(total > 2 ? total - 2 : 0, '-');
  out += rule + "\n";
  for (const auto& r : rows_) out += r.empty() ? rule + "\n" : line(r, false);
  return out;
}

std::string fmt(double x, const char* f) {
  if (std::isnan(x)) return "-";
  char b[64];
  snprintf(b, sizeof b, f, x);
  return b;
}

}  // namespace rv::cli
