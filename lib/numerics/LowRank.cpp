//===- LowRank.cpp - Low-rank compensation of quantization error ----------===//
//
// See LowRank.h. The SVD is Eigen's divide-and-conquer BDCSVD in double: the
// error matrices are small relative to their singular-value range only in
// the tail, which is exactly what a rank-r truncation keeps or drops.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/LowRank.h"

#include "qnt/numerics/Encoding.h"

#include <Eigen/Core>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace qnt::numerics {

namespace {

using RowMatrixXd =
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Stores `values` ([rows, rank] row-major) in `format`: rounded to f16, or
/// to int8 codes with one symmetric scale per row (absmax / 127).
void storeFactor(FactorFormat format, int64_t rows, int64_t rank,
                 std::vector<float> &values, std::vector<int8_t> &codes,
                 std::vector<float> &scales) {
  if (format == FactorFormat::F16) {
    for (float &x : values)
      x = float(Eigen::half(x));
    return;
  }
  if (format != FactorFormat::Int8)
    return;
  codes.assign(values.size(), 0);
  scales.assign(size_t(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    float *row = values.data() + r * rank;
    float absMax = 0.0f;
    for (int64_t j = 0; j < rank; ++j)
      absMax = std::max(absMax, std::fabs(row[j]));
    // An all-zero row keeps scale 0 and codes 0.
    const float scale = absMax / 127.0f;
    scales[size_t(r)] = scale;
    for (int64_t j = 0; j < rank; ++j) {
      float code =
          scale > 0.0f ? std::clamp(roundHalfEven(row[j] / scale), -127.0f,
                                    127.0f)
                       : 0.0f;
      codes[size_t(r * rank + j)] = int8_t(code);
      row[j] = code * scale;
    }
  }
}

} // namespace

LowRankFactors lowRankCompensation(const float *error, int64_t rows,
                                   int64_t cols,
                                   const LowRankOptions &options) {
  if (rows <= 0 || cols <= 0)
    throw std::invalid_argument("low-rank compensation of an empty " +
                                std::to_string(rows) + "x" +
                                std::to_string(cols) + " matrix");
  const int64_t maxRank = std::min(rows, cols);
  if (options.rank < 1 || options.rank > maxRank)
    throw std::invalid_argument(
        "low-rank compensation rank must be in 1.." + std::to_string(maxRank) +
        " for a " + std::to_string(rows) + "x" + std::to_string(cols) +
        " matrix, got " + std::to_string(options.rank));

  RowMatrixXd e(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    e.data()[i] = double(error[i]);
  Eigen::BDCSVD<Eigen::MatrixXd> svd(e, Eigen::ComputeThinU |
                                            Eigen::ComputeThinV);

  LowRankFactors f;
  f.rows = rows;
  f.cols = cols;
  f.rank = options.rank;
  f.format = options.format;
  const Eigen::VectorXd &sigma = svd.singularValues();
  f.singularValues.assign(sigma.data(), sigma.data() + sigma.size());
  // U_r sqrt(S_r) and V_r sqrt(S_r): the split that balances the two
  // factors' ranges, which matters once they are rounded to f16 or int8.
  const int64_t r = options.rank;
  f.u.resize(size_t(rows * r));
  f.v.resize(size_t(cols * r));
  for (int64_t j = 0; j < r; ++j) {
    const double root = std::sqrt(sigma(j));
    for (int64_t n = 0; n < rows; ++n)
      f.u[size_t(n * r + j)] = float(svd.matrixU()(n, j) * root);
    for (int64_t k = 0; k < cols; ++k)
      f.v[size_t(k * r + j)] = float(svd.matrixV()(k, j) * root);
  }
  storeFactor(options.format, rows, r, f.u, f.uCodes, f.uScales);
  storeFactor(options.format, cols, r, f.v, f.vCodes, f.vScales);
  return f;
}

int64_t lowRankStorageBits(int64_t rows, int64_t cols, int64_t rank,
                           FactorFormat format) {
  const int64_t elements = rank * (rows + cols);
  switch (format) {
  case FactorFormat::F32:
    return 32 * elements;
  case FactorFormat::F16:
    return 16 * elements;
  case FactorFormat::Int8:
    return 8 * elements + 32 * (rows + cols);
  }
  return 0;
}

double lowRankEntry(const LowRankFactors &factors, int64_t n, int64_t k) {
  double sum = 0.0;
  for (int64_t j = 0; j < factors.rank; ++j)
    sum += double(factors.u[size_t(n * factors.rank + j)]) *
           double(factors.v[size_t(k * factors.rank + j)]);
  return sum;
}

} // namespace qnt::numerics
