//===- Bandwidth.h - Host memory bandwidth measured in the run --*- C++ -*-===//
//
// A STREAM-style measurement (McCalpin's copy, scale, add and triad kernels
// on doubles) taken in the same run as the kernels it bounds, so that the
// bound reflects this machine in its present state (frequency, other load,
// memory population) rather than a datasheet. It adds a "read" kernel, a sum
// reduction over one array, because a GEMV only reads its weights and a
// read-only stream is both faster than copy and the attainable bound for
// it.
//
// Conventions, as in STREAM: bytes are counted as the arrays the kernel
// names (copy and scale move 2 arrays, add and triad 3; read moves 1),
// write-allocate traffic is not counted, GB is 10^9 bytes, and each figure
// is the best (shortest) time over the repetitions, excluding the first
// repetition when there is more than one.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_BENCH_BANDWIDTH_H
#define QNT_BENCH_BANDWIDTH_H

#include <cstddef>
#include <memory>

namespace qnt::bench {

struct StreamResult {
  double copyGBs = 0;  ///< c = a          (2 arrays)
  double scaleGBs = 0; ///< b = s * c      (2 arrays)
  double addGBs = 0;   ///< c = a + b      (3 arrays)
  double triadGBs = 0; ///< a = b + s * c  (3 arrays)
  double readGBs = 0;  ///< sum of a       (1 array)
  int threads = 0;
  /// Bytes in each of the three arrays actually used (the request rounded
  /// down to whole cache lines per thread).
  size_t bytesPerArray = 0;
  int repetitions = 0;
  /// The best time of each kernel in seconds, in the order copy, scale,
  /// add, triad, read; each GB/s figure is its counted bytes over this.
  double bestSeconds[5] = {};
  /// True when the arrays and the read sums held the values the kernels
  /// must produce, checked after the timed repetitions. False means a
  /// broken kernel, not a slow one: do not use the figures.
  bool valid = false;
};

/// Processors this process may run on (its CPU affinity mask), or
/// std::thread::hardware_concurrency() where that is unknown; at least 1.
int hardwareThreads();

/// Bytes per array for a measurement that defeats the caches: 4 times the
/// last-level cache (STREAM's rule), at least 256 MiB, but at most 1/8 of
/// physical memory so that the three arrays fit comfortably.
size_t defaultStreamBytes();

/// Runs the five kernels `repetitions` times (clamped to [1, 10000]) on
/// three arrays of `bytesPerArray` bytes (defaultStreamBytes() when 0)
/// split into one contiguous partition per thread (hardwareThreads() when
/// `threads` <= 0).
/// Each thread first touches its own partitions, so on a NUMA machine they
/// live on its node, and runs every kernel on them; the threads start each
/// kernel together at a blocking (not spinning) barrier, and a kernel's
/// time runs from the first thread's start to the last thread's end.
/// Throws std::bad_alloc when the arrays cannot be mapped and
/// std::system_error when a thread cannot be started.
StreamResult measureHostBandwidth(size_t bytesPerArray, int threads,
                                  int repetitions);

/// Bytes for a ReadProbe: 1 GiB, the size at which a sum stops gaining from
/// the caches and the page walks are amortized, but at most 1/8 of physical
/// memory.
size_t defaultReadProbeBytes();

namespace detail {
class MappedArray;
} // namespace detail

/// The read kernel of measureHostBandwidth alone, on one array that lives
/// as long as the probe, so that the read bound can be measured again beside
/// every kernel it bounds. Some machines' bandwidth moves between phases
/// seconds apart (this project's 2-core development VM reads 27 GB/s in one
/// and 38-42 GB/s in the next), so a bound measured once at the start of a
/// run does not describe a kernel timed a minute later. One probe serves
/// every thread count.
class ReadProbe {
public:
  /// Maps `bytes` (defaultReadProbeBytes() when 0), rounded down to whole
  /// cache lines (at least one per thread), and writes it from `threads`
  /// threads (hardwareThreads() when <= 0), each its own contiguous part.
  /// Throws std::bad_alloc when the array cannot be mapped and
  /// std::system_error when a thread cannot be started.
  explicit ReadProbe(size_t bytes, int threads = 0);
  ~ReadProbe();
  ReadProbe(const ReadProbe &) = delete;
  ReadProbe &operator=(const ReadProbe &) = delete;

  /// The best read GB/s of `repetitions` sums (clamped to [1, 10000]) by
  /// `threads` threads (clamped to [1, the number of cache lines]), each
  /// over its own contiguous part of whole cache lines; the threads start
  /// each sum together, timed from the first start to the last end. Returns
  /// 0 when a sum came out wrong (a broken kernel: do not use the figure).
  double measure(int threads, int repetitions);

  /// The bytes `threads` threads read per sum: the array rounded down to
  /// whole cache lines per thread.
  size_t bytesRead(int threads) const;
  size_t bytes() const;

private:
  std::unique_ptr<detail::MappedArray> array_;
  size_t lines_ = 0; ///< cache lines in the array
};

} // namespace qnt::bench

#endif // QNT_BENCH_BANDWIDTH_H
