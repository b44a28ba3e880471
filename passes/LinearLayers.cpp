//===- LinearLayers.cpp - Find and name the linear layers of IR -----------===//

#include "passes/LinearLayers.h"
#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;
using namespace mlir::qnt;

/// The name the importer (a name location) or a qnt.param gives `weight`.
static std::optional<std::string> weightName(Value weight) {
  Operation *producer = weight ? weight.getDefiningOp() : nullptr;
  if (!producer)
    return std::nullopt;
  if (auto name = dyn_cast<NameLoc>(producer->getLoc()))
    return name.getName().str();
  if (auto param = dyn_cast<ParamOp>(producer))
    return param.getName().str();
  return std::nullopt;
}

SmallVector<LinearLayer> mlir::qnt::collectLinearLayers(func::FuncOp func) {
  SmallVector<LinearLayer> layers;
  unsigned unnamedObservable = 0, unnamedPlain = 0;
  func.walk([&](Operation *op) {
    LinearLayer layer{op, Value(), false, ""};
    if (auto matmul = dyn_cast<linalg::MatmulOp>(op)) {
      if (!matmul.hasPureTensorSemantics())
        return;
      layer.weight = matmul.getInputs()[1];
      layer.observable = isa<linalg::MatmulTransposeBOp>(op);
    } else if (auto matmul = dyn_cast<MatmulOp>(op)) {
      if (!matmul.getComponents().empty())
        layer.weight = matmul.getComponents().front();
      layer.observable = true;
    } else {
      return;
    }
    if (std::optional<std::string> name = weightName(layer.weight))
      layer.name = *name;
    else if (layer.observable)
      layer.name =
          (func.getSymName() + ".linear" + Twine(unnamedObservable++)).str();
    else
      layer.name = (func.getSymName() + ".matmul" + Twine(unnamedPlain++)).str();
    layers.push_back(std::move(layer));
  });
  return layers;
}
