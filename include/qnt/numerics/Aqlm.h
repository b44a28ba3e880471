//===- Aqlm.h - Additive quantization of language models --------*- C++ -*-===//
//
// AQLM (ALGORITHMS.md §10, Vahe1994/AQLM): each row n of W is a scale s_n
// times, per input group j of g columns, a sum of M codebook words:
//
//   W^[n, jg:(j+1)g] = s_n * sum_m C_m[b(n, j, m)],   C_m in R^{2^B x g}.
//
// The objective is the layer's output error on the calibration inputs,
// tr(dW H dW^T) with dW = W^ - W and H = X^T X / T (double). The method
// alternates Adam on the codebooks and scales (codes fixed) with a beam
// search over the codes (codebooks fixed) until the objective after an Adam
// phase is less than a relative tolerance below the one after the previous
// phase (the beam search in between).
//
// The beam search uses the closed form of the objective's change when one
// code changes. With R = W - W^ for one row and d = s (C_m[c] - C_m[b]) the
// change of W^ on group J,
//
//   L(R - d) - L(R) = s^2 C_m[c] H_JJ C_m[c]^T - 2 s C_m[c] . u + const,
//   u = (R H)_J + H_JJ s C_m[b]   (the residual without the part, times H),
//
// so with C_m[c] H_JJ C_m[c]^T computed once per (group, codebook, code) a
// candidate costs one g-long dot product.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_AQLM_H
#define QNT_NUMERICS_AQLM_H

#include "qnt/numerics/Encoding.h"
#include "qnt/numerics/Method.h"
#include "qnt/numerics/Optimizer.h"

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <vector>

namespace qnt::numerics {

/// The learned state of one weight under a codebook encoding.
struct AdditiveCodes {
  CodebookSpec spec;
  int64_t rows = 0, cols = 0;
  std::vector<float> scales;    ///< s [N]
  std::vector<float> codebooks; ///< C [M][2^B][g]
  std::vector<uint32_t> codes;  ///< b [N][K/g][M]

  int64_t groups() const { return cols / spec.groupSize; }
  int64_t numCodes() const { return int64_t(1) << spec.codeBits; }
  uint32_t code(int64_t n, int64_t j, int m) const {
    return codes[(n * groups() + j) * spec.numCodebooks + m];
  }
  const float *word(int m, uint32_t c) const {
    return codebooks.data() + (m * numCodes() + c) * spec.groupSize;
  }
  /// W^ row-major [N][K].
  std::vector<float> reconstruct() const;
  /// The unscaled words D [N][K], the sum of each group's words, so that
  /// W^ = diag(s) D (block fine-tuning trains s and D's codebooks).
  std::vector<float> words() const;
  /// The standard codebook encoding of this state.
  EncodedMatrix encode() const;
};

/// The gradient of a loss with respect to the codebooks [M][2^B][g] from
/// its gradient with respect to the unscaled words D (words()), [N][K]: D
/// is linear in the codebooks, and each word's gradient is the sum over
/// the groups whose code selects it (every codebook of a group receives
/// that group's gradient, as the words are added).
std::vector<float> codebookGradient(const AdditiveCodes &state,
                                    const float *wordsGradient);

/// The encoding of `state` and the weight it decodes to.
MethodResult codebookResult(const AdditiveCodes &state);

/// AQLM's initialization: s_n = ||W_n||_2 (a zero row gets 1), then
/// residual k-means on the rows' groups of W / s, one codebook after the
/// other (Lloyd's iterations from distinct sampled groups, seeded).
AdditiveCodes initializeAdditiveCodes(const CodebookSpec &spec, const float *w,
                                      int64_t rows, int64_t cols,
                                      int kmeansIterations, uint64_t seed);

/// tr(dW H dW^T), dW = W^ - W, in double.
double additiveObjective(const AdditiveCodes &state, const float *w,
                         const Eigen::MatrixXd &hessian);

/// The change of the objective when code (n, j, m) becomes `c`, by the
/// closed form the beam search uses (tests compare it with the objective
/// recomputed).
double codeChangeLoss(const AdditiveCodes &state, const float *w,
                      const Eigen::MatrixXd &hessian, int64_t n, int64_t j,
                      int m, uint32_t c);

struct BeamSearchOptions {
  /// Hypotheses kept per row (the reference's beam_size, default 1).
  int beamSize = 1;
  /// Seeds the order of the input groups (the reference shuffles them).
  uint64_t seed = 0;
};

/// One pass of the beam search over every (group, codebook) position of
/// every row, codebooks and scales fixed. The current codes are one of the
/// hypotheses, so the objective never increases. Returns the objective.
double beamSearchCodes(AdditiveCodes &state, const float *w,
                       const Eigen::MatrixXd &hessian,
                       const BeamSearchOptions &options);

struct CodebookUpdateOptions {
  int steps = 100;
  /// The reference's Adam: lr 1e-4, betas (0, 0.95), amsgrad.
  double learningRate = 1e-4;
};

/// The gradient of L = tr(dW H dW^T) / N with respect to the codebooks and
/// the row scales, codes fixed. With G = 2 dW H / N and W^ = s sum_m C_m[b],
/// dL/dC_m[c] sums s_n G[n, J] over the (row, group) positions whose code
/// m is c, and dL/ds_n = G[n, :] . D[n, :] (D = words()). It is computed in
/// float: the product dW H (N K^2) is nearly all of AQLM's codebook phase,
/// and Adam needs the gradient's direction, not its last bits. The buffers
/// are reused from call to call (a codebook phase takes 100 of them).
class AdditiveGradient {
public:
  /// `hessian` is H as float (K x K).
  void compute(const AdditiveCodes &state, const float *w,
               const Eigen::MatrixXf &hessian);
  std::vector<float> codebooks; ///< [M][2^B][g]
  std::vector<float> scales;    ///< [N]

private:
  using RowMajorF =
      Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMajorF words_, error_, product_;
};

/// Adam on the codebooks and scales of `state` (codes fixed) minimizing
/// tr(dW H dW^T) / N; its moments persist across run() calls. `state`'s
/// codebooks and scales must not be resized while it lives.
class CodebookOptimizer {
public:
  CodebookOptimizer(AdditiveCodes &state, const CodebookUpdateOptions &options);
  /// `steps` updates; returns the objective tr(dW H dW^T) after them.
  double run(const float *w, const Eigen::MatrixXd &hessian, int steps);

private:
  AdditiveCodes &state_;
  AdditiveGradient gradient_;
  Adam adam_;
};

/// One phase of a fresh CodebookOptimizer. Returns the objective
/// tr(dW H dW^T) after the steps.
double updateCodebooks(AdditiveCodes &state, const float *w,
                       const Eigen::MatrixXd &hessian,
                       const CodebookUpdateOptions &options);

/// One finished stage of quantizeAdditive, for progress and timing.
struct AqlmStage {
  enum Kind { Initialization, CodebookUpdate, BeamSearch } kind;
  /// The Adam phase it belongs to (0 for the initialization).
  int phase = 0;
  /// tr(dW H dW^T) after the stage.
  double objective = 0;
  /// Wall time of the stage alone.
  double seconds = 0;
};

struct AqlmOptions {
  int beamSize = 1;
  int kmeansIterations = 100;
  /// Adam phases (each followed by a beam search pass).
  int maxEpochs = 100;
  CodebookUpdateOptions codebookUpdate;
  /// Stop when an Adam phase leaves loss / previous loss above 1 - this.
  double relativeTolerance = 0.01;
  uint64_t seed = 0;
  /// Called after each stage when set (a layer of a large model takes
  /// minutes to hours on a CPU).
  std::function<void(const AqlmStage &)> onStage;
};

/// The whole layer: initialization, then Adam phases and beam search passes
/// until the relative tolerance or maxEpochs; the state with the lowest
/// objective seen (never worse than the initialization). `hessian` is
/// X^T X / T.
AdditiveCodes quantizeAdditive(const CodebookSpec &spec, const float *w,
                               int64_t rows, int64_t cols,
                               const Eigen::MatrixXd &hessian,
                               const AqlmOptions &options);

/// AQLM on a weight problem: the Hessian from the problem's statistics
/// (required, else std::invalid_argument naming the layer), the learned
/// state with its scales rounded to the spec's storage (codebookResult
/// makes it the method's result).
AdditiveCodes runAqlm(const CodebookSpec &spec, const WeightProblem &problem,
                      const AqlmOptions &options);

//===----------------------------------------------------------------------===//
// Codebooks shared by several layers
//===----------------------------------------------------------------------===//
//
// A small model cannot afford a codebook per layer (stories260K's 64x64
// layers hold 16 times more codebook than codes at 2x8 g8). Layers may
// instead share one set of codebooks, stored once. The codebooks are then
// fixed while each layer is quantized (the layers are quantized one block
// after the other on the quantized stream, and a codebook that later layers
// changed would change the earlier layers' weights): the per-layer state is
// the codes and the row scales.

/// The row scales the shared codebooks are fitted at: each row's RMS (a
/// zero row gets 1), so that layers of different K give groups of one
/// magnitude.
std::vector<float> rowRmsScales(const float *w, int64_t rows, int64_t cols);

/// Fits codebooks shared by several weights, seen one at a time: residual
/// k-means, as initializeAdditiveCodes, over the groups of every W /
/// rowRmsScales(W). At most `maxPoints` groups are kept, evenly spaced over
/// the sequence of all groups (when more arrive, every other one is
/// dropped and the spacing doubles), so that memory stays bounded on a
/// large model.
class SharedCodebookFit {
public:
  explicit SharedCodebookFit(const CodebookSpec &spec,
                             int64_t maxPoints = int64_t(1) << 20);
  /// Adds the groups of a [rows][cols] weight (its shape must suit spec).
  void add(const float *w, int64_t rows, int64_t cols);
  /// Weights added so far.
  int64_t numWeights() const { return weights_; }
  /// Codebooks [M][2^B][g] (needs at least one weight).
  std::vector<float> fit(int kmeansIterations, uint64_t seed) const;

private:
  CodebookSpec spec_;
  int64_t maxPoints_;
  int64_t stride_ = 1, seen_ = 0, weights_ = 0;
  std::vector<double> points_;
};

/// The row scales that minimize tr(dW H dW^T) for the current codes and
/// codebooks, each in closed form: s_n = (c_n H w_n^T) / (c_n H c_n^T),
/// c_n the row's sum of words, rounded to the spec's scale storage (a zero
/// scale becomes the smallest normal float, as encodings store nonzero
/// scales). A row with c_n H c_n^T = 0 keeps its scale, rounded. Returns
/// the objective.
double fitScales(AdditiveCodes &state, const float *w,
                 const Eigen::MatrixXd &hessian);

/// One layer under fixed codebooks [M][2^B][g]: codes by residual nearest
/// words of W / rowRmsScales(W) and least-squares scales, then beam-search
/// passes, each followed by fitScales, until a pass gains less than the
/// relative tolerance (or maxEpochs). Neither step increases the
/// objective; the codebooks come back unchanged.
AdditiveCodes quantizeWithCodebooks(const CodebookSpec &spec,
                                    const std::vector<float> &codebooks,
                                    const float *w, int64_t rows, int64_t cols,
                                    const Eigen::MatrixXd &hessian,
                                    const AqlmOptions &options);

/// quantizeWithCodebooks on a weight problem (statistics required).
AdditiveCodes runAqlmWithCodebooks(const CodebookSpec &spec,
                                   const std::vector<float> &codebooks,
                                   const WeightProblem &problem,
                                   const AqlmOptions &options);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_AQLM_H
