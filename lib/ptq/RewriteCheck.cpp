//===- RewriteCheck.cpp - Run a module before and after a rewrite ---------===//
//
// See RewriteCheck.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/ptq/RewriteCheck.h"
#include "dialects/qnt/QntDialect.h"
#include "passes/RewriteCheck.h"
#include "qnt/ParamStore.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/runtime/CpuJit.h"
#include "qnt/runtime/ModelRunner.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <random>

using namespace mlir;
using ::qnt::runtime::CompiledModule;
using ::qnt::runtime::HostTensor;
using ::qnt::runtime::ModelRunner;

namespace {

std::vector<std::vector<int32_t>> &checkSequences() {
  static std::vector<std::vector<int32_t>> sequences;
  return sequences;
}

/// ||a - b|| / ||b|| over f32 tensors of equal size (0 when both are 0).
double relativeDifference(const HostTensor &a, const HostTensor &b) {
  double diff = 0, norm = 0;
  const float *x = a.f32(), *y = b.f32();
  for (int64_t i = 0, n = b.numElements(); i < n; ++i) {
    double d = double(x[i]) - double(y[i]);
    diff += d * d;
    norm += double(y[i]) * double(y[i]);
  }
  if (norm == 0)
    return diff == 0 ? 0 : INFINITY;
  return std::sqrt(diff / norm);
}

/// Fails with a message at function `function` of `after` (or the module)
/// when `difference` is beyond the tolerance (NaN included).
LogicalResult compare(ModuleOp after, StringRef function, StringRef passName,
                      StringRef what, double difference, double tolerance) {
  if (difference <= tolerance)
    return success();
  Operation *at = after.lookupSymbol(function);
  return emitError(at ? at->getLoc() : after.getLoc()) << passName
                           << ": the rewrite is not exact: " << what
                           << " differs by " << llvm::formatv("{0:E3}",
                                                              difference)
                           << " (relative), above the tolerance "
                           << tolerance;
}

std::vector<std::vector<int32_t>> defaultSequences(int64_t vocab) {
  std::mt19937 random(20261205);
  std::vector<std::vector<int32_t>> sequences(2);
  for (auto &sequence : sequences)
    for (int i = 0; i < 64; ++i)
      sequence.push_back(int32_t(random() % uint64_t(vocab)));
  return sequences;
}

/// A copy of `module` without activation fake-quantization: an exact rewrite
/// is exact on the float computation, and a rounding step would turn a
/// float-rounding difference in its input into a whole grid step.
OwningOpRef<ModuleOp> floatCopy(ModuleOp module) {
  OwningOpRef<ModuleOp> copy = module.clone();
  copy->walk([](mlir::qnt::FakeQuantOp op) {
    op.replaceAllUsesWith(op.getInput());
    op.erase();
  });
  return copy;
}

LogicalResult checkModel(ModuleOp before, ModuleOp after, StringRef passName,
                         double tolerance) {
  OwningOpRef<ModuleOp> beforeCopy = floatCopy(before),
                        afterCopy = floatCopy(after);
  FailureOr<std::unique_ptr<ModelRunner>> reference =
      ModelRunner::create(*beforeCopy);
  if (failed(reference))
    return failure();
  FailureOr<std::unique_ptr<ModelRunner>> rewritten =
      ModelRunner::create(*afterCopy);
  if (failed(rewritten))
    return failure();
  const auto &config = (*reference)->config();
  std::vector<std::vector<int32_t>> sequences = checkSequences();
  if (sequences.empty())
    sequences = defaultSequences(config.vocabSize);
  for (auto [index, tokens] : llvm::enumerate(sequences)) {
    std::vector<int32_t> window(
        tokens.begin(),
        tokens.begin() + std::min<size_t>(tokens.size(), config.maxSeqLen));
    HostTensor x;
    if (failed((*reference)->embed(window, x)))
      return failure();
    for (int64_t layer = 0; layer < config.nLayers; ++layer) {
      HostTensor expected = x, actual = x;
      if (failed((*reference)->block(layer, expected, 0)) ||
          failed((*rewritten)->block(layer, actual, 0)))
        return failure();
      if (failed(compare(after, mlir::qnt::blockFunctionName(layer), passName,
                         llvm::formatv("block {0}'s output on sequence {1}",
                                       layer, index)
                             .str(),
                         relativeDifference(actual, expected), tolerance)))
        return failure();
      x = expected;
    }
    HostTensor expected, actual;
    if (failed((*reference)->head(x, expected)) ||
        failed((*rewritten)->head(x, actual)))
      return failure();
    if (failed(compare(after, "head", passName,
                       llvm::formatv("the logits on sequence {0}", index).str(),
                       relativeDifference(actual, expected), tolerance)))
      return failure();
  }
  return success();
}

/// Seeded random input of `type`, dynamic dimensions 8.
HostTensor randomInput(RankedTensorType type, std::mt19937 &random) {
  SmallVector<int64_t> shape(type.getShape());
  for (int64_t &d : shape)
    if (ShapedType::isDynamic(d))
      d = 8;
  HostTensor tensor(RankedTensorType::get(shape, type.getElementType()));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  if (type.getElementType().isF32())
    for (int64_t i = 0; i < tensor.numElements(); ++i)
      tensor.f32()[i] = uniform(random);
  return tensor; // other element types: zeros
}

LogicalResult checkFunctions(ModuleOp before, ModuleOp after,
                             StringRef passName, double tolerance) {
  OwningOpRef<ModuleOp> beforeCopy = floatCopy(before),
                        afterCopy = floatCopy(after);
  FailureOr<mlir::qnt::ParamStore> beforeStore =
      mlir::qnt::ParamStore::open(*beforeCopy);
  FailureOr<mlir::qnt::ParamStore> afterStore =
      mlir::qnt::ParamStore::open(*afterCopy);
  if (failed(beforeStore) || failed(afterStore))
    return failure();
  Location loc = after.getLoc();
  FailureOr<std::unique_ptr<CompiledModule>> reference =
      CompiledModule::compile(*beforeCopy);
  if (failed(reference))
    return failure();
  FailureOr<std::unique_ptr<CompiledModule>> rewritten =
      CompiledModule::compile(*afterCopy);
  if (failed(rewritten) ||
      failed((*reference)->bindParams(*beforeStore, loc)) ||
      failed((*rewritten)->bindParams(*afterStore, loc)))
    return failure();
  std::mt19937 random(20261205);
  for (const auto &signature : (*reference)->signatures()) {
    if (!(*rewritten)->signature(signature.name) ||
        llvm::any_of(signature.results, [](RankedTensorType t) {
          return !t.hasStaticShape();
        }))
      continue;
    std::vector<HostTensor> inputs;
    for (RankedTensorType type : signature.inputs)
      inputs.push_back(randomInput(type, random));
    std::vector<HostTensor> expected, actual;
    if (failed((*reference)->call(signature.name, inputs, expected, loc)) ||
        failed((*rewritten)->call(signature.name, inputs, actual, loc)))
      return failure();
    for (size_t r = 0; r < expected.size(); ++r) {
      if (!expected[r].getType().getElementType().isF32())
        continue;
      if (failed(compare(
              after, signature.name, passName,
              llvm::formatv("result {0} of @{1}", r, signature.name).str(),
              relativeDifference(actual[r], expected[r]), tolerance)))
        return failure();
    }
  }
  return success();
}

} // namespace

namespace qnt::ptq {

void setRewriteCheckSequences(
    std::vector<std::vector<int32_t>> sequences) {
  checkSequences() = std::move(sequences);
}

LogicalResult checkExactRewrite(ModuleOp before, ModuleOp after,
                                StringRef passName, double tolerance) {
  if (before->hasAttr(mlir::qnt::kModelAttrName))
    return checkModel(before, after, passName, tolerance);
  return checkFunctions(before, after, passName, tolerance);
}

void installRewriteChecker() {
  mlir::qnt::setRewriteChecker(checkExactRewrite);
}

} // namespace qnt::ptq
