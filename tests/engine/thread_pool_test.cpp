// engine::ThreadPool's two ways of splitting a range: every index is visited
// exactly once whatever the thread count, piece size or remainder; pieces
// have the promised shape; a task's exception reaches the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "engine/thread_pool.h"

namespace rv::engine {
namespace {

// Runs `split` and returns how often each index of [0, n) was visited, and
// the pieces it was handed.
template <class Split>
std::pair<std::vector<int>, std::vector<std::pair<int64_t, int64_t>>> visits(int64_t n,
                                                                             Split split) {
  std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> pieces;
  split([&](int64_t b, int64_t e) {
    {
      std::lock_guard<std::mutex> l(mu);
      pieces.push_back({b, e});
    }
    for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
  });
  std::vector<int> out;
  for (auto& s : seen) out.push_back(s.load());
  return {out, pieces};
}

TEST(ThreadPool, ForRangeVisitsEveryIndexOnceInAlignedShares) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 11, 12, 13, 100, 1000}) {
      auto [seen, pieces] = visits(n, [&](auto fn) { pool.for_range(n, 12, fn); });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[size_t(i)], 1) << threads << " " << n;
      EXPECT_LE(pieces.size(), size_t(threads));
      for (auto [b, e] : pieces) {
        EXPECT_LT(b, e);
        EXPECT_EQ(b % 12, 0) << "share starts off the alignment";
      }
    }
  }
}

TEST(ThreadPool, ForDynamicVisitsEveryIndexOnceInPiecesOfChunk) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 15, 16, 17, 100, 1000})
      for (int64_t chunk : {1, 16, 7, 2000}) {
        auto [seen, pieces] = visits(n, [&](auto fn) { pool.for_dynamic(n, chunk, fn); });
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(seen[size_t(i)], 1) << threads << " " << n << " " << chunk;
        EXPECT_EQ(pieces.size(), size_t(threads == 1 ? 1 : (n + chunk - 1) / chunk));
        if (threads > 1)
          for (auto [b, e] : pieces) {
            EXPECT_EQ(b % chunk, 0);
            EXPECT_EQ(e, std::min(n, b + chunk));
          }
      }
  }
}

TEST(ThreadPool, ForDynamicRethrowsATaskException) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.for_dynamic(100, 10,
                                [](int64_t b, int64_t) {
                                  if (b == 50) throw std::runtime_error("piece 5");
                                }),
               std::runtime_error);
  // The pool still works afterwards.
  auto [seen, pieces] = visits(40, [&](auto fn) { pool.for_dynamic(40, 10, fn); });
  for (int s : seen) EXPECT_EQ(s, 1);
}

}  // namespace
}  // namespace rv::engine
