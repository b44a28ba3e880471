//===- VectorKernelTest.cpp - Vector dequantization and matmul -*- C++ -*-===//
//
// The CPU vector path against independent computations, for every encoding:
//  - EncodingAttrInterface::emitDequantVector, run by the JIT over every
//    aligned run of a row, equals the host dequantization (the layouts of
//    docs/PackedLayouts.md, implemented independently in lib/numerics) bit
//    for bit, at widths that do and do not divide the byte, group and row;
//  - the vector matmul kernel of qnt-lower-matmul-cpu equals a float64
//    product with the host-dequantized weight, for row counts and K that
//    exercise every loop of the kernel (row tiles and their remainder, the
//    unrolled k loop, single runs, the scalar tail, weight-row tiles and
//    their remainder, tiles on OpenMP threads), with dynamic M.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/runtime/CpuJit.h"
#include "support/QntTestContext.h"
#include "support/EncodingSamples.h"

#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
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

constexpr int64_t kRows = 5;
constexpr int64_t kCols = 64;

/// Columns that no vector width or scale group divides: the last group of
/// each row is ragged (13 of 16, 29 of 32 elements).
constexpr int64_t kRaggedCols = 61;

class VectorKernelTest : public ::testing::TestWithParam<nx::EncodingSpec>,
                         protected ::qnt::testing::QntTestContext {
protected:
  /// Runs of `width` elements dequantized by emitDequantVector, for every
  /// width, equal bit for bit to the host dequantization of a kRows x `k`
  /// matrix (its first runs * width columns).
  void expectVectorHookEqualsHost(const nx::EncodingSpec &spec, int64_t k);
};

void VectorKernelTest::expectVectorHookEqualsHost(const nx::EncodingSpec &spec,
                                                  int64_t k) {
  auto encoding = mlir::qnt::encodingFromSpec(&ctx, spec);
  for (int64_t width : {1, 3, 8, 16, 32}) {
    nx::EncodedMatrix encoded =
        ::qnt::testing::randomEncoded(spec, kRows, k, unsigned(width));
    std::vector<float> host = nx::dequantize(spec, encoded);
    int64_t runs = k / width, cols = runs * width;

    OpBuilder b(&ctx);
    Location loc = b.getUnknownLoc();
    OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
    b.setInsertionPointToEnd(module->getBody());
    auto resultType = RankedTensorType::get({kRows, cols}, b.getF32Type());
    auto func = func::FuncOp::create(b, loc, "runs",
                                     b.getFunctionType({}, {resultType}));
    b.setInsertionPointToStart(func.addEntryBlock());
    SmallVector<Value> components =
        ::qnt::testing::componentConstants(b, encoded);
    auto load = [&](OpBuilder &nb, Location l, unsigned i,
                    ValueRange indices) -> Value {
      return tensor::ExtractOp::create(nb, l, components[i], indices);
    };
    auto loadVector = [&](OpBuilder &nb, Location l, unsigned i,
                          ValueRange indices, int64_t count) -> Value {
      Type element =
          cast<RankedTensorType>(components[i].getType()).getElementType();
      Value pad = arith::ConstantOp::create(nb, l, nb.getZeroAttr(element));
      return vector::TransferReadOp::create(
          nb, l, VectorType::get({count}, element), components[i], indices,
          pad, ArrayRef<bool>{true});
    };
    auto index = [&](OpBuilder &nb, int64_t v) -> Value {
      return arith::ConstantIndexOp::create(nb, loc, v);
    };
    Value empty = tensor::EmptyOp::create(b, loc, resultType.getShape(),
                                          b.getF32Type());
    auto rows = scf::ForOp::create(
        b, loc, index(b, 0), index(b, kRows), index(b, 1), ValueRange{empty},
        [&](OpBuilder &rb, Location, Value row, ValueRange rowCarried) {
          auto cols = scf::ForOp::create(
              rb, loc, index(rb, 0), index(rb, runs), index(rb, 1),
              rowCarried,
              [&](OpBuilder &cb, Location, Value run, ValueRange carried) {
                Value col = arith::MulIOp::create(cb, loc, run,
                                                  index(cb, width));
                Value v = encoding.emitDequantVector(
                    cb, loc, load, loadVector, row, col, width, kRows, k);
                Value written = vector::TransferWriteOp::create(
                                    cb, loc, v, carried[0],
                                    ValueRange{row, col}, ArrayRef<bool>{true})
                                    .getResult();
                scf::YieldOp::create(cb, loc, written);
              });
          scf::YieldOp::create(rb, loc, cols.getResult(0));
        });
    func::ReturnOp::create(b, loc, rows.getResult(0));
    ASSERT_TRUE(succeeded(module->verify())) << diagnostics;

    auto compiled = rt::CompiledFunction::compile(*module, "runs");
    ASSERT_TRUE(succeeded(compiled)) << diagnostics;
    std::vector<rt::HostTensor> results;
    ASSERT_TRUE(succeeded(compiled->call({}, results, loc))) << diagnostics;
    const float *jit = results[0].f32();
    int mismatches = 0;
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float want = host[r * k + c], got = jit[r * cols + c];
        bool same = std::isnan(want) ? std::isnan(got)
                                     : std::memcmp(&want, &got, 4) == 0;
        if (!same && ++mismatches <= 5)
          ADD_FAILURE() << nx::describe(spec) << " width " << width
                        << " element (" << r << ", " << c << "): host "
                        << want << ", vector hook " << got;
      }
    EXPECT_EQ(mismatches, 0) << nx::describe(spec) << " width " << width
                             << " K " << k;
  }
}

TEST_P(VectorKernelTest, VectorHookEqualsHostBitForBit) {
  expectVectorHookEqualsHost(GetParam(), kCols);
}

TEST_P(VectorKernelTest, VectorHookEqualsHostWithRaggedGroups) {
  const nx::EncodingSpec &spec = GetParam();
  if (std::string why = nx::verifySpec(spec, kRows, kRaggedCols); !why.empty())
    GTEST_SKIP() << nx::describe(spec) << " at K " << kRaggedCols << ": "
                 << why;
  expectVectorHookEqualsHost(spec, kRaggedCols);
}

/// `func @matmul(%x: tensor<?xKxf32>) -> tensor<?xNxf32>` as qnt.matmul of
/// constant components, lowered by qnt-lower-matmul-cpu with `options`.
FailureOr<std::unique_ptr<rt::CompiledModule>>
compileMatmul(MLIRContext &ctx, const nx::EncodingSpec &spec,
              const nx::EncodedMatrix &encoded, int64_t n, int64_t k,
              llvm::StringRef options) {
  OwningOpRef<ModuleOp> module =
      ::qnt::testing::matmulModule(ctx, spec, encoded, n, k);
  std::string pipeline =
      ("builtin.module(func.func(qnt-lower-matmul-cpu{" + options + "}))").str();
  if (failed(mlir::qnt::runPassPipeline(*module, pipeline)))
    return failure();
  return rt::CompiledModule::compile(*module, {"matmul"});
}

TEST_P(VectorKernelTest, VectorMatmulEqualsFloat64Product) {
  const nx::EncodingSpec &spec = GetParam();
  struct Case {
    int64_t n, k;
    const char *options;
  };
  // 64 = 24 + 24 (unrolled) + 8 + 8 (single runs); 61 = 32 + 16 + 13
  // scalar columns (only where the encoding stores 61 columns). Weight
  // tiles of 4, 3 and 2 rows leave a remainder of single rows; the last
  // case splits the tiles over 2 OpenMP threads.
  for (Case c :
       {Case{kRows, kCols, "vector-width=8 unroll=3 row-tile=4 col-tile=4"},
        Case{7, 61, "vector-width=16 unroll=2 row-tile=2 col-tile=3"},
        Case{kRows, kCols,
             "vector-width=16 col-tile=2 threads=2 parallel-weights=1"}}) {
    if (!nx::verifySpec(spec, c.n, c.k).empty())
      continue;
    nx::EncodedMatrix encoded =
        ::qnt::testing::randomEncoded(spec, c.n, c.k, 3);
    std::vector<float> w = nx::dequantize(spec, encoded);
    auto compiled = compileMatmul(ctx, spec, encoded, c.n, c.k, c.options);
    ASSERT_TRUE(succeeded(compiled)) << diagnostics;
    for (int64_t m : {1, 3, 6}) {
      auto xType = RankedTensorType::get({m, c.k}, Builder(&ctx).getF32Type());
      rt::HostTensor x(xType);
      std::mt19937 rng{unsigned(m)};
      std::normal_distribution<float> normal;
      for (int64_t i = 0; i < m * c.k; ++i)
        x.f32()[i] = normal(rng);
      // The result's token count is the input's.
      auto yType = RankedTensorType::get({m, c.n}, Builder(&ctx).getF32Type());
      std::vector<rt::HostTensor> results;
      ASSERT_TRUE(succeeded((*compiled)->call(
          "matmul", {x}, results, UnknownLoc::get(&ctx), {yType})))
          << diagnostics;
      int mismatches = 0;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t o = 0; o < c.n; ++o) {
          double want = 0, magnitude = 0;
          for (int64_t i = 0; i < c.k; ++i) {
            double term = double(x.f32()[r * c.k + i]) * w[o * c.k + i];
            want += term;
            magnitude += std::abs(term);
          }
          float got = results[0].f32()[r * c.n + o];
          if (!std::isfinite(want)) {
            // NaN or Inf weights (OCP codes) propagate as in any product.
            if (std::isfinite(got) && ++mismatches <= 5)
              ADD_FAILURE() << "finite " << got << " for a non-finite product";
            continue;
          }
          // f32 accumulation in any order: |error| <= K * eps * sum |terms|.
          double tolerance = 1e-6 * c.k * magnitude + 1e-30;
          if (!(std::abs(got - want) <= tolerance) && ++mismatches <= 5)
            ADD_FAILURE() << nx::describe(spec) << " " << c.options << " M "
                          << m << " y(" << r << ", " << o << "): " << got
                          << ", float64 " << want;
        }
      EXPECT_EQ(mismatches, 0) << nx::describe(spec) << " " << c.options
                               << " M " << m;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllEncodings, VectorKernelTest,
                         ::testing::ValuesIn(::qnt::testing::sampleEncodings()));

} // namespace
