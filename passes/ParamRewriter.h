//===- ParamRewriter.h - New values for float constants and params -*- C++ -*-===//
//
// The exact rewrites (qnt-fold-smooth, qnt-equalize) change float data, not
// code: a gain divided by a scale, weight rows or columns rescaled. A
// constant is rewritten in place; a qnt.param becomes a new tensor of one
// output safetensors file (never an input file), under the parameter's name
// with a suffix, and the file is added to the module's parameter files.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_PARAMREWRITER_H
#define QNT_PASSES_PARAMREWRITER_H

#include "qnt/ParamStore.h"
#include "qnt/io/Safetensors.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringSet.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir::qnt {

class ParamRewriter {
public:
  /// `passName` prefixes messages; `output` is the file new parameters go
  /// to (empty: rewriting a parameter is an error saying so).
  ParamRewriter(ModuleOp module, StringRef output, StringRef passName);

  /// The f32 values of `source` (an arith.constant or qnt.param of f32).
  FailureOr<std::vector<float>> read(Operation *source);

  /// A value like `source` holding `values`, created before `user`: a new
  /// constant, or a qnt.param named after `source`'s with `suffix`.
  FailureOr<Value> replacement(Operation *source, Operation *user,
                               const std::vector<float> &values,
                               StringRef suffix);

  /// Writes the new parameters, if any, and lists the file in the module.
  LogicalResult finish();

  StringRef getPassName() const { return passName; }

private:
  LogicalResult openStore();

  ModuleOp module;
  std::string output, passName;
  std::optional<ParamStore> store;
  ::qnt::io::SafetensorsWriter writer;
  llvm::StringSet<> written;
};

} // namespace mlir::qnt

#endif // QNT_PASSES_PARAMREWRITER_H
