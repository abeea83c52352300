// The tile scheduler shared by extract, apply and merge.
#include "vector/internal.h"

#include "common/parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
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

// Stopping is checked where it is deterministic: on one thread the tiles run in
// order, so the loop must end exactly at the failing tile. On several threads
// how many tiles others start before they see the failure depends on
// scheduling, so only what holds for any interleaving is checked there.
TEST(ForAllTiles, AnExceptionStopsTheLoopAndReachesTheCaller) {
  const std::vector<uint64_t> numel(200, kTile);
  const int saved = rv::num_threads();
  for (int threads : {1, 2, 4}) {
    rv::set_num_threads(threads);
    std::mutex mu;
    std::vector<size_t> started;
    try {
      for_all_tiles(numel, [&](size_t i, uint64_t, uint64_t) {
        {
          std::lock_guard<std::mutex> l(mu);
          started.push_back(i);
        }
        if (i == 3) throw std::runtime_error("tile failed");
      });
      ADD_FAILURE() << "no exception on " << threads << " threads";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "tile failed");
    }
    std::sort(started.begin(), started.end());
    EXPECT_EQ(std::adjacent_find(started.begin(), started.end()), started.end())
        << "a tile ran twice on " << threads << " threads";
    EXPECT_EQ(std::count(started.begin(), started.end(), 3u), 1);
    if (threads == 1) {
      EXPECT_EQ(started, (std::vector<size_t>{0, 1, 2, 3}));
    }
  }
  rv::set_num_threads(saved);
}
