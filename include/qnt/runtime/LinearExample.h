//===- LinearExample.h - The built-in quantized linear layer ----*- C++ -*-===//
//
// The built-in example behind `quant-run --demo` and the end-to-end tests:
// a synthetic linear layer y = x W^T (heavy-tailed W, activations with a few
// outlier channels) quantized with qnt-rtn, fused, lowered with
// qnt-cpu-pipeline, run with the JIT, and compared with independent host
// computations.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_LINEAREXAMPLE_H
#define QNT_RUNTIME_LINEAREXAMPLE_H

#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/LLVM.h"

#include <string>
#include <vector>

namespace qnt::runtime {

struct LinearExample {
  int64_t tokens = 8;    // M
  int64_t outputs = 256; // N
  int64_t inputs = 512;  // K
  uint64_t seed = 1;
  /// Directory for the weight and quantized-parameter files.
  std::string workDir;
};

/// Results of one scheme, all measured against the float layer.
struct SchemeResult {
  std::string options;  ///< qnt-rtn options, empty for the float baseline
  std::string encoding; ///< human-readable encoding
  double bitsPerWeight = 32;
  /// ||W - Wq||_F / ||W||_F from the host dequantization of the written file.
  double weightRelError = 0;
  /// ||y - y_float||_F / ||y_float||_F of the JIT-compiled result.
  double outputRelError = 0;
  /// max |y - x Wq^T| / max |x Wq^T|: the compiled kernel against the host
  /// dequantized weight (computed in double).
  double refRelDeviation = 0;
  /// max over outputs of |y - y_float| / bound, where bound = sum_k |x_k| *
  /// (half the quantization step of W[n, k]) plus 1e-5 relative slack.
  double stepBoundRatio = 0;
};

/// Deterministic synthetic tensors (row-major). Weights are Student-t(3)
/// distributed; activations are Gaussian with `numOutliers` channels 20x
/// larger, as in real LLM activations.
std::vector<float> syntheticWeights(int64_t rows, int64_t cols, uint64_t seed);
std::vector<float> syntheticActivations(int64_t rows, int64_t cols,
                                        uint64_t seed, int numOutliers = 3);

/// Quantizes, compiles and runs the example with `rtnOptions` (e.g.
/// "bits=8 granularity=per-channel symmetric=1"; empty = float). Errors are
/// reported through `context`'s diagnostics.
mlir::FailureOr<SchemeResult> runLinearScheme(mlir::MLIRContext &context,
                                              const LinearExample &example,
                                              llvm::StringRef rtnOptions);

} // namespace qnt::runtime

#endif // QNT_RUNTIME_LINEAREXAMPLE_H
