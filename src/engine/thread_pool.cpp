#include "engine/thread_pool.h"

#include <algorithm>

#include "common/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RV_PAUSE() _mm_pause()
#else
#define RV_PAUSE() ((void)0)
#endif

namespace rv::engine {
namespace {
// About 50-100 us of spinning before a worker sleeps: long enough to bridge
// the gaps between a layer's loops, short enough not to steal an idle core.
constexpr int kSpinIterations = 20000;
}  // namespace

ThreadPool::ThreadPool(int n) : n_(n > 0 ? n : std::max(1, rv::num_threads())) {
  for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::execute(int index) {
  try {
    (*fn_)(index, n_);
  } catch (...) {
    std::lock_guard<std::mutex> l(error_mu_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      RV_PAUSE();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = g;
    if (stop_.load()) return;
    execute(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_ == 1) {
    fn(0, 1);
    return;
  }
  fn_ = &fn;
  error_ = nullptr;
  pending_.store(n_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  execute(0);
  // Spin, then yield: on an oversubscribed machine a descheduled worker
  // would otherwise cost us whole time slices of pointless spinning.
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpinIterations)
      RV_PAUSE();
    else
      std::this_thread::yield();
  }
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::for_range(int64_t n, int64_t align,
                           const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t units = (n + align - 1) / align;
  const int parts = static_cast<int>(std::min<int64_t>(n_, units));
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  run([&](int i, int) {
    if (i >= parts) return;
    int64_t b = units * i / parts * align, e = std::min(n, units * (i + 1) / parts * align);
    if (b < e) fn(b, e);
  });
}

void ThreadPool::for_dynamic(int64_t n, int64_t chunk,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (chunk < 1) chunk = 1;
  const int64_t pieces = (n + chunk - 1) / chunk;
  if (n_ == 1 || pieces == 1) {
    fn(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  run([&](int, int) {
    for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < pieces;)
      fn(p * chunk, std::min(n, (p + 1) * chunk));
  });
}

}  // namespace rv::engine
