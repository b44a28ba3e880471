//===- Bandwidth.cpp - Host memory bandwidth measured in the run ----------===//

#include "qnt/bench/Bandwidth.h"
#include "qnt/bench/Stats.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

namespace qnt::bench {

namespace detail {

/// An anonymous mapping: its pages are not touched (hence not placed) until
/// a thread writes them, which is what makes first touch per thread work.
/// A std::vector would zero them all from the allocating thread.
class MappedArray {
public:
  explicit MappedArray(size_t count) : bytes_(count * sizeof(double)) {
    void *p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw std::bad_alloc();
    data_ = static_cast<double *>(p);
  }
  MappedArray(const MappedArray &) = delete;
  MappedArray &operator=(const MappedArray &) = delete;
  ~MappedArray() { ::munmap(data_, bytes_); }
  double *data() const { return data_; }
  size_t count() const { return bytes_ / sizeof(double); }

private:
  double *data_ = nullptr;
  size_t bytes_;
};

} // namespace detail

using detail::MappedArray;

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kLineDoubles = 64 / sizeof(double);
constexpr size_t kMinDefaultBytes = size_t(256) << 20;

/// The scalar of scale and triad. STREAM uses 3, which multiplies the
/// values by 15 per repetition (a' = (2s + s^2) a) and overflows after a
/// few hundred; 0.42 grows them by 1.64% per repetition, which stays finite
/// (and far from denormals) for kMaxRepetitions yet changes every value in
/// every repetition, so that the final check catches a kernel that skipped
/// part of its work. The value does not affect the speed of the kernels.
constexpr double kScalar = 0.42;
constexpr int kMaxRepetitions = 10000;

enum Kernel { Copy, Scale, Add, Triad, Read, NumKernels };

/// Arrays the STREAM convention counts for each kernel.
constexpr int kArraysMoved[NumKernels] = {2, 2, 3, 3, 1};

/// A reusable barrier for C++17 (std::barrier is C++20). Waiters block on a
/// condition variable: with more threads than cores a spinning waiter
/// would steal the core of the thread it is waiting for. cancel() releases
/// every waiter, now and later, so that a failed start cannot strand the
/// threads that did start.
class Barrier {
public:
  explicit Barrier(int count) : count_(count) {}

  /// Returns false if the barrier was cancelled.
  bool wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (cancelled_)
      return false;
    const uint64_t generation = generation_;
    if (++waiting_ == count_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return true;
    }
    cv_.wait(lock,
             [&] { return cancelled_ || generation_ != generation; });
    return generation_ != generation;
  }

  void cancel() {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_ = true;
    cv_.notify_all();
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  const int count_;
  int waiting_ = 0;
  uint64_t generation_ = 0;
  bool cancelled_ = false;
};

/// What every element of the arrays holds after a number of repetitions,
/// computed with the same scalar operations as the kernels. The last read
/// sums `a`, so it must equal a times the elements summed.
struct Expected {
  double a = 1, b = 2, c = 0;
};

Expected expectedAfter(int repetitions) {
  Expected e;
  for (int r = 0; r < repetitions; ++r) {
    e.c = e.a;
    e.b = kScalar * e.c;
    e.c = e.a + e.b;
    e.a = e.b + kScalar * e.c;
  }
  return e;
}

bool near(double value, double expected) {
  // FMA contraction and rounding drift are far below this; a wrong index or
  // a skipped partition is not.
  return std::fabs(value - expected) <= 1e-9 * std::fabs(expected) + 1e-12;
}

/// Eight doubles: one 512-bit register, or two or four narrower ones (GCC
/// and Clang vector extensions lower it to whatever the target has).
typedef double Lanes __attribute__((vector_size(64)));

Lanes loadLanes(const double *p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// Sum of [p, p + n) as four interleaved streams of two vector accumulators
/// each: the fastest read this machine sustains, which a GEMV must be
/// measured against. Several streams keep more cache-line misses in flight
/// than the hardware prefetcher sustains for one sequential stream (and
/// mirror how a GEMV reads several weight rows at once); vector loads and
/// independent accumulators keep the adds off the critical path, so the
/// loop is bound by memory and not by the adds, as a scalar sum would be.
double sumStreams(const double *p, size_t n) {
  constexpr size_t kStreams = 4, kLanes = 8;
  const size_t len = n / kStreams;
  const double *s0 = p, *s1 = p + len, *s2 = p + 2 * len, *s3 = p + 3 * len;
  Lanes a0 = {}, a1 = {}, b0 = {}, b1 = {}, c0 = {}, c1 = {}, d0 = {}, d1 = {};
  size_t i = 0;
  for (; i + 2 * kLanes <= len; i += 2 * kLanes) {
    a0 += loadLanes(s0 + i);
    a1 += loadLanes(s0 + i + kLanes);
    b0 += loadLanes(s1 + i);
    b1 += loadLanes(s1 + i + kLanes);
    c0 += loadLanes(s2 + i);
    c1 += loadLanes(s2 + i + kLanes);
    d0 += loadLanes(s3 + i);
    d1 += loadLanes(s3 + i + kLanes);
  }
  Lanes all = ((a0 + a1) + (b0 + b1)) + ((c0 + c1) + (d0 + d1));
  double sum = 0;
  for (size_t l = 0; l < kLanes; ++l)
    sum += all[l];
  for (; i < len; ++i)
    sum += (s0[i] + s1[i]) + (s2[i] + s3[i]);
  for (size_t j = kStreams * len; j < n; ++j)
    sum += p[j];
  return sum;
}

/// Runs worker(t) on threads t = 1..numThreads-1 and on the calling thread
/// as t = 0, then joins them. A thread that cannot be started cancels
/// `barrier`, so the workers already running return, and rethrows.
template <typename Worker>
void runOnThreads(size_t numThreads, Barrier &barrier, Worker &&worker) {
  std::vector<std::thread> pool;
  pool.reserve(numThreads - 1);
  try {
    for (size_t t = 1; t < numThreads; ++t)
      pool.emplace_back(worker, t);
  } catch (...) {
    barrier.cancel();
    for (std::thread &th : pool)
      th.join();
    throw;
  }
  worker(size_t(0));
  for (std::thread &th : pool)
    th.join();
}

/// Seconds from the earliest start to the latest end of one timed step,
/// whose `numThreads` per-thread times begin at index `base`.
double spanSeconds(const std::vector<Clock::time_point> &starts,
                   const std::vector<Clock::time_point> &ends, size_t base,
                   size_t numThreads) {
  Clock::time_point start = starts[base], end = ends[base];
  for (size_t t = 1; t < numThreads; ++t) {
    start = std::min(start, starts[base + t]);
    end = std::max(end, ends[base + t]);
  }
  return std::chrono::duration<double>(end - start).count();
}

/// Physical memory, or SIZE_MAX when the system does not say.
size_t physicalBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long pageSize = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || pageSize <= 0)
    return SIZE_MAX;
  return static_cast<size_t>(pages) * static_cast<size_t>(pageSize);
}

/// Per-thread verdicts, padded to their own cache lines so that the threads
/// writing them do not share one.
struct alignas(64) ThreadSlot {
  bool valid = false;
};

} // namespace

int hardwareThreads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0)
      return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

size_t defaultStreamBytes() {
  const size_t llc = lastLevelCacheBytes();
  return std::min(std::max(kMinDefaultBytes, llc * 4), physicalBytes() / 8);
}

StreamResult measureHostBandwidth(size_t bytesPerArray, int threads,
                                  int repetitions) {
  if (bytesPerArray == 0)
    bytesPerArray = defaultStreamBytes();
  const size_t numThreads =
      static_cast<size_t>(threads > 0 ? threads : hardwareThreads());
  const int reps = std::clamp(repetitions, 1, kMaxRepetitions);

  // Whole cache lines per thread, so that no two threads write one line.
  const size_t perThread = std::max<size_t>(
      bytesPerArray / sizeof(double) / numThreads / kLineDoubles *
          kLineDoubles,
      kLineDoubles);
  const size_t n = perThread * numThreads;
  MappedArray arrayA(n), arrayB(n), arrayC(n);
  double *const a = arrayA.data();
  double *const b = arrayB.data();
  double *const c = arrayC.data();

  const size_t numSlots = static_cast<size_t>(reps) * NumKernels * numThreads;
  std::vector<Clock::time_point> starts(numSlots), ends(numSlots);
  std::vector<ThreadSlot> slots(numThreads);
  const Expected expected = expectedAfter(reps);
  const double s = kScalar;
  Barrier barrier(static_cast<int>(numThreads));

  auto worker = [&](size_t t) {
    const size_t lo = t * perThread, hi = lo + perThread;
    // First touch: this thread's pages of all three arrays.
    for (size_t i = lo; i < hi; ++i) {
      a[i] = 1.0;
      b[i] = 2.0;
      c[i] = 0.0;
    }
    double sum = 0;
    for (int r = 0; r < reps; ++r) {
      for (int k = 0; k < NumKernels; ++k) {
        if (!barrier.wait())
          return;
        const size_t slot = (static_cast<size_t>(r) * NumKernels + k) *
                                numThreads + t;
        starts[slot] = Clock::now();
        switch (k) {
        case Copy:
          // GCC may turn this loop into memcpy, as it does in STREAM.
          for (size_t i = lo; i < hi; ++i)
            c[i] = a[i];
          break;
        case Scale:
          for (size_t i = lo; i < hi; ++i)
            b[i] = s * c[i];
          break;
        case Add:
          for (size_t i = lo; i < hi; ++i)
            c[i] = a[i] + b[i];
          break;
        case Triad:
          for (size_t i = lo; i < hi; ++i)
            a[i] = b[i] + s * c[i];
          break;
        case Read:
          sum = sumStreams(a + lo, perThread);
          break;
        }
        ends[slot] = Clock::now();
      }
    }
    // Only this thread wrote its partitions, so it can check them without
    // waiting for the others.
    bool ok = near(sum, expected.a * static_cast<double>(perThread));
    for (size_t i = lo; ok && i < hi; ++i)
      ok = near(a[i], expected.a) && near(b[i], expected.b) &&
           near(c[i], expected.c);
    slots[t].valid = ok;
  };

  runOnThreads(numThreads, barrier, worker);

  // STREAM's convention: the best time, skipping the first repetition
  // (page faults, frequency ramp) when there is another.
  const int firstCounted = reps > 1 ? 1 : 0;
  double gbs[NumKernels] = {};
  StreamResult result;
  static_assert(sizeof(result.bestSeconds) == NumKernels * sizeof(double),
                "one best time per kernel");
  for (int k = 0; k < NumKernels; ++k) {
    double best = std::numeric_limits<double>::infinity();
    for (int r = firstCounted; r < reps; ++r) {
      const size_t base = (static_cast<size_t>(r) * NumKernels + k) *
                          numThreads;
      best = std::min(best, spanSeconds(starts, ends, base, numThreads));
    }
    const double bytes = static_cast<double>(kArraysMoved[k]) *
                         static_cast<double>(n * sizeof(double));
    if (best > 0 && std::isfinite(best)) {
      gbs[k] = bytes / best / 1e9;
      result.bestSeconds[k] = best;
    }
  }

  result.copyGBs = gbs[Copy];
  result.scaleGBs = gbs[Scale];
  result.addGBs = gbs[Add];
  result.triadGBs = gbs[Triad];
  result.readGBs = gbs[Read];
  result.threads = static_cast<int>(numThreads);
  result.bytesPerArray = n * sizeof(double);
  result.repetitions = reps;
  result.valid = std::all_of(slots.begin(), slots.end(),
                             [](const ThreadSlot &s) { return s.valid; });
  return result;
}

size_t defaultReadProbeBytes() {
  return std::min(size_t(1) << 30, physicalBytes() / 8);
}

ReadProbe::ReadProbe(size_t bytes, int threads) {
  if (bytes == 0)
    bytes = defaultReadProbeBytes();
  const size_t numThreads =
      static_cast<size_t>(threads > 0 ? threads : hardwareThreads());
  lines_ = std::max(bytes / 64, numThreads);
  array_ = std::make_unique<MappedArray>(lines_ * kLineDoubles);
  double *data = array_->data();
  const size_t perThread = lines_ / numThreads * kLineDoubles;
  Barrier barrier(static_cast<int>(numThreads));
  runOnThreads(numThreads, barrier, [&](size_t t) {
    const size_t hi = t + 1 == numThreads ? lines_ * kLineDoubles
                                          : (t + 1) * perThread;
    std::fill(data + t * perThread, data + hi, 1.0);
  });
}

ReadProbe::~ReadProbe() = default;

size_t ReadProbe::bytes() const { return lines_ * 64; }

size_t ReadProbe::bytesRead(int threads) const {
  const size_t numThreads =
      std::clamp<size_t>(static_cast<size_t>(std::max(threads, 1)), 1, lines_);
  return lines_ / numThreads * numThreads * 64;
}

double ReadProbe::measure(int threads, int repetitions) {
  const int reps = std::clamp(repetitions, 1, kMaxRepetitions);
  const size_t numThreads =
      std::clamp<size_t>(static_cast<size_t>(std::max(threads, 1)), 1, lines_);
  const size_t perThread = lines_ / numThreads * kLineDoubles;
  const double *data = array_->data();
  std::vector<Clock::time_point> starts(reps * numThreads),
      ends(reps * numThreads);
  std::vector<ThreadSlot> slots(numThreads);
  Barrier barrier(static_cast<int>(numThreads));
  runOnThreads(numThreads, barrier, [&](size_t t) {
    bool ok = true;
    for (int r = 0; r < reps; ++r) {
      if (!barrier.wait())
        return;
      const size_t slot = static_cast<size_t>(r) * numThreads + t;
      starts[slot] = Clock::now();
      // Every element is 1, so the sum is exact and equals the count.
      ok &= sumStreams(data + t * perThread, perThread) ==
            static_cast<double>(perThread);
      ends[slot] = Clock::now();
    }
    slots[t].valid = ok;
  });
  if (!std::all_of(slots.begin(), slots.end(),
                   [](const ThreadSlot &s) { return s.valid; }))
    return 0;
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r)
    best = std::min(best, spanSeconds(starts, ends,
                                      static_cast<size_t>(r) * numThreads,
                                      numThreads));
  return best > 0 && std::isfinite(best)
             ? static_cast<double>(bytesRead(static_cast<int>(numThreads))) /
                   best / 1e9
             : 0;
}

} // namespace qnt::bench
