// Fields of Linux /proc files that count kB ("VmHWM:   1234 kB"), for the
// benches that report peak RSS, available memory and huge-page mappings.
#pragma once

#include <fstream>
#include <string>

// The value of `field` (e.g. "VmHWM") in `file`, in kB; 0 when absent.
inline long proc_kb(const char* file, const std::string& field) {
  std::ifstream f(file);
  const std::string key = field + ":";
  for (std::string line; std::getline(f, line);)
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  return 0;
}

inline long peak_rss_kb() {
  return proc_kb("/proc/self/status", "VmHWM");
}

// Memory this process maps in 2 MiB pages: mapped files' page-cache folios
// and anonymous huge pages.
inline long file_huge_kb() {
  return proc_kb("/proc/self/smaps_rollup", "FilePmdMapped");
}
inline long anon_huge_kb() {
  return proc_kb("/proc/self/smaps_rollup", "AnonHugePages");
}
