//===- Ptq161.h - PTQ1.61 salient mask and binarized rest -------*- C++ -*-===//
//
// PTQ1.61 (ALGORITHMS.md §5, zjq0455/PTQ1.61): a 1-D structured mask keeps
// the input channels with the largest activation absmax at 4 bits
// (asymmetric per row, min/max over the whole row as the reference code
// computes them) and binarizes the others per row,
//
//   W^[r, j] = alpha_r sign(W[r, j] - mu_r) + mu_r      (j not salient)
//
// with mu_r and alpha_r the means of the row's non-salient non-zero entries
// and of their magnitudes. This is the method's starting point; its block
// training of alpha and the row and column rescaling comes with the trainer.
// The encoding is `#qnt.salient` with a channel map (the salient channels
// need not be contiguous in storage order: the map is the permutation).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_PTQ161_H
#define QNT_NUMERICS_PTQ161_H

#include "qnt/numerics/Encoding.h"
#include "qnt/numerics/Method.h"

#include <cstdint>
#include <vector>

namespace qnt::numerics {

/// The reference's mask: channel j is salient when absmax[j] is at least
/// the floor(ratio K)-th entry (from 0) of absmax sorted in decreasing
/// order, so floor(ratio K) + 1 channels, more on ties. `ratio` in [0, 1).
std::vector<bool> salientChannels(const std::vector<float> &absmax,
                                  double ratio);

/// The channel map of `#qnt.salient` for a mask: salient channel k is
/// salient column c (map[k] = c), the others rest column c (map[k] =
/// -1 - c), columns in increasing channel order.
std::vector<int32_t> salientChannelMap(const std::vector<bool> &salient);

/// PTQ1.61's starting point for W [rows, cols] as a salient encoding:
/// `salientBits`-bit asymmetric per-row integers on the salient channels
/// (scales from the whole row's min and max), per-row binarization with
/// offset on the rest. Throws when every channel, or none, is salient.
struct SalientBinarization {
  EncodingSpec spec;
  QuantParams params;
};
SalientBinarization initializePtq161(const float *w, int64_t rows,
                                     int64_t cols,
                                     const std::vector<bool> &salient,
                                     int salientBits = 4);

/// The starting point of `problem`'s weight, its mask from the problem's
/// activation absmax; throws std::invalid_argument without statistics.
SalientBinarization initializePtq161(const WeightProblem &problem,
                                     double ratio, int salientBits = 4);

/// GPTQ-style error feedback for the starting point (not in the
/// reference; ALGORITHMS.md §1 applied to §5's quantizer): the binarized
/// channels are quantized first, one at a time in channel order, then the
/// salient ones, and the error of each spreads over the channels not yet
/// quantized through the upper Cholesky factor of the inverse Hessian
/// (damped by `percDamp` of its mean diagonal). The binarization keeps
/// `init`'s mu and alpha; the salient channels' min/max scales are taken
/// from the updated row when their turn comes. Returns the weight each
/// channel had when it was quantized, from which `init` (updated in place)
/// encodes the same decisions: signs (w >= mu) and salient codes. Throws
/// std::invalid_argument without a Hessian of the right size.
std::vector<float> compensateSalientBinarization(SalientBinarization &init,
                                                 const WeightProblem &problem,
                                                 double percDamp = 0.01);

/// The fixed tensors of PTQ1.61's learnable weight (row-major, as
/// makeSalientBinarizationLearnable takes them): the salient part Q(W) on
/// the salient channels and 0 elsewhere [N, K], the signs sign(W - mu) on
/// the rest (+1 where W = mu, as the encoding's bit w >= mu) and 0 on the
/// salient channels [N, K], mu [N] and the rest mask [K]; alpha [N] starts
/// the training.
struct SalientBinarizationTensors {
  std::vector<float> salientWeight, signs, offset, restMask, alpha;
};
SalientBinarizationTensors
salientBinarizationTensors(const SalientBinarization &init, const float *w,
                           int64_t rows, int64_t cols);

/// The trained weight W^ = Wsal + r1 r2 (alpha S + mu m) as a standard
/// encoding: r1 folded into the rest's alpha and mu, r2 into the input
/// scale 1 / r2 (1 on salient channels; MethodResult::inputScale, a
/// qnt.smooth of the layer whose K f32 values count as extraStorageBits:
/// the layers that share an input learn different r2, so no producer can
/// absorb them all). r2 must be positive: a negative column scale has no
/// exact place in a per-row binarization. Throws std::invalid_argument on
/// sizes or a non-positive r2.
MethodResult bakeSalientBinarization(const SalientBinarization &init,
                                     const float *w, int64_t rows,
                                     int64_t cols,
                                     const std::vector<float> &alpha,
                                     const std::vector<float> &r1,
                                     const std::vector<float> &r2);

/// PTQ1.61's starting point as a weight method: the mask from the
/// problem's activation absmax (statistics required).
MethodResult runPtq161Initialization(const WeightProblem &problem,
                                     double ratio, int salientBits = 4,
                                     bool compensate = false);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_PTQ161_H
