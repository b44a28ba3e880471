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

/// Makes random bytes valid where the layout constrains values.
void constrain(const nx::EncodingSpec &spec, std::vector<nx::Component> &all,
               const std::string &prefix, int64_t cols, std::mt19937 &rng) {
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
      map[order[i]] = i < s->numSalient ? int32_t(i)
                                        : int32_t(-1 - (i - s->numSalient));
    std::memcpy(find("channel_map")->bytes.data(), map.data(), 4 * cols);
    constrain(*s->salient, all, prefix + "salient.", s->numSalient, rng);
    constrain(*s->rest, all, prefix + "rest.", cols - s->numSalient, rng);
  }
}

nx::EncodedMatrix randomEncoded(const nx::EncodingSpec &spec, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> real(-2.0f, 2.0f);
  nx::EncodedMatrix m;
  m.rows = kRows;
  m.cols = kCols;
  for (const nx::ComponentLayout &layout :
       nx::componentLayout(spec, kRows, kCols)) {
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
  constrain(spec, m.components, "", kCols, rng);
  return m;
}

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
  SmallVector<Value> components;
  for (const nx::Component &c : m.components) {
    auto type = RankedTensorType::get(
        c.layout.shape, mlir::qnt::elementTypeOf(&ctx, c.layout.dtype));
    ArrayRef<char> raw(reinterpret_cast<const char *>(c.bytes.data()),
                       c.bytes.size());
    components.push_back(arith::ConstantOp::create(
        b, loc, DenseElementsAttr::getFromRawBuffer(type, raw)));
  }
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
    nx::EncodedMatrix encoded = randomEncoded(spec, seed);
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

nx::EncodingSpec salientSpec() {
  nx::SalientSpec s;
  s.numSalient = 20;
  s.salient = std::make_shared<const nx::EncodingSpec>(
      nx::UniformSpec{4, false, nx::Granularity::PerChannel, 0});
  s.rest = std::make_shared<const nx::EncodingSpec>(
      nx::BinarySpec{true, nx::Granularity::PerChannel, 0});
  return s;
}

using G = nx::Granularity;
using S = nx::MinifloatSpecial;
INSTANTIATE_TEST_SUITE_P(
    AllEncodings, DequantHook,
    ::testing::Values(
        nx::UniformSpec{3, false, G::PerGroup, 16},
        nx::UniformSpec{4, true, G::PerTensor, 0},
        nx::UniformSpec{5, false, G::PerChannel, 0},
        nx::UniformSpec{8, true, G::PerChannel, 0},
        nx::MinifloatSpec{2, 1, S::Finite, G::PerGroup, 32},
        nx::MinifloatSpec{3, 2, S::Finite, G::PerChannel, 0},
        nx::MinifloatSpec{2, 3, S::Finite, G::PerGroup, 16},
        nx::MinifloatSpec{4, 3, S::Ocp, G::PerChannel, 0},
        nx::MinifloatSpec{5, 2, S::Ocp, G::PerGroup, 32},
        nx::CodebookSpec{2, 8, 8}, nx::CodebookSpec{1, 12, 4},
        nx::BinarySpec{true, G::PerGroup, 16},
        nx::BinarySpec{false, G::PerChannel, 0},
        nx::BitPlaneSpec{3, G::PerGroup, 32},
        nx::BitPlaneSpec{1, G::PerTensor, 0}, salientSpec()));

} // namespace
