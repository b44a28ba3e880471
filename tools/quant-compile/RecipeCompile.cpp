//===- RecipeCompile.cpp - quant-compile --recipe -------------------------===//
//
// See RecipeCompile.h.
//
//===----------------------------------------------------------------------===//

#include "RecipeCompile.h"

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/bench/Report.h"
#include "qnt/calibration/Calibrator.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/Corpus.h"
#include "qnt/io/Tokenizer.h"
#include "qnt/ptq/Recipe.h"
#include "qnt/ptq/RewriteCheck.h"
#include "qnt/ptq/SequentialDriver.h"
#include "qnt/runtime/ModelRunner.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

using namespace mlir;
namespace io = ::qnt::io;
namespace ptq = ::qnt::ptq;
namespace calibration = ::qnt::calibration;

/// The weights file of a compiled model directory.
static constexpr llvm::StringLiteral kWeightsFileName =
    "qnt-weights.safetensors";

static int fail(const std::string &message) {
  llvm::errs() << "quant-compile: " << message << "\n";
  return 1;
}

/// Reads start offsets, one integer per line.
static bool readOffsets(const std::string &path, std::vector<int64_t> &starts,
                        std::string *error) {
  std::string text;
  if (!io::readTextFile(path, &text, error))
    return false;
  llvm::SmallVector<llvm::StringRef> lines;
  llvm::StringRef(text).split(lines, '\n', -1, /*KeepEmpty=*/false);
  for (auto [index, line] : llvm::enumerate(lines)) {
    int64_t value;
    if (line.trim().getAsInteger(10, value)) {
      *error = path + ":" + std::to_string(index + 1) + ": '" +
               line.trim().str() + "' is not a window start offset";
      return false;
    }
    starts.push_back(value);
  }
  return true;
}

/// The calibration sequences the recipe names.
static bool calibrationSequences(const ptq::RecipeCalibration &c,
                                 const std::string &tokenizerPath,
                                 int64_t vocabSize,
                                 std::vector<std::vector<int32_t>> &sequences,
                                 std::string *error) {
  std::unique_ptr<io::Tokenizer> tokenizer;
  bool tokenIds = !c.tokens.empty();
  if (!tokenIds) {
    if (tokenizerPath.empty()) {
      *error = "the recipe's calibration text needs --tokenizer";
      return false;
    }
    tokenizer = io::Tokenizer::open(tokenizerPath, vocabSize, error);
    if (!tokenizer)
      return false;
  }
  std::vector<std::vector<int32_t>> documents;
  if (!io::loadDocuments(tokenIds ? c.tokens : c.text, tokenIds,
                         tokenizer.get(), vocabSize, &documents, error))
    return false;
  if (c.windows.empty()) {
    sequences = calibration::makeCalibrationSequences(
        documents, c.numSequences, c.sequenceLength);
    if (int64_t(sequences.size()) < c.numSequences) {
      *error = llvm::formatv("the calibration data holds {0} sequences of {1} "
                             "tokens, the recipe asks for {2}",
                             sequences.size(), c.sequenceLength,
                             c.numSequences);
      return false;
    }
    return true;
  }
  std::vector<int32_t> tokens;
  for (const auto &doc : documents)
    tokens.insert(tokens.end(), doc.begin(), doc.end());
  std::vector<int64_t> starts;
  if (!readOffsets(c.windows, starts, error))
    return false;
  if (!calibration::makeWindows(tokens, starts, c.sequenceLength, sequences,
                                error)) {
    *error = c.windows + ": " + *error;
    return false;
  }
  return true;
}

/// Makes the parameter files inside `dir` relative (resolved next to
/// model.mlir when it is loaded), so that the directory can be moved.
static void relativizeParamFiles(ModuleOp module, llvm::StringRef dir) {
  auto files =
      module->getAttrOfType<ArrayAttr>(mlir::qnt::kParamFilesAttrName);
  if (!files)
    return;
  SmallVector<Attribute> updated;
  for (Attribute entry : files) {
    auto path = cast<StringAttr>(entry).getValue();
    if (path.starts_with(dir) && path.size() > dir.size() + 1)
      entry = StringAttr::get(module.getContext(),
                              path.drop_front(dir.size() + 1));
    updated.push_back(entry);
  }
  module->setAttr(mlir::qnt::kParamFilesAttrName,
                  ArrayAttr::get(module.getContext(), updated));
}

namespace {

/// One step parsed into a pass manager; the weight-method interface when
/// the step's pass has one.
struct ParsedStep {
  std::unique_ptr<OpPassManager> pm;
  const mlir::qnt::WeightMethodPass *method = nullptr;
  bool writesParams = false;
  std::string pipeline;
  /// Searched steps: one parsed step per value (each with its own output
  /// file), in the order of the values.
  std::vector<ParsedStep> candidates;
};

} // namespace

static bool parseStep(const std::string &element, ParsedStep &step,
                      std::string *error) {
  step.pipeline = element;
  step.pm = std::make_unique<OpPassManager>("builtin.module");
  std::string messages;
  llvm::raw_string_ostream os(messages);
  if (failed(parsePassPipeline(element, *step.pm, os))) {
    *error = "recipe step '" + element + "': " + messages;
    return false;
  }
  step.method = nullptr;
  step.writesParams = false;
  if (step.pm->size() == 1) {
    const Pass *pass = &*step.pm->getPasses().begin();
    step.method = dynamic_cast<const mlir::qnt::WeightMethodPass *>(pass);
    step.writesParams =
        dynamic_cast<const mlir::qnt::ParamWritingPass *>(pass) != nullptr;
  }
  return true;
}

/// Runs one step on `module`: weight methods that need statistics run
/// block by block on the calibration sequences, other passes as a pass.
static LogicalResult
runStep(ModuleOp module, const ParsedStep &step,
        const ptq::RecipeCalibration &c,
        const std::vector<std::vector<int32_t>> &sequences,
        nlohmann::json &report) {
  if (!step.method || !step.method->needsStatistics())
    return mlir::qnt::runPassPipeline(module, step.pipeline);
  if (sequences.empty())
    return module.emitError("recipe step '")
           << step.pipeline << "' needs calibration data; the recipe has no "
           << "'calibration' section";
  FailureOr<std::unique_ptr<mlir::qnt::WeightMethodDriver>> driver =
      step.method->createDriver(module);
  if (failed(driver))
    return failure();
  ptq::SequentialOptions options;
  options.stream = c.stream == "float" ? calibration::Stream::Float
                                       : calibration::Stream::Quantized;
  options.trueSequential = c.trueSequential;
  if (c.memoryBudgetMb >= 0)
    options.memoryBudgetBytes = c.memoryBudgetMb * 1024 * 1024;
  FailureOr<ptq::SequentialSummary> summary =
      ptq::runSequential(module, **driver, sequences, options);
  if (failed(summary))
    return failure();
  nlohmann::json layers = nlohmann::json::array();
  for (const mlir::qnt::LayerReport &r : (*driver)->reports())
    layers.push_back(mlir::qnt::reportJson(r));
  nlohmann::json trained = nlohmann::json::array();
  for (const ptq::ReconstructionReport &r : summary->reconstructions) {
    trained.push_back({{"iterations", r.iterations},
                       {"stopped_early", r.stoppedEarly},
                       {"initial_loss", r.initialLoss},
                       {"final_loss", r.finalLoss},
                       {"seconds", r.seconds},
                       {"compile_seconds", r.compileSeconds},
                       {"forward_seconds", r.forwardSeconds},
                       {"adjoint_seconds", r.adjointSeconds},
                       {"trainable_elements", r.trainableElements},
                       {"optimizer_state_bytes", r.optimizerStateBytes}});
    // PD-Quant's prediction difference and distribution correction.
    if (r.predicted) {
      trained.back()["initial_prediction_difference"] = r.initialPrediction;
      trained.back()["final_prediction_difference"] = r.finalPrediction;
      trained.back()["prediction_seconds"] = r.predictionSeconds;
    }
    if (r.corrected)
      trained.back()["correction_seconds"] = r.correctionSeconds;
    // PTQ1.61's second target.
    if (r.targetSeconds > 0)
      trained.back()["target_seconds"] = r.targetSeconds;
  }
  report["steps"].push_back({{"pipeline", step.pipeline},
                             {"block_reconstruction", trained},
                             {"block_executions", summary->blockExecutions},
                             {"sequences", summary->sequences},
                             {"tokens", summary->tokens},
                             {"spilled_block_inputs", summary->spilled},
                             {"seconds", summary->seconds},
                             {"layers", layers}});
  llvm::errs() << llvm::formatv(
      "quant-compile: {0} block by block on {1} sequences ({2} tokens) in "
      "{3:F2} s\n",
      step.pipeline, summary->sequences, summary->tokens, summary->seconds);
  return success();
}

/// The logits of `module` on `sequences`, concatenated.
static FailureOr<std::vector<float>>
modelOutputs(ModuleOp module,
             const std::vector<std::vector<int32_t>> &sequences) {
  OwningOpRef<ModuleOp> copy = module.clone();
  FailureOr<std::unique_ptr<::qnt::runtime::ModelRunner>> runner =
      ::qnt::runtime::ModelRunner::create(*copy);
  if (failed(runner))
    return failure();
  std::vector<float> outputs;
  for (const std::vector<int32_t> &tokens : sequences) {
    ::qnt::runtime::HostTensor logits;
    if (failed((*runner)->forward(tokens, 0, logits)))
      return failure();
    outputs.insert(outputs.end(), logits.f32(),
                   logits.f32() + logits.numElements());
  }
  return outputs;
}

/// A searched step: runs every candidate on a copy of `module`, keeps the
/// one whose logits are closest (mean squared error) to `module`'s before
/// the step, and moves it into `module`. The losers' parameter files are
/// removed.
static LogicalResult
runSearchStep(ModuleOp module, const ParsedStep &step,
              const ptq::RecipeSearch &search,
              const ptq::RecipeCalibration &c,
              const std::vector<std::vector<int32_t>> &sequences,
              nlohmann::json &report) {
  std::vector<std::vector<int32_t>> lossSequences(
      sequences.begin(),
      sequences.begin() +
          std::min<size_t>(sequences.size(), size_t(search.sequences)));
  if (lossSequences.empty())
    return module.emitError("recipe step '")
           << step.pipeline << "': a search needs calibration data";
  FailureOr<std::vector<float>> reference =
      modelOutputs(module, lossSequences);
  if (failed(reference))
    return failure();
  nlohmann::json tried = nlohmann::json::array();
  OwningOpRef<ModuleOp> best;
  nlohmann::json bestReport;
  double bestLoss = INFINITY;
  size_t bestIndex = 0;
  std::vector<std::string> files;
  for (auto [index, candidate] : llvm::enumerate(step.candidates)) {
    OwningOpRef<ModuleOp> copy = module.clone();
    nlohmann::json stepReport = {{"steps", nlohmann::json::array()}};
    if (failed(runStep(*copy, candidate, c, sequences, stepReport)))
      return failure();
    FailureOr<std::vector<float>> outputs =
        modelOutputs(*copy, lossSequences);
    if (failed(outputs))
      return failure();
    double loss = 0;
    for (size_t i = 0; i < outputs->size(); ++i) {
      double d = double((*outputs)[i]) - double((*reference)[i]);
      loss += d * d;
    }
    loss /= double(std::max<size_t>(outputs->size(), 1));
    llvm::errs() << llvm::formatv(
        "quant-compile: search {0}={1}: output mse {2:E4}\n", search.option,
        search.values[index], loss);
    tried.push_back({{"value", search.values[index]}, {"loss", loss}});
    if (auto files_ = (*copy)->getAttrOfType<ArrayAttr>(
            mlir::qnt::kParamFilesAttrName))
      files.push_back(cast<StringAttr>(files_.getValue().back()).str());
    if (loss < bestLoss) {
      bestLoss = loss;
      bestIndex = index;
      best = std::move(copy);
      bestReport = stepReport["steps"].empty()
                       ? nlohmann::json::object()
                       : stepReport["steps"].back();
    }
  }
  if (!best)
    return module.emitError("recipe step '")
           << step.pipeline << "': every searched value gave a NaN loss";
  // The winner replaces the module; the other candidates' files go.
  for (auto [index, file] : llvm::enumerate(files))
    if (index != bestIndex)
      llvm::sys::fs::remove(file);
  module.getBodyRegion().takeBody(best->getBodyRegion());
  module->setAttrs(best.get()->getAttrDictionary());
  llvm::errs() << llvm::formatv("quant-compile: search keeps {0}={1}\n",
                                search.option, search.values[bestIndex]);
  // The kept candidate's own step report (layers, block executions), with
  // the search.
  bestReport["pipeline"] = step.candidates[bestIndex].pipeline;
  bestReport["search"] = {{"option", search.option},
                          {"tried", tried},
                          {"chosen", search.values[bestIndex]},
                          {"sequences", lossSequences.size()}};
  report["steps"].push_back(bestReport);
  return success();
}

/// Moves the finished `staging` directory to `target`, replacing an
/// earlier quant-compile output there but nothing else.
static bool publish(llvm::StringRef staging, llvm::StringRef target,
                    std::string *error) {
  if (llvm::sys::fs::exists(target)) {
    llvm::SmallString<256> previous(target);
    llvm::sys::path::append(previous, mlir::qnt::kCompiledModelFileName);
    if (!llvm::sys::fs::exists(previous)) {
      *error = target.str() + " exists and is not a quant-compile output "
               "directory; not replacing it";
      return false;
    }
    if (std::error_code ec = llvm::sys::fs::remove_directories(target)) {
      *error = target.str() + ": " + ec.message();
      return false;
    }
  }
  if (std::error_code ec = llvm::sys::fs::rename(staging, target)) {
    *error = "cannot rename " + staging.str() + " to " + target.str() + ": " +
             ec.message();
    return false;
  }
  return true;
}

int compileWithRecipe(ModuleOp module, const RecipeCompileOptions &options) {
  ptq::Recipe recipe;
  std::string error;
  if (!ptq::readRecipe(options.recipePath, recipe, &error))
    return fail(error);
  ptq::RecipeCalibration &c = recipe.calibration;
  if (!options.calibrationTokens.empty() || !options.calibrationText.empty()) {
    c.tokens = options.calibrationTokens;
    c.text = options.calibrationText;
    c.windows = options.calibrationWindows;
  } else if (!options.calibrationWindows.empty()) {
    c.windows = options.calibrationWindows;
  }
  if (options.outputDir.empty() || options.outputDir == "-")
    return fail("--recipe writes a directory: give -o <dir>");

  // Everything is parsed and checked before any work is done.
  llvm::SmallString<256> target(options.outputDir);
  llvm::sys::fs::make_absolute(target);
  llvm::sys::path::remove_dots(target, /*remove_dot_dot=*/true);
  llvm::SmallString<256> staging(target);
  staging += ".partial-" + std::to_string(::getpid());
  std::vector<ParsedStep> steps(recipe.steps.size());
  for (size_t i = 0; i < recipe.steps.size(); ++i) {
    if (!parseStep(ptq::stepPipeline(recipe.steps[i]), steps[i], &error))
      return fail(options.recipePath + ": " + error);
    // Weight methods (and folds) write their parameters into the output
    // directory.
    std::map<std::string, std::string> extra;
    llvm::SmallString<256> weights(staging);
    llvm::sys::path::append(weights,
                            i == 0 ? kWeightsFileName.str()
                                   : "qnt-weights-" + std::to_string(i) +
                                         ".safetensors");
    if (steps[i].writesParams)
      extra["output"] = weights.str().str();
    if (steps[i].method)
      extra["verbose"] = "true";
    if (!extra.empty() &&
        !parseStep(ptq::stepPipeline(recipe.steps[i], extra), steps[i],
                   &error))
      return fail(options.recipePath + ": " + error);
    // A searched step: one candidate per value, each with its own file.
    const ptq::RecipeSearch &search = recipe.steps[i].search;
    for (auto [j, value] : llvm::enumerate(search.values)) {
      std::map<std::string, std::string> candidateExtra = extra;
      if (steps[i].writesParams) {
        llvm::SmallString<256> file(weights);
        llvm::sys::path::replace_extension(
            file, "search-" + std::to_string(j) + ".safetensors");
        candidateExtra["output"] = file.str().str();
      }
      candidateExtra[search.option] = value;
      ParsedStep candidate;
      if (!parseStep(ptq::stepPipeline(recipe.steps[i], candidateExtra),
                     candidate, &error))
        return fail(options.recipePath + ": " + error);
      steps[i].candidates.push_back(std::move(candidate));
    }
  }
  FailureOr<::qnt::io::LlamaConfig> config = mlir::qnt::readModelConfig(module);
  if (failed(config))
    return 1;
  std::vector<std::vector<int32_t>> sequences;
  if (c.present && !calibrationSequences(c, options.tokenizerPath,
                                         config->vocabSize, sequences, &error))
    return fail(error);

  if (std::error_code ec = llvm::sys::fs::create_directories(staging))
    return fail(staging.str().str() + ": " + ec.message());
  bool published = false;
  auto cleanup = llvm::scope_exit([&] {
    if (!published)
      llvm::sys::fs::remove_directories(staging);
  });

  // Folding passes with `verify` run the model on some of the calibration
  // windows.
  ptq::setRewriteCheckSequences(std::vector<std::vector<int32_t>>(
      sequences.begin(),
      sequences.begin() + std::min<size_t>(sequences.size(), 4)));
  nlohmann::json report = {{"recipe", recipe.name},
                           {"steps", nlohmann::json::array()}};
  std::vector<std::string> applied;
  for (auto [i, step] : llvm::enumerate(steps)) {
    const ptq::RecipeSearch &search = recipe.steps[i].search;
    if (search.present) {
      if (failed(runSearchStep(module, step, search, c, sequences, report)))
        return 1;
      applied.push_back(report["steps"].back()["pipeline"]);
      continue;
    }
    if (failed(runStep(module, step, c, sequences, report)))
      return 1;
    applied.push_back(step.pipeline);
  }

  // Record what was done, so that the result can be reproduced.
  Builder b(module.getContext());
  relativizeParamFiles(module, staging);
  module->setAttr("qnt.recipe", b.getStringAttr(recipe.text));
  module->setAttr("qnt.recipe_pipeline",
                  b.getStrArrayAttr(SmallVector<StringRef>(applied.begin(),
                                                           applied.end())));
  if (c.present)
    module->setAttr(
        "qnt.recipe_calibration",
        b.getStringAttr(llvm::formatv("{0} sequences of {1} tokens from {2}{3}",
                                      sequences.size(), c.sequenceLength,
                                      c.tokens.empty() ? c.text : c.tokens,
                                      c.windows.empty()
                                          ? std::string()
                                          : " at the offsets in " + c.windows)
                            .str()));

  auto writeFile = [&](llvm::StringRef name,
                       llvm::function_ref<void(llvm::raw_ostream &)> body) {
    llvm::SmallString<256> path(staging);
    llvm::sys::path::append(path, name);
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    if (ec)
      return false;
    body(os);
    os.close();
    return !os.has_error();
  };
  if (!writeFile(mlir::qnt::kCompiledModelFileName,
                 [&](llvm::raw_ostream &os) { module.print(os); }) ||
      !writeFile("recipe.yaml",
                 [&](llvm::raw_ostream &os) { os << recipe.text; }) ||
      !writeFile("report.json",
                 [&](llvm::raw_ostream &os) { os << report.dump(2) << "\n"; }))
    return fail("cannot write into " + staging.str().str());
  if (!publish(staging, target, &error))
    return fail(error);
  published = true;
  llvm::errs() << "quant-compile: wrote " << target << " ("
               << mlir::qnt::kCompiledModelFileName << ", "
               << kWeightsFileName << ", recipe.yaml, report.json)\n";
  return 0;
}
