//===- Equalization.h - Cross-layer equalization and bias correction -*- C++ -*-===//
//
// Two corrections of the minifloat paper's PTQ pipeline (Brevitas;
// ../shared/docs/ALGORITHMS.md §6), IR-free:
//
// Cross-layer equalization (Nagel et al., "Data-Free Quantization"). When a
// linear W1 [N1, K1] feeds a linear W2 [N2, K2] through a map that is
// positively homogeneous per channel (attention's P V for v -> o, the SwiGLU
// product for up -> down), dividing W1's row j by t_j and multiplying every
// W2 column that reads channel j by t_j leaves the output unchanged. With
// r1_j = max|W1[j, :]| and r2_j = max|W2[:, c]| over the columns c reading j,
//   t_j = r1_j^alpha / r2_j^(1 - alpha)
// makes the ranges r1_j / t_j and r2_j t_j equal at alpha = 1/2 (Brevitas's
// s = 1/t). Channels with a zero range keep t = 1.
//
// Bias correction. Replacing W by Q shifts a layer's expected output by
// E[x] (W - Q)^T; adding that vector as a bias makes the mean output error
// over the calibration inputs zero.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_EQUALIZATION_H
#define QNT_NUMERICS_EQUALIZATION_H

#include <cstdint>
#include <vector>

namespace qnt::numerics {

/// max |W[n, :]| for each row of a row-major [rows][cols] matrix.
std::vector<float> rowRanges(const float *w, int64_t rows, int64_t cols);

/// max |W[:, c]| over the columns c with rowOfColumn[c] == j, for each j in
/// [0, numChannels); rowOfColumn empty means column c is channel c.
std::vector<float> columnRanges(const float *w, int64_t rows, int64_t cols,
                                const std::vector<int64_t> &rowOfColumn,
                                int64_t numChannels);

/// t_j = r1_j^alpha / r2_j^(1 - alpha) (1 where either range is 0 or not
/// finite). Throws std::invalid_argument unless 0 <= alpha <= 1 and the
/// vectors have the same length.
std::vector<float> equalizationScales(const std::vector<float> &r1,
                                      const std::vector<float> &r2,
                                      double alpha);

/// The bias that cancels the mean output shift of replacing W by Wq:
/// b[n] = sum_k mean[k] (W[n, k] - Wq[n, k]), accumulated in double.
std::vector<float> biasCorrection(const float *w, const float *wq,
                                  int64_t rows, int64_t cols,
                                  const std::vector<double> &mean);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_EQUALIZATION_H
