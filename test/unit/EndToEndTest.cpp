//===- EndToEndTest.cpp - Quantize, lower, JIT and compare ------*- C++ -*-===//
//
// The end-to-end contract on a 256x512 linear layer: RTN int8
// per-channel, int4 g128 asymmetric and E2M1 g32 weights, fused into
// qnt.matmul, lowered through qnt-cpu-pipeline and run with the JIT, must
// equal x * dequant(W)^T (host numerics, double) within 1e-5 relative and
// stay within the error bound implied by the quantization steps.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/runtime/LinearExample.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

using namespace qnt::runtime;

namespace {

class EndToEnd : public ::testing::TestWithParam<const char *> {
protected:
  static void SetUpTestSuite() { qnt::registerAllPasses(); }
  void SetUp() override {
    llvm::SmallString<128> dir;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("qnt-e2e", dir));
    example.workDir = dir.str().str();
    qnt::registerAllDialects(registry);
  }
  void TearDown() override {
    llvm::sys::fs::remove_directories(example.workDir);
  }
  mlir::DialectRegistry registry;
  LinearExample example; // 8 tokens, 256x512 weight
};

TEST_P(EndToEnd, MatchesDequantizedReferenceAndStepBound) {
  mlir::MLIRContext context(registry);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return mlir::success();
  });
  mlir::FailureOr<SchemeResult> r =
      runLinearScheme(context, example, GetParam());
  ASSERT_TRUE(mlir::succeeded(r)) << diagnostics;
  EXPECT_LE(r->refRelDeviation, 1e-5) << r->encoding;
  EXPECT_LE(r->stepBoundRatio, 1.0) << r->encoding;
  // Quantization must change the weights, else the checks above are vacuous.
  EXPECT_GT(r->weightRelError, 1e-3) << r->encoding;
  EXPECT_GT(r->outputRelError, 1e-3) << r->encoding;
}

INSTANTIATE_TEST_SUITE_P(
    Rtn, EndToEnd,
    ::testing::Values("format=int bits=8 granularity=per-channel symmetric=1",
                      "format=int bits=4 granularity=per-group group-size=128",
                      "format=e2m1 granularity=per-group group-size=32"));

TEST(EndToEndFloat, BaselineMatchesDoubleProduct) {
  qnt::registerAllPasses();
  mlir::DialectRegistry registry;
  qnt::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  LinearExample example;
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("qnt-e2e", dir));
  example.workDir = dir.str().str();
  mlir::FailureOr<SchemeResult> r = runLinearScheme(context, example, "");
  llvm::sys::fs::remove_directories(example.workDir);
  ASSERT_TRUE(mlir::succeeded(r));
  EXPECT_EQ(r->weightRelError, 0.0);
  EXPECT_LE(r->outputRelError, 1e-5);
}

} // namespace
