// The tile scheduler shared by extract, apply and merge.
#include "vector/internal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>

using rv::vec::detail::for_all_tiles;
using rv::vec::detail::kTile;

TEST(ForAllTiles, CoversEveryElementOfEveryTensorOnce) {
  const std::vector<uint64_t> numel = {0, 5, kTile, kTile + 1, 3 * kTile - 1, 0, 7, 2 * kTile};
  std::mutex mu;
  std::vector<std::tuple<size_t, uint64_t, uint64_t>> seen;
  for_all_tiles(numel, [&](size_t i, uint64_t lo, uint64_t hi) {
    std::lock_guard<std::mutex> l(mu);
    seen.emplace_back(i, lo, hi);
  });
  std::sort(seen.begin(), seen.end());
  std::vector<uint64_t> covered(numel.size(), 0);
  for (const auto& [i, lo, hi] : seen) {
    ASSERT_LT(i, numel.size());
    EXPECT_EQ(lo, covered[i]) << "tensor " << i << ": gap or overlap";
    EXPECT_EQ(lo % kTile, 0u);
    EXPECT_GT(hi, lo);
    EXPECT_LE(hi - lo, kTile);
    covered[i] = hi;
  }
  EXPECT_EQ(covered, numel);
  EXPECT_EQ(seen.size(), 0u + 1 + 1 + 2 + 3 + 1 + 2);
}

TEST(ForAllTiles, AnExceptionStopsTheLoopAndReachesTheCaller) {
  std::vector<uint64_t> numel(200, kTile);
  std::atomic<int> calls{0};
  EXPECT_THROW(for_all_tiles(numel,
                             [&](size_t i, uint64_t, uint64_t) {
                               ++calls;
                               if (i == 3) throw std::runtime_error("tile failed");
                               std::this_thread::sleep_for(std::chrono::milliseconds(1));
                             }),
               std::runtime_error);
  // The others stop at their next tile: far fewer than the 200 tiles (each
  // takes 1 ms; the failure reaches them within microseconds).
  EXPECT_LT(calls.load(), 50);
}
