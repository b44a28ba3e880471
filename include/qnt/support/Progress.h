//===- Progress.h - Terminal progress line for long work --------*- C++ -*-===//
//
// One self-overwriting status line on stderr ("label  12/100  12%  eta 3s
// | detail"), redrawn at most ten times a second, and only when stderr is a
// terminal so that logs and CI output stay clean. Summaries are printed by
// the callers.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_SUPPORT_PROGRESS_H
#define QNT_SUPPORT_PROGRESS_H

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace qnt {

class Progress {
public:
  Progress(std::string label, int64_t total)
      : label(std::move(label)), total(total),
        enabled(::isatty(STDERR_FILENO) != 0),
        start(std::chrono::steady_clock::now()) {}
  ~Progress() { finish(); }

  /// Reports `done` of `total` units, with an optional detail string.
  void update(int64_t done, const std::string &detail = "") {
    if (!enabled)
      return;
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - lastDraw < std::chrono::milliseconds(100))
      return;
    lastDraw = now;
    double elapsed = seconds();
    double eta = done > 0 ? elapsed * double(total - done) / double(done) : 0;
    std::fprintf(stderr, "\r\033[K%s  %lld/%lld  %3.0f%%  eta %.0fs%s%s",
                 label.c_str(), (long long)done, (long long)total,
                 total ? 100.0 * double(done) / double(total) : 100.0, eta,
                 detail.empty() ? "" : "  | ", detail.c_str());
    std::fflush(stderr);
    drawn = true;
  }

  /// Clears the line (the caller prints its summary after).
  void finish() {
    if (drawn)
      std::fprintf(stderr, "\r\033[K");
    drawn = false;
  }

  /// Seconds since construction.
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  }

private:
  std::string label;
  int64_t total;
  bool enabled;
  bool drawn = false;
  std::chrono::steady_clock::time_point start, lastDraw;
};

} // namespace qnt

#endif // QNT_SUPPORT_PROGRESS_H
