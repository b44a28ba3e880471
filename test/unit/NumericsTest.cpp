//===- NumericsTest.cpp - Tests of the host numerics library --------------===//
//
// Hand-computed cases for every encoding (the worked examples of
// docs/PackedLayouts.md are among them), error cases, and property tests:
// RTN error bounds, pack/unpack round trips and a brute-force check of the
// minifloat encoder.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"

#include <Eigen/Core>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>

using namespace qnt::numerics;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

using Bytes = std::vector<uint8_t>;

const Component &component(const EncodedMatrix &m, const std::string &name) {
  for (const Component &c : m.components)
    if (c.layout.name == name)
      return c;
  throw std::runtime_error("no component named " + name);
}

std::vector<float> readF32(const Bytes &bytes) {
  std::vector<float> out(bytes.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b)
      bits |= uint32_t(bytes[4 * i + b]) << (8 * b);
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

Bytes f32Payload(const std::vector<float> &values) {
  Bytes out;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int b = 0; b < 4; ++b)
      out.push_back(uint8_t(bits >> (8 * b)));
  }
  return out;
}

Bytes i32Payload(const std::vector<int32_t> &values) {
  Bytes out;
  for (int32_t v : values)
    for (int b = 0; b < 4; ++b)
      out.push_back(uint8_t(uint32_t(v) >> (8 * b)));
  return out;
}

Component makeComp(const std::string &name, DType t, std::vector<int64_t> shape,
                   Bytes bytes) {
  return Component{ComponentLayout{name, t, std::move(shape)},
                   std::move(bytes)};
}

/// Expects `fn` to throw std::invalid_argument whose message contains `text`.
template <typename Fn> void expectInvalid(Fn fn, const std::string &text) {
  try {
    fn();
    ADD_FAILURE() << "expected std::invalid_argument containing: " << text;
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << text;
  }
}

void expectLayout(const ComponentLayout &c, const std::string &name, DType t,
                  std::vector<int64_t> shape) {
  EXPECT_EQ(c.name, name);
  EXPECT_EQ(c.dtype, t) << name;
  EXPECT_EQ(c.shape, shape) << name;
}

UniformSpec uniform(int bits, bool symmetric, Granularity g,
                    int64_t groupSize = 0) {
  UniformSpec s;
  s.bits = bits;
  s.symmetric = symmetric;
  s.granularity = g;
  s.groupSize = groupSize;
  return s;
}

MinifloatSpec minifloat(int e, int m,
                        MinifloatSpecial sp = MinifloatSpecial::Finite,
                        Granularity g = Granularity::PerGroup,
                        int64_t groupSize = 32) {
  MinifloatSpec s;
  s.exponentBits = e;
  s.mantissaBits = m;
  s.special = sp;
  s.granularity = g;
  s.groupSize = groupSize;
  return s;
}

CodebookSpec codebook(int m, int b, int64_t g) {
  CodebookSpec s;
  s.numCodebooks = m;
  s.codeBits = b;
  s.groupSize = g;
  return s;
}

BinarySpec binary(bool withOffset, Granularity g, int64_t groupSize = 0) {
  BinarySpec s;
  s.withOffset = withOffset;
  s.granularity = g;
  s.groupSize = groupSize;
  return s;
}

BitPlaneSpec bitplanes(int p, Granularity g, int64_t groupSize = 0) {
  BitPlaneSpec s;
  s.numPlanes = p;
  s.granularity = g;
  s.groupSize = groupSize;
  return s;
}

SalientSpec salient(int64_t s, EncodingSpec sal, EncodingSpec rest) {
  SalientSpec spec;
  spec.numSalient = s;
  spec.salient = std::make_shared<const EncodingSpec>(std::move(sal));
  spec.rest = std::make_shared<const EncodingSpec>(std::move(rest));
  return spec;
}

//===----------------------------------------------------------------------===//
// Layouts, bits per weight, describe
//===----------------------------------------------------------------------===//

TEST(Layout, DTypes) {
  EXPECT_EQ(dtypeBytes(DType::I8), 1);
  EXPECT_EQ(dtypeBytes(DType::I16), 2);
  EXPECT_EQ(dtypeBytes(DType::I32), 4);
  EXPECT_EQ(dtypeBytes(DType::F32), 4);
  EXPECT_STREQ(dtypeName(DType::I16), "i16");
  EXPECT_STREQ(dtypeName(DType::F32), "f32");
  ComponentLayout c{"x", DType::I16, {3, 4, 5}};
  EXPECT_EQ(c.numElements(), 60);
  EXPECT_EQ(c.numBytes(), 120);
}

TEST(Layout, Uniform) {
  auto l = componentLayout(uniform(4, false, Granularity::PerGroup, 32), 4, 96);
  ASSERT_EQ(l.size(), 3u);
  expectLayout(l[0], "codes", DType::I8, {4, 48});
  expectLayout(l[1], "scales", DType::F32, {4, 3});
  expectLayout(l[2], "zeros", DType::I8, {4, 3});

  l = componentLayout(uniform(3, true, Granularity::PerTensor), 4, 10);
  ASSERT_EQ(l.size(), 2u);
  expectLayout(l[0], "codes", DType::I8, {4, 4}); // 30 bits -> 4 bytes
  expectLayout(l[1], "scales", DType::F32, {1, 1});

  l = componentLayout(uniform(8, true, Granularity::PerChannel), 5, 7);
  ASSERT_EQ(l.size(), 2u);
  expectLayout(l[0], "codes", DType::I8, {5, 7});
  expectLayout(l[1], "scales", DType::F32, {5, 1});
}

TEST(Layout, Minifloat) {
  auto l = componentLayout(minifloat(2, 1), 4, 96);
  ASSERT_EQ(l.size(), 2u);
  expectLayout(l[0], "codes", DType::I8, {4, 48});
  expectLayout(l[1], "scales", DType::F32, {4, 3});
  // e3m2 is 6 bits: 10 * 6 = 60 bits -> 8 bytes per row.
  l = componentLayout(
      minifloat(3, 2, MinifloatSpecial::Finite, Granularity::PerChannel, 0), 2,
      10);
  expectLayout(l[0], "codes", DType::I8, {2, 8});
  expectLayout(l[1], "scales", DType::F32, {2, 1});
}

TEST(Layout, Codebook) {
  auto l = componentLayout(codebook(2, 8, 8), 4, 96);
  ASSERT_EQ(l.size(), 3u);
  expectLayout(l[0], "codes", DType::I8, {4, 12, 2});
  expectLayout(l[1], "codebooks", DType::F32, {2, 256, 8});
  expectLayout(l[2], "scales", DType::F32, {4, 1});
  l = componentLayout(codebook(1, 9, 4), 4, 96);
  expectLayout(l[0], "codes", DType::I16, {4, 24, 1});
  expectLayout(l[1], "codebooks", DType::F32, {1, 512, 4});
}

TEST(Layout, Binary) {
  auto l = componentLayout(binary(true, Granularity::PerChannel), 4, 10);
  ASSERT_EQ(l.size(), 3u);
  expectLayout(l[0], "signs", DType::I8, {4, 2});
  expectLayout(l[1], "scales", DType::F32, {4, 1});
  expectLayout(l[2], "offsets", DType::F32, {4, 1});
  l = componentLayout(binary(false, Granularity::PerGroup, 5), 4, 10);
  ASSERT_EQ(l.size(), 2u);
  expectLayout(l[1], "scales", DType::F32, {4, 2});
}

TEST(Layout, BitPlane) {
  auto l = componentLayout(bitplanes(3, Granularity::PerGroup, 32), 4, 96);
  ASSERT_EQ(l.size(), 3u);
  expectLayout(l[0], "planes", DType::I32, {3, 4, 3});
  expectLayout(l[1], "plane_scales", DType::F32, {3, 4, 3});
  expectLayout(l[2], "offsets", DType::F32, {4, 3});
  l = componentLayout(bitplanes(2, Granularity::PerTensor), 4, 33);
  expectLayout(l[0], "planes", DType::I32, {2, 4, 2});
  expectLayout(l[1], "plane_scales", DType::F32, {2, 1, 1});
}

TEST(Layout, Salient) {
  auto spec = salient(16, uniform(4, false, Granularity::PerChannel),
                      binary(true, Granularity::PerGroup, 16));
  auto l = componentLayout(spec, 4, 80);
  ASSERT_EQ(l.size(), 7u);
  expectLayout(l[0], "channel_map", DType::I32, {80});
  expectLayout(l[1], "salient.codes", DType::I8, {4, 8});
  expectLayout(l[2], "salient.scales", DType::F32, {4, 1});
  expectLayout(l[3], "salient.zeros", DType::I8, {4, 1});
  expectLayout(l[4], "rest.signs", DType::I8, {4, 8});
  expectLayout(l[5], "rest.scales", DType::F32, {4, 4});
  expectLayout(l[6], "rest.offsets", DType::F32, {4, 4});
}

TEST(Layout, BitsPerWeight) {
  // 4 bits + 32/128 (scale) + 8/128 (zero).
  EXPECT_DOUBLE_EQ(
      bitsPerWeight(uniform(4, false, Granularity::PerGroup, 128), 4096, 4096),
      4.3125);
  // 8 bits + one f32 scale per row of 8.
  EXPECT_DOUBLE_EQ(
      bitsPerWeight(uniform(8, true, Granularity::PerChannel), 4, 8), 12.0);
  // Padding counts: 3-bit codes, 5 per row -> 2 bytes = 16 bits / 5.
  EXPECT_DOUBLE_EQ(
      bitsPerWeight(uniform(3, true, Granularity::PerTensor), 2, 5),
      (2 * 2 * 8 + 32) / 10.0);
  // 16-bit code per 8 weights, a 2^16 x 8 f32 codebook, f32 row scales.
  EXPECT_DOUBLE_EQ(bitsPerWeight(codebook(1, 16, 8), 4096, 4096),
                   2.0 + 1.0 + 32.0 / 4096);
  // 16 signs (2 bytes) + alpha + mu per row of 16.
  EXPECT_DOUBLE_EQ(bitsPerWeight(binary(true, Granularity::PerChannel), 2, 16),
                   5.0);
  EXPECT_DOUBLE_EQ(bitsPerWeight(minifloat(2, 1), 1, 32), 4.0 + 1.0);
}

TEST(Layout, Describe) {
  EXPECT_EQ(describe(uniform(4, false, Granularity::PerGroup, 128)),
            "int4 asym g128");
  EXPECT_EQ(describe(uniform(8, true, Granularity::PerChannel)),
            "int8 sym per-channel");
  EXPECT_EQ(describe(uniform(3, true, Granularity::PerTensor)),
            "int3 sym per-tensor");
  EXPECT_EQ(describe(minifloat(2, 1)), "e2m1 g32");
  EXPECT_EQ(describe(minifloat(4, 3, MinifloatSpecial::Ocp,
                               Granularity::PerChannel, 0)),
            "e4m3(ocp) per-channel");
  EXPECT_EQ(describe(codebook(2, 8, 8)), "aqlm 2x8 g8");
  EXPECT_EQ(describe(binary(true, Granularity::PerChannel)),
            "binary+offset per-channel");
  EXPECT_EQ(describe(binary(false, Granularity::PerTensor)),
            "binary per-tensor");
  EXPECT_EQ(describe(bitplanes(3, Granularity::PerGroup, 64)),
            "bitplanes3 g64");
  EXPECT_EQ(describe(salient(64, uniform(4, false, Granularity::PerChannel),
                             binary(true, Granularity::PerChannel))),
            "salient(64: int4 asym per-channel | binary+offset per-channel)");
}

//===----------------------------------------------------------------------===//
// verifySpec
//===----------------------------------------------------------------------===//

TEST(VerifySpec, AcceptsValidSpecs) {
  EXPECT_EQ(verifySpec(uniform(2, true, Granularity::PerTensor), 1, 1), "");
  EXPECT_EQ(verifySpec(uniform(8, false, Granularity::PerGroup, 50), 3, 100),
            "");
  EXPECT_EQ(verifySpec(minifloat(5, 2, MinifloatSpecial::Ocp), 1, 64), "");
  EXPECT_EQ(verifySpec(minifloat(1, 1, MinifloatSpecial::Finite,
                                 Granularity::PerTensor, 0),
                       1, 3),
            "");
  EXPECT_EQ(verifySpec(codebook(4, 16, 4), 2, 8), "");
  EXPECT_EQ(verifySpec(bitplanes(8, Granularity::PerChannel), 2, 8), "");
  EXPECT_EQ(verifySpec(salient(1, uniform(8, true, Granularity::PerChannel),
                               binary(false, Granularity::PerTensor)),
                       2, 2),
            "");
}

TEST(VerifySpec, Messages) {
  EXPECT_EQ(verifySpec(uniform(4, true, Granularity::PerTensor), 0, 16),
            "matrix shape 0x16 is empty: rows and cols must be positive");
  EXPECT_EQ(verifySpec(uniform(9, true, Granularity::PerTensor), 4, 16),
            "uniform bits must be in 2..8, got 9");
  EXPECT_EQ(verifySpec(uniform(1, true, Granularity::PerTensor), 4, 16),
            "uniform bits must be in 2..8, got 1");
  // Ragged groups: a group size that does not divide K is valid.
  EXPECT_EQ(verifySpec(uniform(4, false, Granularity::PerGroup, 128), 4, 100),
            "");
  EXPECT_EQ(verifySpec(uniform(4, false, Granularity::PerGroup, 0), 4, 100),
            "per-group granularity needs a positive group size, got 0");
  EXPECT_EQ(verifySpec(uniform(4, false, Granularity::PerChannel, 32), 4, 64),
            "group size 32 given for per-channel granularity (must be 0)");
  EXPECT_EQ(verifySpec(minifloat(3, 2, MinifloatSpecial::Ocp), 4, 64),
            "OCP special values are defined only for e4m3 and e5m2, not e3m2");
  EXPECT_EQ(verifySpec(minifloat(4, 3, MinifloatSpecial::Ocp), 4, 64), "");
  EXPECT_EQ(verifySpec(minifloat(6, 1), 4, 64),
            "minifloat exponent bits must be in 1..5, got 6");
  EXPECT_EQ(verifySpec(minifloat(0, 3), 4, 64),
            "minifloat exponent bits must be in 1..5, got 0");
  EXPECT_EQ(verifySpec(minifloat(5, 3), 4, 64),
            "minifloat e5m3 takes 9 bits, more than 8");
  EXPECT_EQ(verifySpec(minifloat(1, 0), 4, 64),
            "minifloat e1m0 takes 2 bits, fewer than 3");
  EXPECT_EQ(verifySpec(minifloat(2, -1), 4, 64),
            "minifloat mantissa bits must be in 0..5, got -1");
  EXPECT_EQ(verifySpec(minifloat(2, 1, MinifloatSpecial::Finite,
                                 Granularity::PerGroup, 48),
                       4, 64),
            "");
  EXPECT_EQ(verifySpec(codebook(0, 8, 8), 4, 64),
            "codebook count must be in 1..64, got 0");
  EXPECT_EQ(verifySpec(codebook(65, 8, 8), 4, 64),
            "codebook count must be in 1..64, got 65");
  // Representable sizes: each dimension at most 2^40, and every byte size
  // (components and the dequantized matrix) within int64_t.
  EXPECT_EQ(verifySpec(uniform(4, false, Granularity::PerChannel), 4,
                       int64_t(1) << 61),
            "matrix shape 4x2305843009213693952 exceeds the largest supported "
            "dimension 1099511627776");
  EXPECT_EQ(verifySpec(uniform(4, false, Granularity::PerChannel),
                       kMaxMatrixDim, kMaxMatrixDim),
            "the dequantized 1099511627776x1099511627776 f32 matrix overflows "
            "64-bit byte sizes");
  EXPECT_EQ(verifySpec(codebook(64, 16, kMaxMatrixDim), 4, kMaxMatrixDim),
            "storage component 'codebooks' (64x65536x1099511627776 f32) "
            "overflows 64-bit byte sizes");
  EXPECT_EQ(verifySpec(uniform(4, false, Granularity::PerChannel), 1 << 20,
                       1 << 20),
            "");
  EXPECT_EQ(verifySpec(codebook(1, 17, 8), 4, 64),
            "codebook code bits must be in 1..16, got 17");
  EXPECT_EQ(verifySpec(codebook(1, 0, 8), 4, 64),
            "codebook code bits must be in 1..16, got 0");
  EXPECT_EQ(verifySpec(codebook(1, 8, 0), 4, 64),
            "codebook group size must be positive, got 0");
  EXPECT_EQ(verifySpec(codebook(1, 8, 3), 4, 64),
            "group size 3 does not divide 64 input channels");
  EXPECT_EQ(verifySpec(binary(true, Granularity::PerGroup, -4), 4, 64),
            "per-group granularity needs a positive group size, got -4");
  EXPECT_EQ(verifySpec(bitplanes(9, Granularity::PerChannel), 4, 64),
            "bit-plane count must be in 1..8, got 9");
  EXPECT_EQ(verifySpec(bitplanes(0, Granularity::PerChannel), 4, 64),
            "bit-plane count must be in 1..8, got 0");
}

TEST(VerifySpec, SalientMessages) {
  auto part = uniform(4, true, Granularity::PerChannel);
  EXPECT_EQ(verifySpec(salient(0, part, part), 4, 64),
            "salient channel count must be in 1..63 for 64 input channels, "
            "got 0");
  EXPECT_EQ(verifySpec(salient(64, part, part), 4, 64),
            "salient channel count must be in 1..63 for 64 input channels, "
            "got 64");
  EXPECT_EQ(verifySpec(salient(1, part, part), 4, 1),
            "a salient split needs at least 2 input channels, got 1");
  SalientSpec missing = salient(8, part, part);
  missing.rest.reset();
  EXPECT_EQ(verifySpec(missing, 4, 64), "rest part is missing");
  missing = salient(8, part, part);
  missing.salient.reset();
  EXPECT_EQ(verifySpec(missing, 4, 64), "salient part is missing");
  EXPECT_EQ(verifySpec(salient(8, salient(1, part, part), part), 4, 64),
            "salient part must not itself be salient");
  EXPECT_EQ(
      verifySpec(salient(8, part, uniform(4, true, Granularity::PerGroup, -16)),
                 4, 64),
      "rest part: per-group granularity needs a positive group size, got -16");
  EXPECT_EQ(
      verifySpec(salient(8, uniform(12, true, Granularity::PerTensor), part), 4,
                 64),
      "salient part: uniform bits must be in 2..8, got 12");
}

TEST(VerifySpec, LayoutRejectsInvalidSpecs) {
  expectInvalid(
      [] {
        componentLayout(uniform(4, false, Granularity::PerGroup, -128), 4, 100);
      },
      "per-group granularity needs a positive group size, got -128");
  expectInvalid([] { bitsPerWeight(codebook(1, 8, 3), 4, 64); },
                "does not divide");
}

//===----------------------------------------------------------------------===//
// Bit packing
//===----------------------------------------------------------------------===//

TEST(Packing, Int4ExactBytes) {
  EXPECT_EQ(packBits({3, 10}, 1, 2, 4), Bytes({0xA3}));
  // Odd columns: each row pads to a byte boundary with zero bits.
  EXPECT_EQ(packBits({1, 2, 3, 4, 5, 6}, 2, 3, 4),
            Bytes({0x21, 0x03, 0x54, 0x06}));
  EXPECT_EQ(unpackBits(Bytes({0x21, 0x03, 0x54, 0x06}).data(), 2, 3, 4),
            std::vector<uint32_t>({1, 2, 3, 4, 5, 6}));
}

TEST(Packing, Int3ExactBytes) {
  // sum_k code_k << 3k = 0x1F58D1, little-endian.
  std::vector<uint32_t> codes = {1, 2, 3, 4, 5, 6, 7, 0};
  Bytes packed = packBits(codes, 1, 8, 3);
  EXPECT_EQ(packed, Bytes({0xD1, 0x58, 0x1F}));
  EXPECT_EQ(unpackBits(packed.data(), 1, 8, 3), codes);
  // [7, 0, 5]: 7 | 5 << 6 = 0x147 -> 0x47 0x01, code 2 straddles bytes.
  EXPECT_EQ(packBits({7, 0, 5}, 1, 3, 3), Bytes({0x47, 0x01}));
  // Two rows, each starting on a byte boundary: row 1 is
  // 1 | 6 << 3 | 3 << 6 = 0xF1 -> 0xF1 0x00.
  EXPECT_EQ(packBits({7, 0, 5, 1, 6, 3}, 2, 3, 3),
            Bytes({0x47, 0x01, 0xF1, 0x00}));
  EXPECT_EQ(unpackBits(Bytes({0x47, 0x01, 0xB1, 0x00}).data(), 2, 3, 3),
            std::vector<uint32_t>({7, 0, 5, 1, 6, 2}));
}

TEST(Packing, OneAndEightBits) {
  EXPECT_EQ(packBits({1, 0, 1, 1, 0, 0, 0, 0, 1}, 1, 9, 1),
            Bytes({0x0D, 0x01}));
  EXPECT_EQ(packBits({0xFF, 0x00, 0x80}, 1, 3, 8), Bytes({0xFF, 0x00, 0x80}));
}

TEST(Packing, RoundTripRandom) {
  std::mt19937 rng(1234);
  for (int bits = 1; bits <= 8; ++bits)
    for (int64_t cols : {1, 5, 13, 31, 37}) {
      const int64_t rows = 7;
      std::uniform_int_distribution<uint32_t> dist(0, (1u << bits) - 1);
      std::vector<uint32_t> codes(rows * cols);
      for (uint32_t &c : codes)
        c = dist(rng);
      Bytes packed = packBits(codes, rows, cols, bits);
      ASSERT_EQ(int64_t(packed.size()), rows * packedRowBytes(cols, bits));
      EXPECT_EQ(unpackBits(packed.data(), rows, cols, bits), codes)
          << bits << " bits, " << cols << " cols";
      // Padding bits of every row are zero.
      const int64_t used = cols * bits % 8;
      for (int64_t n = 0; used != 0 && n < rows; ++n) {
        EXPECT_EQ(packed[(n + 1) * packedRowBytes(cols, bits) - 1] >> used, 0);
      }
    }
}

TEST(Packing, Errors) {
  expectInvalid([] { packBits({16}, 1, 1, 4); },
                "code 16 at [0, 0] does not fit in 4 bits");
  expectInvalid(
      [] {
        packBits({1, 2, 3}, 2, 2, 4);
      },
      "packBits got 3 codes for a 2x2 matrix");
  expectInvalid([] { packBits({0}, 1, 1, 0); },
                "packed code width must be in 1..32 bits, got 0");
}

//===----------------------------------------------------------------------===//
// Minifloat codec
//===----------------------------------------------------------------------===//

TEST(Minifloat, E2M1Table) {
  MinifloatSpec s = minifloat(2, 1);
  EXPECT_EQ(minifloatBits(s), 4);
  const float positive[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (uint32_t c = 0; c < 8; ++c) {
    EXPECT_EQ(decodeMinifloat(c, s), positive[c]) << c;
    EXPECT_EQ(decodeMinifloat(c | 8, s), -positive[c]) << c;
  }
  EXPECT_TRUE(std::signbit(decodeMinifloat(8, s))); // -0
  EXPECT_EQ(minifloatMax(s), 6.0f);
  // Only the low 4 bits are the code.
  EXPECT_EQ(decodeMinifloat(0x17, s), 6.0f);
}

TEST(Minifloat, E4M3) {
  MinifloatSpec ocp = minifloat(4, 3, MinifloatSpecial::Ocp);
  EXPECT_EQ(minifloatMax(ocp), 448.0f);
  EXPECT_EQ(decodeMinifloat(0x7E, ocp), 448.0f);
  EXPECT_EQ(decodeMinifloat(0xFE, ocp), -448.0f);
  EXPECT_TRUE(std::isnan(decodeMinifloat(0x7F, ocp)));
  EXPECT_TRUE(std::isnan(decodeMinifloat(0xFF, ocp)));
  EXPECT_EQ(decodeMinifloat(0x38, ocp), 1.0f);
  EXPECT_EQ(decodeMinifloat(0x01, ocp), std::ldexp(1.0f, -9)); // subnormal
  EXPECT_EQ(decodeMinifloat(0x08, ocp), std::ldexp(1.0f, -6)); // min normal
  EXPECT_EQ(decodeMinifloat(0x77, ocp), 240.0f);
  // Without OCP rules the top code is finite: 2^8 * 1.875.
  MinifloatSpec finite = minifloat(4, 3);
  EXPECT_EQ(minifloatMax(finite), 480.0f);
  EXPECT_EQ(decodeMinifloat(0x7F, finite), 480.0f);
}

TEST(Minifloat, E5M2) {
  MinifloatSpec ocp = minifloat(5, 2, MinifloatSpecial::Ocp);
  EXPECT_EQ(minifloatMax(ocp), 57344.0f);
  EXPECT_EQ(decodeMinifloat(0x7B, ocp), 57344.0f);
  EXPECT_EQ(decodeMinifloat(0x7C, ocp), std::numeric_limits<float>::infinity());
  EXPECT_EQ(decodeMinifloat(0xFC, ocp),
            -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(decodeMinifloat(0x7D, ocp)));
  EXPECT_TRUE(std::isnan(decodeMinifloat(0x7E, ocp)));
  EXPECT_TRUE(std::isnan(decodeMinifloat(0xFF, ocp)));
  EXPECT_EQ(decodeMinifloat(0x3C, ocp), 1.0f);
  EXPECT_EQ(decodeMinifloat(0x01, ocp), std::ldexp(1.0f, -16));
  EXPECT_EQ(minifloatMax(minifloat(5, 2)), 114688.0f); // 2^16 * 1.75
}

TEST(Minifloat, SixBitMaxima) {
  EXPECT_EQ(minifloatMax(minifloat(3, 2)), 28.0f);            // 2^4 * 1.75
  EXPECT_EQ(minifloatMax(minifloat(2, 3)), 7.5f);             // 2^2 * 1.875
  EXPECT_EQ(decodeMinifloat(0x01, minifloat(3, 2)), 0.0625f); // 2^-2 * 1/4
  EXPECT_EQ(decodeMinifloat(0x01, minifloat(2, 3)), 0.125f);  // 2^0 * 1/8
  EXPECT_EQ(minifloatBits(minifloat(3, 2)), 6);
  // Degenerate widths: e1m1 (bias 0) and e2m0.
  EXPECT_EQ(decodeMinifloat(1, minifloat(1, 1)), 1.0f);
  EXPECT_EQ(decodeMinifloat(3, minifloat(1, 1)), 3.0f);
  EXPECT_EQ(decodeMinifloat(1, minifloat(2, 0)), 1.0f);
  EXPECT_EQ(minifloatMax(minifloat(2, 0)), 4.0f);
}

TEST(Minifloat, EncodeTiesAndSaturation) {
  MinifloatSpec s = minifloat(2, 1);
  EXPECT_EQ(encodeMinifloat(0.25f, s), 0u); // 0 | 0.5: even 0
  EXPECT_EQ(encodeMinifloat(0.26f, s), 1u);
  EXPECT_EQ(encodeMinifloat(0.75f, s), 2u); // 0.5 | 1.0: even 1.0
  EXPECT_EQ(encodeMinifloat(1.25f, s), 2u); // 1.0 | 1.5: even 1.0
  EXPECT_EQ(encodeMinifloat(1.75f, s), 4u); // 1.5 | 2.0: even 2.0
  EXPECT_EQ(encodeMinifloat(2.5f, s), 4u);  // 2 | 3: even 2
  EXPECT_EQ(encodeMinifloat(3.5f, s), 6u);  // 3 | 4: even 4
  EXPECT_EQ(encodeMinifloat(5.0f, s), 6u);  // 4 | 6: even 4
  EXPECT_EQ(encodeMinifloat(5.01f, s), 7u);
  EXPECT_EQ(encodeMinifloat(-5.0f, s), 0xEu);
  EXPECT_EQ(encodeMinifloat(100.0f, s), 7u);
  EXPECT_EQ(encodeMinifloat(-std::numeric_limits<float>::infinity(), s), 0xFu);
  EXPECT_EQ(encodeMinifloat(std::numeric_limits<float>::quiet_NaN(), s), 0u);
  EXPECT_EQ(encodeMinifloat(-0.1f, s), 8u); // rounds to -0

  MinifloatSpec e4m3 = minifloat(4, 3, MinifloatSpecial::Ocp);
  EXPECT_EQ(encodeMinifloat(1.0625f, e4m3), 0x38u); // 1 | 1.125: even 1
  EXPECT_EQ(encodeMinifloat(1.1875f, e4m3), 0x3Au); // 1.125 | 1.25: 1.25
  EXPECT_EQ(encodeMinifloat(470.0f, e4m3), 0x7Eu);  // never the NaN code
  EXPECT_EQ(encodeMinifloat(1e9f, e4m3), 0x7Eu);
  EXPECT_EQ(encodeMinifloat(-1e9f, e4m3), 0xFEu);
  EXPECT_EQ(encodeMinifloat(std::ldexp(1.0f, -10), e4m3), 0x00u); // tie 0|min
  EXPECT_EQ(encodeMinifloat(std::ldexp(3.0f, -10), e4m3), 0x02u); // 1|2: 2

  MinifloatSpec e5m2 = minifloat(5, 2, MinifloatSpecial::Ocp);
  EXPECT_EQ(encodeMinifloat(1.125f, e5m2), 0x3Cu);   // 1 | 1.25: even 1
  EXPECT_EQ(encodeMinifloat(1.375f, e5m2), 0x3Eu);   // 1.25 | 1.5: even 1.5
  EXPECT_EQ(encodeMinifloat(61440.0f, e5m2), 0x7Bu); // never Inf
  EXPECT_EQ(encodeMinifloat(std::numeric_limits<float>::infinity(), e5m2),
            0x7Bu);
}

TEST(Minifloat, InvalidFormatsThrow) {
  expectInvalid(
      [] { decodeMinifloat(0, minifloat(3, 2, MinifloatSpecial::Ocp)); },
      "OCP special values are defined only for e4m3 and e5m2");
  expectInvalid([] { encodeMinifloat(1.0f, minifloat(6, 1)); },
                "exponent bits must be in 1..5");
  expectInvalid([] { minifloatMax(minifloat(4, 4)); }, "more than 8");
}

/// Every format the brute-force test covers.
std::vector<MinifloatSpec> allFormats() {
  std::vector<MinifloatSpec> formats;
  for (int e = 1; e <= 5; ++e)
    for (int m = 0; m <= 5; ++m)
      if (1 + e + m >= 3 && 1 + e + m <= 8)
        formats.push_back(minifloat(e, m));
  formats.push_back(minifloat(4, 3, MinifloatSpecial::Ocp));
  formats.push_back(minifloat(5, 2, MinifloatSpecial::Ocp));
  return formats;
}

TEST(Minifloat, RoundTripsEveryFiniteCode) {
  for (const MinifloatSpec &s : allFormats())
    for (uint32_t c = 0; c < (1u << minifloatBits(s)); ++c) {
      float v = decodeMinifloat(c, s);
      if (std::isfinite(v)) {
        EXPECT_EQ(encodeMinifloat(v, s), c) << describe(s) << " code " << c;
      }
    }
}

TEST(Minifloat, EncodeIsNearestBruteForce) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> mantissa(0.5f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  for (const MinifloatSpec &s : allFormats()) {
    const uint32_t numCodes = 1u << minifloatBits(s);
    std::vector<float> values;
    std::vector<uint32_t> codes;
    for (uint32_t c = 0; c < numCodes; ++c)
      if (std::isfinite(decodeMinifloat(c, s))) {
        values.push_back(decodeMinifloat(c, s));
        codes.push_back(c);
      }
    // Random inputs over a wide range, plus every exact midpoint.
    std::vector<float> inputs;
    for (int i = 0; i < 3000; ++i) {
      float x = std::ldexp(mantissa(rng), exponent(rng));
      inputs.push_back(i % 2 ? -x : x);
    }
    std::vector<float> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i + 1 < sorted.size(); ++i)
      if (sorted[i] != sorted[i + 1])
        inputs.push_back((sorted[i] + sorted[i + 1]) / 2);

    const uint32_t magnitudeMask = numCodes / 2 - 1;
    for (float x : inputs) {
      double best = std::numeric_limits<double>::infinity();
      for (float v : values)
        best = std::min(best, std::fabs(double(v) - x));
      int numDistinctNearest = 0;
      float firstNearest = 0;
      for (float v : values)
        if (std::fabs(double(v) - x) == best &&
            (numDistinctNearest == 0 || v != firstNearest)) {
          if (numDistinctNearest == 0)
            firstNearest = v;
          ++numDistinctNearest;
        }
      uint32_t code = encodeMinifloat(x, s);
      float got = decodeMinifloat(code, s);
      ASSERT_TRUE(std::isfinite(got)) << describe(s) << " x=" << x;
      EXPECT_EQ(std::fabs(double(got) - x), best)
          << describe(s) << " x=" << x << " got " << got;
      EXPECT_EQ(std::signbit(got), std::signbit(x)) << describe(s) << x;
      if (numDistinctNearest > 1) { // a tie: the even code wins
        EXPECT_EQ(code & magnitudeMask & 1, 0u) << describe(s) << " x=" << x;
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// roundHalfEven
//===----------------------------------------------------------------------===//

TEST(RoundHalfEven, Cases) {
  EXPECT_EQ(roundHalfEven(0.5f), 0.0f);
  EXPECT_EQ(roundHalfEven(1.5f), 2.0f);
  EXPECT_EQ(roundHalfEven(2.5f), 2.0f);
  EXPECT_EQ(roundHalfEven(3.5f), 4.0f);
  EXPECT_EQ(roundHalfEven(-0.5f), 0.0f);
  EXPECT_EQ(roundHalfEven(-1.5f), -2.0f);
  EXPECT_EQ(roundHalfEven(-2.5f), -2.0f);
  EXPECT_EQ(roundHalfEven(0.49999997f), 0.0f);
  EXPECT_EQ(roundHalfEven(2.5000002f), 3.0f);
  EXPECT_EQ(roundHalfEven(-3.7f), -4.0f);
  EXPECT_EQ(roundHalfEven(8388609.0f), 8388609.0f); // 2^23 + 1
  EXPECT_EQ(roundHalfEven(4194304.5f), 4194304.0f); // 2^22 + 0.5
  EXPECT_EQ(roundHalfEven(4194305.5f), 4194306.0f);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1000.0f, 1000.0f);
  for (int i = 0; i < 10000; ++i) {
    float x = i % 4 == 0 ? std::floor(dist(rng)) + 0.5f : dist(rng);
    EXPECT_EQ(roundHalfEven(x), std::nearbyint(x)) << x;
  }
}

//===----------------------------------------------------------------------===//
// Uniform
//===----------------------------------------------------------------------===//

TEST(Uniform, Int4AsymRTNByHand) {
  // min -1, max 2.75: scale = 3.75 / 15 = 0.25, zero = rhe(1 / 0.25) = 4.
  // w / s = -4, 0, 0.5, 1.5, 2.5, 11, -2, 4 -> rhe -4, 0, 0, 2, 2, 11, -2, 4,
  // + zero -> codes 0, 4, 4, 6, 6, 15, 2, 8.
  const float w[8] = {-1, 0, 0.125f, 0.375f, 0.625f, 2.75f, -0.5f, 1.0f};
  UniformSpec s = uniform(4, false, Granularity::PerTensor);
  EncodedMatrix e = quantizeRTN(s, w, 1, 8);
  ASSERT_EQ(e.components.size(), 3u);
  EXPECT_EQ(readF32(component(e, "scales").bytes), std::vector<float>({0.25f}));
  EXPECT_EQ(component(e, "zeros").bytes, Bytes({4}));
  EXPECT_EQ(unpackBits(component(e, "codes").bytes.data(), 1, 8, 4),
            std::vector<uint32_t>({0, 4, 4, 6, 6, 15, 2, 8}));
  EXPECT_EQ(component(e, "codes").bytes, Bytes({0x40, 0x64, 0xF6, 0x82}));
  EXPECT_EQ(dequantize(s, e),
            std::vector<float>({-1, 0, 0, 0.5f, 0.5f, 2.75f, -0.5f, 1.0f}));
}

TEST(Uniform, RaggedGroupsByHand) {
  // K = 5, g = 2: groups {0,1}, {2,3} and the short last group {4}.
  // Row: -1 2 | 0.5 1.5 | -3. Asym int2 (levels 0..3):
  //  g0: [-1, 2]  s = 1,   z = 1: codes 0, 3       -> -1, 2
  //  g1: [0, 1.5] s = 0.5, z = 0: codes 1, 3       -> 0.5, 1.5
  //  g2: [-3, 0]  s = 1,   z = 3: code 0           -> -3
  const float w[5] = {-1, 2, 0.5f, 1.5f, -3};
  UniformSpec s = uniform(2, false, Granularity::PerGroup, 2);
  auto layout = componentLayout(s, 1, 5);
  expectLayout(layout[0], "codes", DType::I8, {1, 2});
  expectLayout(layout[1], "scales", DType::F32, {1, 3});
  expectLayout(layout[2], "zeros", DType::I8, {1, 3});
  EncodedMatrix e = quantizeRTN(s, w, 1, 5);
  EXPECT_EQ(readF32(component(e, "scales").bytes),
            std::vector<float>({1.0f, 0.5f, 1.0f}));
  EXPECT_EQ(component(e, "zeros").bytes, Bytes({1, 0, 3}));
  EXPECT_EQ(unpackBits(component(e, "codes").bytes.data(), 1, 5, 2),
            std::vector<uint32_t>({0, 3, 1, 3, 0}));
  EXPECT_EQ(dequantize(s, e), std::vector<float>({-1, 2, 0.5f, 1.5f, -3}));
  // Bits per weight count the third (short) group's scale and zero:
  // (5 * 2 codes padded to 16 bits + 3 * 32 + 3 * 8) / 5.
  EXPECT_DOUBLE_EQ(bitsPerWeight(s, 1, 5), (16.0 + 96 + 24) / 5);
}

TEST(Uniform, RaggedMatchesSeparateQuantizationOfEachGroup) {
  // stories260K's down_proj shape: K = 172 = 5 x 32 + 12. Each group,
  // including the 12-wide tail, quantizes as its own per-channel matrix.
  const int64_t rows = 3, cols = 172, g = 32;
  std::vector<float> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = std::sin(0.37 * double(i)) * (1 + (i % 7));
  UniformSpec s = uniform(4, false, Granularity::PerGroup, g);
  std::vector<float> ragged = dequantize(s, quantizeRTN(s, w.data(), rows, cols));
  for (int64_t start = 0; start < cols; start += g) {
    int64_t width = std::min(g, cols - start);
    std::vector<float> part(rows * width);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < width; ++k)
        part[n * width + k] = w[n * cols + start + k];
    UniformSpec pc = uniform(4, false, Granularity::PerChannel);
    std::vector<float> alone =
        dequantize(pc, quantizeRTN(pc, part.data(), rows, width));
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < width; ++k)
        ASSERT_EQ(ragged[n * cols + start + k], alone[n * width + k])
            << "row " << n << " column " << start + k;
  }
}

TEST(Uniform, Int4AsymRangeWidenedToZero) {
  // All positive: the range is widened to [0, 3]: scale 0.2, zero 0.
  const float w[4] = {1.0f, 3.0f, 0.0f, 2.0f};
  UniformSpec s = uniform(4, false, Granularity::PerChannel);
  EncodedMatrix e = quantizeRTN(s, w, 1, 4);
  EXPECT_EQ(readF32(component(e, "scales").bytes),
            std::vector<float>({3.0f / 15.0f}));
  EXPECT_EQ(component(e, "zeros").bytes, Bytes({0}));
  EXPECT_EQ(component(e, "codes").bytes, Bytes({0xF5, 0xA0})); // 5,15,0,10
}

TEST(Uniform, Int8SymPerChannelByHand) {
  // Row 0: absmax 127 -> scale 1. Row 1: absmax 127/32 -> scale 1/32.
  const float w[8] = {127, -64, 0.5f, 1.5f, -3.96875f, 0.015625f, 0.046875f, 1};
  UniformSpec s = uniform(8, true, Granularity::PerChannel);
  EncodedMatrix e = quantizeRTN(s, w, 2, 4);
  ASSERT_EQ(e.components.size(), 2u);
  EXPECT_EQ(readF32(component(e, "scales").bytes),
            std::vector<float>({1.0f, 0.03125f}));
  // u = rhe(w / s) + 128.
  EXPECT_EQ(component(e, "codes").bytes,
            Bytes({255, 64, 128, 130, 1, 128, 130, 160}));
  EXPECT_EQ(dequantize(s, e),
            std::vector<float>({127, -64, 0, 2, -3.96875f, 0, 0.0625f, 1}));
}

TEST(Uniform, ZeroGroupsUseScaleOne) {
  const float w[4] = {0, 0, 0, 0};
  EncodedMatrix sym =
      quantizeRTN(uniform(4, true, Granularity::PerTensor), w, 1, 4);
  EXPECT_EQ(readF32(component(sym, "scales").bytes), std::vector<float>({1}));
  EXPECT_EQ(component(sym, "codes").bytes, Bytes({0x88, 0x88}));
  EncodedMatrix asym =
      quantizeRTN(uniform(4, false, Granularity::PerTensor), w, 1, 4);
  EXPECT_EQ(readF32(component(asym, "scales").bytes), std::vector<float>({1}));
  EXPECT_EQ(component(asym, "zeros").bytes, Bytes({0}));
  EXPECT_EQ(component(asym, "codes").bytes, Bytes({0x00, 0x00}));
}

TEST(Uniform, WithParamsClampsAndRoundsHalfEven) {
  // int4 sym, scale 1: q in [-8, 7], u = q + 8.
  const float w[6] = {100, -100, 7.5f, -8.5f, 2.5f, -2.5f};
  UniformSpec s = uniform(4, true, Granularity::PerTensor);
  QuantParams p;
  p.scales = {1.0f};
  EncodedMatrix e = quantizeWithParams(s, p, w, 1, 6);
  EXPECT_EQ(unpackBits(component(e, "codes").bytes.data(), 1, 6, 4),
            std::vector<uint32_t>({15, 0, 15, 0, 10, 6}));
  // int3 asym, scale 0.5, zero 3: u = clamp(rhe(2w) + 3, 0, 7).
  UniformSpec a = uniform(3, false, Granularity::PerTensor);
  QuantParams q;
  q.scales = {0.5f};
  q.zeros = {3};
  const float v[5] = {-1.5f, -2.0f, 0.25f, 2.0f, 0.75f};
  EncodedMatrix f = quantizeWithParams(a, q, v, 1, 5);
  EXPECT_EQ(unpackBits(component(f, "codes").bytes.data(), 1, 5, 3),
            std::vector<uint32_t>({0, 0, 3, 7, 5}));
  EXPECT_EQ(dequantize(a, f),
            std::vector<float>({-1.5f, -1.5f, 0.0f, 2.0f, 1.0f}));
}

TEST(Uniform, RTNErrorWithinHalfScale) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t rows = 6, cols = 64;
  std::vector<float> w(rows * cols);
  for (float &x : w)
    x = dist(rng) + (rng() % 3 == 0 ? 0.7f : 0.0f);
  for (int bits = 2; bits <= 8; ++bits)
    for (bool sym : {true, false})
      for (Granularity g : {Granularity::PerTensor, Granularity::PerChannel,
                            Granularity::PerGroup}) {
        UniformSpec s =
            uniform(bits, sym, g, g == Granularity::PerGroup ? 16 : 0);
        EncodedMatrix e = quantizeRTN(s, w.data(), rows, cols);
        std::vector<float> scales = readF32(component(e, "scales").bytes);
        Bytes zeros = sym ? Bytes() : component(e, "zeros").bytes;
        std::vector<float> d = dequantize(s, e);
        const int qmax = (1 << bits) - 1, half = 1 << (bits - 1);
        int64_t checked = 0;
        for (int64_t n = 0; n < rows; ++n)
          for (int64_t k = 0; k < cols; ++k) {
            int64_t gi = g == Granularity::PerTensor    ? 0
                         : g == Granularity::PerChannel ? n
                                                        : n * 4 + k / 16;
            float sc = scales[gi];
            float q = roundHalfEven(w[n * cols + k] / sc);
            bool inRange = sym ? (q >= -half && q <= half - 1)
                               : (q + zeros[gi] >= 0 && q + zeros[gi] <= qmax);
            float err = std::fabs(d[n * cols + k] - w[n * cols + k]);
            // Every element: at most one step (range ends may clamp).
            EXPECT_LE(err, sc * 1.0001f) << describe(s);
            if (!inRange)
              continue;
            ++checked;
            // Half a step, plus float rounding of w / s and of the result.
            EXPECT_LE(err,
                      0.5f * sc * 1.0001f + 1e-6f * std::fabs(w[n * cols + k]))
                << describe(s) << " at " << n << "," << k;
          }
        EXPECT_GT(checked, rows * cols * 9 / 10) << describe(s);
      }
}

TEST(Uniform, Errors) {
  const float w[8] = {0};
  UniformSpec asym = uniform(4, false, Granularity::PerChannel);
  QuantParams p;
  p.scales = {1, 1};
  p.zeros = {0};
  expectInvalid([&] { quantizeWithParams(asym, p, w, 2, 4); },
                "quantizeWithParams(int4 asym per-channel): params.zeros has 1 "
                "entries, expected 2");
  p.zeros = {0, 3.5f};
  expectInvalid([&] { quantizeWithParams(asym, p, w, 2, 4); },
                "params.zeros[1] = 3.5 is not an integer in 0..15");
  p.zeros = {0, 16};
  expectInvalid([&] { quantizeWithParams(asym, p, w, 2, 4); },
                "params.zeros[1] = 16 is not an integer in 0..15");
  p.zeros = {0, 0};
  p.scales = {1, 0};
  expectInvalid([&] { quantizeWithParams(asym, p, w, 2, 4); },
                "params.scales[1] = 0 must be finite and nonzero");
  p.scales = {1, 1};
  p.offsets = {0};
  expectInvalid([&] { quantizeWithParams(asym, p, w, 2, 4); },
                "params.offsets is not used by this encoding and must be "
                "empty, got 1 entries");
  UniformSpec sym = uniform(4, true, Granularity::PerChannel);
  QuantParams symParams;
  symParams.scales = {1, 1};
  symParams.zeros = {8, 8};
  expectInvalid([&] { quantizeWithParams(sym, symParams, w, 2, 4); },
                "params.zeros is not used");
  const float bad[2] = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  expectInvalid([&] { quantizeRTN(sym, bad, 1, 2); },
                "weight W[0][1] = nan is not finite");
  expectInvalid([&] { quantizeRTN(codebook(1, 8, 2), w, 1, 2); },
                "RTN supports uniform and minifloat encodings");
  expectInvalid(
      [&] { quantizeRTN(binary(true, Granularity::PerChannel), w, 1, 2); },
      "RTN supports uniform and minifloat encodings");
  expectInvalid(
      [&] { quantizeRTN(uniform(4, true, Granularity::PerGroup, 0), w, 1, 8); },
      "per-group granularity needs a positive group size, got 0");
}

//===----------------------------------------------------------------------===//
// Minifloat quantization
//===----------------------------------------------------------------------===//

TEST(MinifloatQuant, E2M1RTNByHand) {
  // absmax 12 -> scale 12 / 6 = 2; w / s = 6, -1.5, 0.5, 0.25 (tie -> 0).
  const float w[4] = {12, -3, 1, 0.5f};
  MinifloatSpec s =
      minifloat(2, 1, MinifloatSpecial::Finite, Granularity::PerChannel, 0);
  EncodedMatrix e = quantizeRTN(s, w, 1, 4);
  EXPECT_EQ(readF32(component(e, "scales").bytes), std::vector<float>({2}));
  EXPECT_EQ(component(e, "codes").bytes, Bytes({0xB7, 0x01})); // 7,B,1,0
  EXPECT_EQ(dequantize(s, e), std::vector<float>({12, -3, 1, 0}));
}

TEST(MinifloatQuant, E4M3RTNGroups) {
  // Two groups of 2: absmax 448 -> scale 1, absmax 0.875 -> 0.875 / 448.
  const float w[4] = {448, -1.0625f, 0.875f, -0.4375f};
  MinifloatSpec s =
      minifloat(4, 3, MinifloatSpecial::Ocp, Granularity::PerGroup, 2);
  EncodedMatrix e = quantizeRTN(s, w, 1, 4);
  EXPECT_EQ(readF32(component(e, "scales").bytes),
            std::vector<float>({1.0f, 0.875f / 448.0f}));
  // -1.0625 ties 1 | 1.125 -> 1 (0xB8); group 2 maps to 448 and 224.
  EXPECT_EQ(component(e, "codes").bytes, Bytes({0x7E, 0xB8, 0x7E, 0xF6}));
  std::vector<float> d = dequantize(s, e);
  EXPECT_EQ(d[0], 448.0f);
  EXPECT_EQ(d[1], -1.0f);
  EXPECT_EQ(d[2], 448.0f * (0.875f / 448.0f));
  EXPECT_EQ(d[3], -224.0f * (0.875f / 448.0f));
}

TEST(MinifloatQuant, WithParamsChecksScales) {
  MinifloatSpec s =
      minifloat(2, 1, MinifloatSpecial::Finite, Granularity::PerGroup, 4);
  const float w[8] = {0};
  QuantParams p;
  p.scales = {1};
  expectInvalid([&] { quantizeWithParams(s, p, w, 1, 8); },
                "quantizeWithParams(e2m1 g4): params.scales has 1 entries, "
                "expected 2");
  p.scales = {1, std::numeric_limits<float>::infinity()};
  expectInvalid([&] { quantizeWithParams(s, p, w, 1, 8); },
                "params.scales[1] = inf must be finite and nonzero");
}

//===----------------------------------------------------------------------===//
// Codebook
//===----------------------------------------------------------------------===//

// M = 2 codebooks of 2^2 codewords of g = 2 values.
const std::vector<float> kBooks = {
    0,    0,    1,     0,     0,     1,      1, 1,  // codebook 0
    0.5f, 0.5f, -0.5f, 0.25f, 0.25f, -0.25f, 0, 0}; // codebook 1

TEST(Codebook, DequantByHand) {
  CodebookSpec s = codebook(2, 2, 2);
  EncodedMatrix e;
  e.rows = 2;
  e.cols = 4;
  // codes[n][j][m]: row 0: (1, 2), (3, 0); row 1: (0, 0), (2, 1).
  e.components = {
      makeComp("codes", DType::I8, {2, 2, 2}, {1, 2, 3, 0, 0, 0, 2, 1}),
      makeComp("codebooks", DType::F32, {2, 4, 2}, f32Payload(kBooks)),
      makeComp("scales", DType::F32, {2, 1}, f32Payload({2.0f, 0.5f}))};
  // Row 0: 2 * ([1,0] + [0.25,-0.25]), 2 * ([1,1] + [0.5,0.5]).
  // Row 1: 0.5 * ([0,0] + [0.5,0.5]), 0.5 * ([0,1] + [-0.5,0.25]).
  EXPECT_EQ(dequantize(s, e), std::vector<float>({2.5f, -0.5f, 3, 3, 0.25f,
                                                  0.25f, -0.25f, 0.625f}));

  // Greedy residual search recovers the codes; row 1 group 0 ([0.5, 0.5])
  // is equidistant from all of codebook 0, and the tie goes to code 0.
  QuantParams p;
  p.scales = {2.0f, 0.5f};
  p.codebooks = kBooks;
  std::vector<float> w = dequantize(s, e);
  EncodedMatrix q = quantizeWithParams(s, p, w.data(), 2, 4);
  EXPECT_EQ(component(q, "codes").bytes, Bytes({1, 2, 3, 0, 0, 0, 2, 1}));
  EXPECT_EQ(dequantize(s, q), w);
}

TEST(Codebook, SixteenBitCodes) {
  // B = 9 -> i16 codes; codeword c of codebook 0 is [c / 2].
  CodebookSpec s = codebook(1, 9, 1);
  QuantParams p;
  p.scales = {1.0f};
  for (int c = 0; c < 512; ++c)
    p.codebooks.push_back(c * 0.5f);
  const float w[2] = {150.2f, 2.6f};
  EncodedMatrix e = quantizeWithParams(s, p, w, 1, 2);
  EXPECT_EQ(component(e, "codes").layout.dtype, DType::I16);
  EXPECT_EQ(component(e, "codes").bytes, Bytes({0x2C, 0x01, 0x05, 0x00}));
  EXPECT_EQ(dequantize(s, e), std::vector<float>({150.0f, 2.5f}));
}

TEST(Codebook, Errors) {
  CodebookSpec s = codebook(2, 2, 2);
  QuantParams p;
  p.scales = {1.0f};
  p.codebooks = std::vector<float>(15);
  const float w[4] = {0};
  expectInvalid([&] { quantizeWithParams(s, p, w, 1, 4); },
                "quantizeWithParams(aqlm 2x2 g2): params.codebooks has 15 "
                "entries, expected 16");
  p.codebooks = kBooks;
  p.scales = {1.0f, 1.0f};
  expectInvalid([&] { quantizeWithParams(s, p, w, 1, 4); },
                "params.scales has 2 entries, expected 1");
  EncodedMatrix e;
  e.rows = 1;
  e.cols = 4;
  e.components = {
      makeComp("codes", DType::I8, {1, 2, 2}, {0, 4, 0, 0}),
      makeComp("codebooks", DType::F32, {2, 4, 2}, f32Payload(kBooks)),
      makeComp("scales", DType::F32, {1, 1}, f32Payload({1.0f}))};
  expectInvalid([&] { dequantize(s, e); },
                "code 4 at flat index 1 is out of range for 2-bit codebooks");
}

//===----------------------------------------------------------------------===//
// Binary
//===----------------------------------------------------------------------===//

TEST(Binary, WithOffsetByHand) {
  BinarySpec s = binary(true, Granularity::PerChannel);
  QuantParams p;
  p.scales = {0.5f, 2.0f};
  p.offsets = {0.1f, -1.0f};
  // bit = w >= mu.
  const float w[20] = {0.2f,    -0.3f, 0.1f,  0.05f, 1,     -1, 0.1f,
                       0.0999f, 3,     -3,    -1,    -1.5f, 0,  -2,
                       5,       -0.9f, -1.1f, 7,     -10,   0};
  EncodedMatrix e = quantizeWithParams(s, p, w, 2, 10);
  // Row 0 bits 1010101010 -> 0x55 0x01; row 1 1010110101 -> 0xB5 0x02.
  EXPECT_EQ(component(e, "signs").bytes, Bytes({0x55, 0x01, 0xB5, 0x02}));
  std::vector<float> d = dequantize(s, e);
  const float hi0 = 0.5f * 1.0f + 0.1f, lo0 = 0.5f * -1.0f + 0.1f;
  EXPECT_EQ(
      d, std::vector<float>({hi0, lo0, hi0, lo0, hi0, lo0, hi0, lo0, hi0, lo0,
                             1,   -3,  1,   -3,  1,   1,   -3,  1,   -3,  1}));
}

TEST(Binary, WithoutOffset) {
  BinarySpec s = binary(false, Granularity::PerTensor);
  QuantParams p;
  p.scales = {0.75f};
  const float w[3] = {0.0f, -0.0f, -1e-3f};
  EncodedMatrix e = quantizeWithParams(s, p, w, 1, 3);
  ASSERT_EQ(e.components.size(), 2u);
  EXPECT_EQ(component(e, "signs").bytes, Bytes({0x03}));
  EXPECT_EQ(dequantize(s, e), std::vector<float>({0.75f, 0.75f, -0.75f}));
  p.offsets = {0.0f};
  expectInvalid([&] { quantizeWithParams(s, p, w, 1, 3); },
                "quantizeWithParams(binary per-tensor): params.offsets is not "
                "used by this encoding");
}

//===----------------------------------------------------------------------===//
// Bit-planes
//===----------------------------------------------------------------------===//

TEST(BitPlane, ByHand) {
  // plane scales 1, 2 and offset -1.5: combinations c = 0..3 give
  // -1.5, -0.5, 0.5, 1.5.
  BitPlaneSpec s = bitplanes(2, Granularity::PerTensor);
  QuantParams p;
  p.planeScales = {1.0f, 2.0f};
  p.offsets = {-1.5f};
  std::vector<float> w(35, -1.5f);
  w[0] = 0.0f;   // tie -0.5 | 0.5: lower index c = 1
  w[1] = 1.0f;   // tie 0.5 | 1.5: c = 2
  w[2] = -5.0f;  // c = 0
  w[3] = 100.0f; // c = 3
  w[33] = 0.6f;  // c = 2
  EncodedMatrix e = quantizeWithParams(s, p, w.data(), 1, 35);
  // Plane 0: bits 0, 3 -> word 9; plane 1: bits 1, 3 and 33 -> words 10, 2.
  EXPECT_EQ(component(e, "planes").bytes,
            Bytes({9, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0, 0}));
  std::vector<float> d = dequantize(s, e);
  std::vector<float> expected(35, -1.5f);
  expected[0] = -0.5f;
  expected[1] = 0.5f;
  expected[3] = 1.5f;
  expected[33] = 0.5f;
  EXPECT_EQ(d, expected);
}

TEST(BitPlane, Errors) {
  BitPlaneSpec s = bitplanes(2, Granularity::PerChannel);
  QuantParams p;
  p.planeScales = {1, 2, 3};
  p.offsets = {0, 0};
  const float w[4] = {0};
  expectInvalid([&] { quantizeWithParams(s, p, w, 2, 2); },
                "quantizeWithParams(bitplanes2 per-channel): "
                "params.planeScales has 3 entries, expected 4");
  p.planeScales = {1, 2, 3, 4};
  p.scales = {1};
  expectInvalid([&] { quantizeWithParams(s, p, w, 2, 2); },
                "params.scales is not used");
}

TEST(BitPlane, FromUniformByHand) {
  // The int4 asym example: scale 0.25, zero 4 -> plane scales 0.25, 0.5, 1,
  // 2 and offset -1; the values are identical.
  const float w[8] = {-1, 0, 0.125f, 0.375f, 0.625f, 2.75f, -0.5f, 1.0f};
  UniformSpec u = uniform(4, false, Granularity::PerTensor);
  EncodedMatrix e = quantizeRTN(u, w, 1, 8);
  BitPlaneSpec planesSpec;
  EncodedMatrix b = uniformToBitPlanes(u, e, &planesSpec);
  EXPECT_EQ(planesSpec.numPlanes, 4);
  EXPECT_EQ(planesSpec.granularity, Granularity::PerTensor);
  EXPECT_EQ(readF32(component(b, "plane_scales").bytes),
            std::vector<float>({0.25f, 0.5f, 1.0f, 2.0f}));
  EXPECT_EQ(readF32(component(b, "offsets").bytes),
            std::vector<float>({-1.0f}));
  // Codes 0,4,4,6,6,15,2,8: plane p holds bit p of each.
  EXPECT_EQ(
      component(b, "planes").bytes,
      Bytes({0x20, 0, 0, 0, 0x78, 0, 0, 0, 0x3E, 0, 0, 0, 0xA0, 0, 0, 0}));
  EXPECT_EQ(dequantize(planesSpec, b), dequantize(u, e));
}

TEST(BitPlane, FromUniformMatchesWithinTolerance) {
  // Uniform: one rounding of scale * (u - zero). Bit-planes: up to bits - 1
  // additions of exact terms scale * 2^p, the rounded -scale * zero and one
  // final addition, each off by at most 2^-24 * scale * 2^bits. Tolerance:
  // (bits + 2) * 2^-24 * scale * 2^bits.
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 0.3f);
  const int64_t rows = 5, cols = 70;
  std::vector<float> w(rows * cols);
  for (float &x : w)
    x = dist(rng);
  int64_t differing = 0;
  for (int bits = 2; bits <= 8; ++bits)
    for (bool sym : {true, false})
      for (Granularity g : {Granularity::PerTensor, Granularity::PerChannel,
                            Granularity::PerGroup}) {
        UniformSpec u =
            uniform(bits, sym, g, g == Granularity::PerGroup ? 10 : 0);
        EncodedMatrix e = quantizeRTN(u, w.data(), rows, cols);
        BitPlaneSpec planesSpec;
        EncodedMatrix b = uniformToBitPlanes(u, e, &planesSpec);
        EXPECT_EQ(describe(planesSpec),
                  "bitplanes" + std::to_string(bits) + " " +
                      describe(u).substr(describe(u).rfind(' ') + 1));
        std::vector<float> scales = readF32(component(e, "scales").bytes);
        float maxScale = *std::max_element(scales.begin(), scales.end());
        std::vector<float> du = dequantize(u, e),
                           db = dequantize(planesSpec, b);
        const float tolerance = (bits + 2) * std::ldexp(maxScale, bits - 24);
        for (size_t i = 0; i < du.size(); ++i) {
          EXPECT_NEAR(du[i], db[i], tolerance) << describe(u) << " at " << i;
          differing += du[i] != db[i];
        }
      }
  // Not a requirement, but the tolerance should matter: some differ.
  EXPECT_GT(differing, 0);
}

//===----------------------------------------------------------------------===//
// Salient
//===----------------------------------------------------------------------===//

SalientSpec handSalient() {
  return salient(1, uniform(8, true, Granularity::PerChannel),
                 binary(false, Granularity::PerTensor));
}

QuantParams handSalientParams() {
  QuantParams p;
  p.channelMap = {-1, 0, -2, -3}; // input 1 salient; 0, 2, 3 rest 0, 1, 2
  p.salientParams = std::make_shared<QuantParams>();
  p.salientParams->scales = {1.0f, 0.5f};
  p.restParams = std::make_shared<QuantParams>();
  p.restParams->scales = {0.25f};
  return p;
}

TEST(Salient, ByHand) {
  SalientSpec s = handSalient();
  QuantParams p = handSalientParams();
  const float w[8] = {0.3f, 127, -0.2f, 0.1f, -0.3f, -2, 0.0f, -0.1f};
  EncodedMatrix e = quantizeWithParams(s, p, w, 2, 4);
  ASSERT_EQ(e.components.size(), 5u);
  EXPECT_EQ(e.components[0].layout.name, "channel_map");
  EXPECT_EQ(component(e, "channel_map").bytes, i32Payload({-1, 0, -2, -3}));
  // Salient column [127, -2] with scales 1, 0.5: 127 + 128, -4 + 128.
  EXPECT_EQ(component(e, "salient.codes").bytes, Bytes({255, 124}));
  EXPECT_EQ(readF32(component(e, "salient.scales").bytes),
            std::vector<float>({1.0f, 0.5f}));
  // Rest rows [0.3, -0.2, 0.1] and [-0.3, 0, -0.1]: bits 101, 010.
  EXPECT_EQ(component(e, "rest.signs").bytes, Bytes({0x05, 0x02}));
  EXPECT_EQ(readF32(component(e, "rest.scales").bytes),
            std::vector<float>({0.25f}));
  EXPECT_EQ(dequantize(s, e), std::vector<float>({0.25f, 127, -0.25f, 0.25f,
                                                  -0.25f, -2, 0.25f, -0.25f}));
}

TEST(Salient, ChannelMapMustBeABijection) {
  SalientSpec s = handSalient();
  const float w[8] = {0};
  QuantParams p = handSalientParams();
  p.channelMap = {-1, 0, -1, -3};
  expectInvalid([&] { quantizeWithParams(s, p, w, 2, 4); },
                "channel_map maps inputs 0 and 2 to the same rest column 0");
  p.channelMap = {-1, 1, -2, -3};
  expectInvalid([&] { quantizeWithParams(s, p, w, 2, 4); },
                "channel_map[1] = 1 names salient column 1, but there are only "
                "1 salient columns");
  p.channelMap = {-1, 0, -2};
  expectInvalid([&] { quantizeWithParams(s, p, w, 2, 4); },
                "params.channelMap has 3 entries, expected 4");
  p = handSalientParams();
  p.restParams.reset();
  expectInvalid([&] { quantizeWithParams(s, p, w, 2, 4); },
                "params.salientParams and params.restParams are required");
  p = handSalientParams();
  p.restParams->scales = {1, 2};
  expectInvalid([&] { quantizeWithParams(s, p, w, 2, 4); },
                "quantizeWithParams(binary per-tensor): params.scales has 2 "
                "entries, expected 1");

  // The same check guards dequantize.
  EncodedMatrix e = quantizeWithParams(s, handSalientParams(), w, 2, 4);
  e.components[0].bytes = i32Payload({-1, 0, -4, -3});
  expectInvalid([&] { dequantize(s, e); },
                "channel_map[2] = -4 names rest column 3, but there are only 3 "
                "rest columns");
}

//===----------------------------------------------------------------------===//
// dequantize validation
//===----------------------------------------------------------------------===//

TEST(Dequantize, RejectsMismatchedComponents) {
  UniformSpec s = uniform(4, false, Granularity::PerChannel);
  const float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const EncodedMatrix good = quantizeRTN(s, w, 2, 4);
  EXPECT_EQ(dequantize(s, good).size(), 8u);

  EncodedMatrix e = good;
  e.components.pop_back();
  expectInvalid([&] { dequantize(s, e); },
                "dequantize(int4 asym per-channel): expected 3 components, got "
                "2");
  e = good;
  std::swap(e.components[1], e.components[2]);
  expectInvalid([&] { dequantize(s, e); },
                "component 1 is 'zeros', expected 'scales'");
  e = good;
  e.components[1].layout.dtype = DType::I32;
  expectInvalid([&] { dequantize(s, e); },
                "component 'scales' has dtype i32, expected f32");
  e = good;
  e.components[0].layout.shape = {2, 3};
  expectInvalid([&] { dequantize(s, e); },
                "component 'codes' has shape [2, 3], expected [2, 2]");
  e = good;
  e.components[0].bytes.pop_back();
  expectInvalid([&] { dequantize(s, e); },
                "component 'codes' has 3 bytes, expected 4");
  e = good;
  e.components[2].bytes[1] = 16;
  expectInvalid([&] { dequantize(s, e); },
                "zeros[1] = 16 is out of range for int4");
  e = good;
  e.cols = 5;
  expectInvalid([&] { dequantize(s, e); },
                "component 'codes' has shape [2, 2], expected [2, 3]");
  e = good;
  e.rows = 0;
  expectInvalid([&] { dequantize(s, e); }, "rows and cols must be positive");
  expectInvalid(
      [&] {
        uniformToBitPlanes(uniform(4, true, Granularity::PerChannel), good,
                           nullptr);
      },
      "uniformToBitPlanes(int4 sym per-channel): expected 2 "
      "components, got 3");
}

} // namespace

//===----------------------------------------------------------------------===//
// Half-precision scales
//===----------------------------------------------------------------------===//

namespace {

TEST(HalfScales, StoredScaleRoundsToHalf) {
  EXPECT_EQ(storedScale(0.1f, ScaleStorage::F32), 0.1f);
  // 0.1 in half: 0x2E66 = 1638 / 16384.
  EXPECT_EQ(storedScale(0.1f, ScaleStorage::F16), 1638.0f / 16384.0f);
  EXPECT_EQ(storedScale(-0.1f, ScaleStorage::F16), -1638.0f / 16384.0f);
  EXPECT_EQ(storedScale(1e6f, ScaleStorage::F16), 65504.0f);
  // A scale below the smallest half subnormal stays positive.
  EXPECT_GT(storedScale(1e-9f, ScaleStorage::F16), 0.0f);
  for (float v : {3.0f, 0.5f, 6.103515625e-05f})
    EXPECT_EQ(storedScale(v, ScaleStorage::F16), v); // representable
}

TEST(HalfScales, LayoutAndBitsPerWeight) {
  UniformSpec u{4, false, Granularity::PerGroup, 32, ScaleStorage::F16};
  std::vector<ComponentLayout> layout = componentLayout(u, 8, 64);
  ASSERT_EQ(layout.size(), 3u);
  EXPECT_EQ(layout[1].name, "scales");
  EXPECT_EQ(layout[1].dtype, DType::F16);
  EXPECT_EQ(layout[1].numBytes(), 8 * 2 * 2);
  // 4 bits of code plus (16 + 8) bits of scale and zero per 32 weights.
  EXPECT_DOUBLE_EQ(bitsPerWeight(u, 8, 64), 4.75);
  MinifloatSpec m{2, 1, MinifloatSpecial::Finite, Granularity::PerGroup, 32,
                  ScaleStorage::F16};
  EXPECT_DOUBLE_EQ(bitsPerWeight(m, 8, 64), 4.5);
  EXPECT_EQ(describe(u), "int4 asym g32 f16-scales");
  EXPECT_EQ(dtypeBytes(DType::F16), 2);
  EXPECT_STREQ(dtypeName(DType::F16), "f16");
}

TEST(HalfScales, CodesAreChosenForTheStoredScale) {
  // With scale 0.1, 0.25 / 0.1 = 2.5 rounds (to even) to 2; the stored
  // half scale is 0.09997..., for which 0.25 is code 3 (2.5006).
  UniformSpec u{4, true, Granularity::PerChannel, 0, ScaleStorage::F16};
  QuantParams params;
  params.scales = {0.1f};
  std::vector<float> w = {0.25f, -0.1f, 0.0f, 0.3f};
  EncodedMatrix encoded = quantizeWithParams(u, params, w.data(), 1, 4);
  std::vector<float> back = dequantize(u, encoded);
  float half = storedScale(0.1f, ScaleStorage::F16);
  EXPECT_EQ(back[0], 3 * half);
  EXPECT_EQ(back[1], -1 * half);
  EXPECT_EQ(back[3], 3 * half);
  // RTN stores half scales, and its dequantized weights are codes times
  // exactly those scales.
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> big(16 * 64);
  for (float &v : big)
    v = normal(rng);
  UniformSpec g{3, true, Granularity::PerGroup, 32, ScaleStorage::F16};
  EncodedMatrix rtn = quantizeRTN(g, big.data(), 16, 64);
  const Component &scales = rtn.components[1];
  ASSERT_EQ(scales.layout.dtype, DType::F16);
  std::vector<float> q = dequantize(g, rtn);
  for (int64_t n = 0; n < 16; ++n)
    for (int64_t j = 0; j < 2; ++j) {
      uint16_t bits;
      std::memcpy(&bits, scales.bytes.data() + 2 * (n * 2 + j), 2);
      float scale = float(Eigen::numext::bit_cast<Eigen::half>(bits));
      for (int64_t k = 32 * j; k < 32 * (j + 1); ++k) {
        float code = q[n * 64 + k] / scale;
        EXPECT_EQ(code, std::round(code)) << n << " " << k;
        EXPECT_LE(std::fabs(big[n * 64 + k] - q[n * 64 + k]),
                  0.5f * scale * 1.0001f + 1e-7f);
      }
    }
}

} // namespace
