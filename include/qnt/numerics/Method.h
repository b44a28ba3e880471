//===- Method.h - The IR-free interface of a weight PTQ method --*- C++ -*-===//
//
// A weight method maps one float weight W[N][K] (row-major, K contiguous)
// and the statistics of its input to an encoded weight, plus optional
// transforms that must be applied around it for the result to be exact (an
// input permutation, a per-input-channel scale to fold, a bias delta). The
// pass-side driver (passes/ptq/WeightMethodDriver.h) finds weights and
// statistics in IR, calls a method and writes the result back; the methods
// themselves never see IR (docs/HowTo/AddPTQAlgorithm.md).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_METHOD_H
#define QNT_NUMERICS_METHOD_H

#include "qnt/numerics/Encoding.h"
#include "qnt/numerics/Statistics.h"

#include <string>
#include <vector>

namespace qnt::numerics {

/// One weight to quantize.
struct WeightProblem {
  std::string name;            ///< stable layer name (for messages)
  const float *weight = nullptr; ///< W[rows][cols], row-major
  int64_t rows = 0, cols = 0;
  /// Input statistics; null for data-free methods (RTN) run without any.
  const LayerStatistics *stats = nullptr;
};

/// What a method returns.
struct MethodResult {
  /// The encoding actually used (a method may adapt the requested one).
  EncodingSpec spec;
  /// Storage of the weight; with an input permutation, of W[:, perm].
  EncodedMatrix encoded;
  /// Empty, or a permutation of [0, K): the encoded matrix holds the
  /// columns of W in this order and the layer's input must be gathered the
  /// same way (x[:, perm]), which is exact: x W^T = x[:, perm] W[:, perm]^T.
  std::vector<int32_t> inputPermutation;
  /// Empty, or s [K] > 0: the encoded matrix holds W diag(s) and the
  /// layer's input must be divided by s (qnt.smooth), which is exact:
  /// x W^T = (x / s) (W diag(s))^T. Not combined with a permutation.
  std::vector<float> inputScale;
  /// Bits stored with the layer that its encoding does not hold: a
  /// method's own input scale that stays a qnt.smooth constant of the
  /// layer (PTQ1.61's column scales), counted in its bits per weight. 0
  /// when the scale is meant to be folded into the producer (AWQ,
  /// SmoothQuant).
  int64_t extraStorageBits = 0;
  /// Components of `encoded` stored once for several layers (AQLM's shared
  /// codebooks): the driver stores each under `name` (one parameter every
  /// layer sharing it reads) and charges this layer `chargedBits` of it in
  /// place of its whole size; the charges of the layers sharing a component
  /// sum to its size. (A weight given as a constant gets its own constant
  /// of the component, charged whole.)
  struct SharedComponent {
    size_t index = 0;
    std::string name;
    double chargedBits = 0;
  };
  std::vector<SharedComponent> sharedComponents;
  /// The dequantized weight in the original column order, row-major [N][K]
  /// (the quantized stream runs on it; the report measures it).
  std::vector<float> dequantized;
  /// Multiplies the run-time scale of the layer's activation quantization
  /// (qnt.fake_quant's clip, learned by PD-Quant); 1 leaves it out.
  float activationClip = 1.0f;
  /// Notes for the user (e.g. "damping raised to 0.1").
  std::vector<std::string> remarks;
};

/// Relative output error of replacing W by Wq on inputs with Hessian
/// H = X^T X: ||X (W - Wq)^T||_F^2 / ||X W^T||_F^2 = tr(D H D^T) /
/// tr(W H W^T), D = W - Wq. Returns 0 when the reference output is 0.
double relativeOutputError(const float *w, const float *wq, int64_t rows,
                           int64_t cols, const Eigen::MatrixXd &hessian);

/// Relative weight error ||W - Wq||_F^2 / ||W||_F^2 (for data-free runs).
double relativeWeightError(const float *w, const float *wq, int64_t rows,
                           int64_t cols);

/// Round-to-nearest as a method (data-free; ignores statistics).
MethodResult runRTN(const EncodingSpec &spec, const WeightProblem &problem);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_METHOD_H
