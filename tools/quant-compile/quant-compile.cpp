//===- quant-compile.cpp - Import and quantize a model ahead of time -*- C++ -*-//
//
// quant-compile imports a checkpoint (llama2.c .bin or Hugging Face
// directory) into func/linalg/qnt IR with weights left in the checkpoint
// files, runs a pass pipeline on it (e.g. qnt-rtn), and writes the module.
// With --recipe it instead runs a quantization recipe (calibration, the
// sequential block driver, the methods) and writes a model directory
// (RecipeCompile.h). It ends with a summary: functions, parameters, time and peak resident
// memory, also as JSON with --summary-json (the memory benchmark reads it).
//
//===----------------------------------------------------------------------===//

#include "RecipeCompile.h"
#include "passes/Passes.h"
#include "qnt/InitAll.h"
#include "qnt/bench/Report.h"
#include "dialects/qnt/QntDialect.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/OutputFiles.h"
#include "qnt/package/Package.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <sys/resource.h>
#include <unistd.h>

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("quant-compile options");
static cl::opt<std::string> modelPath(cl::Positional, cl::Required,
                                      cl::desc("<llama2.c .bin | HF dir | "
                                               ".mlir>"),
                                      cl::cat(category));
static cl::opt<std::string> outputPath("o", cl::desc("Output .mlir file"),
                                       cl::value_desc("file"), cl::init("-"),
                                       cl::cat(category));
static cl::opt<std::string>
    passPipeline("pass-pipeline",
                 cl::desc("Passes to run after import, e.g. "
                          "'builtin.module(qnt-rtn{bits=4 group-size=128 "
                          "output=model-q4.safetensors})'"),
                 cl::cat(category));
static cl::opt<std::string>
    recipePath("recipe",
               cl::desc("Quantize with a recipe (docs/Recipes.md); -o names "
                        "the output directory"),
               cl::value_desc("file.yaml"), cl::cat(category));
static cl::opt<std::string> calibrationTokens(
    "calibration-tokens",
    cl::desc("Calibration token file, replacing the recipe's"),
    cl::cat(category));
static cl::opt<std::string> calibrationWindows(
    "calibration-windows",
    cl::desc("Window start offsets into the calibration tokens"),
    cl::cat(category));
static cl::opt<std::string>
    calibrationText("calibration-text",
                    cl::desc("Calibration text, replacing the recipe's"),
                    cl::cat(category));
static cl::opt<std::string>
    tokenizerPath("tokenizer",
                  cl::desc("Tokenizer for calibration text (tokenizer.bin)"),
                  cl::cat(category));
static cl::opt<bool> emitBytecode("emit-bytecode",
                                  cl::desc("Write MLIR bytecode"),
                                  cl::cat(category));
static cl::opt<std::string> targets(
    "target",
    cl::desc("Write a deployable artifact for these targets, comma "
             "separated: cpu, and cuda:<chip>[,<chip>...] (e.g. "
             "cuda:sm_80,sm_90); -o names the artifact directory "
             "(docs/Artifact.md)"),
    cl::value_desc("cpu|cuda:sm_80,sm_90"), cl::cat(category));
static cl::opt<bool> int8Activations(
    "int8-activations",
    cl::desc("--target: compile the quantized matmuls with int8 activations "
             "(as quant-run --int8-activations)"),
    cl::cat(category));
static cl::opt<int64_t>
    cpuThreads("cpu-threads",
               cl::desc("--target: threads of the large matmul kernels (0: "
                        "every core at run time, 1: sequential code)"),
               cl::init(0), cl::cat(category));
static cl::opt<bool> portableImage(
    "portable-image",
    cl::desc("--target cpu: also compile for the architecture's baseline "
             "(x86-64), run where the native image's features are missing"),
    cl::init(true), cl::cat(category));
static cl::opt<std::string>
    statsJson("summary-json", cl::desc("Write the run summary as JSON here"),
              cl::cat(category));

/// Peak resident set size of this process, in bytes.
static int64_t peakRssBytes() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

/// True for "sm_<digits>[a]": the chips ptxas takes (sm_80, sm_90a).
static bool isChipName(llvm::StringRef chip) {
  if (!chip.consume_front("sm_"))
    return false;
  chip.consume_back("a");
  return !chip.empty() && llvm::all_of(chip, llvm::isDigit);
}

/// Parses --target into `options`: "cpu" asks for the CPU images,
/// "cuda:<chip>" for GPU kernels, and a bare chip after a cuda target adds
/// one more ("cuda:sm_80,sm_90").
static bool parseTargets(::qnt::package::ArtifactOptions &options,
                         std::string *problem) {
  llvm::SmallVector<llvm::StringRef> list;
  llvm::StringRef(targets).split(list, ',', -1, /*KeepEmpty=*/false);
  if (list.empty()) {
    *problem = "--target names no target";
    return false;
  }
  options.cpuImages = false;
  bool afterCuda = false;
  for (llvm::StringRef target : list) {
    target = target.trim();
    if (target == "cpu") {
      options.cpuImages = true;
      afterCuda = false;
      continue;
    }
    llvm::StringRef chip = target;
    if (chip.consume_front("cuda:"))
      afterCuda = true;
    else if (!afterCuda || !chip.starts_with("sm_")) {
      *problem = "--target " + target.str() +
                 ": unknown target (known: cpu, cuda:<chip>[,<chip>...])";
      return false;
    }
    if (!isChipName(chip)) {
      *problem = "--target " + target.str() + ": '" + chip.str() +
                 "' is not an NVIDIA chip name such as sm_80 or sm_90";
      return false;
    }
    if (!llvm::is_contained(options.cudaChips, chip.str()))
      options.cudaChips.push_back(chip.str());
  }
  return true;
}

/// quant-compile --target: the model, quantized by --recipe or
/// --pass-pipeline if given, packaged into the artifact directory -o.
static int compileArtifact(MLIRContext &context) {
  std::string problem;
  ::qnt::package::ArtifactOptions options;
  if (!parseTargets(options, &problem)) {
    llvm::errs() << "quant-compile: " << problem << "\n";
    return 1;
  }
  if (outputPath == "-") {
    llvm::errs() << "quant-compile: --target needs -o <artifact directory>\n";
    return 1;
  }
  if (cpuThreads < 0) {
    llvm::errs() << "quant-compile: --cpu-threads must be >= 0\n";
    return 1;
  }
  OwningOpRef<ModuleOp> module = mlir::qnt::loadModel(&context, modelPath);
  if (!module)
    return 1;
  // Provenance by file name: the artifact holds no absolute path.
  auto fileName = [](llvm::StringRef path) {
    return llvm::sys::path::filename(path).str();
  };
  nlohmann::json recipe = {{"source", fileName(modelPath)}};
  // A recipe writes its quantized model directory; it is staged next to the
  // artifact, reloaded and packaged, then removed.
  std::string recipeDir;
  llvm::scope_exit removeRecipeDir([&] {
    if (!recipeDir.empty())
      (void)llvm::sys::fs::remove_directories(recipeDir);
  });
  if (!recipePath.empty()) {
    recipeDir = ::qnt::package::normalizeOutputPath(outputPath) + ".recipe-" +
                std::to_string(::getpid());
    RecipeCompileOptions options{recipePath,        recipeDir,
                                 calibrationTokens, calibrationWindows,
                                 calibrationText,   tokenizerPath};
    if (compileWithRecipe(*module, options) != 0)
      return 1;
    llvm::SmallString<256> quantized(recipeDir);
    llvm::sys::path::append(quantized, mlir::qnt::kCompiledModelFileName);
    module = mlir::qnt::loadModel(&context, quantized);
    if (!module)
      return 1;
    recipe["recipe"] = fileName(recipePath);
    if (auto buffer = llvm::MemoryBuffer::getFile(recipePath))
      recipe["recipe_text"] = (*buffer)->getBuffer().str();
    if (!calibrationTokens.empty())
      recipe["calibration_tokens"] = fileName(calibrationTokens);
    if (!calibrationWindows.empty())
      recipe["calibration_windows"] = fileName(calibrationWindows);
    if (!calibrationText.empty())
      recipe["calibration_text"] = fileName(calibrationText);
  } else if (!passPipeline.empty()) {
    if (failed(mlir::qnt::runPassPipeline(*module, passPipeline)))
      return 1;
    recipe["pass_pipeline"] = passPipeline.getValue();
  }
  options.outputDir = outputPath;
  options.cpu.threads = cpuThreads;
  options.cpu.int8Activations = int8Activations;
  options.portableImage = portableImage;
  options.tokenizerPath = tokenizerPath;
  options.recipe = recipe;
  if (failed(::qnt::package::writeArtifact(*module, options)))
    return 1;
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "quant-compile: import a checkpoint to qnt IR and run passes on it\n");
  DialectRegistry registry;
  ::qnt::registerAllDialects(registry);
  ::qnt::registerAllPasses();
  MLIRContext context(registry);
  // Diagnostics name their location; printing the op would dump whole
  // models.
  context.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, &context);

  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  if (!recipePath.empty() && !passPipeline.empty()) {
    llvm::errs() << "quant-compile: give --recipe or --pass-pipeline, not "
                    "both\n";
    return 1;
  }
  if (!targets.empty())
    return compileArtifact(context);
  // Destinations are checked before any work: a failure after the passes
  // ran would have left their files behind.
  // (A recipe's -o directory is staged and checked by compileWithRecipe.)
  std::vector<std::string> outputs;
  if (recipePath.empty())
    outputs.push_back(outputPath);
  if (!statsJson.empty())
    outputs.push_back(statsJson);
  for (const std::string &path : outputs)
    if (std::string problem = ::qnt::io::checkOutputPath(path);
        !problem.empty()) {
      llvm::errs() << "quant-compile: " << problem << "\n";
      return 1;
    }
  // Whatever fails from here removes the files this run created.
  bool succeeded = false;
  llvm::scope_exit cleanup([&] {
    if (!succeeded)
      ::qnt::io::removeCreatedFiles();
  });
  OwningOpRef<ModuleOp> module = mlir::qnt::loadModel(&context, modelPath);
  if (!module)
    return 1;
  if (!recipePath.empty()) {
    RecipeCompileOptions options{recipePath,        outputPath,
                                 calibrationTokens, calibrationWindows,
                                 calibrationText,   tokenizerPath};
    int status = compileWithRecipe(*module, options);
    llvm::errs() << llvm::formatv("quant-compile: total {0:F2} s; peak RSS "
                                  "{1:F1} MiB\n",
                                  elapsed(), peakRssBytes() / 1048576.0);
    succeeded = status == 0;
    return status;
  }
  double importSeconds = elapsed();
  if (!passPipeline.empty() &&
      failed(mlir::qnt::runPassPipeline(*module, passPipeline)))
    return 1;
  double passSeconds = elapsed() - importSeconds;

  std::string error;
  auto output = openOutputFile(outputPath, &error);
  if (!output) {
    llvm::errs() << "quant-compile: " << error << "\n";
    return 1;
  }
  if (emitBytecode) {
    if (failed(writeBytecodeToFile(*module, output->os())))
      return 1;
  } else {
    module->print(output->os());
  }
  // Kept only once everything, the summary included, is written: the
  // output file is removed on every failure return below.
  output->os().flush();
  if (output->os().has_error()) {
    llvm::errs() << "quant-compile: cannot write " << outputPath << ": "
                 << output->os().error().message() << "\n";
    output->os().clear_error();
    return 1;
  }

  int64_t functions = 0, params = 0;
  module->walk([&](func::FuncOp) { ++functions; });
  module->walk([&](mlir::qnt::ParamOp) { ++params; });
  double seconds = elapsed();
  int64_t peak = peakRssBytes();
  llvm::errs() << llvm::formatv(
      "quant-compile: {0} functions, {1} parameter references; import {2:F2} "
      "s, passes {3:F2} s, total {4:F2} s; peak RSS {5:F1} MiB\n",
      functions, params, importSeconds, passSeconds, seconds,
      peak / 1048576.0);
  if (!statsJson.empty()) {
    nlohmann::json stats = {{"model", modelPath.getValue()},
                            {"pass_pipeline", passPipeline.getValue()},
                            {"functions", functions},
                            {"param_refs", params},
                            {"import_seconds", importSeconds},
                            {"pass_seconds", passSeconds},
                            {"total_seconds", seconds},
                            {"peak_rss_bytes", peak}};
    std::string error;
    if (!::qnt::bench::writeJsonAtomically(statsJson, stats, &error)) {
      llvm::errs() << "quant-compile: cannot write " << statsJson << ": "
                   << error << "\n";
      return 1;
    }
  }
  output->keep();
  succeeded = true;
  return 0;
}
