// A process-wide pool of worker threads for data-parallel loops.
//
// parallel_for splits [0, n) into contiguous chunks and runs fn(begin, end)
// on the pool plus the calling thread; it returns when every chunk is done and
// rethrows the first exception any chunk threw. Calls may come from several
// threads at once (they are serialised); calling parallel_for from inside a
// parallel_for body runs the inner loop serially on that thread.
#pragma once

#include <cstddef>
#include <functional>

namespace rv {

// Number of threads used by parallel_for (including the caller). Defaults to
// the number of online CPUs; set once from --threads before heavy work.
int num_threads();
void set_num_threads(int n);

// Runs fn over [0, n) in chunks of at least `grain` items.
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

}  // namespace rv
