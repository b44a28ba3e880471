//===- Report.h - quant-bench results as a table and as JSON ----*- C++ -*-===//
//
// One row per measured kernel (target, kernel, encoding, shape), with the
// derived figures that make rows comparable across encodings: effective
// bandwidth over the packed weight bytes, its fraction of the memory bound
// measured in the same run, and the speedup over a baseline measured in the
// same run. Written as an aligned table for people and as JSON (schema
// "qnt.bench/2", snake_case keys like the tools' other summaries) for
// scripts. Units: ms, MB = 10^6 bytes, GB/s = 10^9 bytes per second (as
// STREAM counts). IR-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_BENCH_REPORT_H
#define QNT_BENCH_REPORT_H

#include "qnt/bench/Bandwidth.h"
#include "qnt/bench/Stats.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace qnt::bench {

/// The JSON schema tag; bump the number when a field changes meaning.
constexpr const char *kBenchSchema = "qnt.bench/2";

struct BenchRow {
  std::string target;   ///< "gpu" or "cpu"
  std::string kernel;   ///< "gemv" or "gemm"
  std::string encoding; ///< e.g. "int4 asym g128"
  int64_t rows = 0;     ///< M, rows of the activations (1 for a GEMV)
  int64_t n = 0;        ///< output features (weight rows)
  int64_t k = 0;        ///< input features (weight columns)
  double bitsPerWeight = 0;
  /// Packed bytes of all weight components (codes, scales, zero points,
  /// masks...), i.e. what the kernel must stream.
  int64_t weightBytes = 0;
  TimingStats time;
  double effectiveGBs = 0;  ///< weightBytes / median time
  /// effectiveGBs / the context's boundGBs, or, for a row timed in rounds
  /// beside its own bound, the median of roundFractions.
  double boundFraction = 0;
  /// Set for a row timed in rounds, each right after a fresh measurement of
  /// the read bound (bench::ReadProbe): per round, weightBytes over the
  /// round's median time, over that bound. Empty otherwise.
  std::vector<double> roundFractions;
  /// The median of the bounds measured beside the rounds; 0 when none.
  double rowBoundGBs = 0;
  std::string baselineName; ///< empty when there is no baseline
  double baselineMs = 0;    ///< the baseline's median; 0 when none
  double speedupVsBaseline = 0; ///< baselineMs / median; 0 when none
  std::string note;
};

/// Fills `row`'s derived fields from its weightBytes, time and baselineMs:
/// effectiveGBs, boundFraction (the median of roundFractions when there
/// are any, else against `boundGBs`) and speedupVsBaseline.
/// A field whose inputs are missing (no samples, no bound, no baseline) is
/// set to 0, which the table prints as "-".
void computeDerived(BenchRow &row, double boundGBs);

/// The run as a whole: where it ran and what the rows are bounded by.
struct BenchContext {
  std::string device;
  double boundGBs = 0;
  /// How boundGBs was obtained, e.g. "STREAM read" or "measured copy
  /// bandwidth".
  std::string boundName;
  /// The host measurement behind the bound, when there was one.
  std::optional<StreamResult> hostStream;
  /// Free-form facts (compiler, threads, commit...), in display order.
  std::vector<std::pair<std::string, std::string>> extra;
};

/// Writes a context line ("# device: ... | bound: 13.30 GB/s (STREAM
/// read) | key: value ...") and then one aligned line per row with the
/// columns target kernel encoding M N K bits/w MB median_ms GB/s %bound
/// baseline_ms speedup; when any row was timed beside its own bound, the
/// columns row_bound (GB/s) and %bound_range (the lowest and highest round,
/// "61.2-70.4"); and a final note column when any row has a note.
void printTable(std::ostream &os, const BenchContext &context,
                const std::vector<BenchRow> &rows);

/// {"schema": "qnt.bench/2", "context": {...}, "results": [...]}.
nlohmann::json toJson(const BenchContext &context,
                      const std::vector<BenchRow> &rows);

/// Writes `json` (indented, newline-terminated) to `path` through a
/// temporary file in the same directory that is fsynced and renamed onto
/// `path`, so that readers see the old file or the complete new one and a
/// failure leaves no file behind. Strings that are not valid UTF-8 are
/// written with U+FFFD replacements rather than failing. On failure returns
/// false and sets *error (naming the path) if `error` is not null.
bool writeJsonAtomically(const std::string &path, const nlohmann::json &json,
                         std::string *error);

} // namespace qnt::bench

#endif // QNT_BENCH_REPORT_H
