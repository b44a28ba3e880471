//===- MixedPrecision.cpp - Per-layer bits under a budget -------*- C++ -*-===//
//
// Implements qnt-mixed-precision: the weight-method driver in planning mode
// with numerics::predictedOutputNoise / measuredOutputNoise and
// numerics::allocatePrecision.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/numerics/MixedPrecision.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <cmath>

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTMIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

struct QntMixedPrecisionPass
    : mlir::qnt::impl::QntMixedPrecisionBase<QntMixedPrecisionPass>,
      WeightMethodPass {
  using QntMixedPrecisionBase::QntMixedPrecisionBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    std::vector<int64_t> widths(bitsOptions.begin(), bitsOptions.end());
    if (widths.empty())
      widths = {2, 3, 4, 5, 6, 8};
    std::vector<int64_t> groups(groupOptions.begin(), groupOptions.end());
    if (groups.empty())
      groups = {32, 64, 128, 0};
    for (int64_t b : widths)
      if (b < 2 || b > 8)
        return module.emitError("qnt-mixed-precision: bits-options must be "
                                "in [2, 8], got ")
               << b;
    for (int64_t g : groups)
      if (g < 0)
        return module.emitError("qnt-mixed-precision: group-options must be "
                                ">= 0 (0: per channel), got ")
               << g;
    if (!(budget > 0))
      return module.emitError("qnt-mixed-precision: budget must be positive, "
                              "got ")
             << double(budget);
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-mixed-precision");
    config.needsStatistics = true;
    if (lossSequences < 0)
      return module.emitError("qnt-mixed-precision: loss-sequences must be "
                              ">= 0, got ")
             << int64_t(lossSequences);
    config.moduleLossSequences = lossSequences;
    bool sym = symmetric;
    nx::ScaleStorage scaleStorage = scaleType;
    NoiseModel model = noiseModel;
    double bitsPerWeight = budget;
    auto totalWeights = std::make_shared<int64_t>(0);

    PlanMethod plan;
    plan.options = [=](const LayerSettings &, const nx::WeightProblem &p,
                       const std::function<double(const std::vector<float> &)>
                           &moduleLoss) {
      if (!p.stats || p.stats->count == 0)
        throw std::invalid_argument("no calibration statistics");
      *totalWeights += p.rows * p.cols;
      Eigen::MatrixXd h = p.stats->fullHessian();
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                                     Eigen::RowMajor>>
          w(p.weight, p.rows, p.cols);
      Eigen::MatrixXd wd = w.cast<double>();
      double energy = (wd * h).cwiseProduct(wd).sum();
      // How much of the layer's output error reaches the output of the
      // module it feeds (the transformer block): the ratio of the two
      // errors for one probe grid (3-bit per channel). Errors of q and k
      // are damped by the softmax; o and down write to the residual.
      double sensitivity = 1;
      if (moduleLoss) {
        nx::UniformSpec probe;
        probe.bits = 3;
        probe.symmetric = false;
        std::vector<float> q = nx::dequantize(
            probe, nx::quantizeRTN(probe, p.weight, p.rows, p.cols));
        double noise =
            nx::measuredOutputNoise(probe, p.weight, p.rows, p.cols, h);
        if (noise > 0)
          sensitivity = moduleLoss(q) / noise;
      }
      std::vector<LayerOption> options;
      for (int64_t b : widths)
        for (int64_t g : groups) {
          if (g > 0 && g >= p.cols)
            continue; // the same as per channel
          nx::UniformSpec spec;
          spec.bits = b;
          spec.symmetric = sym;
          spec.granularity =
              g ? nx::Granularity::PerGroup : nx::Granularity::PerChannel;
          spec.groupSize = g;
          spec.scaleStorage = scaleStorage;
          if (!nx::verifySpec(spec, p.rows, p.cols).empty())
            continue;
          LayerOption o;
          o.settings = "bits=" + std::to_string(b) +
                       (g ? ":group-size=" + std::to_string(g)
                          : std::string(":granularity=per-channel")) +
                       (scaleStorage == nx::ScaleStorage::F16
                            ? ":scale-type=f16"
                            : "");
          o.encoding = nx::describe(spec);
          o.rows = p.rows;
          o.cols = p.cols;
          o.bits = std::llround(nx::bitsPerWeight(spec, p.rows, p.cols) *
                                double(p.rows * p.cols));
          o.loss = model == NoiseModel::Trace
                       ? nx::predictedOutputNoise(spec, p.weight, p.rows,
                                                  p.cols, h)
                       : nx::measuredOutputNoise(spec, p.weight, p.rows,
                                                 p.cols, h);
          o.relativeLoss = energy > 0 ? o.loss / energy : 0;
          o.loss *= sensitivity;
          options.push_back(std::move(o));
        }
      return options;
    };
    plan.choose = [=](const std::vector<std::vector<LayerOption>> &layers) {
      std::vector<std::vector<nx::PrecisionOption>> costs;
      for (const auto &options : layers) {
        costs.emplace_back();
        for (const LayerOption &o : options)
          costs.back().push_back({o.bits, o.loss});
      }
      int64_t budgetBits =
          int64_t(std::floor(bitsPerWeight * double(*totalWeights)));
      return nx::allocatePrecision(costs, budgetBits).choice;
    };
    return WeightMethodDriver::create(module, std::move(config),
                                      "mixed-precision", std::move(plan));
  }
  bool needsStatistics() const override { return true; }

  void runOnOperation() override {
    if (failed(quantizeModule(getOperation())))
      signalPassFailure();
  }
};

} // namespace
