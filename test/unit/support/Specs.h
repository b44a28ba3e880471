//===- Specs.h - Encoding specs the method tests share ----------*- C++ -*-===//

#ifndef QNT_TEST_UNIT_SUPPORT_SPECS_H
#define QNT_TEST_UNIT_SUPPORT_SPECS_H

#include "qnt/numerics/Encoding.h"

namespace qnt::testing {

/// A uniform grid: per group of `groupSize` inputs, or per channel for 0.
inline numerics::UniformSpec uniformSpec(int bits, bool symmetric,
                                         int64_t groupSize) {
  numerics::UniformSpec s;
  s.bits = bits;
  s.symmetric = symmetric;
  s.granularity = groupSize ? numerics::Granularity::PerGroup
                            : numerics::Granularity::PerChannel;
  s.groupSize = groupSize;
  return s;
}

} // namespace qnt::testing

#endif // QNT_TEST_UNIT_SUPPORT_SPECS_H
