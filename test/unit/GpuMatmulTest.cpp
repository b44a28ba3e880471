//===- GpuMatmulTest.cpp - Fused GPU matmul kernels vs the host -*- C++ -*-===//
//
// The kernels of qnt-lower-matmul-gpu, compiled through the device half of
// qnt-gpu-pipeline, against an independent host computation: lib/numerics
// dequantizes the same storage and the product is summed in double.
//
// Compilation (ptxas) runs wherever the CUDA toolkit was found. The launch
// tests need a GPU and a driver; elsewhere they are skipped with the
// driver's message. Every encoding is run with f32 (FMA GEMM), f16 and bf16
// (tensor-core GEMM) activations and with M = 1, 3, 16 (GEMV variants),
// 17 and 70 (GEMM); N = 72 and K = 224 or 200 are not multiples of the
// tiles, and K = 224 is not a multiple of a GEMV warp step (256 inputs).
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/runtime/GpuMatmul.h"
#include "support/EncodingSamples.h"

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/APFloat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace mlir;
namespace nx = ::qnt::numerics;
namespace cuda = ::qnt::cuda;
using ::qnt::runtime::GpuMatmul;
using ::qnt::runtime::GpuMatmulProblem;
using ::qnt::runtime::GpuMatmulProgram;

namespace {

constexpr int64_t kN = 72;

/// K for `spec`: a multiple of every group size (16, 32) where groups
/// exist, else 200 (not a multiple of the 16-wide mma k-step).
int64_t columnsFor(const nx::EncodingSpec &spec) {
  return nx::verifySpec(spec, kN, 200).empty() ? 200 : 224;
}

const llvm::fltSemantics &semanticsOf(Type type) {
  if (type.isF16())
    return llvm::APFloat::IEEEhalf();
  if (type.isBF16())
    return llvm::APFloat::BFloat();
  return llvm::APFloat::IEEEsingle();
}

/// `v` rounded to `type` (to nearest, ties to even), as a float.
float roundTo(float v, Type type) {
  llvm::APFloat value(v);
  bool lost;
  value.convert(semanticsOf(type), llvm::APFloat::rmNearestTiesToEven, &lost);
  value.convert(llvm::APFloat::IEEEsingle(),
                llvm::APFloat::rmNearestTiesToEven, &lost);
  return value.convertToFloat();
}

/// Little-endian bytes of `values` stored as `type`.
std::vector<uint8_t> encodeAs(const std::vector<float> &values, Type type) {
  int64_t width = ::qnt::runtime::elementBytes(type);
  std::vector<uint8_t> bytes(values.size() * width);
  for (size_t i = 0; i < values.size(); ++i) {
    llvm::APFloat value(values[i]);
    bool lost;
    value.convert(semanticsOf(type), llvm::APFloat::rmNearestTiesToEven,
                  &lost);
    uint64_t bits = value.bitcastToAPInt().getZExtValue();
    std::memcpy(bytes.data() + i * width, &bits, width);
  }
  return bytes;
}

float decodeFrom(const uint8_t *bytes, Type type) {
  if (type.isF32()) {
    float v;
    std::memcpy(&v, bytes, 4);
    return v;
  }
  uint16_t bits;
  std::memcpy(&bits, bytes, 2);
  llvm::APFloat value(semanticsOf(type), llvm::APInt(16, bits));
  bool lost;
  value.convert(llvm::APFloat::IEEEsingle(),
                llvm::APFloat::rmNearestTiesToEven, &lost);
  return value.convertToFloat();
}

/// Random storage whose dequantized values are all finite (OCP codes that
/// mean NaN or Inf would poison every sum they enter).
nx::EncodedMatrix finiteEncoded(const nx::EncodingSpec &spec, int64_t k,
                                unsigned seed) {
  nx::EncodedMatrix encoded = ::qnt::testing::randomEncoded(spec, kN, k, seed);
  if (const auto *mf = std::get_if<nx::MinifloatSpec>(&spec))
    if (mf->special == nx::MinifloatSpecial::Ocp)
      for (uint8_t &code : encoded.components.front().bytes)
        code &= 0xBF; // exponent MSB cleared: never the top exponent
  return encoded;
}

struct Context {
  DialectRegistry registry;
  std::unique_ptr<MLIRContext> ctx;
  std::string diagnostics;
  std::unique_ptr<ScopedDiagnosticHandler> handler;

  Context() {
    ::qnt::registerAllPasses();
    ::qnt::registerAllDialects(registry);
    ctx = std::make_unique<MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
    handler = std::make_unique<ScopedDiagnosticHandler>(
        ctx.get(), [this](Diagnostic &d) {
          diagnostics += d.str() + "\n";
          return success();
        });
  }
};

bool haveToolkit() {
  return !mlir::qnt::getDefaultCudaToolkitPath().empty();
}

TEST(GpuMatmulCompile, EmitsCubinsForSm80AndSm90) {
  if (!haveToolkit())
    GTEST_SKIP() << "no CUDA toolkit (ptxas) was found at configure time";
  Context c;
  Builder b(c.ctx.get());
  // f32 scales, and f16 scales (widened in the kernel).
  for (nx::EncodingSpec spec :
       {nx::EncodingSpec(
            nx::UniformSpec{4, false, nx::Granularity::PerGroup, 128}),
        nx::EncodingSpec(nx::UniformSpec{4, false, nx::Granularity::PerGroup,
                                         32, nx::ScaleStorage::F16})}) {
    GpuMatmulProblem problem{mlir::qnt::encodingFromSpec(c.ctx.get(), spec),
                             256, 512, b.getF16Type(), b.getF16Type()};
    for (const char *chip : {"sm_80", "sm_90"}) {
      auto program =
          GpuMatmulProgram::compile(problem, chip, b.getUnknownLoc());
      ASSERT_TRUE(succeeded(program)) << c.diagnostics;
      // Five GEMV row variants and the GEMM, in one ELF image.
      EXPECT_EQ(program->kernels().size(), 6u);
      ASSERT_GT(program->image().size(), 4u);
      EXPECT_EQ(program->image().substr(0, 4), "\x7f" "ELF") << chip;
      for (size_t i = 0; i < program->kernels().size(); ++i)
        EXPECT_NE(program->image().find(GpuMatmulProgram::kernelName(i)),
                  std::string::npos);
    }
  }
}

TEST(GpuMatmulCompile, RejectsInvalidOptions) {
  Context c;
  Builder b(c.ctx.get());
  nx::EncodingSpec spec = nx::UniformSpec{8, true, nx::Granularity::PerChannel,
                                          0};
  GpuMatmulProblem problem{mlir::qnt::encodingFromSpec(c.ctx.get(), spec), 8,
                           64, b.getF32Type(), b.getF32Type()};
  problem.options.gemmTileN = 48;
  EXPECT_TRUE(failed(
      GpuMatmulProgram::compile(problem, "sm_80", b.getUnknownLoc(), "isa")));
  EXPECT_NE(c.diagnostics.find("gemm-tile-n must be a multiple of 32"),
            std::string::npos)
      << c.diagnostics;
}

/// Kernel selection by M, independent of a device.
TEST(GpuMatmulCompile, PicksTheSmallestGemvHoldingM) {
  Context c;
  Builder b(c.ctx.get());
  nx::EncodingSpec spec = nx::UniformSpec{8, true, nx::Granularity::PerChannel,
                                          0};
  auto specs = mlir::qnt::selectGpuMatmulKernels(
      mlir::qnt::encodingFromSpec(c.ctx.get(), spec), ShapedType::kDynamic,
      8, 64, b.getF16Type(), b.getF16Type(), mlir::qnt::GpuMatmulOptions());
  ASSERT_EQ(specs.size(), 6u);
  auto rowsFor = [&](int64_t m) {
    const auto &s = mlir::qnt::pickGpuMatmulKernel(specs, m);
    return s.kind == mlir::qnt::GpuMatmulKind::Gemm ? -1 : s.gemvRows;
  };
  EXPECT_EQ(rowsFor(1), 1);
  EXPECT_EQ(rowsFor(3), 4);
  EXPECT_EQ(rowsFor(9), 16);
  EXPECT_EQ(rowsFor(16), 16);
  EXPECT_EQ(rowsFor(17), -1);
  EXPECT_EQ(specs[0].gridSize(5)[1], 5);  // R = 1: one block row per row
  EXPECT_EQ(specs[5].gridSize(65)[1], 2); // GEMM: 64-row tiles
  EXPECT_EQ(specs[5].gridSize(65)[0], 1); // N = 8 fits one 64-wide tile
}

struct Case {
  nx::EncodingSpec spec;
  int activation; // 0 f32, 1 f16, 2 bf16
};

class GpuMatmulRun : public ::testing::TestWithParam<Case> {};

TEST_P(GpuMatmulRun, MatchesHostDequantization) {
  llvm::Expected<cuda::Device &> device = cuda::Device::get();
  if (!device)
    GTEST_SKIP() << "no CUDA driver/device: "
                 << llvm::toString(device.takeError());
  if (!haveToolkit())
    GTEST_SKIP() << "no CUDA toolkit (ptxas) was found at configure time";

  Context c;
  Builder b(c.ctx.get());
  const Case &tc = GetParam();
  Type types[] = {b.getF32Type(), b.getF16Type(), b.getBF16Type()};
  Type act = types[tc.activation];
  int64_t k = columnsFor(tc.spec);
  nx::EncodedMatrix encoded = finiteEncoded(tc.spec, k, 7);
  std::vector<float> w = nx::dequantize(tc.spec, encoded);

  GpuMatmulProblem problem{mlir::qnt::encodingFromSpec(c.ctx.get(), tc.spec),
                           kN, k, act, act};
  auto program = GpuMatmulProgram::compile(problem, (*device).arch(),
                                           b.getUnknownLoc());
  ASSERT_TRUE(succeeded(program)) << c.diagnostics;
  llvm::Expected<GpuMatmul> matmul = GpuMatmul::load(*program);
  ASSERT_TRUE(bool(matmul)) << llvm::toString(matmul.takeError());

  std::vector<cuda::DeviceBuffer> componentBuffers;
  std::vector<const cuda::DeviceBuffer *> components;
  for (const nx::Component &component : encoded.components) {
    auto buffer = cuda::DeviceBuffer::allocate(component.bytes.size());
    ASSERT_TRUE(bool(buffer)) << llvm::toString(buffer.takeError());
    ASSERT_FALSE(bool(buffer->copyFromHost(component.bytes.data(),
                                           component.bytes.size())));
    componentBuffers.push_back(std::move(*buffer));
  }
  for (const cuda::DeviceBuffer &buffer : componentBuffers)
    components.push_back(&buffer);

  // The tensor-core path rounds dequantized weights to the activation type
  // (2^-11 relative for f16, 2^-8 for bf16); results are rounded to it once.
  double productTolerance = act.isF32() ? 1e-5 : act.isF16() ? 1e-3 : 8e-3;
  double outputTolerance = act.isF32() ? 0 : act.isF16() ? 1e-3 : 8e-3;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t m : {1, 3, 16, 17, 70}) {
    std::vector<float> x(m * k);
    for (float &v : x)
      v = roundTo(normal(rng), act);
    std::vector<uint8_t> xBytes = encodeAs(x, act);
    int64_t width = ::qnt::runtime::elementBytes(act);
    auto xBuffer = cuda::DeviceBuffer::allocate(xBytes.size());
    auto outBuffer = cuda::DeviceBuffer::allocate(m * kN * width);
    ASSERT_TRUE(xBuffer && outBuffer);
    ASSERT_FALSE(bool(xBuffer->copyFromHost(xBytes.data(), xBytes.size())));
    ASSERT_FALSE(bool(outBuffer->fill(0xFF))); // NaN if a cell is not written
    llvm::Error run = matmul->run(m, *xBuffer, components, *outBuffer);
    ASSERT_FALSE(bool(run)) << llvm::toString(std::move(run));
    ASSERT_FALSE(bool(cuda::synchronize()));
    std::vector<uint8_t> out(m * kN * width);
    ASSERT_FALSE(bool(outBuffer->copyToHost(out.data(), out.size())));

    int failures = 0;
    for (int64_t row = 0; row < m; ++row) {
      for (int64_t n = 0; n < kN; ++n) {
        double exact = 0, magnitude = 0;
        for (int64_t i = 0; i < k; ++i) {
          double term = double(x[row * k + i]) * double(w[n * k + i]);
          exact += term;
          magnitude += std::fabs(term);
        }
        double got = decodeFrom(out.data() + (row * kN + n) * width, act);
        double bound = productTolerance * magnitude +
                       outputTolerance * std::fabs(exact) + 1e-6;
        if (!(std::fabs(got - exact) <= bound) && ++failures <= 5)
          ADD_FAILURE() << nx::describe(tc.spec) << " M=" << m << " ("
                        << row << ", " << n << "): got " << got
                        << ", expected " << exact << " +- " << bound
                        << " (kernel "
                        << (matmul->kernelFor(m).kind ==
                                    mlir::qnt::GpuMatmulKind::Gemm
                                ? "gemm"
                                : "gemv")
                        << ")";
      }
    }
    EXPECT_EQ(failures, 0) << nx::describe(tc.spec) << " M=" << m;
  }
}

std::vector<Case> allCases() {
  std::vector<Case> cases;
  for (const nx::EncodingSpec &spec : ::qnt::testing::sampleEncodings())
    for (int activation : {0, 1, 2})
      cases.push_back({spec, activation});
  return cases;
}

std::string caseName(const ::testing::TestParamInfo<Case> &info) {
  static const char *acts[] = {"f32", "f16", "bf16"};
  std::string name = nx::describe(info.param.spec);
  for (char &ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)))
      ch = '_';
  return name + "_" + acts[info.param.activation] + "_" +
         std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(EveryEncoding, GpuMatmulRun,
                         ::testing::ValuesIn(allCases()), caseName);

} // namespace
