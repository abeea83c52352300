// A terminal progress bar with rate and ETA.
//
// Draws on stderr at most ~10 times a second, and only when stderr is a TTY
// and progress is not globally silenced (--quiet). add() is thread-safe and
// cheap (one atomic add plus a clock read every few calls), so workers may
// call it per tensor or per sample.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace rv {

void set_progress_enabled(bool on);  // false for --quiet
bool progress_enabled();             // true when enabled and stderr is a TTY

// Human-readable sizes and durations: "1.50 GiB", "2m05s".
std::string format_bytes(double bytes);
std::string format_duration(double seconds);

class Progress {
 public:
  enum class Unit { kBytes, kItems };
  Progress(std::string label, uint64_t total, Unit unit, std::string item_name = "it");
  ~Progress();  // finishes the line if not already done
  void add(uint64_t n);
  void finish();
  uint64_t done() const { return done_.load(); }
  double elapsed_seconds() const;

 private:
  void draw(bool final);
  std::string label_, item_;
  uint64_t total_;
  Unit unit_;
  bool enabled_;
  std::atomic<uint64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
  std::atomic<int64_t> last_draw_ns_{0};
  std::mutex draw_mu_;
  bool finished_ = false;
};

}  // namespace rv
