#include "eval/tasks/pyrandom.h"

#include <cmath>
#include <unordered_set>

#include "common/error.h"

namespace rv::eval {

PyRandom::PyRandom(uint64_t seed) {
  // init_genrand(19650218) then init_by_array(key), as CPython's
  // random_seed() does for a non-negative int.
  std::vector<uint32_t> key;
  for (uint64_t s = seed; s != 0; s >>= 32) key.push_back(static_cast<uint32_t>(s));
  if (key.empty()) key.push_back(0);

  mt_[0] = 19650218u;
  for (int i = 1; i < 624; ++i)
    mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  size_t i = 1, j = 0;
  size_t klen = key.size();
  for (size_t k = (624 > klen ? 624 : klen); k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] +
             static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= 624) {
      mt_[0] = mt_[623];
      i = 1;
    }
    if (j >= klen) j = 0;
  }
  for (size_t k = 623; k; --k) {
    mt_[i] =
        (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= 624) {
      mt_[0] = mt_[623];
      i = 1;
    }
  }
  mt_[0] = 0x80000000u;
  index_ = 624;
}

uint32_t PyRandom::genrand_uint32() {
  constexpr uint32_t kUpper = 0x80000000u, kLower = 0x7fffffffu, kMatrix = 0x9908b0dfu;
  if (index_ >= 624) {
    for (int k = 0; k < 624; ++k) {
      uint32_t y = (mt_[k] & kUpper) | (mt_[(k + 1) % 624] & kLower);
      mt_[k] = mt_[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? kMatrix : 0u);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return y;
}

uint32_t PyRandom::getrandbits(int k) {
  if (k < 1 || k > 32) throw Error("PyRandom::getrandbits", "k must be in [1, 32]");
  return genrand_uint32() >> (32 - k);
}

uint32_t PyRandom::randbelow(uint32_t n) {
  if (n == 0) throw Error("PyRandom::randbelow", "n must be >= 1");
  int k = 0;
  for (uint32_t v = n; v; v >>= 1) ++k;  // n.bit_length()
  uint32_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return r;
}

double PyRandom::random() {
  uint32_t a = genrand_uint32() >> 5, b = genrand_uint32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

std::vector<size_t> PyRandom::sample(size_t n, size_t k) {
  if (k > n) throw Error("PyRandom::sample", "sample larger than population");
  std::vector<size_t> result(k);
  size_t setsize = 21;
  if (k > 5)
    setsize += static_cast<size_t>(std::pow(4.0, std::ceil(std::log(k * 3.0) / std::log(4.0))));
  if (n <= setsize) {
    std::vector<size_t> pool(n);
    for (size_t i = 0; i < n; ++i) pool[i] = i;
    for (size_t i = 0; i < k; ++i) {
      size_t j = randbelow(static_cast<uint32_t>(n - i));
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::unordered_set<size_t> selected;
    for (size_t i = 0; i < k; ++i) {
      size_t j = randbelow(static_cast<uint32_t>(n));
      while (selected.count(j)) j = randbelow(static_cast<uint32_t>(n));
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

std::vector<size_t> PyRandom::shuffled(size_t n) {
  std::vector<size_t> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = i;
  for (size_t i = n; i-- > 1;) {
    size_t j = randbelow(static_cast<uint32_t>(i + 1));
    std::swap(x[i], x[j]);
  }
  return x;
}

}  // namespace rv::eval
