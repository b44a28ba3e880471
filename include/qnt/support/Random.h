//===- Random.h - Portable deterministic random numbers ---------*- C++ -*-===//
//
// xoshiro256** seeded through splitmix64, and the few draws built on it.
// <random>'s distributions (and std::shuffle) differ between standard
// libraries; everything that must give the same numbers on every machine
// for a seed (synthetic checkpoints, mini-batch orders, QDrop masks) draws
// from here. Header-only, so that the IR-free libraries and the runtime can
// use it.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_SUPPORT_RANDOM_H
#define QNT_SUPPORT_RANDOM_H

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace qnt {

/// The splitmix64 output function: a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// A seed derived from `h` and `v` (independent streams per tensor, block
/// or epoch).
inline uint64_t hashCombine(uint64_t h, uint64_t v) {
  return mix64(h ^ mix64(v + 0x632BE59BD9B4E019ull));
}

/// xoshiro256** (Blackman and Vigna), seeded by splitmix64 as its authors
/// recommend.
class Xoshiro256 {
public:
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t &word : s_) {
      seed += 0x9E3779B97F4A7C15ull;
      word = mix64(seed);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, n) for n > 0 (the modulo bias is below n / 2^64, far
  /// under anything a sample count can show, and it is deterministic).
  uint64_t below(uint64_t n) { return next() % n; }
  /// Uniform in [0, 1), 53 random bits (exact in double).
  double uniform() { return double(next() >> 11) * 0x1p-53; }
  /// Two uniforms in [-1, 1) from one draw, 32 bits each (exact in double).
  void uniformPair(double *u, double *v) {
    const uint64_t r = next();
    // Through int64_t: a signed conversion is one instruction, an unsigned
    // 64-bit one is not.
    *u = double(int64_t(r >> 32) - 2147483648ll) * 0x1p-31;
    *v = double(int64_t(r & 0xFFFFFFFFu) - 2147483648ll) * 0x1p-31;
  }
  /// Shuffles `items` in place (Fisher-Yates).
  template <typename T> void shuffle(std::vector<T> &items) {
    for (size_t i = items.size(); i > 1; --i)
      std::swap(items[i - 1], items[below(i)]);
  }

private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

} // namespace qnt

#endif // QNT_SUPPORT_RANDOM_H
