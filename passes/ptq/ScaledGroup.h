//===- ScaledGroup.h - A group of layers for the scaling methods -*- C++ -*-===//
//
// qnt-awq and qnt-smooth hand the layers that share an input to the same
// numerics (numerics/Awq.h); this builds that group from what the
// weight-method driver passes a group method.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_PTQ_SCALEDGROUP_H
#define QNT_PASSES_PTQ_SCALEDGROUP_H

#include "passes/ptq/WeightMethodDriver.h"
#include "qnt/numerics/Awq.h"

#include <stdexcept>

namespace mlir::qnt {

/// The group of `problems` with their specs; `clip(problem)` says whether a
/// layer's clipping range is searched. Throws std::invalid_argument for a
/// per-layer option: these methods have none.
inline ::qnt::numerics::AwqGroup scaledGroup(
    StringRef passName, ArrayRef<LayerSettings> settings,
    ArrayRef<::qnt::numerics::WeightProblem> problems,
    llvm::function_ref<bool(const ::qnt::numerics::WeightProblem &)> clip) {
  ::qnt::numerics::AwqGroup group;
  for (auto [layer, problem] : llvm::zip(settings, problems)) {
    if (!layer.methodOptions.empty())
      throw std::invalid_argument(
          passName.str() + " has no per-layer option '" +
          layer.methodOptions.begin()->getKey().str() + "'");
    group.layers.push_back(problem);
    group.specs.push_back(layer.spec);
    group.clip.push_back(clip(problem));
  }
  return group;
}

} // namespace mlir::qnt

#endif // QNT_PASSES_PTQ_SCALEDGROUP_H
