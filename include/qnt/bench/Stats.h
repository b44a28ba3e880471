//===- Stats.h - Timing statistics and cache-defeating buffers --*- C++ -*-===//
//
// What quant-bench needs to time a kernel honestly: repeated timing with a
// monotonic clock until both an iteration count and a minimum total time are
// reached, a summary that leads with the median (robust to the scheduler
// hiccups of a two-core machine), and buffers that rotate through enough
// copies of the weights that every call streams them from DRAM instead of the
// last-level cache. IR-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_BENCH_STATS_H
#define QNT_BENCH_STATS_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace qnt::bench {

/// Summary of per-call times in milliseconds. All zero when `samples` is 0.
struct TimingStats {
  double medianMs = 0;
  double minMs = 0;
  double maxMs = 0;
  double meanMs = 0;
  int samples = 0;
};

/// Summarizes `ms`. Non-finite entries are dropped (and not counted in
/// `samples`). The median of an even count is the mean of the two middle
/// values.
TimingStats summarize(std::vector<double> ms);

/// Default cap on timed calls of timeRepeated().
constexpr int kDefaultMaxIterations = 100000;

/// Runs `body` `warmup` times untimed, then times each further call with
/// std::chrono::steady_clock until at least max(iterations, 1) calls have
/// been timed and at least `minTotalSeconds` of wall time has passed since
/// the first timed call, or `maxIterations` calls have been timed, whichever
/// comes first. Returns the per-call times in milliseconds. Each call is
/// timed on its own, so a body much shorter than a microsecond is dominated
/// by clock overhead; batch such work inside `body`.
std::vector<double> timeRepeated(const std::function<void()> &body,
                                 int warmup, int iterations,
                                 double minTotalSeconds,
                                 int maxIterations = kDefaultMaxIterations);

/// Parses a sysfs cache size ("32768K", "48M", "1G", "524288") in bytes.
/// Returns false for anything else.
bool parseCacheSize(std::string_view text, size_t *bytes);

/// The size of cpu0's largest-level data or unified cache (normally the L3)
/// from /sys/devices/system/cpu/cpu0/cache, or 64 MiB when sysfs does not
/// say (containers, non-Linux), which is at least the L3 of most current
/// server parts.
size_t lastLevelCacheBytes();

/// `copies` copies of one byte blob, each page-aligned, so that a benchmark
/// can use a different copy on every call and find none of them still in
/// the cache. The copies are written by the constructing thread, which is
/// therefore where their pages are first touched.
class RotatingBuffers {
public:
  /// Copies [data, data + bytes) `copies` times (at least once).
  RotatingBuffers(const void *data, size_t bytes, int copies);
  RotatingBuffers(const RotatingBuffers &) = delete;
  RotatingBuffers &operator=(const RotatingBuffers &) = delete;
  RotatingBuffers(RotatingBuffers &&) = default;
  RotatingBuffers &operator=(RotatingBuffers &&) = default;

  /// The smallest number of copies c >= 2 for which the other c - 1 copies
  /// hold at least 2 * cacheBytes. Between two uses of one copy the others
  /// then stream twice the cache through it: once is enough to evict it
  /// under LRU, but the adaptive replacement of current non-inclusive L3s
  /// can keep part of a block that was swept only once. Returns 1 when
  /// there is nothing to rotate (bytesPerCopy or cacheBytes is 0) and
  /// saturates at INT_MAX.
  static int copiesToExceed(size_t bytesPerCopy, size_t cacheBytes);

  int copies() const { return static_cast<int>(copies_.size()); }
  size_t bytesPerCopy() const { return bytes_; }
  size_t totalBytes() const { return bytes_ * copies_.size(); }

  /// Copy `i` (0 <= i < copies()).
  uint8_t *copy(int i) { return copies_[static_cast<size_t>(i)]; }
  const uint8_t *copy(int i) const {
    return copies_[static_cast<size_t>(i)];
  }

  /// The next copy in round-robin order, starting with copy 0.
  uint8_t *next();

private:
  struct Free {
    void operator()(uint8_t *p) const;
  };
  std::vector<uint8_t *> copies_;
  std::unique_ptr<uint8_t, Free> storage_;
  size_t bytes_ = 0;
  size_t cursor_ = 0;
};

} // namespace qnt::bench

#endif // QNT_BENCH_STATS_H
