// FNV-1a over the bytes of a float vector, for the benches that print a hash
// of their outputs: equal hashes across builds or kernel ISAs mean
// bit-identical results.
#pragma once

#include <cstdint>
#include <vector>

inline uint64_t fnv1a(const std::vector<float>& v, uint64_t h = 1469598103934665603ull) {
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
