// Seed derivation for the training loops: independent streams from one seed
// (per step, per micro-batch, per sample) by the splitmix64 finaliser, so a
// step's randomness is a pure function of (seed, step) and resuming needs no
// generator state.
#pragma once

#include <cstdint>

namespace rv::train {

inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace rv::train
