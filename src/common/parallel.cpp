#include "common/parallel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace rv {
namespace {

thread_local bool t_in_pool_task = false;

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this] { worker(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    std::lock_guard<std::mutex> serial(run_mu_);
    size_t chunks = std::min<size_t>((n + grain - 1) / grain, static_cast<size_t>(n_) * 4);
    if (chunks < 1) chunks = 1;
    {
      std::lock_guard<std::mutex> l(mu_);
      fn_ = &fn;
      n_items_ = n;
      n_chunks_ = chunks;
      next_.store(0);
      done_ = 0;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return done_ == n_chunks_; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    t_in_pool_task = true;
    for (;;) {
      size_t c = next_.fetch_add(1);
      if (c >= n_chunks_) break;
      size_t b = n_items_ * c / n_chunks_, e = n_items_ * (c + 1) / n_chunks_;
      std::exception_ptr err;
      try {
        if (b < e) (*fn_)(b, e);
      } catch (...) {
        err = std::current_exception();
      }
      std::lock_guard<std::mutex> l(mu_);
      if (err && !error_) error_ = err;
      if (++done_ == n_chunks_) done_cv_.notify_all();
    }
    t_in_pool_task = false;
  }

  void worker() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (!fn_) continue;
      }
      work();
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  size_t n_items_ = 0, n_chunks_ = 0, done_ = 0;
  std::atomic<size_t> next_{0};
  std::exception_ptr error_;
};

std::mutex g_pool_mu;
int g_threads = 0;
Pool* g_pool = nullptr;

Pool& pool() {
  std::lock_guard<std::mutex> l(g_pool_mu);
  if (!g_pool) g_pool = new Pool(num_threads());  // lives until exit: workers must outlive callers
  return *g_pool;
}

}  // namespace

int num_threads() {
  if (g_threads > 0) return g_threads;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> l(g_pool_mu);
  g_threads = std::max(1, n);
  if (g_pool && g_pool->size() != g_threads) {
    delete g_pool;
    g_pool = nullptr;
  }
}

void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  if (grain == 0) grain = 1;
  if (t_in_pool_task || n <= grain || num_threads() == 1) {
    fn(0, n);
    return;
  }
  pool().run(n, grain, fn);
}

}  // namespace rv
