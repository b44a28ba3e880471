//===- StatisticsFile.h - The qnt.calibration/1 statistics file -*- C++ -*-===//
//
// Per-layer input statistics as a safetensors file (docs/Calibration.md):
// `<layer>.absmax`, `<layer>.mean_abs` (F32 [K]), `<layer>.hessian` (F32
// [K, K], the sum X^T X) and `<layer>.count` (I64 scalar), with metadata
// "format" = "qnt.calibration/1". Written by quant-calibrate, read by every
// PTQ pass's `stats=` option.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_STATISTICSFILE_H
#define QNT_IO_STATISTICSFILE_H

#include "qnt/numerics/Statistics.h"

#include <map>
#include <string>

namespace qnt::io {

inline constexpr const char *kStatisticsFormat = "qnt.calibration/1";

struct StatisticsFile {
  std::map<std::string, numerics::LayerStatistics> layers;
  std::map<std::string, std::string> metadata;
};

/// Writes `stats` atomically (no partial file on failure). Only the
/// statistics each layer wants are written; the count always is.
bool writeStatisticsFile(const std::string &path, const StatisticsFile &stats,
                         std::string *error);

/// Reads a statistics file. Fails (message starting with the path) on a file
/// that is not a valid safetensors file, lacks the format tag, has a
/// statistic of the wrong dtype or shape (absmax/mean_abs [K], hessian
/// [K, K] consistent per layer, count I64 scalar >= 0), a layer without a
/// count, or a non-finite or negative value where none can be.
bool readStatisticsFile(const std::string &path, StatisticsFile &stats,
                        std::string *error);

} // namespace qnt::io

#endif // QNT_IO_STATISTICSFILE_H
