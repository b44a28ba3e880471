//===- DequantHookTest.cpp - IR dequantization vs host numerics -*- C++ -*-===//
//
// For every encoding, random storage components (random codes, signs,
// planes, scales; valid zero points, code indices and channel maps) are
// dequantized twice: on the host by lib/numerics, and by the IR that
// EncodingAttrInterface::emitDequantElement generates, lowered through
// qnt-cpu-pipeline and run with the JIT. The two are independent
// implementations of the layouts in docs/PackedLayouts.md and must agree
// bit for bit (NaN codes of OCP formats: both NaN).
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/runtime/CpuJit.h"
#include "support/ComponentConstants.h"
#include "support/EncodingSamples.h"

#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

using namespace mlir;
namespace nx = ::qnt::numerics;

namespace {

constexpr int64_t kRows = 5;
constexpr int64_t kCols = 64;

/// func @dequant() -> tensor<kRows x kCols x f32> returning qnt.dequant of
/// constant components.
OwningOpRef<ModuleOp> buildModule(MLIRContext &ctx, const nx::EncodingSpec &spec,
                                  const nx::EncodedMatrix &m) {
  OpBuilder b(&ctx);
  Location loc = b.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  auto resultType = RankedTensorType::get({kRows, kCols}, b.getF32Type());
  auto func = func::FuncOp::create(b, loc, "dequant",
                                   b.getFunctionType({}, {resultType}));
  b.setInsertionPointToStart(func.addEntryBlock());
  SmallVector<Value> components = ::qnt::testing::componentConstants(b, m);
  Value w = mlir::qnt::DequantOp::create(b, loc, resultType,
                                   mlir::qnt::encodingFromSpec(&ctx, spec),
                                   components);
  func::ReturnOp::create(b, loc, w);
  return module;
}

class DequantHook : public ::testing::TestWithParam<nx::EncodingSpec> {};

TEST_P(DequantHook, JitMatchesHostBitForBit) {
  const nx::EncodingSpec &spec = GetParam();
  ASSERT_EQ(nx::verifySpec(spec, kRows, kCols), "");
  ::qnt::registerAllPasses();
  DialectRegistry registry;
  ::qnt::registerAllDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });

  for (unsigned seed : {1u, 2u}) {
    nx::EncodedMatrix encoded =
        ::qnt::testing::randomEncoded(spec, kRows, kCols, seed);
    std::vector<float> host = nx::dequantize(spec, encoded);
    OwningOpRef<ModuleOp> module = buildModule(ctx, spec, encoded);
    ASSERT_TRUE(succeeded(module->verify())) << diagnostics;
    auto compiled = ::qnt::runtime::CompiledFunction::compile(*module, "");
    ASSERT_TRUE(succeeded(compiled)) << diagnostics;
    std::vector<::qnt::runtime::HostTensor> results;
    ASSERT_TRUE(succeeded(compiled->bindParams(
        mlir::qnt::ParamStore(), module->getLoc())));
    ASSERT_TRUE(succeeded(compiled->call({}, results, module->getLoc())))
        << diagnostics;
    const float *jit = results[0].f32();
    int mismatches = 0;
    for (int64_t i = 0; i < kRows * kCols; ++i) {
      bool same = std::isnan(host[i]) ? std::isnan(jit[i])
                                      : std::memcmp(&host[i], &jit[i], 4) == 0;
      if (!same && ++mismatches <= 5)
        ADD_FAILURE() << nx::describe(spec) << " element (" << i / kCols
                      << ", " << i % kCols << "): host " << host[i]
                      << ", jit " << jit[i];
    }
    EXPECT_EQ(mismatches, 0) << nx::describe(spec) << " seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(AllEncodings, DequantHook,
                         ::testing::ValuesIn(::qnt::testing::sampleEncodings()));

} // namespace
