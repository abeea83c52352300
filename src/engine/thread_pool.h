// A low-latency fork-join pool for the engine's per-layer loops.
//
// A forward pass runs hundreds of short parallel loops per token, so waking
// workers through a mutex/condvar (rv::parallel_for) costs more than the work.
// Workers here spin briefly on an atomic generation counter before sleeping
// on it (C++20 atomic wait), so back-to-back loops start within
// microseconds, while an idle engine does not burn CPU.
//
// Thread-safety: run() must be called from one thread at a time (the engine's
// scheduler or a test); it must not be called from inside a task.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rv::engine {

class ThreadPool {
 public:
  // n <= 0: rv::num_threads(). The caller counts as one of the n threads.
  explicit ThreadPool(int n);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }

  // Calls fn(thread_index, size()) once on every thread and returns when all
  // calls have returned; rethrows the first exception thrown.
  void run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into size() contiguous parts, each a multiple of `align`
  // (except the last), and runs fn(begin, end) for the non-empty ones.
  void for_range(int64_t n, int64_t align, const std::function<void(int64_t, int64_t)>& fn);

  // Splits [0, n) into consecutive pieces of `chunk` (the last may be
  // shorter) that the threads take in order as each finishes its previous
  // one, and runs fn(begin, end) for each. For short, memory-bound loops
  // (decode): a thread slowed by the machine (a busy sibling core, a
  // neighbour on a VM) then holds the others up by at most one piece rather
  // than by its whole share.
  void for_dynamic(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker(int index);
  void execute(int index);

  int n_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::atomic<uint32_t> generation_{0};  // 32-bit: waits on it are plain futexes
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace rv::engine
