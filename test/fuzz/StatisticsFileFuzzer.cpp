//===- StatisticsFileFuzzer.cpp - Fuzz the calibration statistics reader --===//
//
// A statistics file that reads must hold consistent shapes: what the PTQ
// methods index without further checks.
//
//===----------------------------------------------------------------------===//
#include "FuzzSupport.h"

#include "qnt/io/StatisticsFile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  qnt::fuzz::MemoryFile file(data, size);
  qnt::io::StatisticsFile stats;
  std::string error;
  if (!qnt::io::readStatisticsFile(file.path(), stats, &error)) {
    if (error.rfind(file.path(), 0) != 0)
      abort();
    return 0;
  }
  for (const auto &[name, layer] : stats.layers) {
    // Whatever a layer holds is sized by its channel count.
    if (!layer.absmax.empty() && int64_t(layer.absmax.size()) != layer.channels)
      abort();
    if (!layer.sumAbs.empty() && int64_t(layer.sumAbs.size()) != layer.channels)
      abort();
    if (layer.hessian.size() &&
        (layer.hessian.rows() != layer.channels ||
         layer.hessian.cols() != layer.channels))
      abort();
    if (layer.count < 0)
      abort();
    volatile double sum = 0;
    for (float v : layer.absmax)
      sum = sum + v;
    if (layer.hessian.size())
      sum = sum + layer.fullHessian().sum();
  }
  return 0;
}
