//===- LowRank.h - Low-rank compensation of quantization error --*- C++ -*-===//
//
// LoRC (ZeroQuant-V2, ../shared/docs/ALGORITHMS.md §4): after a quantizer
// produced Q(W), the error E = W - Q(W) is approximated by its best rank-r
// factorization E ~ U V^T with U = U_r sqrt(S_r) [N, r] and
// V = V_r sqrt(S_r) [K, r] (SVD E = U S V^T), so that
//   W ~ Q(W) + U V^T,   y = x Q(W)^T + (x V) U^T
// (two skinny products; the dense correction is never materialized). The
// factors may be stored as f32, f16, or int8 with one symmetric scale per
// factor row, as the paper does. IR-free.
//
//===----------------------------------------------------------------------===//
#ifndef QNT_NUMERICS_LOWRANK_H
#define QNT_NUMERICS_LOWRANK_H

#include <cstdint>
#include <vector>

namespace qnt::numerics {

/// How the factors are stored.
enum class FactorFormat { F32, F16, Int8 };

struct LowRankOptions {
  /// r, 1..min(N, K).
  int64_t rank = 8;
  FactorFormat format = FactorFormat::Int8;
};

struct LowRankFactors {
  int64_t rows = 0, cols = 0, rank = 0;
  FactorFormat format = FactorFormat::F32;
  /// The factors as the kernels see them (after f16 or int8 rounding),
  /// row-major: u [rows, rank], v [cols, rank].
  std::vector<float> u, v;
  /// Int8 only: the codes (same layout) and one scale per factor row
  /// (u: rows, v: cols); value = code * scale.
  std::vector<int8_t> uCodes, vCodes;
  std::vector<float> uScales, vScales;
  /// Every singular value of the error, descending (min(rows, cols)).
  std::vector<double> singularValues;
};

/// Factors of the rank-`options.rank` approximation of `error` (row-major
/// [rows, cols], e.g. W - Q(W)). The SVD is computed in double. Throws
/// std::invalid_argument on an empty matrix or a rank outside
/// 1..min(rows, cols).
LowRankFactors lowRankCompensation(const float *error, int64_t rows,
                                   int64_t cols, const LowRankOptions &options);

/// Storage bits the factors add, scales included: r (N + K) elements of the
/// format, plus (N + K) f32 scales for int8.
int64_t lowRankStorageBits(int64_t rows, int64_t cols, int64_t rank,
                           FactorFormat format);

/// (U V^T)[n, k] of `factors`, as the kernels compute it (in double).
double lowRankEntry(const LowRankFactors &factors, int64_t n, int64_t k);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_LOWRANK_H
