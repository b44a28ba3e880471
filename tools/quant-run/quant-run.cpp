//===- quant-run.cpp - JIT-compile and run qnt programs on the CPU -*- C++ -*-//
//
// quant-run lowers a module through qnt-cpu-pipeline, JIT-compiles it, binds
// its qnt.param weights to memory-mapped safetensors files, feeds inputs
// (from a safetensors file or generated from a seed), and writes or
// compares the outputs. `--demo` runs the built-in quantized linear layer.
//
//===----------------------------------------------------------------------===//

#include "ModelDrivers.h"
#include "passes/Passes.h"
#include "qnt/support/OptionRange.h"
#include "qnt/InitAll.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/Artifact.h"
#include "qnt/io/Corpus.h"
#include "qnt/io/Evaluation.h"
#include "qnt/io/OutputFiles.h"
#include "qnt/io/Tokenizer.h"
#include "qnt/runtime/CpuJit.h"
#include "qnt/runtime/Evaluate.h"
#include "qnt/runtime/LinearExample.h"
#include "qnt/runtime.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <sys/resource.h>
#include <cstring>
#include <random>
#include <unistd.h>

using namespace mlir;
using namespace ::qnt::runtime;
namespace cl = llvm::cl;
namespace io = ::qnt::io;

static cl::OptionCategory category("quant-run options");
static cl::opt<std::string>
    inputFilename(cl::Positional,
                  cl::desc("<input .mlir, or - for standard input>"),
                  cl::cat(category));
static cl::opt<std::string> entry("entry",
                                  cl::desc("Function to run (default: the "
                                           "only public function)"),
                                  cl::cat(category));
static cl::list<std::string>
    paramFiles("params", cl::desc("Extra safetensors parameter files"),
               cl::CommaSeparated, cl::cat(category));
static cl::opt<std::string>
    inputsFile("inputs",
               cl::desc("Safetensors file with tensors input0, input1, ..."),
               cl::cat(category));
static cl::opt<unsigned> seed("seed",
                              cl::desc("Seed of generated inputs (used when "
                                       "--inputs is not given)"),
                              cl::init(0), cl::cat(category));
static cl::opt<std::string>
    outputFile("output",
               cl::desc("Write results to this safetensors file as result0, "
                        "result1, ..."),
               cl::cat(category));
static cl::opt<std::string>
    expectFile("expect",
               cl::desc("Compare results with result0, ... in this file"),
               cl::cat(category));
static cl::opt<double> rtol("rtol",
                            cl::desc("Relative tolerance of --expect, against "
                                     "the largest expected magnitude (>= 0)"),
                            cl::init(1e-5), cl::cat(category));
static cl::opt<bool> demo("demo",
                          cl::desc("Run the built-in quantized linear layer "
                                   "example and print its errors"),
                          cl::cat(category));
static cl::opt<std::string>
    workDir("work-dir", cl::desc("Directory for --demo files (default: a new "
                                 "temporary directory)"),
            cl::cat(category));

static cl::OptionCategory modelCategory("quant-run model options");
static cl::opt<std::string>
    modelPath("model",
              cl::desc("Run a model: a llama2.c .bin, a Hugging Face "
                       "directory, a .mlir written by quant-compile, or an "
                       "artifact (quant-compile --target) run by "
                       "libqnt_runtime"),
              cl::cat(modelCategory));
static cl::opt<std::string>
    tokenizerPath("tokenizer", cl::desc("llama2.c tokenizer.bin"),
                  cl::cat(modelCategory));
static cl::opt<std::string> passPipeline(
    "pass-pipeline",
    cl::desc("Passes to run on the model before executing it, e.g. "
             "'builtin.module(qnt-rtn{bits=8 granularity=per-channel "
             "symmetric=1 output=q.safetensors})'"),
    cl::cat(modelCategory));
static cl::opt<std::string>
    perplexityText("perplexity",
                   cl::desc("Text file to compute perplexity on (documents "
                            "split at <|endoftext|> lines)"),
                   cl::cat(modelCategory));
static cl::opt<std::string> perplexityTokens(
    "perplexity-tokens",
    cl::desc("Token-id file to compute perplexity on (one document per "
             "line, BOS included as given)"),
    cl::cat(modelCategory));
static cl::opt<int64_t>
    contextLength("context",
                  cl::desc("Context length of perplexity chunks (default: "
                           "the model's)"),
                  cl::init(0), cl::cat(modelCategory));
static cl::opt<int64_t>
    cpuThreads("cpu-threads",
               cl::desc("Threads of the large matmul kernels (0: every "
                        "core)"),
               cl::init(0), cl::cat(modelCategory));
static cl::opt<bool> int8Activations(
    "int8-activations",
    cl::desc("Quantize the activations of the quantized matmuls to int8 "
             "(per row and scale group) and multiply in integers"),
    cl::init(false), cl::cat(modelCategory));
static cl::opt<bool> hugePageWeights(
    "huge-page-weights",
    cl::desc("Copy the parameters into memory advised for transparent huge "
             "pages instead of reading them from the mapped files (fewer "
             "TLB misses: quant-bench --weight-memory compares the two)"),
    cl::init(false), cl::cat(modelCategory));
static cl::opt<bool> gpuLoopsOnCpu(
    "gpu-loops-on-cpu",
    cl::desc("Run every op but the quantized matmuls through the loop nests "
             "that the whole-model GPU pipeline maps to blocks and threads, "
             "executed on the CPU one block and thread after the other "
             "(checks the GPU mapping without a GPU)"),
    cl::init(false), cl::cat(modelCategory));
static cl::opt<std::string>
    prompt("generate", cl::desc("Generate a continuation of this text"),
           cl::cat(modelCategory));
static cl::opt<std::string>
    promptTokens("generate-tokens",
                 cl::desc("Generate a continuation of these token ids "
                          "(space separated, BOS included as given)"),
                 cl::cat(modelCategory));
static cl::opt<int64_t> steps("steps", cl::desc("Tokens to generate"),
                              cl::init(64), cl::cat(modelCategory));
static cl::opt<float> temperature("temperature",
                                  cl::desc("Sampling temperature (0: greedy)"),
                                  cl::init(0.0f), cl::cat(modelCategory));
static cl::opt<float> topP("top-p", cl::desc("Nucleus sampling mass"),
                           cl::init(0.9f), cl::cat(modelCategory));
static cl::opt<bool> bench(
    "bench",
    cl::desc("Time a prompt and the decode steps after it (prefill and "
             "decode tokens/s, ms/token, peak memory) over rounds"),
    cl::cat(modelCategory));
static cl::opt<int64_t>
    benchPrompt("bench-prompt", cl::desc("--bench: prompt tokens"),
                cl::init(128), cl::cat(modelCategory));
static cl::opt<int64_t>
    benchDecode("bench-decode", cl::desc("--bench: decode steps per round"),
                cl::init(64), cl::cat(modelCategory));
static cl::opt<int64_t> benchRounds("bench-rounds",
                                    cl::desc("--bench: rounds (min/median/max)"),
                                    cl::init(5), cl::cat(modelCategory));
static cl::opt<std::string> artifactImage(
    "image",
    cl::desc("Artifact: the CPU image to run (native, portable; default: the "
             "first this CPU runs)"),
    cl::cat(modelCategory));
static cl::opt<uint64_t> sampleSeed("sample-seed",
                                    cl::desc("Seed of top-p sampling"),
                                    cl::init(42), cl::cat(modelCategory));

//===----------------------------------------------------------------------===//
// --model
//===----------------------------------------------------------------------===//

/// The model modes' options, from the command line.
static ::qnt::run::ModelRunOptions modelRunOptions() {
  ::qnt::run::ModelRunOptions o;
  o.perplexityText = perplexityText;
  o.perplexityTokens = perplexityTokens;
  o.prompt = prompt;
  o.promptTokens = promptTokens;
  o.tokenizerPath = tokenizerPath;
  o.context = contextLength;
  o.steps = steps;
  o.temperature = temperature;
  o.topP = topP;
  o.sampleSeed = sampleSeed;
  o.bench = bench;
  o.benchPrompt = benchPrompt;
  o.benchDecode = benchDecode;
  o.benchRounds = benchRounds;
  o.cpuThreads = cpuThreads;
  o.image = artifactImage;
  return o;
}

static int runModel(MLIRContext &context) {
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, &context);
  ::qnt::run::ModelRunOptions options = modelRunOptions();
  std::optional<::qnt::run::ModelMode> mode =
      ::qnt::run::chooseModelMode(options);
  if (!mode)
    return 1;
  // quant-run runs artifacts without loading LLVM; run directly, this
  // binary does the same through libqnt_runtime.
  if (::qnt::run::isArtifact(modelPath)) {
    if (!passPipeline.empty() || int8Activations || hugePageWeights ||
        gpuLoopsOnCpu) {
      llvm::errs() << "quant-run: --pass-pipeline, --int8-activations, "
                      "--huge-page-weights and --gpu-loops-on-cpu do not "
                      "apply to an artifact (its code was fixed by "
                      "quant-compile)\n";
      return 1;
    }
    return ::qnt::run::runArtifact(modelPath, *mode, options);
  }
  if (!artifactImage.empty()) {
    llvm::errs() << "quant-run: --image applies to artifacts only\n";
    return 1;
  }
  OwningOpRef<ModuleOp> module =
      mlir::qnt::loadModel(&context, modelPath, passPipeline);
  if (!module)
    return 1;
  FailureOr<io::LlamaConfig> config = mlir::qnt::readModelConfig(*module);
  if (failed(config))
    return 1;
  std::unique_ptr<io::Tokenizer> tokenizer;
  if (::qnt::run::needsTokenizer(options) || !tokenizerPath.empty()) {
    tokenizer = ::qnt::run::openTokenizer(options, config->vocabSize);
    if (!tokenizer)
      return 1;
  }
  auto start = std::chrono::steady_clock::now();
  if (cpuThreads < 0 || cpuThreads > 1024) {
    llvm::errs() << "quant-run: --cpu-threads must be in 0..1024\n";
    return 1;
  }
  FailureOr<std::unique_ptr<ModelRunner>> runner = ModelRunner::create(
      *module, {cpuThreads, int8Activations, /*matmulOptions=*/"",
                hugePageWeights, gpuLoopsOnCpu});
  if (failed(runner))
    return 1;
  llvm::errs() << llvm::formatv(
      "model: {0} layers, dim {1}, {2} heads ({3} kv), vocab {4}, context "
      "{5}; compiled in {6:F2} s\n",
      config->nLayers, config->dim, config->nHeads, config->nKvHeads,
      config->vocabSize, config->maxSeqLen,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count());
  llvm::errs().flush();
  ::qnt::run::ModelExecutor model;
  model.vocabSize = config->vocabSize;
  model.maxSeqLen = config->maxSeqLen;
  HostTensor logits;
  model.forward = forwardFunction(**runner, logits);
  return ::qnt::run::runModelMode(*mode, model, options, tokenizer.get());
}

//===----------------------------------------------------------------------===//
// --demo
//===----------------------------------------------------------------------===//

static int runDemo(MLIRContext &context) {
  LinearExample example;
  example.workDir = workDir;
  bool ownsWorkDir = example.workDir.empty();
  if (ownsWorkDir) {
    llvm::SmallString<128> dir;
    if (llvm::sys::fs::createUniqueDirectory("quant-run-demo", dir)) {
      llvm::errs() << "quant-run: cannot create a temporary directory\n";
      return 1;
    }
    example.workDir = dir.str().str();
  }
  llvm::outs() << llvm::formatv(
      "quant-mlir demo: y = x W^T, x {0}x{1} (3 outlier channels), W {2}x{1} "
      "Student-t(3), seed {3}\n"
      "Each scheme: qnt-rtn -> qnt-fuse-dequant-matmul -> qnt-cpu-pipeline "
      "-> JIT, compared with host computations in double.\n\n",
      example.tokens, example.inputs, example.outputs, example.seed);
  llvm::outs() << llvm::formatv("{0,-26} {1,8} {2,14} {3,14} {4,15} {5,12}\n",
                                "scheme", "bits/w", "weight rel err",
                                "output rel err", "vs dequant ref",
                                "step bound");
  const char *schemes[] = {
      "", "format=int bits=8 granularity=per-channel symmetric=1",
      "format=int bits=4 granularity=per-group group-size=128",
      "format=e2m1 granularity=per-group group-size=32"};
  bool allPassed = true;
  // The files are only needed while the schemes run.
  auto cleanup = llvm::scope_exit([&] {
    if (ownsWorkDir)
      llvm::sys::fs::remove_directories(example.workDir);
  });
  for (const char *scheme : schemes) {
    auto start = std::chrono::steady_clock::now();
    FailureOr<SchemeResult> r = runLinearScheme(context, example, scheme);
    if (failed(r))
      return 1;
    double seconds = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - start)
                         .count();
    bool passed = r->refRelDeviation <= 1e-5 &&
                  (r->options.empty() || r->stepBoundRatio <= 1.0);
    allPassed &= passed;
    llvm::outs() << llvm::formatv(
        "{0,-26} {1,8:F2} {2,14:e} {3,14:e} {4,15:e} {5,12} ({6:F1}s)\n",
        r->encoding, r->bitsPerWeight, r->weightRelError, r->outputRelError,
        r->refRelDeviation,
        r->options.empty() ? std::string("-")
                           : llvm::formatv("{0:F3}", r->stepBoundRatio).str(),
        seconds);
  }
  llvm::outs() << "\nvs dequant ref: max |y - x Wq^T| / max |x Wq^T| (must be "
                  "<= 1e-5)\nstep bound: max |y - y_float| / (sum |x| * "
                  "half step) (must be <= 1)\n"
               << (allPassed ? "demo: all checks passed\n"
                             : "demo: CHECKS FAILED\n");
  return allPassed ? 0 : 1;
}

//===----------------------------------------------------------------------===//
// Running a module
//===----------------------------------------------------------------------===//

/// Loads inputs from --inputs or generates N(0, 1) values from --seed.
static LogicalResult loadInputs(const EntrySignature &sig, Location loc,
                                std::vector<HostTensor> &inputs) {
  std::unique_ptr<io::SafetensorsFile> file;
  if (!inputsFile.empty()) {
    std::string error;
    file = io::SafetensorsFile::open(inputsFile, &error);
    if (!file)
      return emitError(loc) << "cannot read inputs: " << error;
  }
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  for (auto [index, type] : llvm::enumerate(sig.inputs)) {
    HostTensor tensor(type);
    std::string name = "input" + std::to_string(index);
    if (file) {
      const io::TensorInfo *info = file->find(name);
      if (!info)
        return emitError(loc) << inputsFile << " has no tensor '" << name
                              << "'";
      if (ArrayRef<int64_t>(info->shape) != type.getShape() ||
          info->dtype != mlir::qnt::storageDTypeOf(type.getElementType()) ||
          int64_t(info->numBytes()) != tensor.numBytes())
        return emitError(loc) << "tensor '" << name << "' in " << inputsFile
                              << " does not match " << type;
      std::memcpy(tensor.data(), file->data(*info), tensor.numBytes());
    } else if (type.getElementType().isF32()) {
      for (int64_t i = 0; i < tensor.numElements(); ++i)
        tensor.f32()[i] = normal(rng);
    } else {
      return emitError(loc) << "cannot generate input #" << index << " of type "
                            << type << "; give --inputs";
    }
    inputs.push_back(std::move(tensor));
  }
  return success();
}

/// True for the dtypes --expect compares (as f32 values).
static bool isComparableDType(io::DType dtype) {
  return dtype == io::DType::F32 || dtype == io::DType::F16 ||
         dtype == io::DType::BF16;
}

/// Compares float results with --expect; prints the worst deviation. Both
/// sides may be f32, f16 or bf16 (each read with its own element size).
static LogicalResult compareResults(const std::vector<HostTensor> &results,
                                    Location loc) {
  std::string error;
  auto file = io::SafetensorsFile::open(expectFile, &error);
  if (!file)
    return emitError(loc) << "cannot read expected results: " << error;
  bool ok = true;
  for (auto [index, result] : llvm::enumerate(results)) {
    std::string name = "result" + std::to_string(index);
    std::optional<io::DType> resultDType =
        mlir::qnt::storageDTypeOf(result.getType().getElementType());
    if (!resultDType || !isComparableDType(*resultDType))
      return emitError(loc) << "--expect compares f32, f16 and bf16 results; "
                            << name << " is " << result.getType();
    const io::TensorInfo *info = file->find(name);
    if (!info || !isComparableDType(info->dtype) ||
        ArrayRef<int64_t>(info->shape) != result.getType().getShape())
      return emitError(loc) << expectFile << " has no f32, f16 or bf16 tensor '"
                            << name << "' shaped like " << result.getType();
    double maxDiff = 0, maxExpected = 0;
    const uint8_t *expected = file->data(*info);
    const auto *got = static_cast<const uint8_t *>(result.data());
    int64_t expectedStride = io::dtypeSize(info->dtype);
    int64_t gotStride = io::dtypeSize(*resultDType);
    for (int64_t i = 0; i < result.numElements(); ++i) {
      float e = mlir::qnt::loadAsF32(info->dtype, expected + i * expectedStride);
      float g = mlir::qnt::loadAsF32(*resultDType, got + i * gotStride);
      // A NaN on either side is a mismatch unless both are NaN.
      double diff = std::isnan(g) || std::isnan(e)
                        ? (std::isnan(g) && std::isnan(e) ? 0.0 : INFINITY)
                        : double(std::fabs(g - e));
      maxDiff = std::max(maxDiff, diff);
      maxExpected = std::max(maxExpected, double(std::fabs(e)));
    }
    double relative = maxExpected > 0 ? maxDiff / maxExpected : maxDiff;
    bool match = relative <= rtol;
    ok &= match;
    llvm::outs() << llvm::formatv("{0}: max abs diff {1:e}, relative {2:e} "
                                  "(rtol {3:e}) {4}\n",
                                  name, maxDiff, relative, rtol.getValue(),
                                  match ? "OK" : "MISMATCH");
  }
  return success(ok);
}

static void printUsage() {
  llvm::errs() << "usage: quant-run [options] <input.mlir | ->\n"
                  "       quant-run --model <checkpoint> [options]\n"
                  "       quant-run --demo\n"
                  "Run 'quant-run --help' for the options.\n";
}

static int runModule(MLIRContext &context) {
  std::string name = inputFilename.empty() ? "-" : inputFilename.getValue();
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFileOrSTDIN(name);
  if (!buffer) {
    llvm::errs() << "error: could not open input file " << name << ": "
                 << buffer.getError().message() << "\n";
    return 1;
  }
  // Nothing on standard input and no file named: the user needs the usage,
  // not "found 0 public functions".
  if (inputFilename.empty() && (*buffer)->getBufferSize() == 0)
    return printUsage(), 1;
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;
  Location loc = module->getLoc();
  FailureOr<CompiledFunction> compiled =
      CompiledFunction::compile(*module, entry);
  if (failed(compiled))
    return 1;
  const EntrySignature &sig = compiled->signature();
  FailureOr<mlir::qnt::ParamStore> store = mlir::qnt::ParamStore::open(
      *module, std::vector<std::string>(paramFiles.begin(), paramFiles.end()));
  if (failed(store) || failed(compiled->bindParams(*store, loc)))
    return 1;
  std::vector<HostTensor> inputs, results;
  if (failed(loadInputs(sig, loc, inputs)))
    return 1;
  auto start = std::chrono::steady_clock::now();
  if (failed(compiled->call(inputs, results, loc)))
    return 1;
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - start)
                  .count();
  llvm::outs() << llvm::formatv("ran @{0}: {1} inputs, {2} parameters, {3} "
                                "results in {4:F3} ms\n",
                                sig.name, sig.inputs.size(), sig.params.size(),
                                results.size(), ms);
  if (!outputFile.empty()) {
    io::SafetensorsWriter writer;
    std::string error;
    for (auto [index, result] : llvm::enumerate(results)) {
      RankedTensorType type = result.getType();
      std::optional<io::DType> dtype =
          mlir::qnt::storageDTypeOf(type.getElementType());
      if (!dtype)
        return emitError(loc) << "cannot store a result of type " << type,
               1;
      if (!writer.add("result" + std::to_string(index), *dtype,
                      std::vector<int64_t>(type.getShape()), result.data(),
                      result.numBytes(), &error))
        return emitError(loc) << error, 1;
    }
    if (!writer.write(outputFile, &error))
      return emitError(loc) << error, 1;
  }
  if (!expectFile.empty() && failed(compareResults(results, loc)))
    return 1;
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions({&category, &modelCategory});
  cl::ParseCommandLineOptions(
      argc, argv,
      "quant-run: JIT-compile a qnt/linalg module for the CPU and run it\n");
  DialectRegistry registry;
  ::qnt::registerAllDialects(registry);
  ::qnt::registerAllPasses();
  MLIRContext context(registry);
  // Diagnostics name their location; printing the op would dump whole
  // models.
  context.printOpOnDiagnostic(false);
  context.loadAllAvailableDialects();
  if (!::qnt::checkOptionRange("quant-run", rtol, 0.0, 1e300))
    return 1;
  if (demo) {
    llvm::SourceMgr sourceMgr;
    SourceMgrDiagnosticHandler handler(sourceMgr, &context);
    return runDemo(context);
  }
  if (!modelPath.empty()) {
    // A failed run removes the files its --pass-pipeline wrote.
    int status = runModel(context);
    if (status != 0)
      ::qnt::io::removeCreatedFiles();
    return status;
  }
  // Without a file name the IR comes from standard input, as with mlir-opt,
  // unless that is a terminal nobody is typing IR into.
  if (inputFilename.empty() && isatty(STDIN_FILENO))
    return printUsage(), 1;
  return runModule(context);
}
