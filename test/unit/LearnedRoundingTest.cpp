//===- LearnedRoundingTest.cpp - Learnable quantizers and their gradients -===//
//
// FlexRound at its initialization (d1 = log s, D2 = d3 = 0) must be
// round-to-nearest with the same scale and zero point; AdaRound with V at
// +-infinity rounds up or down. The adjoints of the quantizers (built by
// qnt-differentiate, run through the CPU pipeline) are compared with their
// closed forms, rounding straight-through.
//
//===----------------------------------------------------------------------===//

#include "passes/autodiff/Adjoint.h"
#include "passes/ptq/LearnedRounding.h"
#include "support/QntTestContext.h"

#include "qnt/numerics/Encoding.h"
#include "qnt/runtime/CpuJit.h"
#include "qnt/support/Random.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

using namespace mlir;
namespace nx = ::qnt::numerics;
namespace rt = ::qnt::runtime;

namespace {

constexpr int64_t kRows = 3, kCols = 8, kGroup = 4, kGroups = 2, kBits = 3;
constexpr double kQmax = (1 << kBits) - 1;

class LearnedRoundingTest : public ::testing::Test,
                            protected ::qnt::testing::QntTestContext {
protected:
  /// `@q(W, params...) -> W^`: the identity on W, made learnable, and its
  /// adjoint with respect to the trainable arguments.
  std::unique_ptr<rt::CompiledModule>
  compile(mlir::qnt::LearnedRounding method,
          mlir::qnt::LearnableWeightArgs &args, bool neighbourGrid = false,
          std::optional<mlir::qnt::MinifloatGrid> minifloat = std::nullopt) {
    module = parseSourceString<ModuleOp>(
        "func.func @q(%w: tensor<3x8xf32>) -> tensor<3x8xf32> {\n"
        "  return %w : tensor<3x8xf32>\n}\n",
        &ctx);
    auto func = *module->getOps<func::FuncOp>().begin();
    mlir::qnt::LearnableWeightSpec spec{method, kBits, kGroup, neighbourGrid,
                                        minifloat};
    auto made = mlir::qnt::makeWeightLearnable(func, 0, spec);
    if (failed(made))
      return nullptr;
    args = *made;
    if (failed(mlir::qnt::buildAdjoint(func, args.trainable, "q_adjoint")))
      return nullptr;
    auto compiled = rt::CompiledModule::compile(*module, {"q", "q_adjoint"});
    if (failed(compiled) ||
        failed((*compiled)->bindParams(mlir::qnt::ParamStore(),
                                       module->getLoc())))
      return nullptr;
    return std::move(*compiled);
  }

  rt::HostTensor tensor(ArrayRef<int64_t> shape, std::vector<float> &data) {
    return rt::HostTensor(
        RankedTensorType::get(shape, Float32Type::get(&ctx)),
        data.data());
  }

  OwningOpRef<ModuleOp> module;
};

/// Per-group asymmetric min/max scale and zero point, as RTN computes them.
void minMaxGrid(const std::vector<float> &w, std::vector<float> &scale,
                std::vector<float> &zero) {
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t g = 0; g < kGroups; ++g) {
      float lo = 0, hi = 0;
      for (int64_t j = 0; j < kGroup; ++j) {
        float v = w[n * kCols + g * kGroup + j];
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      float s = (hi - lo) / float(kQmax);
      scale.push_back(s);
      zero.push_back(std::nearbyint(-lo / s));
    }
}

std::vector<float> randomWeight(uint64_t seed) {
  ::qnt::Xoshiro256 rng(seed);
  std::vector<float> w(kRows * kCols);
  for (float &x : w)
    x = float(2 * rng.uniform() - 1);
  return w;
}

TEST_F(LearnedRoundingTest, FlexRoundStartsAtRoundToNearestAndItsGradients) {
  mlir::qnt::LearnableWeightArgs args;
  auto m = compile(mlir::qnt::LearnedRounding::FlexRound, args);
  ASSERT_TRUE(m);
  ASSERT_EQ(args.trainable.size(), 3u);
  std::vector<float> w = randomWeight(1), scale, zero;
  minMaxGrid(w, scale, zero);
  std::vector<float> d1(scale.size()), d2(w.size(), 0.0f), d3(kRows, 0.0f);
  for (size_t i = 0; i < scale.size(); ++i)
    d1[i] = std::log(scale[i]);
  std::vector<rt::HostTensor> results;
  ASSERT_TRUE(succeeded(m->call(
      "q",
      {tensor({kRows, kCols}, w), tensor({kRows, kGroups}, d1),
       tensor({kRows, kCols}, d2), tensor({kRows}, d3),
       tensor({kRows, kGroups}, zero)},
      results, module->getLoc())));
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t g = n * kGroups + k / kGroup;
      // RTN: s (clamp(round(w / s) + z, 0, qmax) - z).
      double q = std::clamp(double(std::nearbyint(w[n * kCols + k] / scale[g])) +
                                zero[g],
                            0.0, kQmax);
      EXPECT_NEAR(results[0].f32()[n * kCols + k], scale[g] * (q - zero[g]),
                  1e-6)
          << n << "," << k;
    }

  // Away from the initialization, against the closed form: with
  // u = w / exp(d1 + D2 + d3), c = clamp(round(u), -z, qmax - z),
  // W^ = exp(d1) c, and round straight-through:
  //   dW^/dD2 = dW^/dd3 = -exp(d1) u inside the clamp, 0 outside;
  //   dW^/dd1 = exp(d1) c - (the same inside).
  ::qnt::Xoshiro256 rng(5);
  for (float &x : d2)
    x = float(0.3 * (rng.uniform() - 0.5));
  for (float &x : d3)
    x = float(0.2 * (rng.uniform() - 0.5));
  for (float &x : d1)
    x -= 0.4f; // a finer grid: some elements clamp
  std::vector<float> dy(w.size());
  for (float &x : dy)
    x = float(2 * rng.uniform() - 1);
  std::vector<rt::HostTensor> grads;
  ASSERT_TRUE(succeeded(m->call(
      "q_adjoint",
      {tensor({kRows, kCols}, w), tensor({kRows, kGroups}, d1),
       tensor({kRows, kCols}, d2), tensor({kRows}, d3),
       tensor({kRows, kGroups}, zero), tensor({kRows, kCols}, dy)},
      grads, module->getLoc())));
  std::vector<double> gd1(d1.size(), 0.0), gd3(kRows, 0.0);
  int clamped = 0;
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = n * kCols + k, g = n * kGroups + k / kGroup;
      double s1 = std::exp(double(d1[g]));
      double u = w[i] / std::exp(double(d1[g]) + d2[i] + d3[n]);
      double r = std::nearbyint(u);
      bool inside = r >= -zero[g] && r <= kQmax - zero[g];
      clamped += !inside;
      double c = std::clamp(r, double(-zero[g]), kQmax - zero[g]);
      double dInner = inside ? -s1 * u : 0.0;
      EXPECT_NEAR(grads[1].f32()[i], dy[i] * dInner, 1e-5) << i;
      gd3[n] += dy[i] * dInner;
      gd1[g] += dy[i] * (s1 * c + dInner);
    }
  for (size_t g = 0; g < gd1.size(); ++g)
    EXPECT_NEAR(grads[0].f32()[g], gd1[g], 1e-5) << g;
  for (int64_t n = 0; n < kRows; ++n)
    EXPECT_NEAR(grads[2].f32()[n], gd3[n], 1e-5) << n;
  EXPECT_GT(clamped, 0);
  EXPECT_LT(clamped, kRows * kCols);
}

TEST_F(LearnedRoundingTest, AdaRoundRoundsByTheSignOfVAndItsGradient) {
  mlir::qnt::LearnableWeightArgs args;
  auto m = compile(mlir::qnt::LearnedRounding::AdaRound, args);
  ASSERT_TRUE(m);
  ASSERT_EQ(args.trainable.size(), 1u);
  ASSERT_TRUE(args.scale.has_value());
  std::vector<float> w = randomWeight(2), scale, zero;
  minMaxGrid(w, scale, zero);
  // V = +-10: h(V) is 1 or 0 exactly (the stretched sigmoid is clamped),
  // so W^ rounds up or down.
  std::vector<float> v(w.size());
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = i % 3 ? 10.0f : -10.0f;
  std::vector<rt::HostTensor> results;
  ASSERT_TRUE(succeeded(m->call("q",
                                {tensor({kRows, kCols}, w),
                                 tensor({kRows, kCols}, v),
                                 tensor({kRows, kGroups}, scale),
                                 tensor({kRows, kGroups}, zero)},
                                results, module->getLoc())));
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = n * kCols + k, g = n * kGroups + k / kGroup;
      double q = std::floor(w[i] / scale[g]) + (i % 3 ? 1 : 0);
      q = std::clamp(q, double(-zero[g]), kQmax - zero[g]);
      EXPECT_NEAR(results[0].f32()[i], scale[g] * q, 1e-6) << i;
    }
  // dW^/dV = s (zeta - gamma) sigmoid'(V) where the stretched sigmoid and
  // the sum are inside their clamps.
  ::qnt::Xoshiro256 rng(9);
  for (float &x : v)
    x = float(4 * (rng.uniform() - 0.5));
  std::vector<float> dy(w.size());
  for (float &x : dy)
    x = float(2 * rng.uniform() - 1);
  std::vector<rt::HostTensor> grads;
  ASSERT_TRUE(succeeded(m->call(
      "q_adjoint",
      {tensor({kRows, kCols}, w), tensor({kRows, kCols}, v),
       tensor({kRows, kGroups}, scale), tensor({kRows, kGroups}, zero),
       tensor({kRows, kCols}, dy)},
      grads, module->getLoc())));
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = n * kCols + k, g = n * kGroups + k / kGroup;
      double sig = 1 / (1 + std::exp(-double(v[i])));
      double stretched = sig * 1.2 - 0.1;
      double h = std::clamp(stretched, 0.0, 1.0);
      double q = std::floor(w[i] / scale[g]) + h;
      bool inside = stretched > 0 && stretched < 1 && q >= -zero[g] &&
                    q <= kQmax - zero[g];
      double expected =
          inside ? dy[i] * scale[g] * 1.2 * sig * (1 - sig) : 0.0;
      EXPECT_NEAR(grads[0].f32()[i], expected, 1e-5) << i;
    }
}

/// AdaRound between given grid points (minifloat grids): W^ = s (L + h(V)
/// (U - L)), its gradient s (U - L) (zeta - gamma) sigmoid'(V) inside the
/// stretched sigmoid's clamp.
TEST_F(LearnedRoundingTest, AdaRoundBetweenNeighboursAndItsGradient) {
  mlir::qnt::LearnableWeightArgs args;
  auto m = compile(mlir::qnt::LearnedRounding::AdaRound, args,
                   /*neighbourGrid=*/true);
  ASSERT_TRUE(m) << diagnostics;
  ASSERT_TRUE(args.lower && args.upper && args.scale);
  EXPECT_FALSE(args.zeroPoint);
  std::vector<float> w = randomWeight(3), scale(kRows * kGroups),
                     lower(w.size()), upper(w.size()), v(w.size()),
                     dy(w.size());
  ::qnt::Xoshiro256 rng(11);
  for (float &s : scale)
    s = float(0.5 + rng.uniform());
  for (size_t i = 0; i < w.size(); ++i) {
    lower[i] = float(std::floor(4 * rng.uniform()) * 0.5);
    upper[i] = lower[i] + (i % 5 ? float(0.5 * (1 + i % 2)) : 0.0f);
    v[i] = float(4 * (rng.uniform() - 0.5));
    dy[i] = float(2 * rng.uniform() - 1);
  }
  auto args4 = [&](std::vector<float> &vs) {
    return std::vector<rt::HostTensor>{
        tensor({kRows, kCols}, w), tensor({kRows, kCols}, vs),
        tensor({kRows, kGroups}, scale), tensor({kRows, kCols}, lower),
        tensor({kRows, kCols}, upper)};
  };
  std::vector<rt::HostTensor> results, grads;
  ASSERT_TRUE(succeeded(m->call("q", args4(v), results, module->getLoc())));
  std::vector<rt::HostTensor> adjointArgs = args4(v);
  adjointArgs.push_back(tensor({kRows, kCols}, dy));
  ASSERT_TRUE(succeeded(
      m->call("q_adjoint", adjointArgs, grads, module->getLoc())));
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = n * kCols + k, g = n * kGroups + k / kGroup;
      double sig = 1 / (1 + std::exp(-double(v[i])));
      double stretched = sig * 1.2 - 0.1;
      double h = std::clamp(stretched, 0.0, 1.0);
      double step = double(upper[i]) - lower[i];
      EXPECT_NEAR(results[0].f32()[i], scale[g] * (lower[i] + h * step), 1e-5)
          << i;
      bool inside = stretched > 0 && stretched < 1;
      double expected =
          inside ? dy[i] * scale[g] * step * 1.2 * sig * (1 - sig) : 0.0;
      EXPECT_NEAR(grads[0].f32()[i], expected, 1e-5) << i;
    }
}

/// FlexRound's minifloat rounding against the project's E2M1 codec, and
/// the quantizer at its initialization against RTN on that grid; away from
/// it, its gradients against the closed form (rounding straight-through:
/// dW^/dD2 = -exp(d1) u inside the grid's range, 0 where it clamps).
TEST_F(LearnedRoundingTest, FlexRoundOnAMinifloatGrid) {
  nx::MinifloatSpec e2m1;
  e2m1.exponentBits = 2;
  e2m1.mantissaBits = 1;
  mlir::qnt::MinifloatGrid grid; // E2M1: spacing 0.5 below 2, max 6
  grid.mantissaBits = 1;
  grid.minExponent = 0;
  grid.maxValue = nx::minifloatMax(e2m1);
  ASSERT_EQ(grid.maxValue, 6.0);
  // Every value between two grid points rounds as the codec does (ties
  // excepted: 0.25 steps off a point).
  int compared = 0;
  for (int i = -1000; i <= 1000; ++i) {
    float x = float(i) * 0.0071f;
    float codec = nx::decodeMinifloat(nx::encodeMinifloat(x, e2m1), e2m1);
    float mine = mlir::qnt::roundToMinifloatGrid(x, grid);
    if (std::fabs(std::fabs(x - codec) - std::fabs(x - mine)) > 1e-6f)
      ADD_FAILURE() << x << ": codec " << codec << ", grid " << mine;
    compared += mine == codec;
  }
  EXPECT_GT(compared, 1990);

  mlir::qnt::LearnableWeightArgs args;
  auto m = compile(mlir::qnt::LearnedRounding::FlexRound, args, false, grid);
  ASSERT_TRUE(m) << diagnostics;
  ASSERT_EQ(args.trainable.size(), 3u);
  EXPECT_FALSE(args.zeroPoint);
  std::vector<float> w = randomWeight(4), d1(kRows * kGroups),
                     d2(w.size(), 0.0f), d3(kRows, 0.0f);
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t g = 0; g < kGroups; ++g) {
      float absmax = 0;
      for (int64_t j = 0; j < kGroup; ++j)
        absmax = std::max(absmax, std::fabs(w[n * kCols + g * kGroup + j]));
      d1[n * kGroups + g] = std::log(absmax / 6.0f);
    }
  auto call = [&](const char *name, std::vector<rt::HostTensor> extra,
                  std::vector<rt::HostTensor> &out) {
    std::vector<rt::HostTensor> in = {
        tensor({kRows, kCols}, w), tensor({kRows, kGroups}, d1),
        tensor({kRows, kCols}, d2), tensor({kRows}, d3)};
    in.insert(in.end(), extra.begin(), extra.end());
    return m->call(name, in, out, module->getLoc());
  };
  std::vector<rt::HostTensor> results;
  ASSERT_TRUE(succeeded(call("q", {}, results)));
  for (int64_t i = 0; i < kRows * kCols; ++i) {
    float s = std::exp(d1[(i / kCols) * kGroups + (i % kCols) / kGroup]);
    float rtn =
        s * nx::decodeMinifloat(nx::encodeMinifloat(w[i] / s, e2m1), e2m1);
    EXPECT_NEAR(results[0].f32()[i], rtn, 1e-6) << i;
  }

  ::qnt::Xoshiro256 rng(6);
  for (float &x : d2)
    x = float(0.3 * (rng.uniform() - 0.5));
  for (float &x : d1)
    x -= 0.3f; // a finer grid: some elements clamp at +-6
  std::vector<float> dy(w.size());
  for (float &x : dy)
    x = float(2 * rng.uniform() - 1);
  std::vector<rt::HostTensor> grads;
  ASSERT_TRUE(succeeded(call("q_adjoint", {tensor({kRows, kCols}, dy)}, grads)));
  int clamped = 0;
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = n * kCols + k, g = n * kGroups + k / kGroup;
      double s1 = std::exp(double(d1[g]));
      double u = w[i] / std::exp(double(d1[g]) + d2[i] + d3[n]);
      // Inside: the rounded value before the clamp is at most 6 (at 6 the
      // clamp's tie passes the gradient on).
      mlir::qnt::MinifloatGrid unclamped = grid;
      unclamped.maxValue = 1e30;
      bool inside =
          std::fabs(mlir::qnt::roundToMinifloatGrid(float(u), unclamped)) <=
          6.0f;
      clamped += !inside;
      EXPECT_NEAR(grads[1].f32()[i], inside ? -dy[i] * s1 * u : 0.0, 1e-5)
          << i;
    }
  EXPECT_GT(clamped, 0);
}

/// FlexRound's grid of `spec`: binades from the format's smallest normal
/// exponent 1 - bias (bias 2^(E-1) - 1), its largest value from the codec.
mlir::qnt::MinifloatGrid gridFor(const nx::MinifloatSpec &spec) {
  mlir::qnt::MinifloatGrid grid;
  grid.mantissaBits = spec.mantissaBits;
  grid.minExponent = 1 - ((1 << (spec.exponentBits - 1)) - 1);
  grid.maxValue = nx::minifloatMax(spec);
  return grid;
}

/// The grid points of `spec` and every midpoint (a tie), their negatives,
/// and values past the largest one.
std::vector<float> pointsAndTies(const nx::MinifloatSpec &spec) {
  std::vector<float> values;
  for (uint32_t code = 0; code < (1u << nx::minifloatBits(spec)); ++code) {
    float v = nx::decodeMinifloat(code, spec);
    if (std::isfinite(v) && v >= 0)
      values.push_back(v);
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  std::vector<float> probes;
  for (size_t i = 0; i < values.size(); ++i) {
    probes.push_back(values[i]);
    if (i + 1 < values.size())
      probes.push_back((values[i] + values[i + 1]) / 2);
  }
  probes.push_back(values.back() * 1.25f);
  probes.push_back(values.back() * 3);
  size_t positive = probes.size();
  for (size_t i = 0; i < positive; ++i)
    probes.push_back(-probes[i]);
  return probes;
}

/// The host twin of FlexRound's minifloat rounding is the codec's rounding,
/// ties included, for every format the dialect has; the grid block
/// reconstruction reads from a format is the one derived here from its
/// bias.
TEST_F(LearnedRoundingTest, MinifloatRoundingIsTheCodecsForEveryFormat) {
  int formats = 0;
  for (int e = 1; e <= 5; ++e)
    for (int m = 0; m <= 5; ++m)
      for (nx::MinifloatSpecial special :
           {nx::MinifloatSpecial::Finite, nx::MinifloatSpecial::Ocp}) {
        bool ocp = special == nx::MinifloatSpecial::Ocp;
        if (e + m < 2 || e + m > 7 ||
            (ocp && !(e == 4 && m == 3) && !(e == 5 && m == 2)))
          continue;
        nx::MinifloatSpec spec;
        spec.exponentBits = e;
        spec.mantissaBits = m;
        spec.special = special;
        mlir::qnt::MinifloatGrid grid = gridFor(spec);
        mlir::qnt::MinifloatGrid used = mlir::qnt::minifloatGridOf(spec);
        EXPECT_EQ(used.mantissaBits, grid.mantissaBits);
        EXPECT_EQ(used.minExponent, grid.minExponent)
            << "E" << e << "M" << m << (ocp ? " ocp" : "");
        EXPECT_EQ(used.maxValue, grid.maxValue);
        ++formats;
        for (float x : pointsAndTies(spec)) {
          float codec =
              nx::decodeMinifloat(nx::encodeMinifloat(x, spec), spec);
          EXPECT_EQ(mlir::qnt::roundToMinifloatGrid(x, grid), codec)
              << "E" << e << "M" << m << (ocp ? " ocp" : "") << " at " << x;
        }
      }
  EXPECT_EQ(formats, 25); // 23 finite formats, OCP E4M3 and E5M2
}

/// The compiled quantizer at d1 = D2 = d3 = 0 is Q(W): the codec's rounding
/// for ties too, on a format without mantissa bits (ties alternate between
/// rounding up and down) and on E5M2 (the longest binade chain).
TEST_F(LearnedRoundingTest, CompiledMinifloatRoundingMatchesTheCodec) {
  for (auto [e, m] : {std::pair{2, 0}, std::pair{3, 0}, std::pair{5, 2}}) {
    nx::MinifloatSpec spec;
    spec.exponentBits = e;
    spec.mantissaBits = m;
    mlir::qnt::LearnableWeightArgs args;
    auto compiled = compile(mlir::qnt::LearnedRounding::FlexRound, args,
                            false, gridFor(spec));
    ASSERT_TRUE(compiled) << diagnostics;
    std::vector<float> probes = pointsAndTies(spec);
    std::vector<float> d1(kRows * kGroups, 0.0f), d3(kRows, 0.0f);
    for (size_t first = 0; first < probes.size(); first += kRows * kCols) {
      std::vector<float> w(kRows * kCols, 0.0f), d2(w.size(), 0.0f);
      for (size_t i = 0; i < w.size() && first + i < probes.size(); ++i)
        w[i] = probes[first + i];
      std::vector<rt::HostTensor> out;
      ASSERT_TRUE(succeeded(compiled->call(
          "q",
          {tensor({kRows, kCols}, w), tensor({kRows, kGroups}, d1),
           tensor({kRows, kCols}, d2), tensor({kRows}, d3)},
          out, module->getLoc())));
      for (size_t i = 0; i < w.size(); ++i)
        EXPECT_EQ(out[0].f32()[i],
                  nx::decodeMinifloat(nx::encodeMinifloat(w[i], spec), spec))
            << "E" << e << "M" << m << " at " << w[i];
    }
  }
}

/// Minifloat grids without a positive finite largest value, or with a step
/// below float's, are refused.
TEST_F(LearnedRoundingTest, RefusesAnEmptyMinifloatGrid) {
  mlir::qnt::MinifloatGrid empty, infinite, tiny;
  empty.maxValue = 0;
  infinite.maxValue = std::numeric_limits<double>::infinity();
  tiny.minExponent = -160;
  for (const auto &grid : {empty, infinite, tiny}) {
    diagnostics.clear();
    mlir::qnt::LearnableWeightArgs args;
    EXPECT_FALSE(compile(mlir::qnt::LearnedRounding::FlexRound, args, false,
                         grid));
    EXPECT_NE(diagnostics.find("needs a positive finite largest value"),
              std::string::npos)
        << diagnostics;
  }
}

/// PTQ1.61's weight W^ = Wsal + r1 r2 (alpha S + mu m) and its gradients
/// against the closed forms: dL/dalpha_r = sum_j g r1 r2_j S, dL/dr1_r =
/// sum_j g r2_j B, dL/dr2_j = sum_r g r1_r B with B = alpha S + mu m.
TEST_F(LearnedRoundingTest, SalientBinarizationAndItsGradients) {
  module = parseSourceString<ModuleOp>(
      "func.func @q(%w: tensor<3x8xf32>) -> tensor<3x8xf32> {\n"
      "  return %w : tensor<3x8xf32>\n}\n",
      &ctx);
  auto func = *module->getOps<func::FuncOp>().begin();
  auto made = mlir::qnt::makeSalientBinarizationLearnable(func, 0);
  ASSERT_TRUE(succeeded(made)) << diagnostics;
  ASSERT_TRUE(succeeded(
      mlir::qnt::buildAdjoint(func, made->trainable, "q_adjoint")))
      << diagnostics;
  auto compiled = rt::CompiledModule::compile(*module, {"q", "q_adjoint"});
  ASSERT_TRUE(succeeded(compiled)) << diagnostics;
  ASSERT_TRUE(succeeded((*compiled)->bindParams(mlir::qnt::ParamStore(),
                                                module->getLoc())));
  ::qnt::Xoshiro256 rng(7);
  auto random = [&](int64_t n, double lo, double hi) {
    std::vector<float> v(n);
    for (float &x : v)
      x = float(lo + (hi - lo) * rng.uniform());
    return v;
  };
  std::vector<float> w = randomWeight(8), alpha = random(kRows, 0.2, 1),
                     r1 = random(kRows, 0.5, 1.5), r2 = random(kCols, 0.5, 1.5),
                     mu = random(kRows, -0.2, 0.2), dy = random(w.size(), -1, 1);
  std::vector<float> mask(kCols), wsal(w.size()), signs(w.size());
  for (int64_t k = 0; k < kCols; ++k)
    mask[k] = (k == 2 || k == 5) ? 0.0f : 1.0f; // channels 2 and 5 salient
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = r * kCols + k;
      wsal[i] = mask[k] ? 0.0f : std::nearbyint(w[i] * 8) / 8;
      signs[i] = mask[k] ? (w[i] >= mu[r] ? 1.0f : -1.0f) : 0.0f;
    }
  std::vector<rt::HostTensor> in = {
      tensor({kRows, kCols}, w),     tensor({kRows}, alpha),
      tensor({kRows}, r1),           tensor({kCols}, r2),
      tensor({kRows, kCols}, wsal),  tensor({kRows, kCols}, signs),
      tensor({kRows}, mu),           tensor({kCols}, mask)};
  std::vector<rt::HostTensor> out, grads;
  ASSERT_TRUE(succeeded((*compiled)->call("q", in, out, module->getLoc())));
  in.push_back(tensor({kRows, kCols}, dy));
  ASSERT_TRUE(
      succeeded((*compiled)->call("q_adjoint", in, grads, module->getLoc())));
  ASSERT_EQ(grads.size(), 3u);
  std::vector<double> gAlpha(kRows, 0), gR1(kRows, 0), gR2(kCols, 0);
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = r * kCols + k;
      double binary = double(alpha[r]) * signs[i] + double(mu[r]) * mask[k];
      EXPECT_NEAR(out[0].f32()[i], wsal[i] + double(r1[r]) * r2[k] * binary,
                  1e-6)
          << i;
      gAlpha[r] += double(dy[i]) * r1[r] * r2[k] * signs[i];
      gR1[r] += double(dy[i]) * r2[k] * binary;
      gR2[k] += double(dy[i]) * r1[r] * binary;
    }
  for (int64_t r = 0; r < kRows; ++r) {
    EXPECT_NEAR(grads[0].f32()[r], gAlpha[r], 1e-5) << r;
    EXPECT_NEAR(grads[1].f32()[r], gR1[r], 1e-5) << r;
  }
  for (int64_t k = 0; k < kCols; ++k)
    EXPECT_NEAR(grads[2].f32()[k], gR2[k], 1e-5) << k;
  // The salient channels get no r2 gradient: nothing there depends on it.
  EXPECT_EQ(grads[2].f32()[2], 0.0f);
}

TEST_F(LearnedRoundingTest, CodebookWeightAndItsGradients) {
  // AQLM's fine-tuning form W^ = s_r D[r, j]: its value, and the gradients
  // sum_j dy D (of s) and s_r dy (of D), against the closed forms.
  module = parseSourceString<ModuleOp>(
      "func.func @q(%w: tensor<3x8xf32>) -> tensor<3x8xf32> {\n"
      "  return %w : tensor<3x8xf32>\n}\n",
      &ctx);
  auto func = *module->getOps<func::FuncOp>().begin();
  auto made = mlir::qnt::makeCodebookWeightLearnable(func, 0);
  ASSERT_TRUE(succeeded(made)) << diagnostics;
  EXPECT_EQ(made->scales, 1u);
  EXPECT_EQ(made->words, 2u);
  // The float weight itself is no longer read.
  EXPECT_TRUE(func.getArgument(0).use_empty());
  ASSERT_TRUE(succeeded(mlir::qnt::buildAdjoint(
      func, {made->scales, made->words}, "q_adjoint")))
      << diagnostics;
  auto compiled = rt::CompiledModule::compile(*module, {"q", "q_adjoint"});
  ASSERT_TRUE(succeeded(compiled)) << diagnostics;
  ASSERT_TRUE(succeeded((*compiled)->bindParams(mlir::qnt::ParamStore(),
                                                module->getLoc())));
  ::qnt::Xoshiro256 rng(9);
  auto random = [&](int64_t n, double lo, double hi) {
    std::vector<float> v(n);
    for (float &x : v)
      x = float(lo + (hi - lo) * rng.uniform());
    return v;
  };
  std::vector<float> w = randomWeight(10), s = random(kRows, -1, 1),
                     d = random(kRows * kCols, -2, 2),
                     dy = random(kRows * kCols, -1, 1);
  std::vector<rt::HostTensor> in = {tensor({kRows, kCols}, w),
                                    tensor({kRows}, s),
                                    tensor({kRows, kCols}, d)};
  std::vector<rt::HostTensor> out, grads;
  ASSERT_TRUE(succeeded((*compiled)->call("q", in, out, module->getLoc())));
  in.push_back(tensor({kRows, kCols}, dy));
  ASSERT_TRUE(
      succeeded((*compiled)->call("q_adjoint", in, grads, module->getLoc())));
  ASSERT_EQ(grads.size(), 2u);
  for (int64_t r = 0; r < kRows; ++r) {
    double gs = 0;
    for (int64_t k = 0; k < kCols; ++k) {
      int64_t i = r * kCols + k;
      // Bit for bit the decoder's s * (sum of words).
      EXPECT_EQ(out[0].f32()[i], s[r] * d[i]) << i;
      EXPECT_NEAR(grads[1].f32()[i], double(s[r]) * dy[i], 1e-6) << i;
      gs += double(dy[i]) * d[i];
    }
    EXPECT_NEAR(grads[0].f32()[r], gs, 1e-5) << r;
  }
}

/// Groups of 4 over 6 columns: the last group of each row has 2 (as GPTQ's
/// and RTN's ragged groups); at its initialization FlexRound is RTN's.
TEST_F(LearnedRoundingTest, RaggedGroupsStartAtRoundToNearest) {
  module = parseSourceString<ModuleOp>(
      "func.func @q(%w: tensor<3x6xf32>) -> tensor<3x6xf32> {\n"
      "  return %w : tensor<3x6xf32>\n}\n",
      &ctx);
  auto func = *module->getOps<func::FuncOp>().begin();
  mlir::qnt::LearnableWeightSpec spec{mlir::qnt::LearnedRounding::FlexRound,
                                      3, 4};
  auto made = mlir::qnt::makeWeightLearnable(func, 0, spec);
  ASSERT_TRUE(succeeded(made)) << diagnostics;
  auto compiled = rt::CompiledModule::compile(*module, {"q"});
  ASSERT_TRUE(succeeded(compiled)) << diagnostics;
  ASSERT_TRUE(succeeded((*compiled)->bindParams(mlir::qnt::ParamStore(),
                                                module->getLoc())));
  nx::UniformSpec grid;
  grid.bits = 3;
  grid.symmetric = false;
  grid.granularity = nx::Granularity::PerGroup;
  grid.groupSize = 4;
  std::vector<float> w = randomWeight(9);
  w.resize(18);
  nx::QuantParams params = nx::rtnParams(grid, w.data(), 3, 6);
  ASSERT_EQ(params.scales.size(), 6u);
  std::vector<float> d1(6), d2(18, 0.0f), d3(3, 0.0f);
  for (size_t i = 0; i < 6; ++i)
    d1[i] = std::log(params.scales[i]);
  std::vector<rt::HostTensor> results;
  ASSERT_TRUE(succeeded((*compiled)->call(
      "q",
      {tensor({3, 6}, w), tensor({3, 2}, d1), tensor({3, 6}, d2),
       tensor({3}, d3), tensor({3, 2}, params.zeros)},
      results, module->getLoc())));
  std::vector<float> rtn =
      nx::dequantize(grid, nx::quantizeRTN(grid, w.data(), 3, 6));
  for (size_t i = 0; i < rtn.size(); ++i)
    EXPECT_NEAR(results[0].f32()[i], rtn[i], 1e-6) << i;
}

TEST_F(LearnedRoundingTest, RefusesWeightsItCannotGroup) {
  module = parseSourceString<ModuleOp>(
      "func.func @q(%w: tensor<3x6xf32>, %i: tensor<3xi32>) -> tensor<3x6xf32> {\n"
      "  return %w : tensor<3x6xf32>\n}\n",
      &ctx);
  auto func = *module->getOps<func::FuncOp>().begin();
  mlir::qnt::LearnableWeightSpec spec;
  spec.groupSize = -4;
  EXPECT_TRUE(failed(mlir::qnt::makeWeightLearnable(func, 0, spec)));
  EXPECT_TRUE(failed(mlir::qnt::makeWeightLearnable(func, 1, {})));
  EXPECT_TRUE(failed(mlir::qnt::makeWeightLearnable(func, 2, {})));
  EXPECT_NE(diagnostics.find("group size -4 is not positive"),
            std::string::npos)
      << diagnostics;
  EXPECT_NE(diagnostics.find("must be a static f32 [N, K] tensor"),
            std::string::npos);
  EXPECT_EQ(func.getNumArguments(), 2u); // nothing added
}

} // namespace
