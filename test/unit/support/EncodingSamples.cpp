//===- EncodingSamples.cpp - Random encoded weights for tests ---*- C++ -*-===//
//
// See EncodingSamples.h.
//
//===----------------------------------------------------------------------===//

#include "EncodingSamples.h"


namespace nx = ::qnt::numerics;

namespace qnt::testing {

static nx::EncodingSpec salientSpec() {
  nx::SalientSpec s;
  s.numSalient = 20;
  s.salient = std::make_shared<const nx::EncodingSpec>(
      nx::UniformSpec{4, false, nx::Granularity::PerChannel, 0});
  s.rest = std::make_shared<const nx::EncodingSpec>(
      nx::BinarySpec{true, nx::Granularity::PerChannel, 0});
  return s;
}

std::vector<nx::EncodingSpec> sampleEncodings() {
  using G = nx::Granularity;
  using S = nx::MinifloatSpecial;
  return {nx::UniformSpec{3, false, G::PerGroup, 16},
          nx::UniformSpec{4, true, G::PerTensor, 0},
          nx::UniformSpec{5, false, G::PerChannel, 0},
          nx::UniformSpec{8, true, G::PerChannel, 0},
          nx::MinifloatSpec{2, 1, S::Finite, G::PerGroup, 32},
          nx::MinifloatSpec{3, 2, S::Finite, G::PerChannel, 0},
          nx::MinifloatSpec{2, 3, S::Finite, G::PerGroup, 16},
          nx::MinifloatSpec{4, 3, S::Ocp, G::PerChannel, 0},
          nx::MinifloatSpec{5, 2, S::Ocp, G::PerGroup, 32},
          nx::UniformSpec{4, false, G::PerGroup, 32, nx::ScaleStorage::F16},
          nx::MinifloatSpec{2, 1, S::Finite, G::PerGroup, 16,
                            nx::ScaleStorage::F16},
          nx::CodebookSpec{2, 8, 8},
          nx::CodebookSpec{1, 12, 4},
          // Tiled codes with padding rows and groups at most shapes.
          nx::CodebookSpec{2, 6, 4, 32, 3},
          nx::CodebookSpec{1, 8, 4, 0, 0, nx::ScaleStorage::F16},
          nx::BinarySpec{true, G::PerGroup, 16},
          nx::BinarySpec{false, G::PerChannel, 0},
          nx::BitPlaneSpec{3, G::PerGroup, 32},
          nx::BitPlaneSpec{1, G::PerTensor, 0},
          salientSpec()};
}

} // namespace qnt::testing
