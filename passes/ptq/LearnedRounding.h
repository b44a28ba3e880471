//===- LearnedRounding.h - Learnable weight quantizers in the IR -*- C++ -*-===//
//
// The learned-rounding methods (FlexRound, AdaRound; ../shared/docs/
// ALGORITHMS.md §9, §6/§7) optimize a weight's quantizer by gradient descent
// on a block's output. Here the quantizer is written into the block's IR
// as a function of new arguments, so that qnt-differentiate gives the
// gradients of exactly the function that runs (docs/Autodiff.md):
//
//  FlexRound (the authors' code form, log space):
//    W^ = exp(d1) * clamp(roundeven(W / exp(d1 + D2 + d3)), -z, 2^b-1-z)
//    d1 = log s1 [N, G] (one per group), D2 [N, K] element-wise, d3 [N]
//    per row; the zero point z [N, G] is fixed (not learned).
//  AdaRound:
//    W^ = s * clamp(floor(W / s) + h(V), -z, 2^b-1-z)
//    h(V) = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1), zeta = 1.1,
//    gamma = -0.1; s [N, G] and z [N, G] fixed, V [N, K] learned.
//  FlexRound on a minifloat grid:
//    W^ = exp(d1) * Q(W / exp(d1 + D2 + d3)), no zero point
//    Q(y) = clamp(step(y) roundeven(y / step(y)), -max, max), step(y) the
//    spacing of the format's binade holding |y| (piecewise constant, its
//    gradient 0, so the rounding is straight-through as on integers).
//  AdaRound on a non-uniform grid (minifloat):
//    W^ = s * (L + h(V) (U - L))
//    with the grid points L <= W / s <= U next to each element given as
//    fixed [N, K] tensors (L = U beyond the grid's largest magnitude).
//
// Rounding is straight-through (the adjoint's rule), the clamp is not.
// Groups run along K (G = ceil(K / g), or one group per row); when g does
// not divide K the last group of every row is shorter ("ragged", as GPTQ's
// reference groups), computed on the weight padded with zeros.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_PTQ_LEARNEDROUNDING_H
#define QNT_PASSES_PTQ_LEARNEDROUNDING_H

#include "qnt/numerics/Encoding.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <optional>

namespace mlir::qnt {

/// The block-trained weight quantizers: FlexRound and AdaRound learn the
/// rounding of a uniform or minifloat grid (makeWeightLearnable);
/// SalientBinarization learns PTQ1.61's binarization scale and row and
/// column rescaling (makeSalientBinarizationLearnable); AdditiveCodebook is
/// AQLM's fine-tuning of row scales and codebooks with the codes frozen
/// (makeCodebookWeightLearnable).
enum class LearnedRounding {
  FlexRound,
  AdaRound,
  SalientBinarization,
  AdditiveCodebook
};

/// A minifloat format as FlexRound's rounding needs it: the spacing of the
/// values in [2^e, 2^(e+1)) is 2^(e - mantissaBits) for e >= minExponent
/// (below 2^minExponent, the subnormals, 2^(minExponent - mantissaBits)),
/// and the largest magnitude is maxValue.
struct MinifloatGrid {
  int mantissaBits = 1;
  int minExponent = 0;
  double maxValue = 6;
};

/// Q(y) of MinifloatGrid `grid` in the same float arithmetic as the IR.
float roundToMinifloatGrid(float y, const MinifloatGrid &grid);

/// The grid of a minifloat format (its subnormal step read from the
/// smallest positive value the codec decodes).
MinifloatGrid minifloatGridOf(const ::qnt::numerics::MinifloatSpec &spec);

struct LearnableWeightSpec {
  LearnedRounding method = LearnedRounding::FlexRound;
  int64_t bits = 4;
  /// Elements per group along K; 0 for one group per row (per channel).
  /// The last group is shorter when it does not divide K.
  int64_t groupSize = 0;
  /// AdaRound between given neighbouring grid points instead of integers
  /// (any grid: minifloat formats); `bits` is then unused.
  bool neighbourGrid = false;
  /// FlexRound rounding to a minifloat grid instead of integers (no zero
  /// point); `bits` is then unused.
  std::optional<MinifloatGrid> minifloat;
};

/// How a block's learnable quantizers are trained (block reconstruction,
/// the sequential driver's BlockTrainer): Adam on the block output's
/// squared error, summed over features and averaged over tokens (the
/// references' lp_loss), against the float block's output on the float
/// stream, with the block's input from the quantized stream.
struct ReconstructionOptions {
  LearnedRounding method = LearnedRounding::FlexRound;
  int64_t iterations = 5000;
  double learningRate = 3e-3;
  /// Calibration sequences per step (their gradients averaged).
  int64_t batchSequences = 1;
  /// Seeds the order in which sequences are drawn.
  uint64_t seed = 0;
  /// Stop when the mean loss of a window of iterations (1/50 of them) has
  /// not improved by `earlyStopTolerance` (relative) on the best window for
  /// this many windows; 0 never stops early.
  int64_t earlyStopPatience = 0;
  double earlyStopTolerance = 1e-3;
  /// AdaRound: weight of the rounding regularizer, its exponent annealed
  /// from betaStart to betaEnd after `warmup` (a fraction of the
  /// iterations) during which the regularizer is off.
  double roundingWeight = 0.01;
  double betaStart = 20, betaEnd = 2, warmup = 0.2;
  /// PTQ1.61 (SalientBinarization): the share of input channels kept
  /// salient, their bits, and the learning rate of the row and column
  /// rescaling r1, r2 (learningRate is alpha's). Its loss is the
  /// reference's: MSE (mean over elements) and -log |mean row cosine|
  /// against the float block's output on the float stream, and the same
  /// two terms against the float block's output on the quantized-stream
  /// input, with a constant learning rate.
  double salientRatio = 0.2;
  int salientBits = 4;
  /// Start from the error-fed starting point
  /// (numerics::compensateSalientBinarization; not in the reference).
  bool salientErrorFeedback = false;
  double rescaleLearningRate = 1e-3;
  /// AQLM (AdditiveCodebook): also trains a gain g per input channel of
  /// every input that a normalization's gain produces and only trained
  /// layers read (the block's norm gains; the layers reading one share it).
  /// Each such layer returns 1 / g as its input scale, a qnt.smooth that
  /// qnt-fold-smooth folds into the normalization exactly.
  bool trainNormGains = false;
  /// When > 0, iterations = epochs passes over the calibration sequences
  /// (ceil(sequences / batchSequences) steps each), as the references
  /// count them.
  int64_t epochs = 0;
  /// Sequences the loss before and after training is measured on (the
  /// first ones; 0: all).
  int64_t evaluationSequences = 0;

  /// Activation quantization the block runs with while it trains (the
  /// pass's act-bits; 0: none): a qnt.fake_quant in front of each trained
  /// layer, as the quantized model has. With activationLearningRate > 0
  /// its run-time scale is multiplied by a learned clip ratio per layer
  /// (PD-Quant's learnable activation step size, for run-time scales),
  /// starting at 1.
  int64_t activationBits = 0;
  bool activationPerToken = true;
  double activationLearningRate = 0;

  /// PD-Quant (ALGORITHMS.md §7). predictionWeight (1 / lambda_r) weighs
  /// the prediction difference KL(softmax(z_fp / T) || softmax(z_q / T)):
  /// z_q the logits the rest of the float network computes from the
  /// block's output on its quantized-stream input, z_fp the float model's;
  /// 0 leaves the term out.
  double predictionWeight = 0;
  double temperature = 4;
  /// QDrop's input mixing: each element of the input of the local squared
  /// error comes from the quantized stream with this probability, else
  /// from the float stream (distribution-corrected when
  /// distributionCorrection is set); 1: the quantized stream only.
  double quantizedInputProbability = 1;
  /// PD-Quant's distribution correction, adapted to LLaMA blocks
  /// (qnt/numerics/DistributionCorrection.h): the float input of each
  /// sequence is corrected toward the calibration set's per-channel mean
  /// and standard deviation; the squared error's target is the float
  /// block's output on the corrected input.
  bool distributionCorrection = false;
  double correctionProximity = 0.02;
  int64_t correctionIterations = 500;
  double correctionLearningRate = 1e-3;
};

/// The arguments makeWeightLearnable added, as argument indices.
struct LearnableWeightArgs {
  /// FlexRound: d1 [N, G], D2 [N, K], d3 [N]. AdaRound: V [N, K].
  SmallVector<unsigned, 3> trainable;
  /// AdaRound's fixed scale s [N, G] (absent for FlexRound: s1 = exp(d1)).
  std::optional<unsigned> scale;
  /// The fixed zero point z [N, G] (f32, integral values); absent on a
  /// neighbour grid.
  std::optional<unsigned> zeroPoint;
  /// Neighbour grid: the grid points below and above, [N, K].
  std::optional<unsigned> lower, upper;
};

/// Replaces the uses of argument `weightArg` of `func` (a static f32
/// [N, K] tensor) by the learnable quantized weight of `spec`, computed at
/// the start of the function from the weight and new trailing arguments.
/// Emits a located error and changes nothing on failure.
FailureOr<LearnableWeightArgs>
makeWeightLearnable(func::FuncOp func, unsigned weightArg,
                    const LearnableWeightSpec &spec);

/// The arguments makeSalientBinarizationLearnable added.
struct SalientBinarizationArgs {
  /// alpha [N], r1 [N], r2 [K], in this order.
  SmallVector<unsigned, 3> trainable;
  /// The fixed salient part Q(W) masked to the salient channels [N, K],
  /// signs sign(W - mu) masked to the rest [N, K], mu [N], and the rest
  /// mask [K] (1 on binarized channels, 0 on salient ones).
  unsigned salientWeight = 0, signs = 0, offset = 0, restMask = 0;
};

/// PTQ1.61's learnable weight (ALGORITHMS.md §5): replaces the uses of
/// argument `weightArg` (a static f32 [N, K] tensor) by
///   W^[r, j] = Wsal[r, j] + r1_r r2_j (alpha_r S[r, j] + mu_r m_j)
/// computed from new trailing arguments (SalientBinarizationArgs). Every
/// operation is differentiable: no straight-through estimate is needed.
/// Emits a located error and changes nothing on failure.
FailureOr<SalientBinarizationArgs>
makeSalientBinarizationLearnable(func::FuncOp func, unsigned weightArg);

/// The arguments makeCodebookWeightLearnable added.
struct CodebookWeightArgs {
  /// The row scales s [N] and the unscaled words D [N, K].
  unsigned scales = 0, words = 0;
};

/// AQLM's fine-tuning form (ALGORITHMS.md §10): replaces the uses of
/// argument `weightArg` (a static f32 [N, K] tensor) by
///   W^[r, j] = s_r D[r, j]
/// from two new trailing arguments (CodebookWeightArgs). D is the sum of
/// each group's words; the trainer carries D's gradient to the codebooks
/// (numerics::codebookGradient), so that no lookup is differentiated.
/// Emits a located error and changes nothing on failure.
FailureOr<CodebookWeightArgs> makeCodebookWeightLearnable(func::FuncOp func,
                                                         unsigned weightArg);

} // namespace mlir::qnt

#endif // QNT_PASSES_PTQ_LEARNEDROUNDING_H
