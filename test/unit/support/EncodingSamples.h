//===- EncodingSamples.h - Random encoded weights for tests -----*- C++ -*-===//
//
// One sample of every encoding (each granularity and special-value rule at
// least once); numerics::randomEncoded gives random storage for it. The
// dequantization-hook test and the GPU matmul test share them, so that a new
// encoding added here is covered by both.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TEST_UNIT_SUPPORT_ENCODINGSAMPLES_H
#define QNT_TEST_UNIT_SUPPORT_ENCODINGSAMPLES_H

#include "qnt/numerics/Encoding.h"

#include <vector>

namespace qnt::testing {

using numerics::randomEncoded;

/// Every encoding kind, with group sizes 16 and 32 (K must be a multiple
/// of 32, and larger than 20 for the salient sample).
std::vector<numerics::EncodingSpec> sampleEncodings();

} // namespace qnt::testing

#endif // QNT_TEST_UNIT_SUPPORT_ENCODINGSAMPLES_H
