// Python's `random.Random`, bit for bit: MT19937 seeded like random.seed(int)
// (init_by_array over the 32-bit words of |seed|), with randbelow, sample,
// shuffle and random() reproducing CPython 3.x's algorithms.
//
// Why: lm-evaluation-harness picks few-shot exemplars with
// random.Random(fewshot_seed).sample(docs, k), one call per document in
// order; reproducing the generator gives the same exemplars as lm-eval.
//
// Not thread-safe (a generator has state); use one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rv::eval {

class PyRandom {
 public:
  explicit PyRandom(uint64_t seed);

  uint32_t genrand_uint32();
  // random.getrandbits(k) for 1 <= k <= 32.
  uint32_t getrandbits(int k);
  // random._randbelow(n) for n >= 1 (n < 2^32).
  uint32_t randbelow(uint32_t n);
  // random.random(): a double in [0, 1) with 53 random bits.
  double random();
  // Indices chosen by random.sample(range(n), k), in selection order.
  // REQUIRES: k <= n.
  std::vector<size_t> sample(size_t n, size_t k);
  // random.shuffle(x) applied to the identity permutation of size n.
  std::vector<size_t> shuffled(size_t n);

 private:
  uint32_t mt_[624];
  int index_ = 624;
};

}  // namespace rv::eval
