//===- CodebookLutTest.cpp - Tiled codebook codes and the LUT kernel ------===//
//
// Independent checks of the tiled codebook layout and of the lookup-table
// kernel of qnt-lower-matmul-cpu (activations=int8):
//  - tiled codes, placed here by the documented 5-D index, dequantize (host)
//    to the same floats bit for bit as the row-major codes, and quantizing
//    with fixed parameters writes the same codes in that order;
//  - the kernel equals a float64 evaluation of the documented arithmetic
//    (f32 tables by fused multiply-adds in t order, int8 per tile of groups
//    with round-half-even, exact integer sums, then the scales), within the
//    f32 rounding of the scaling; it is within the table rounding bound of
//    the exact product; shapes have ragged row and group tiles and codes of
//    fewer than 8 bits; with more rows than lut-max-rows, the f32 kernel
//    runs instead.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/runtime/CpuJit.h"
#include "support/QntTestContext.h"

#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"
#include "passes/lowering/CodebookLutMatmul.h"
#include "passes/lowering/Int8Matmul.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace mlir;
namespace nx = ::qnt::numerics;
namespace rt = ::qnt::runtime;

namespace {

nx::CodebookSpec tiledSpec(int bits, int64_t tileRows, int64_t tileGroups) {
  return nx::CodebookSpec{2, bits, 8, tileRows, tileGroups};
}

/// The tiled copy of row-major codes [N, J, M] (one byte each), by the
/// layout's definition: [ceil(J/G), ceil(N/R), G, R, M], padding zero.
std::vector<uint8_t> tileCodes(const std::vector<uint8_t> &rowMajor,
                               const nx::CodebookSpec &tiled, int64_t n,
                               int64_t k) {
  int64_t j = k / tiled.groupSize, m = tiled.numCodebooks;
  int64_t r = tiled.tileRows, g = tiled.tileGroups;
  int64_t groupTiles = (j + g - 1) / g, rowTiles = (n + r - 1) / r;
  std::vector<uint8_t> out(groupTiles * rowTiles * g * r * m, 0);
  for (int64_t row = 0; row < n; ++row)
    for (int64_t group = 0; group < j; ++group)
      for (int64_t book = 0; book < m; ++book) {
        int64_t at = ((((group / g) * rowTiles + row / r) * g + group % g) * r +
                      row % r) *
                         m +
                     book;
        out[at] = rowMajor[(row * j + group) * m + book];
      }
  return out;
}

TEST(CodebookTiles, TiledCodesDequantizeAsRowMajor) {
  for (auto [n, k, r, g] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{
                                70, 296, 32, 16},
                            {64, 128, 64, 4},
                            {5, 24, 128, 2}}) {
    nx::CodebookSpec rowMajor{2, 8, 8};
    nx::CodebookSpec tiled = tiledSpec(8, r, g);
    nx::EncodedMatrix plain = nx::randomEncoded(rowMajor, n, k, 5);
    nx::EncodedMatrix tiledMatrix = plain;
    tiledMatrix.components[0].bytes =
        tileCodes(plain.components[0].bytes, tiled, n, k);
    tiledMatrix.components[0].layout = nx::componentLayout(tiled, n, k)[0];
    ASSERT_EQ(tiledMatrix.components[0].layout.numElements(),
              int64_t(tiledMatrix.components[0].bytes.size()));
    std::vector<float> want = nx::dequantize(rowMajor, plain);
    std::vector<float> got = nx::dequantize(tiled, tiledMatrix);
    ASSERT_EQ(want.size(), got.size());
    EXPECT_EQ(std::memcmp(want.data(), got.data(), 4 * want.size()), 0)
        << n << "x" << k << " tiles " << r << "x" << g;

    // Quantizing with the same parameters writes the same codes, tiled.
    nx::QuantParams params;
    params.scales.assign(n, 0.5f);
    std::mt19937 rng(9);
    std::normal_distribution<float> normal;
    params.codebooks.resize(2 * 256 * 8);
    for (float &v : params.codebooks)
      v = normal(rng);
    std::vector<float> w(n * k);
    for (float &v : w)
      v = normal(rng);
    nx::EncodedMatrix a = nx::quantizeWithParams(rowMajor, params, w.data(), n, k);
    nx::EncodedMatrix b = nx::quantizeWithParams(tiled, params, w.data(), n, k);
    EXPECT_EQ(tileCodes(a.components[0].bytes, tiled, n, k),
              b.components[0].bytes);
  }
}

TEST(CodebookTiles, SpecAndAttributeRejectHalfTiles) {
  nx::CodebookSpec s{2, 8, 8, 32, 0};
  EXPECT_NE(nx::verifySpec(s, 64, 64), "");
  s.tileGroups = 4;
  EXPECT_EQ(nx::verifySpec(s, 64, 64), "");
}

class CodebookLutTest : public ::testing::Test,
                        protected ::qnt::testing::QntTestContext {
protected:
  /// `@matmul` (QntTestContext.h) lowered with `options`; `lutCalls` counts
  /// the byte permutes left in the IR.
  FailureOr<std::unique_ptr<rt::CompiledModule>>
  compile(const nx::EncodingSpec &spec, const nx::EncodedMatrix &encoded,
          int64_t n, int64_t k, const std::string &options, int &lutCalls) {
    OwningOpRef<ModuleOp> module =
        ::qnt::testing::matmulModule(ctx, spec, encoded, n, k);
    std::string pipeline =
        "builtin.module(func.func(qnt-lower-matmul-cpu{" + options + "}))";
    if (failed(mlir::qnt::runPassPipeline(*module, pipeline)))
      return failure();
    lutCalls = 0;
    module->walk([&](mlir::qnt::IntrinsicOp op) {
      lutCalls += op.getName().contains("vpermi2var");
    });
    return rt::CompiledModule::compile(*module, {"matmul"});
  }
};

/// What the kernel documents, in float64 where it is exact: y[m, n] and the
/// bound of its table rounding (half a table step per lookup).
struct LutReference {
  std::vector<double> y, roundingBound, magnitude;
};

LutReference lutReference(const nx::CodebookSpec &spec,
                          const nx::EncodedMatrix &rowMajor,
                          const std::vector<float> &x, int64_t m, int64_t n,
                          int64_t k) {
  int64_t g = spec.groupSize, groups = k / g, entries = int64_t(1)
                                                          << spec.codeBits;
  std::vector<float> books(rowMajor.components[1].bytes.size() / 4);
  std::memcpy(books.data(), rowMajor.components[1].bytes.data(),
              4 * books.size());
  std::vector<float> rowScales(n);
  std::memcpy(rowScales.data(), rowMajor.components[2].bytes.data(), 4 * n);
  const std::vector<uint8_t> &codes = rowMajor.components[0].bytes;
  LutReference ref;
  ref.y.assign(m * n, 0.0);
  ref.roundingBound.assign(m * n, 0.0);
  ref.magnitude.assign(m * n, 0.0);
  for (int64_t row = 0; row < m; ++row)
    for (int64_t tile0 = 0; tile0 < groups; tile0 += spec.tileGroups) {
      int64_t tile1 = std::min(groups, tile0 + spec.tileGroups);
      // f32 tables of the tile, t in order with fused multiply-adds.
      std::vector<float> table((tile1 - tile0) * 2 * entries);
      float amax = 0;
      for (int64_t j = tile0; j < tile1; ++j)
        for (int64_t c = 0; c < 2; ++c)
          for (int64_t e = 0; e < entries; ++e) {
            float sum = 0;
            for (int64_t t = 0; t < g; ++t)
              sum = std::fma(x[row * k + j * g + t],
                             books[(c * entries + e) * g + t], sum);
            table[((j - tile0) * 2 + c) * entries + e] = sum;
            amax = std::max(amax, std::abs(sum));
          }
      float scale = amax / 127.0f;
      float inverse = amax > 0 ? 127.0f / amax : 0.0f;
      for (int64_t o = 0; o < n; ++o) {
        int64_t isum = 0;
        double exact = 0;
        for (int64_t j = tile0; j < tile1; ++j)
          for (int64_t c = 0; c < 2; ++c) {
            float entry =
                table[((j - tile0) * 2 + c) * entries +
                      codes[(o * groups + j) * 2 + c]];
            isum += int64_t(std::nearbyint(entry * inverse));
            exact += entry;
          }
        ref.y[row * n + o] += double(isum) * scale * rowScales[o];
        ref.magnitude[row * n + o] += std::abs(exact * rowScales[o]);
        ref.roundingBound[row * n + o] +=
            2 * (tile1 - tile0) * 0.5 * scale * std::abs(rowScales[o]) * 1.0001;
      }
    }
  return ref;
}

TEST_F(CodebookLutTest, KernelEqualsDocumentedArithmetic) {
  if (!mlir::qnt::hostHasVnni() || !mlir::qnt::hostHasVbmi())
    GTEST_SKIP() << "host without AVX512-VNNI and -VBMI: the lookup-table "
                    "kernel is not used there";
  struct Case {
    int bits;
    int64_t n, k, tileRows, tileGroups;
  };
  for (Case c : {Case{8, 150, 296, 64, 16}, Case{8, 256, 256, 128, 16},
                 Case{6, 40, 64, 32, 3}, Case{8, 33, 512, 32, 128}}) {
    nx::CodebookSpec rowMajor{2, c.bits, 8};
    nx::CodebookSpec tiled = tiledSpec(c.bits, c.tileRows, c.tileGroups);
    std::string what = nx::describe(tiled) + " " + std::to_string(c.n) + "x" +
                       std::to_string(c.k);
    nx::EncodedMatrix plain = nx::randomEncoded(rowMajor, c.n, c.k, 13);
    nx::EncodedMatrix encoded = plain;
    encoded.components[0].bytes =
        tileCodes(plain.components[0].bytes, tiled, c.n, c.k);
    encoded.components[0].layout = nx::componentLayout(tiled, c.n, c.k)[0];
    std::vector<float> w = nx::dequantize(rowMajor, plain);
    // Threads on the first shape only (each compile takes seconds).
    std::vector<std::string> optionSets = {"activations=int8 threads=1"};
    if (c.n == 150) {
      optionSets.push_back("activations=int8 threads=2 parallel-weights=1");
      // Prefetching codes (clamped to the last byte) changes no result.
      optionSets.push_back("activations=int8 threads=1 prefetch=4096");
    }
    for (const std::string &options : optionSets) {
      int lutCalls = 0;
      auto compiled = compile(tiled, encoded, c.n, c.k, options, lutCalls);
      ASSERT_TRUE(succeeded(compiled)) << what << "\n" << diagnostics;
      EXPECT_GT(lutCalls, 0) << what << ": no lookup-table kernel";
      for (int64_t m : {1, 3, 6}) {
        std::mt19937 rng{unsigned(m + 5)};
        std::normal_distribution<float> normal;
        std::vector<float> xs(m * c.k);
        for (float &v : xs)
          v = normal(rng);
        auto xType =
            RankedTensorType::get({m, c.k}, Builder(&ctx).getF32Type());
        rt::HostTensor x(xType);
        std::copy(xs.begin(), xs.end(), x.f32());
        auto yType =
            RankedTensorType::get({m, c.n}, Builder(&ctx).getF32Type());
        std::vector<rt::HostTensor> results;
        ASSERT_TRUE(succeeded((*compiled)->call(
            "matmul", {x}, results, UnknownLoc::get(&ctx), {yType})))
            << diagnostics;
        LutReference ref = lutReference(tiled, plain, xs, m, c.n, c.k);
        // m = 6 is above lut-max-rows (4): the f32 kernel, near exact.
        bool lut = m <= 4;
        int mismatches = 0;
        for (int64_t r = 0; r < m; ++r)
          for (int64_t o = 0; o < c.n; ++o) {
            double exact = 0, magnitude = 0;
            for (int64_t i = 0; i < c.k; ++i) {
              exact += double(xs[r * c.k + i]) * w[o * c.k + i];
              magnitude += std::abs(double(xs[r * c.k + i]) * w[o * c.k + i]);
            }
            float got = results[0].f32()[r * c.n + o];
            bool ok;
            if (lut) {
              // The documented arithmetic up to f32 scaling roundings...
              ok = std::abs(got - ref.y[r * c.n + o]) <=
                   1e-5 * ref.magnitude[r * c.n + o] + 1e-30;
              // ... and within the table rounding of the exact product.
              ok &= std::abs(got - exact) <=
                    ref.roundingBound[r * c.n + o] + 1e-5 * magnitude;
            } else {
              ok = std::abs(got - exact) <= 1e-5 * magnitude + 1e-30;
            }
            if (!ok && ++mismatches <= 5)
              ADD_FAILURE() << what << " " << options << " M " << m << " y("
                            << r << ", " << o << "): " << got << ", reference "
                            << ref.y[r * c.n + o] << ", exact " << exact;
          }
        EXPECT_EQ(mismatches, 0) << what << " " << options << " M " << m;
      }
    }
  }
}

TEST(CodebookLutLimits, EncodingsTheKernelDoesNotTake) {
  MLIRContext ctx;
  ctx.loadDialect<mlir::qnt::QntDialect>();
  auto attr = [&](int64_t m, int64_t bits, int64_t r, int64_t g) {
    return mlir::qnt::CodebookEncodingAttr::get(&ctx, m, bits, 8, r, g,
                                                 mlir::qnt::ScaleType::f32);
  };
  EXPECT_EQ(mlir::qnt::codebookLutLimitation(attr(2, 8, 128, 16)), "");
  EXPECT_EQ(mlir::qnt::codebookLutLimitation(attr(2, 4, 32, 128)), "");
  EXPECT_NE(mlir::qnt::codebookLutLimitation(attr(2, 8, 0, 0)), "");
  EXPECT_NE(mlir::qnt::codebookLutLimitation(attr(1, 8, 128, 16)), "");
  EXPECT_NE(mlir::qnt::codebookLutLimitation(attr(2, 12, 128, 16)), "");
  EXPECT_NE(mlir::qnt::codebookLutLimitation(attr(2, 8, 48, 16)), "");
  EXPECT_NE(mlir::qnt::codebookLutLimitation(attr(2, 8, 256, 16)), "");
  EXPECT_NE(mlir::qnt::codebookLutLimitation(attr(2, 8, 128, 129)), "");
  EXPECT_EQ(mlir::qnt::codebookLutLimitation(mlir::qnt::CodebookEncodingAttr::get(
                &ctx, 2, 8, 8, 128, 16, mlir::qnt::ScaleType::f16)),
            "lookup tables need f32 row scales");
}

} // namespace
