//===- Equalize.cpp - Cross-layer weight equalization -----------*- C++ -*-===//
//
// Implements qnt-equalize (Passes.td). Which pairs can be rescaled is
// decided by passes/SmoothFolding.h (a consumer's input that folds into a
// producer linear's rows); the scales come from lib/numerics
// (Equalization.h); the producer side is folded by foldSmoothedInput, the
// same code as qnt-fold-smooth.
//
//===----------------------------------------------------------------------===//

#include "passes/LinearLayers.h"
#include "passes/ParamRewriter.h"
#include "passes/Passes.h"
#include "passes/RewriteCheck.h"
#include "passes/SmoothFolding.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/numerics/Equalization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/Support/Regex.h"

#include <stdexcept>

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTEQUALIZE
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

/// A consumer linear whose input comes from a producer linear's rows.
struct EqualizationPair {
  std::string name;
  linalg::MatmulOp consumer;
  SmoothFoldSite producer;
};

/// The float constant or parameter a matmul's weight operand reads, or null.
Operation *floatWeightSource(linalg::MatmulOp matmul) {
  if (!isa<linalg::MatmulTransposeBOp>(matmul.getOperation()))
    return nullptr;
  Operation *def = matmul.getInputs()[1].getDefiningOp();
  if (!def || !isa<arith::ConstantOp, ParamOp>(def))
    return nullptr;
  auto type = cast<RankedTensorType>(def->getResult(0).getType());
  return type.getElementType().isF32() && type.hasStaticShape() ? def
                                                                : nullptr;
}

/// Every consumer in `module` (selected by `selection` when given) whose
/// input only it reads and whose producer is a float linear.
SmallVector<EqualizationPair> findPairs(ModuleOp module,
                                        const llvm::Regex *selection) {
  SmallVector<EqualizationPair> pairs;
  module.walk([&](func::FuncOp func) {
    for (const LinearLayer &layer : collectLinearLayers(func)) {
      auto consumer = dyn_cast<linalg::MatmulOp>(layer.op);
      if (!consumer || !floatWeightSource(consumer) ||
          (selection && !selection->match(layer.name)))
        continue;
      Value input = consumer.getInputs()[0];
      if (llvm::any_of(input.getUsers(), [&](Operation *user) {
            return user != consumer && !isa<tensor::DimOp>(user);
          }))
        continue;
      std::optional<SmoothFoldSite> site = findSmoothFoldSite(input);
      if (!site || site->kind != SmoothFoldSite::Kind::WeightRows ||
          !floatWeightSource(site->matmul))
        continue;
      pairs.push_back({layer.name, consumer, std::move(*site)});
    }
  });
  return pairs;
}

/// Rescales one pair: W2[:, c] * t, then x / t folded into W1's rows.
LogicalResult equalize(const EqualizationPair &pair, double alpha,
                       ParamRewriter &data) {
  linalg::MatmulOp consumer = pair.consumer;
  Operation *consumerSource = floatWeightSource(consumer);
  Operation *producerSource = floatWeightSource(pair.producer.matmul);
  auto w2Type = cast<RankedTensorType>(consumerSource->getResult(0).getType());
  auto w1Type = cast<RankedTensorType>(producerSource->getResult(0).getType());
  int64_t n2 = w2Type.getDimSize(0), k2 = w2Type.getDimSize(1);
  int64_t n1 = w1Type.getDimSize(0), k1 = w1Type.getDimSize(1);
  const SmallVector<int64_t> &map = pair.producer.rowOfChannel;
  if (map.empty() ? n1 != k2 : int64_t(map.size()) != k2)
    return consumer.emitOpError("qnt-equalize: '")
           << pair.name << "' reads " << k2 << " channels; its producer has "
           << n1 << " rows";
  FailureOr<std::vector<float>> w1 = data.read(producerSource);
  FailureOr<std::vector<float>> w2 = data.read(consumerSource);
  if (failed(w1) || failed(w2))
    return failure();
  std::vector<float> perChannel;
  try {
    std::vector<int64_t> rowOfColumn(map.begin(), map.end());
    std::vector<float> t = nx::equalizationScales(
        nx::rowRanges(w1->data(), n1, k1),
        nx::columnRanges(w2->data(), n2, k2, rowOfColumn, n1), alpha);
    for (int64_t c = 0; c < k2; ++c)
      perChannel.push_back(t[map.empty() ? c : map[c]]);
  } catch (const std::invalid_argument &e) {
    return consumer.emitOpError("qnt-equalize: ") << e.what();
  }
  for (int64_t n = 0; n < n2; ++n)
    for (int64_t c = 0; c < k2; ++c)
      (*w2)[n * k2 + c] *= perChannel[c];
  FailureOr<Value> scaled =
      data.replacement(consumerSource, consumer, *w2, ".equalized");
  if (failed(scaled))
    return failure();
  consumer->setOperand(1, *scaled);
  if (consumerSource->use_empty())
    consumerSource->erase();

  Value input = consumer.getInputs()[0];
  OpBuilder b(consumer);
  auto factorType = RankedTensorType::get({k2}, b.getF32Type());
  Value factors = arith::ConstantOp::create(
      b, consumer.getLoc(),
      DenseElementsAttr::get(factorType, llvm::ArrayRef<float>(perChannel)));
  Value smoothed =
      SmoothOp::create(b, consumer.getLoc(), input.getType(), input, factors);
  consumer->setOperand(0, smoothed);
  return failure(failed(foldSmoothedInput(input, data)));
}

struct QntEqualizePass : mlir::qnt::impl::QntEqualizeBase<QntEqualizePass>,
                         ParamWritingPass {
  using QntEqualizeBase::QntEqualizeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!(alpha >= 0 && alpha <= 1)) {
      module.emitError("qnt-equalize: alpha must be in [0, 1], got ")
          << double(alpha);
      return signalPassFailure();
    }
    std::unique_ptr<llvm::Regex> selection;
    if (!layers.empty()) {
      selection = std::make_unique<llvm::Regex>(layers);
      std::string regexError;
      if (!selection->isValid(regexError)) {
        module.emitError("qnt-equalize: invalid layers pattern '")
            << layers << "': " << regexError;
        return signalPassFailure();
      }
    }
    RewriteVerifier verifier;
    if (failed(verifier.start(module, "qnt-equalize", verify, tolerance)))
      return signalPassFailure();
    SmallVector<EqualizationPair> pairs = findPairs(module, selection.get());
    if (selection && pairs.empty()) {
      module.emitError("qnt-equalize: no layer matching '")
          << layers << "' reads a float linear layer's output through an "
          << "exactly rescalable map";
      return signalPassFailure();
    }
    ParamRewriter data(module, output, "qnt-equalize");
    for (const EqualizationPair &pair : pairs) {
      if (failed(equalize(pair, alpha, data)))
        return signalPassFailure();
      ++numPairs;
    }
    if (failed(data.finish()) || failed(verifier.finish(module)))
      return signalPassFailure();
  }
};

} // namespace
