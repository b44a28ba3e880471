//===- EncodingSamples.h - Random encoded weights for tests -----*- C++ -*-===//
//
// One sample of every encoding (each granularity and special-value rule at
// least once) and random storage for it: random codes, signs, planes and
// scales, with zero points, code indices and channel maps made valid. The
// dequantization-hook test and the GPU matmul test share them, so that a new
// encoding added here is covered by both.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TEST_UNIT_SUPPORT_ENCODINGSAMPLES_H
#define QNT_TEST_UNIT_SUPPORT_ENCODINGSAMPLES_H

#include "qnt/numerics/Encoding.h"

#include <random>
#include <vector>

namespace qnt::testing {

/// Random valid storage of a rows x cols weight under `spec`; scales and
/// other float components are uniform in [-2, 2].
numerics::EncodedMatrix randomEncoded(const numerics::EncodingSpec &spec,
                                      int64_t rows, int64_t cols,
                                      unsigned seed);

/// Every encoding kind, with group sizes 16 and 32 (K must be a multiple
/// of 32, and larger than 20 for the salient sample).
std::vector<numerics::EncodingSpec> sampleEncodings();

} // namespace qnt::testing

#endif // QNT_TEST_UNIT_SUPPORT_ENCODINGSAMPLES_H
