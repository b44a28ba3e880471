//===- Stats.cpp - Timing statistics and cache-defeating buffers ----------===//

#include "qnt/bench/Stats.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <numeric>
#include <string>

namespace qnt::bench {

namespace {
constexpr size_t kPageBytes = 4096;
constexpr size_t kFallbackCacheBytes = size_t(64) << 20;

size_t roundUp(size_t value, size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

/// The first line of a sysfs file, without its newline; empty if unreadable.
std::string readLine(const std::string &path) {
  std::ifstream in(path);
  std::string line;
  if (in)
    std::getline(in, line);
  return line;
}
} // namespace

//===----------------------------------------------------------------------===//
// Timing
//===----------------------------------------------------------------------===//

TimingStats summarize(std::vector<double> ms) {
  ms.erase(std::remove_if(ms.begin(), ms.end(),
                          [](double v) { return !std::isfinite(v); }),
           ms.end());
  TimingStats stats;
  if (ms.empty())
    return stats;
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  stats.samples = static_cast<int>(std::min<size_t>(n, INT_MAX));
  stats.minMs = ms.front();
  stats.maxMs = ms.back();
  stats.medianMs = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
  stats.meanMs = std::accumulate(ms.begin(), ms.end(), 0.0) / n;
  return stats;
}

std::vector<double> timeRepeated(const std::function<void()> &body,
                                 int warmup, int iterations,
                                 double minTotalSeconds, int maxIterations) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i)
    body();

  const size_t wanted = static_cast<size_t>(std::max(iterations, 1));
  const size_t cap = static_cast<size_t>(std::max(maxIterations, 1));
  // NaN or a negative minimum means "no time requirement".
  const double minSeconds = minTotalSeconds > 0 ? minTotalSeconds : 0;
  std::vector<double> ms;
  ms.reserve(std::min(wanted, cap));
  const Clock::time_point first = Clock::now();
  while (ms.size() < cap) {
    const Clock::time_point start = Clock::now();
    body();
    const Clock::time_point end = Clock::now();
    ms.push_back(
        std::chrono::duration<double, std::milli>(end - start).count());
    if (ms.size() >= wanted &&
        std::chrono::duration<double>(end - first).count() >= minSeconds)
      break;
  }
  return ms;
}

//===----------------------------------------------------------------------===//
// Cache size
//===----------------------------------------------------------------------===//

bool parseCacheSize(std::string_view text, size_t *bytes) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 12) // 12 digits keep the shift below safe.
    return false;
  unsigned shift = 0;
  const std::string_view suffix = text.substr(digits);
  if (suffix == "K")
    shift = 10;
  else if (suffix == "M")
    shift = 20;
  else if (suffix == "G")
    shift = 30;
  else if (!suffix.empty())
    return false;
  uint64_t value = 0;
  for (size_t i = 0; i < digits; ++i)
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  *bytes = static_cast<size_t>(value << shift);
  return true;
}

size_t lastLevelCacheBytes() {
  // index3 is the L3 on x86, but the numbering is not fixed (ARM parts
  // often stop at index2), so take the highest level that holds data.
  const std::string base = "/sys/devices/system/cpu/cpu0/cache/index";
  int bestLevel = 0;
  size_t bestBytes = 0;
  for (int i = 0; i < 16; ++i) {
    const std::string dir = base + std::to_string(i) + "/";
    const std::string level = readLine(dir + "level");
    if (level.empty())
      continue;
    if (readLine(dir + "type") == "Instruction")
      continue;
    size_t bytes = 0;
    const int lvl = std::atoi(level.c_str());
    if (lvl > bestLevel && parseCacheSize(readLine(dir + "size"), &bytes) &&
        bytes > 0) {
      bestLevel = lvl;
      bestBytes = bytes;
    }
  }
  return bestBytes ? bestBytes : kFallbackCacheBytes;
}

//===----------------------------------------------------------------------===//
// RotatingBuffers
//===----------------------------------------------------------------------===//

void RotatingBuffers::Free::operator()(uint8_t *p) const { std::free(p); }

RotatingBuffers::RotatingBuffers(const void *data, size_t bytes, int copies)
    : bytes_(bytes) {
  const size_t count = static_cast<size_t>(std::max(copies, 1));
  // Page-aligned copies: kernels may assume cache-line alignment, and a
  // whole page per copy keeps copies from sharing a page (and a TLB entry).
  const size_t stride = roundUp(std::max<size_t>(bytes, 1), kPageBytes);
  if (stride > SIZE_MAX / count)
    throw std::bad_alloc();
  void *block = std::aligned_alloc(kPageBytes, stride * count);
  if (!block)
    throw std::bad_alloc();
  storage_.reset(static_cast<uint8_t *>(block));
  copies_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    uint8_t *copy = storage_.get() + i * stride;
    if (bytes)
      std::memcpy(copy, data, bytes);
    copies_.push_back(copy);
  }
}

int RotatingBuffers::copiesToExceed(size_t bytesPerCopy, size_t cacheBytes) {
  if (bytesPerCopy == 0 || cacheBytes == 0)
    return 1;
  // ceil(2 * cacheBytes / bytesPerCopy) other copies, saturating rather
  // than wrapping for absurd inputs.
  const uint64_t target =
      cacheBytes > UINT64_MAX / 2 ? UINT64_MAX : uint64_t(cacheBytes) * 2;
  const uint64_t others = target / bytesPerCopy + (target % bytesPerCopy != 0);
  if (others >= uint64_t(INT_MAX))
    return INT_MAX;
  return static_cast<int>(others) + 1;
}

uint8_t *RotatingBuffers::next() {
  uint8_t *p = copies_[cursor_];
  cursor_ = (cursor_ + 1) % copies_.size();
  return p;
}

} // namespace qnt::bench
