//===- Awq.h - Activation-aware weight quantization -------------*- C++ -*-===//
//
// AWQ (../shared/docs/ALGORITHMS.md §2) for one group of layers that share
// an input x (q,k,v after the attention norm; gate,up after the MLP norm;
// o; down): a per-input-channel scale s = mean|x|^alpha (normalized to
// sqrt(max s * min s) = 1) is searched over a grid of alpha so that the
// quantized group, Q(W diag(s)) diag(s)^-1, loses least on a loss the
// caller states (the output of the module the group feeds, evaluated by
// running it) or, without one, on the group's own outputs through the
// Hessian H = X^T X. Then, per scale group of each weight, the clipping
// range max_val = absmax * (1 - i/grid) that minimizes the group's output
// error on the scaled inputs is kept (the reference's auto_clip, with the
// full H instead of 512 sampled tokens). The encoded matrix holds
// Q(clip(W diag(s))); the layer's input must be divided by s (qnt.smooth,
// folded exactly into the producer by qnt-fold-smooth).
//
// Unlike the reference, every granularity works, ragged groups included:
// the clipping groups are the encoding's own scale groups. IR-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_AWQ_H
#define QNT_NUMERICS_AWQ_H

#include "qnt/numerics/Method.h"

#include <functional>

namespace qnt::numerics {

struct AwqOptions {
  /// alpha in {0, 1/grid, ..., (grid - 1)/grid}, as the reference (alpha = 1
  /// is not tried).
  int scaleGrid = 20;
  /// Search the scales at all (false: s = 1, clipping only).
  bool searchScales = true;
  /// Clipping: max_val = absmax * (1 - i / clipGrid), i < clipSteps.
  int clipGrid = 20;
  int clipSteps = 10;
};

/// The layers of one group (sharing their input, hence their statistics).
struct AwqGroup {
  std::vector<WeightProblem> layers;
  std::vector<EncodingSpec> specs;
  /// Per layer: search the clipping range (the reference skips q and k,
  /// whose outputs go through a softmax).
  std::vector<bool> clip;
  /// Loss of candidate effective weights (one [N][K] per layer, in the
  /// order of `layers`) on the output of the module the group feeds; empty
  /// to use the group's own output error through the Hessian.
  std::function<double(const std::vector<std::vector<float>> &)> moduleLoss;
  /// Empty, or per input channel a class id: channels of one class must
  /// share one scale (attention heads reading one KV head: the scale folds
  /// into that head's value rows). Searched scales are tied (tieScales).
  std::vector<int64_t> channelClass;
};

struct AwqSearch {
  double alpha = 0;
  /// The loss of every grid point, in grid order.
  std::vector<double> losses;
  /// s, [K].
  std::vector<float> scales;
};

/// s = max(meanAbs^alpha, 1e-4), normalized by sqrt(max s * min s).
std::vector<float> awqScales(const std::vector<float> &meanAbs, double alpha);

/// Each scale replaced by the geometric mean of its class's (`channelClass`
/// as in AwqGroup; empty: unchanged). Throws std::invalid_argument when
/// the sizes differ or a class id is negative.
std::vector<float> tieScales(const std::vector<float> &scales,
                             const std::vector<int64_t> &channelClass);

/// Q(W diag(s)) diag(s)^-1 by round-to-nearest, [N][K].
std::vector<float> awqCandidate(const EncodingSpec &spec, const float *w,
                                int64_t rows, int64_t cols,
                                const std::vector<float> &scales);

/// sum over layers of ||X (W - Wq)^T||_F^2 / (tokens * N): the mean squared
/// error of the group's outputs, from H = X^T X.
double groupOutputLoss(const AwqGroup &group,
                       const std::vector<std::vector<float>> &candidates);

/// The grid search of s. Throws std::invalid_argument without statistics
/// and std::runtime_error if every loss is NaN.
AwqSearch searchAwqScales(const AwqGroup &group, const AwqOptions &options);

/// Per scale group of `spec` (row by row), the clipping bound of W (already
/// scaled, [N][K]) minimizing d^T H_gg d, d = w - Q(clamp(w, +-max_val)),
/// with H the Hessian of the scaled inputs. Per-tensor specs are not
/// clipped (their one range couples all rows): returns an empty vector.
std::vector<float> searchAwqClip(const EncodingSpec &spec, const float *w,
                                 int64_t rows, int64_t cols,
                                 const Eigen::MatrixXd &hessian,
                                 const AwqOptions &options);

/// Quantizes the group with a given input scale s (empty: none): W diag(s)
/// clipped (per `group.clip`) and rounded to nearest. Each result's
/// `encoded` holds Q(clip(W diag(s))), `inputScale` is s (empty when every
/// s is 1), and `dequantized` is the effective weight in the original input
/// space. Shared by AWQ and SmoothQuant.
std::vector<MethodResult> quantizeScaled(const AwqGroup &group,
                                         const std::vector<float> &scales,
                                         const AwqOptions &options);

/// SmoothQuant's scale (ALGORITHMS.md §3.1): s_j = max|X_j|^alpha /
/// max_i |W_ij|^(1 - alpha), the weight maximum over every layer of the
/// group, clamped at >= 1e-5; channels without activation or weight get 1.
std::vector<float> smoothQuantScales(const std::vector<float> &activationMax,
                                     const std::vector<WeightProblem> &layers,
                                     double alpha);

/// The whole method for one group: search, clip, quantize. Each result's
/// `encoded` holds Q(clip(W diag(s))), `inputScale` is s (empty when every
/// s is 1), and `dequantized` is the effective weight in the original input
/// space.
std::vector<MethodResult> runAWQ(const AwqGroup &group,
                                 const AwqOptions &options,
                                 AwqSearch *search = nullptr);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_AWQ_H
