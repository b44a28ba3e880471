//===- RandomStorage.cpp - Random valid encoded storage ---------*- C++ -*-===//
//
// Random storage for any encoding (tests, benchmarks): random bytes, then
// the values the layout constrains made valid.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"

#include <Eigen/Core>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

namespace qnt::numerics {

/// Makes random bytes valid where the layout constrains values.
static void makeValid(const EncodingSpec &spec,
                      std::vector<Component> &all,
                      const std::string &prefix, int64_t cols,
                      std::mt19937 &rng) {
  auto find = [&](const std::string &name) -> Component * {
    for (Component &c : all)
      if (c.layout.name == prefix + name)
        return &c;
    return nullptr;
  };
  if (const auto *u = std::get_if<UniformSpec>(&spec)) {
    // Zero points are codes; every byte is one for 8-bit codes.
    if (Component *zeros = find("zeros"); zeros && u->bits < 8)
      for (uint8_t &z : zeros->bytes)
        z %= uint8_t(1u << u->bits);
  } else if (const auto *cb = std::get_if<CodebookSpec>(&spec)) {
    Component *codes = find("codes");
    if (cb->codeBits <= 8) {
      for (uint8_t &c : codes->bytes)
        c &= uint8_t((1u << cb->codeBits) - 1);
    } else {
      for (size_t i = 0; i < codes->bytes.size(); i += 2)
        codes->bytes[i + 1] &= uint8_t((1u << (cb->codeBits - 8)) - 1);
    }
  } else if (const auto *s = std::get_if<SalientSpec>(&spec)) {
    std::vector<int32_t> order(cols);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int32_t> map(cols);
    for (int64_t i = 0; i < cols; ++i)
      map[order[i]] =
          i < s->numSalient ? int32_t(i) : int32_t(-1 - (i - s->numSalient));
    std::memcpy(find("channel_map")->bytes.data(), map.data(), 4 * cols);
    makeValid(*s->salient, all, prefix + "salient.", s->numSalient, rng);
    makeValid(*s->rest, all, prefix + "rest.", cols - s->numSalient, rng);
  }
}

EncodedMatrix randomEncoded(const EncodingSpec &spec, int64_t rows,
                                int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> real(-2.0f, 2.0f);
  EncodedMatrix m;
  m.rows = rows;
  m.cols = cols;
  for (const ComponentLayout &layout :
       componentLayout(spec, rows, cols)) {
    Component c{layout, std::vector<uint8_t>(layout.numBytes())};
    if (layout.dtype == DType::F32) {
      for (int64_t i = 0; i < layout.numElements(); ++i) {
        float v = real(rng);
        std::memcpy(c.bytes.data() + 4 * i, &v, 4);
      }
    } else if (layout.dtype == DType::F16) {
      for (int64_t i = 0; i < layout.numElements(); ++i) {
        uint16_t bits = Eigen::numext::bit_cast<uint16_t>(Eigen::half(real(rng)));
        std::memcpy(c.bytes.data() + 2 * i, &bits, 2);
      }
    } else {
      for (uint8_t &b : c.bytes)
        b = uint8_t(rng());
    }
    m.components.push_back(std::move(c));
  }
  makeValid(spec, m.components, "", cols, rng);
  return m;
}

} // namespace qnt::numerics
