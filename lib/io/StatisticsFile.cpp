//===- StatisticsFile.cpp - The qnt.calibration/1 statistics file ---------===//

#include "qnt/io/StatisticsFile.h"
#include "qnt/io/Safetensors.h"

#include <cmath>
#include <cstring>

namespace qnt::io {

bool writeStatisticsFile(const std::string &path, const StatisticsFile &stats,
                         std::string *error) {
  SafetensorsWriter writer;
  for (const auto &[key, value] : stats.metadata)
    writer.setMetadata(key, value);
  writer.setMetadata("format", kStatisticsFormat);
  for (const auto &[name, layer] : stats.layers) {
    int64_t k = layer.channels;
    if (layer.wantsAbsmax && layer.count > 0 &&
        !writer.add(name + ".absmax", DType::F32, {k}, layer.absmax.data(),
                    k * sizeof(float), error))
      return false;
    if (layer.wantsMeanAbs && layer.count > 0) {
      std::vector<float> mean = layer.meanAbs();
      if (!writer.add(name + ".mean_abs", DType::F32, {k}, mean.data(),
                      k * sizeof(float), error))
        return false;
    }
    if (layer.wantsMeanAbs && layer.count > 0 &&
        int64_t(layer.sum.size()) == k) {
      std::vector<double> exact = layer.mean();
      std::vector<float> mean(exact.begin(), exact.end());
      if (!writer.add(name + ".mean", DType::F32, {k}, mean.data(),
                      k * sizeof(float), error))
        return false;
    }
    if (layer.wantsHessian && layer.count > 0) {
      Eigen::MatrixXd full = layer.fullHessian();
      std::vector<float> values(k * k);
      for (int64_t r = 0; r < k; ++r)
        for (int64_t c = 0; c < k; ++c)
          values[r * k + c] = float(full(r, c));
      if (!writer.add(name + ".hessian", DType::F32, {k, k}, values.data(),
                      values.size() * sizeof(float), error))
        return false;
    }
    int64_t count = layer.count;
    if (!writer.add(name + ".count", DType::I64, {}, &count, sizeof(count),
                    error))
      return false;
  }
  return writer.write(path, error);
}

namespace {

bool failWith(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

/// Splits "<layer>.<stat>" at the last dot.
bool splitName(const std::string &name, std::string &layer,
               std::string &stat) {
  size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0)
    return false;
  layer = name.substr(0, dot);
  stat = name.substr(dot + 1);
  return true;
}

std::vector<float> readF32(const TensorFile &file, const TensorInfo &t) {
  std::vector<float> values(t.numElements());
  std::memcpy(values.data(), file.data(t), values.size() * sizeof(float));
  return values;
}

} // namespace

bool readStatisticsFile(const std::string &path, StatisticsFile &stats,
                        std::string *error) {
  std::unique_ptr<SafetensorsFile> file = SafetensorsFile::open(path, error);
  if (!file)
    return false;
  auto format = file->metadata().find("format");
  if (format == file->metadata().end() || format->second != kStatisticsFormat)
    return failWith(error, path + ": not a statistics file (metadata "
                               "\"format\" must be \"" +
                               kStatisticsFormat + "\")");
  stats = StatisticsFile();
  stats.metadata = file->metadata();
  // Every tensor is checked against the layer's channel count, taken from
  // the first of its statistics seen.
  for (const TensorInfo &t : file->tensors()) {
    std::string layerName, stat;
    if (!splitName(t.name, layerName, stat))
      return failWith(error, path + ": tensor '" + t.name +
                                 "' is not named <layer>.<statistic>");
    auto where = [&] { return path + ": '" + t.name + "'"; };
    auto [entry, inserted] = stats.layers.try_emplace(layerName);
    numerics::LayerStatistics &layer = entry->second;
    // A layer wants what its file holds.
    if (inserted)
      layer.wantsAbsmax = layer.wantsMeanAbs = layer.wantsHessian = false;
    auto checkChannels = [&](int64_t k) {
      if (layer.channels == 0)
        layer.channels = k;
      return layer.channels == k;
    };
    if (stat == "count") {
      if (t.dtype != DType::I64 || !t.shape.empty())
        return failWith(error, where() + " must be an I64 scalar");
      int64_t count;
      std::memcpy(&count, file->data(t), sizeof(count));
      if (count < 0)
        return failWith(error, where() + " is negative");
      layer.count = count;
      continue;
    }
    if (t.dtype != DType::F32)
      return failWith(error, where() + " must be F32, got " +
                                 dtypeName(t.dtype));
    bool vector = stat == "absmax" || stat == "mean_abs" || stat == "mean";
    if (vector ? t.shape.size() != 1
               : (stat != "hessian" || t.shape.size() != 2 ||
                  t.shape[0] != t.shape[1]))
      return failWith(error,
                      where() + (vector || stat == "hessian"
                                     ? " has the wrong shape (absmax, mean "
                                       "and mean_abs are [K], hessian [K, "
                                       "K])"
                                     : " is not a known statistic (absmax, "
                                       "mean_abs, mean, hessian, count)"));
    if (!checkChannels(t.shape[0]))
      return failWith(error, where() + " has " + std::to_string(t.shape[0]) +
                                 " channels, other statistics of layer '" +
                                 layerName + "' have " +
                                 std::to_string(layer.channels));
    std::vector<float> values = readF32(*file, t);
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i]))
        return failWith(error, where() + " has a non-finite value at flat "
                                         "index " +
                                         std::to_string(i));
    if (stat == "absmax") {
      layer.absmax = values;
      layer.wantsAbsmax = true;
    } else if (stat == "mean_abs") {
      layer.sumAbs.assign(values.begin(), values.end()); // scaled below
      layer.wantsMeanAbs = true;
    } else if (stat == "mean") {
      layer.sum.assign(values.begin(), values.end()); // scaled below

    } else {
      int64_t k = t.shape[0];
      layer.hessian = Eigen::MatrixXd(k, k);
      for (int64_t r = 0; r < k; ++r)
        for (int64_t c = 0; c < k; ++c)
          layer.hessian(r, c) = values[r * k + c];
      layer.wantsHessian = true;
    }
  }
  for (auto &[name, layer] : stats.layers) {
    if (!file->find(name + ".count"))
      return failWith(error, path + ": layer '" + name + "' has no count");
    // The file stores means; the accumulator keeps sums.
    for (double &v : layer.sumAbs)
      v *= double(layer.count);
    for (double &v : layer.sum)
      v *= double(layer.count);
  }
  return true;
}

} // namespace qnt::io
