//===- RecipeCompile.h - quant-compile --recipe -----------------*- C++ -*-===//
//
// Runs a quantization recipe (docs/Recipes.md) on an imported model and
// writes the result as a directory: model.mlir (with the recipe and the
// applied pipeline recorded as module attributes), the quantized weights
// next to it, recipe.yaml and report.json. The directory is assembled
// under a temporary name and renamed at the end: a failed run leaves
// nothing behind.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TOOLS_QUANT_COMPILE_RECIPECOMPILE_H
#define QNT_TOOLS_QUANT_COMPILE_RECIPECOMPILE_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

struct RecipeCompileOptions {
  std::string recipePath;
  std::string outputDir;
  /// Override the recipe's calibration data.
  std::string calibrationTokens, calibrationWindows, calibrationText;
  std::string tokenizerPath;
};

/// Returns the process exit code.
int compileWithRecipe(mlir::ModuleOp module, const RecipeCompileOptions &options);

#endif // QNT_TOOLS_QUANT_COMPILE_RECIPECOMPILE_H
