//===- EncodingSamples.cpp - Random encoded weights for tests ---*- C++ -*-===//
//
// See EncodingSamples.h.
//
//===----------------------------------------------------------------------===//

#include "EncodingSamples.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace nx = ::qnt::numerics;

namespace qnt::testing {

/// Makes random bytes valid where the layout constrains values.
static void constrain(const nx::EncodingSpec &spec,
                      std::vector<nx::Component> &all,
                      const std::string &prefix, int64_t cols,
                      std::mt19937 &rng) {
  auto find = [&](const std::string &name) -> nx::Component * {
    for (nx::Component &c : all)
      if (c.layout.name == prefix + name)
        return &c;
    return nullptr;
  };
  if (const auto *u = std::get_if<nx::UniformSpec>(&spec)) {
    if (nx::Component *zeros = find("zeros"))
      for (uint8_t &z : zeros->bytes)
        z %= uint8_t(1u << u->bits);
  } else if (const auto *cb = std::get_if<nx::CodebookSpec>(&spec)) {
    nx::Component *codes = find("codes");
    if (cb->codeBits <= 8) {
      for (uint8_t &c : codes->bytes)
        c &= uint8_t((1u << cb->codeBits) - 1);
    } else {
      for (size_t i = 0; i < codes->bytes.size(); i += 2)
        codes->bytes[i + 1] &= uint8_t((1u << (cb->codeBits - 8)) - 1);
    }
  } else if (const auto *s = std::get_if<nx::SalientSpec>(&spec)) {
    std::vector<int32_t> order(cols);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int32_t> map(cols);
    for (int64_t i = 0; i < cols; ++i)
      map[order[i]] =
          i < s->numSalient ? int32_t(i) : int32_t(-1 - (i - s->numSalient));
    std::memcpy(find("channel_map")->bytes.data(), map.data(), 4 * cols);
    constrain(*s->salient, all, prefix + "salient.", s->numSalient, rng);
    constrain(*s->rest, all, prefix + "rest.", cols - s->numSalient, rng);
  }
}

nx::EncodedMatrix randomEncoded(const nx::EncodingSpec &spec, int64_t rows,
                                int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> real(-2.0f, 2.0f);
  nx::EncodedMatrix m;
  m.rows = rows;
  m.cols = cols;
  for (const nx::ComponentLayout &layout :
       nx::componentLayout(spec, rows, cols)) {
    nx::Component c{layout, std::vector<uint8_t>(layout.numBytes())};
    if (layout.dtype == nx::DType::F32) {
      for (int64_t i = 0; i < layout.numElements(); ++i) {
        float v = real(rng);
        std::memcpy(c.bytes.data() + 4 * i, &v, 4);
      }
    } else {
      for (uint8_t &b : c.bytes)
        b = uint8_t(rng());
    }
    m.components.push_back(std::move(c));
  }
  constrain(spec, m.components, "", cols, rng);
  return m;
}

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
          nx::CodebookSpec{2, 8, 8},
          nx::CodebookSpec{1, 12, 4},
          nx::BinarySpec{true, G::PerGroup, 16},
          nx::BinarySpec{false, G::PerChannel, 0},
          nx::BitPlaneSpec{3, G::PerGroup, 32},
          nx::BitPlaneSpec{1, G::PerTensor, 0},
          salientSpec()};
}

} // namespace qnt::testing
