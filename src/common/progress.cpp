#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace rv {

static std::atomic<bool> g_enabled{true};

void set_progress_enabled(bool on) { g_enabled = on; }
bool progress_enabled() { return g_enabled && isatty(2); }

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

Progress::Progress(std::string label, uint64_t total, Unit unit, std::string item_name)
    : label_(std::move(label)),
      item_(std::move(item_name)),
      total_(total),
      unit_(unit),
      enabled_(progress_enabled()),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::add(uint64_t n) {
  done_.fetch_add(n, std::memory_order_relaxed);
  if (!enabled_) return;
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now() - start_)
                    .count();
  int64_t last = last_draw_ns_.load(std::memory_order_relaxed);
  if (now - last < 100'000'000) return;
  if (!last_draw_ns_.compare_exchange_strong(last, now)) return;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  if (enabled_) draw(true);
  finished_ = true;
}

void Progress::draw(bool final) {
  std::lock_guard<std::mutex> l(draw_mu_);
  if (finished_) return;
  double el = elapsed_seconds();
  uint64_t d = done_.load();
  double frac = total_ ? std::min(1.0, static_cast<double>(d) / total_) : 1.0;
  const int width = 28;
  int fill = static_cast<int>(frac * width);
  std::string bar(fill, '#');
  bar.resize(width, '-');
  double rate = el > 0 ? d / el : 0;
  std::string rate_s = unit_ == Unit::kBytes ? format_bytes(rate) + "/s"
                                             : std::to_string(static_cast<long>(rate * 10) / 10.0)
                                                       .substr(0, 6) +
                                                   " " + item_ + "/s";
  std::string amount =
      unit_ == Unit::kBytes ? format_bytes(d) + "/" + format_bytes(total_)
                            : std::to_string(d) + "/" + std::to_string(total_);
  std::string eta = final ? "done in " + format_duration(el)
                          : "ETA " + format_duration(rate > 0 ? (total_ - d) / rate : -1);
  fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %s %s %s%s", label_.c_str(), bar.c_str(), frac * 100,
          amount.c_str(), rate_s.c_str(), eta.c_str(), final ? "\n" : "");
  fflush(stderr);
}

}  // namespace rv
