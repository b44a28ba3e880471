//===- Method.cpp - Shared pieces of the weight PTQ methods ---------------===//

#include "qnt/numerics/Method.h"

#include <Eigen/Dense>

namespace qnt::numerics {

namespace {
using RowMajorF =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
} // namespace

double relativeOutputError(const float *w, const float *wq, int64_t rows,
                           int64_t cols, const Eigen::MatrixXd &hessian) {
  Eigen::Map<const RowMajorF> original(w, rows, cols), quantized(wq, rows,
                                                                 cols);
  Eigen::MatrixXf h = hessian.cast<float>();
  Eigen::MatrixXf delta = original - quantized;
  Eigen::MatrixXf reference = original;
  // tr(A H A^T) = sum((A H) .* A); Eigen runs the products as GEMMs.
  double error = (delta * h).cwiseProduct(delta).cast<double>().sum();
  double total = (reference * h).cwiseProduct(reference).cast<double>().sum();
  return total > 0 ? error / total : 0.0;
}

double relativeWeightError(const float *w, const float *wq, int64_t rows,
                           int64_t cols) {
  double error = 0, total = 0;
  for (int64_t i = 0, e = rows * cols; i < e; ++i) {
    double d = double(w[i]) - double(wq[i]);
    error += d * d;
    total += double(w[i]) * double(w[i]);
  }
  return total > 0 ? error / total : 0.0;
}

MethodResult runRTN(const EncodingSpec &spec, const WeightProblem &problem) {
  MethodResult result;
  result.spec = spec;
  result.encoded = quantizeRTN(spec, problem.weight, problem.rows,
                               problem.cols);
  result.dequantized = dequantize(spec, result.encoded);
  return result;
}

} // namespace qnt::numerics
