#include "common/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/error.h"

namespace rv {
namespace {

// Runs fn(n, grain) and checks that every index in [0, n) was visited exactly once.
void expect_each_index_once(size_t n, size_t grain) {
  auto hits = std::make_unique<std::atomic<int>[]>(n + 1);
  for (size_t i = 0; i <= n; ++i) hits[i] = 0;
  std::atomic<int> calls{0};
  parallel_for(n, grain, [&](size_t b, size_t e) {
    ++calls;
    ASSERT_LT(b, e);  // no empty chunks reach the body
    ASSERT_LE(e, n);
    for (size_t i = b; i < e; ++i) ++hits[i];
  });
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "index " << i << " of " << n;
  if (n == 0) {
    EXPECT_EQ(calls, 0);
  }
}

TEST(ParallelFor, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 4, 7}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    for (size_t n : {0u, 1u, 2u, 3u, 31u, 64u, 1000u, 100003u})
      for (size_t grain : {0u, 1u, 7u, 64u, 200000u}) expect_each_index_once(n, grain);
  }
  set_num_threads(4);
}

TEST(ParallelFor, ZeroItemsNeverCallsTheBody) {
  set_num_threads(4);
  bool called = false;
  parallel_for(0, 1, [&](size_t, size_t) { called = true; });
  EXPECT_FALSE(called);
}

TEST(ParallelFor, ExceptionsPropagateToTheCaller) {
  set_num_threads(4);
  for (int round = 0; round < 20; ++round) {
    // Every chunk that contains index 500 throws; the others finish.
    std::atomic<size_t> visited{0};
    try {
      parallel_for(1000, 1, [&](size_t b, size_t e) {
        if (b <= 500 && 500 < e) throw Error("chunk", "failed at 500");
        visited += e - b;
      });
      FAIL() << "no exception";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "chunk: failed at 500");
    }
    EXPECT_LT(visited.load(), 1000u);
    // The pool is usable after a failed loop.
    expect_each_index_once(1000, 1);
  }
  // Serial paths (one thread, or n <= grain) propagate too.
  set_num_threads(1);
  EXPECT_THROW(parallel_for(10, 1, [](size_t, size_t) { throw std::runtime_error("x"); }),
               std::runtime_error);
  set_num_threads(4);
  EXPECT_THROW(parallel_for(3, 10, [](size_t, size_t) { throw std::runtime_error("x"); }),
               std::runtime_error);
}

TEST(ParallelFor, NestedLoopsRunInnerSeriallyAndCoverEverything) {
  set_num_threads(4);
  const size_t outer = 16, inner = 100;
  std::vector<std::atomic<int>> hits(outer * inner);
  parallel_for(outer, 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      std::atomic<int> inner_calls{0};
      parallel_for(inner, 1, [&](size_t ib, size_t ie) {
        ++inner_calls;
        for (size_t j = ib; j < ie; ++j) ++hits[i * inner + j];
      });
      EXPECT_EQ(inner_calls, 1);  // one serial call covering [0, inner)
    }
  });
  for (size_t k = 0; k < hits.size(); ++k) ASSERT_EQ(hits[k], 1) << k;
}

TEST(ParallelFor, SetNumThreadsClampsToOne) {
  set_num_threads(0);
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(-3);
  EXPECT_EQ(num_threads(), 1);
  expect_each_index_once(100, 1);
  set_num_threads(4);
}

}  // namespace
}  // namespace rv
