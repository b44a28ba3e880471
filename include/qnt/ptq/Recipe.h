//===- Recipe.h - Quantization recipes (YAML) -------------------*- C++ -*-===//
//
// A recipe names the calibration data and the passes that quantize a model
// (docs/Recipes.md), in YAML like llm-compressor's recipes, with each step
// being a quant-mlir pass and its options as in a pass pipeline:
//
//   name: gptq-w4-g32-asym-act
//   description: GPTQ w4 g32 asym act-order (REFERENCE_RESULTS.md)
//   calibration:
//     tokens: ../../shared/data/tinystories_excerpt.tokens
//     windows: ../../shared/data/calibration_windows_128x256.txt
//     sequence-length: 256
//     stream: quantized
//   steps:
//     - pass: qnt-gptq
//       options: {bits: 4, group-size: 32, act-order: true}
//
// Relative paths are relative to the recipe file. Unknown keys are errors
// with their line and column; unknown pass options are reported by MLIR's
// pass option parser.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PTQ_RECIPE_H
#define QNT_PTQ_RECIPE_H

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qnt::ptq {

struct RecipeCalibration {
  /// A token file (one document per line) ...
  std::string tokens;
  /// ... with start offsets (one per line): windows tokens[s : s + L].
  std::string windows;
  /// Or a text file, tokenized with the tool's --tokenizer.
  std::string text;
  int64_t sequenceLength = 0;
  /// Without windows: this many consecutive windows of the documents.
  int64_t numSequences = 0;
  /// quantized | float.
  std::string stream = "quantized";
  bool trueSequential = true;
  /// Block inputs above this many MiB go to a temporary file; -1: no limit.
  int64_t memoryBudgetMb = -1;
  bool present = false;
};

/// A search over one option of a step (SmoothQuant+'s alpha): the step runs
/// once per value on a copy of the model, and the value whose model output
/// (the logits on `sequences` calibration windows) is closest to the model
/// before the step, in mean squared error, is kept.
struct RecipeSearch {
  std::string option;
  std::vector<std::string> values;
  int64_t sequences = 8;
  bool present = false;
};

struct RecipeStep {
  std::string pass;
  /// Option name -> value, as in `pass{name=value ...}`.
  std::map<std::string, std::string> options;
  RecipeSearch search;
};

struct Recipe {
  std::string name, description;
  RecipeCalibration calibration;
  std::vector<RecipeStep> steps;
  /// The file's text, recorded in the output.
  std::string text;
};

/// Reads `path`; on failure sets *error to a message naming the file (and
/// line and column for YAML errors) and returns false.
bool readRecipe(const std::string &path, Recipe &recipe, std::string *error);

/// `step` as a pass pipeline element, "qnt-gptq{act-order=true bits=4}",
/// with `extra` options appended (values with spaces or braces quoted).
std::string stepPipeline(const RecipeStep &step,
                         const std::map<std::string, std::string> &extra = {});

} // namespace qnt::ptq

#endif // QNT_PTQ_RECIPE_H
