//===- Int8KernelTest.cpp - The int8-activation CPU kernel ------*- C++ -*-===//
//
// qnt-lower-matmul-cpu activations=int8 against independent computations:
//  - getIntegerForm describes the weight exactly: scale * multiplier *
//    (u - zero), with u read from the packed codes here, equals the host
//    dequantization (lib/numerics) for every element;
//  - the kernel equals a float64 product of the host-dequantized weight and
//    the activations rounded as documented (per row and scale group:
//    scale = max|x| / 127, q = round-half-even(x * 127 / max|x|)), for both
//    instruction sets (VNNI where the host has it, and the portable form),
//    with K and group shapes that exercise every path: groups of one chunk
//    and of several, several groups per chunk, a partial last chunk, one
//    group per row, row and weight tiles with remainders, OpenMP tiles.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/runtime/CpuJit.h"
#include "support/QntTestContext.h"

#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"
#include "passes/lowering/Int8Matmul.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/APFloat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;
namespace nx = ::qnt::numerics;
namespace rt = ::qnt::runtime;

namespace {

struct Int8Case {
  nx::EncodingSpec spec;
  int64_t n, k;
};

/// Encodings with an integer form, at shapes chosen for the kernel's paths
/// (a chunk is 64 code bytes: 128 int4 codes, 64 int8, 256 int2; or 64 codes
// that straddle bytes: 24 bytes of int3).
std::vector<Int8Case> cases() {
  using G = nx::Granularity;
  auto uniform = [](int bits, bool symmetric, G g, int64_t group,
                    nx::ScaleStorage storage = nx::ScaleStorage::F32) {
    return nx::EncodingSpec(nx::UniformSpec{bits, symmetric, g, group, storage});
  };
  nx::MinifloatSpec e2m1;
  nx::MinifloatSpec e2m1Half = e2m1;
  e2m1Half.groupSize = 16;
  e2m1Half.scaleStorage = nx::ScaleStorage::F16;
  return {
      // One group of one chunk per group, 3 groups.
      {uniform(4, false, G::PerGroup, 128), 7, 384},
      // Groups of two chunks.
      {uniform(4, true, G::PerGroup, 256), 5, 512},
      // Two groups per chunk, a partial last chunk (160 bytes a row).
      {uniform(4, false, G::PerGroup, 64), 6, 320},
      // Four groups per chunk, only a partial chunk (48 bytes a row), f16.
      {uniform(4, false, G::PerGroup, 32, nx::ScaleStorage::F16), 5, 96},
      // One group per row with a partial chunk; per tensor.
      {uniform(8, true, G::PerChannel, 0), 5, 200},
      {uniform(8, false, G::PerTensor, 0), 3, 70},
      {uniform(4, false, G::PerChannel, 0), 4, 131},
      // int8 groups smaller than a chunk; 2-bit codes, four per byte.
      {uniform(8, false, G::PerGroup, 32), 5, 160},
      {uniform(2, false, G::PerGroup, 64), 5, 512},
      {uniform(2, true, G::PerChannel, 0), 3, 100},
      // Codes that straddle bytes: 64 per 8 * bits bytes, in element order.
      {uniform(3, false, G::PerGroup, 128), 5, 384},
      {uniform(3, true, G::PerGroup, 32), 6, 160},
      {uniform(3, false, G::PerChannel, 0), 3, 100},
      {uniform(5, false, G::PerGroup, 16), 4, 96},
      {uniform(6, true, G::PerChannel, 0), 3, 70},
      {uniform(7, false, G::PerGroup, 64), 3, 192},
      // Groups smaller than a chunk in runs of chunks that share one vector
      // of 16 groups' scales: int8 g32 (8 chunks a run) and E2M1 g32 (4),
      // each with two runs, a chunk left over and a partial chunk.
      {uniform(8, true, G::PerGroup, 32), 3, 1120},
      // f16 scales in runs (five full chunks and a partial one), and codes
      // that straddle bytes in runs (17 full chunks of 3-bit g32).
      {nx::EncodingSpec(e2m1Half), 3, 672},
      {uniform(3, false, G::PerGroup, 32), 3, 1120},
      // Minifloat codes through a table.
      {nx::EncodingSpec(e2m1), 6, 256},
      {nx::EncodingSpec(e2m1), 3, 1184},
      {nx::EncodingSpec(e2m1Half), 5, 80},
  };
}

class Int8KernelTest : public ::testing::TestWithParam<Int8Case>,
                       protected ::qnt::testing::QntTestContext {
protected:
  mlir::qnt::IntegerWeightForm form(const Int8Case &c) {
    auto f = mlir::qnt::encodingFromSpec(&ctx, c.spec).getIntegerForm(c.n, c.k);
    EXPECT_TRUE(f.has_value()) << nx::describe(c.spec);
    return f.value_or(mlir::qnt::IntegerWeightForm{});
  }
};

/// Element i of a component as a float (f32 or f16 storage) or an unsigned
/// byte.
double componentValue(const nx::Component &c, int64_t i) {
  switch (c.layout.dtype) {
  case nx::DType::F32: {
    float v;
    std::memcpy(&v, c.bytes.data() + 4 * i, 4);
    return v;
  }
  case nx::DType::F16: {
    uint16_t bits;
    std::memcpy(&bits, c.bytes.data() + 2 * i, 2);
    return llvm::APFloat(llvm::APFloat::IEEEhalf(), llvm::APInt(16, bits))
        .convertToDouble();
  }
  default:
    return c.bytes[i];
  }
}

TEST_P(Int8KernelTest, IntegerFormEqualsDequantization) {
  const Int8Case &c = GetParam();
  mlir::qnt::IntegerWeightForm f = form(c);
  nx::EncodedMatrix encoded = nx::randomEncoded(c.spec, c.n, c.k, 7);
  std::vector<float> w = nx::dequantize(c.spec, encoded);
  const nx::Component &codes = encoded.components[0];
  int64_t rowBytes = (c.k * f.bits + 7) / 8;
  int64_t groups = (c.k + f.groupSize - 1) / f.groupSize;
  int mismatches = 0;
  for (int64_t r = 0; r < c.n; ++r)
    for (int64_t i = 0; i < c.k; ++i) {
      // The LSB-first bitstream of the row; a code may straddle two bytes.
      int64_t bit = i * f.bits;
      unsigned word = codes.bytes[r * rowBytes + bit / 8];
      if (bit / 8 + 1 < rowBytes)
        word |= unsigned(codes.bytes[r * rowBytes + bit / 8 + 1]) << 8;
      unsigned code = (word >> (bit % 8)) & ((1u << f.bits) - 1);
      unsigned u = f.codeValues.empty() ? code : f.codeValues[code];
      int64_t entry = (f.perTensor ? 0 : r) * groups + i / f.groupSize;
      double scale =
          componentValue(encoded.components[f.scaleComponent], entry);
      double zero = f.zeroComponent
                        ? componentValue(encoded.components[*f.zeroComponent],
                                         entry)
                        : double(f.zero);
      // The host's f32 arithmetic: the multiplier is a power of two, so
      // multiplier * (u - zero) is exact.
      float want = float(f.multiplier * (double(u) - zero)) * float(scale);
      if (want != w[r * c.k + i] && ++mismatches <= 5)
        ADD_FAILURE() << nx::describe(c.spec) << " (" << r << ", " << i
                      << "): form " << want << ", host " << w[r * c.k + i];
    }
  EXPECT_EQ(mismatches, 0);
}

/// `func @matmul(%x: tensor<?xKxf32>) -> tensor<?xNxf32>` with constant
/// components, lowered by qnt-lower-matmul-cpu with `options`.
FailureOr<std::unique_ptr<rt::CompiledModule>>
compileMatmul(MLIRContext &ctx, const nx::EncodingSpec &spec,
              const nx::EncodedMatrix &encoded, int64_t n, int64_t k,
              const std::string &options) {
  OwningOpRef<ModuleOp> module =
      ::qnt::testing::matmulModule(ctx, spec, encoded, n, k);
  std::string pipeline =
      "builtin.module(func.func(qnt-lower-matmul-cpu{" + options + "}))";
  if (failed(mlir::qnt::runPassPipeline(*module, pipeline)))
    return failure();
  // The int8 kernel replaced the matmul (no f32 fallback), with the
  // instructions asked for: VBMI unpacks codes that straddle bytes.
  int vnniCalls = 0, multishifts = 0, f32Fmas = 0;
  module->walk([&](Operation *op) {
    if (auto intrinsic = dyn_cast<mlir::qnt::IntrinsicOp>(op)) {
      vnniCalls += intrinsic.getName().contains("vpdpbusd");
      multishifts += intrinsic.getName().contains("pmultishift");
    }
    f32Fmas += op->getName().getStringRef() == "vector.fma" &&
               getElementTypeOrSelf(op->getResult(0).getType()).isF32() &&
               cast<VectorType>(op->getResult(0).getType()).getNumElements() !=
                   16;
  });
  bool x86 = StringRef(options).contains("int8-dot=vnni") ||
             StringRef(options).contains("int8-dot=vbmi");
  auto form = mlir::qnt::encodingFromSpec(&ctx, spec).getIntegerForm(n, k);
  bool straddling = StringRef(options).contains("int8-dot=vbmi") && form &&
                    8 % form->bits != 0;
  if (f32Fmas != 0 || (x86 && vnniCalls == 0) ||
      (multishifts != 0) != straddling) {
    ADD_FAILURE() << "activations=int8 did not produce the int8 kernel asked "
                     "for by "
                  << options;
    return failure();
  }
  return rt::CompiledModule::compile(*module, {"matmul"});
}

/// x rounded as the kernel documents: per row and scale group of `group`
/// elements, scale * q.
std::vector<double> roundedActivations(const std::vector<float> &x, int64_t m,
                                       int64_t k, int64_t group) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < m; ++r)
    for (int64_t g0 = 0; g0 < k; g0 += group) {
      int64_t end = std::min(k, g0 + group);
      float amax = 0;
      for (int64_t i = g0; i < end; ++i)
        amax = std::max(amax, std::abs(x[r * k + i]));
      float scale = amax / 127.0f;
      float inverse = amax > 0 ? 127.0f / amax : 0.0f;
      for (int64_t i = g0; i < end; ++i)
        out[r * k + i] =
            double(scale) * std::nearbyint(x[r * k + i] * inverse);
    }
  return out;
}

TEST_P(Int8KernelTest, Int8MatmulEqualsFloat64Product) {
  const Int8Case &c = GetParam();
  mlir::qnt::IntegerWeightForm f = form(c);
  ASSERT_EQ(mlir::qnt::int8KernelLimitation(f, c.k), "")
      << nx::describe(c.spec);
  nx::EncodedMatrix encoded = nx::randomEncoded(c.spec, c.n, c.k, 3);
  std::vector<float> w = nx::dequantize(c.spec, encoded);
  std::vector<std::string> optionSets = {
      "activations=int8 int8-dot=generic row-tile=4 col-tile=4",
      "activations=int8 int8-dot=generic row-tile=2 col-tile=3 threads=2 "
      "parallel-weights=1"};
  if (mlir::qnt::hostHasVnni())
    optionSets.push_back("activations=int8 int8-dot=vnni row-tile=4 col-tile=1");
  else
    GTEST_LOG_(INFO) << "host without AVX512-VNNI: int8-dot=vnni not run";
  if (mlir::qnt::hostHasVnni() && mlir::qnt::hostHasVbmi())
    optionSets.push_back("activations=int8 int8-dot=vbmi row-tile=3 col-tile=2");
  else
    GTEST_LOG_(INFO) << "host without AVX512-VBMI: int8-dot=vbmi not run";
  for (const std::string &options : optionSets) {
    auto compiled = compileMatmul(ctx, c.spec, encoded, c.n, c.k, options);
    ASSERT_TRUE(succeeded(compiled)) << diagnostics;
    for (int64_t m : {1, 3, 6}) {
      auto xType = RankedTensorType::get({m, c.k}, Builder(&ctx).getF32Type());
      rt::HostTensor x(xType);
      std::mt19937 rng{unsigned(m + 11)};
      std::normal_distribution<float> normal;
      std::vector<float> xs(m * c.k);
      for (float &v : xs)
        v = normal(rng);
      xs[0] = 0; // an all-zero group of one element would divide by zero
      std::copy(xs.begin(), xs.end(), x.f32());
      std::vector<double> xq =
          roundedActivations(xs, m, c.k, std::min(f.groupSize, c.k));
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
            double term = xq[r * c.k + i] * w[o * c.k + i];
            want += term;
            magnitude += std::abs(term);
          }
          // Exact integer sums; f32 only in the per-group scaling and the
          // zero-point term (a few roundings per group).
          double tolerance = 1e-5 * magnitude + 1e-30;
          float got = results[0].f32()[r * c.n + o];
          if (!(std::abs(got - want) <= tolerance) && ++mismatches <= 5)
            ADD_FAILURE() << nx::describe(c.spec) << " " << options << " M "
                          << m << " y(" << r << ", " << o << "): " << got
                          << ", float64 " << want;
        }
      EXPECT_EQ(mismatches, 0) << nx::describe(c.spec) << " " << options;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Encodings, Int8KernelTest, ::testing::ValuesIn(cases()),
    [](const ::testing::TestParamInfo<Int8Case> &info) {
      std::string name = nx::describe(info.param.spec) + "_k" +
                         std::to_string(info.param.k);
      for (char &ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch)))
          ch = '_';
      return name;
    });

TEST(Int8KernelLimits, ShapesTheKernelDoesNotTake) {
  mlir::qnt::IntegerWeightForm form;
  form.bits = 3;
  form.groupSize = 128;
  EXPECT_EQ(mlir::qnt::int8KernelLimitation(form, 256), "");
  form.groupSize = 48; // a 3-bit chunk is 64 codes
  EXPECT_NE(mlir::qnt::int8KernelLimitation(form, 96), "");
  form.codeValues.assign(8, 0);
  form.groupSize = 128;
  EXPECT_EQ(mlir::qnt::int8KernelLimitation(form, 256), "");
  form.bits = 6; // a 64-entry table
  form.codeValues.assign(64, 0);
  EXPECT_NE(mlir::qnt::int8KernelLimitation(form, 256), "");
  form.codeValues.clear();
  form.bits = 4;
  EXPECT_EQ(mlir::qnt::int8KernelLimitation(form, 256), "");
  form.groupSize = 8; // lanes of 4 bytes would hold two groups' halves
  EXPECT_NE(mlir::qnt::int8KernelLimitation(form, 256), "");
  // 1-bit codes: an i32 lane holds 32 of them, so g16 would split lanes
  // and g32 does not.
  form.bits = 1;
  form.groupSize = 16;
  EXPECT_NE(mlir::qnt::int8KernelLimitation(form, 512), "");
  form.groupSize = 32;
  EXPECT_EQ(mlir::qnt::int8KernelLimitation(form, 512), "");
  form.bits = 4;
  form.groupSize = 48; // neither divides nor is a multiple of a chunk
  EXPECT_NE(mlir::qnt::int8KernelLimitation(form, 96), "");
  form.groupSize = 96; // one group per row: any K
  EXPECT_EQ(mlir::qnt::int8KernelLimitation(form, 96), "");
}

} // namespace
