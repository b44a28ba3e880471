//===- quant-calibrate.cpp - Collect calibration statistics -----*- C++ -*-===//
//
// quant-calibrate runs calibration text (or token ids) through a model
// block by block and writes every linear layer's input statistics
// (absmax, mean |x|, Hessian X^T X, count) to a safetensors file
// (docs/Calibration.md), ending with a per-layer summary table.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "qnt/io/OutputFiles.h"
#include "qnt/InitAll.h"
#include "qnt/calibration/Calibrator.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/Corpus.h"
#include "qnt/io/Tokenizer.h"
#include "qnt/support/OptionRange.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
namespace cl = llvm::cl;
namespace io = ::qnt::io;
namespace calib = ::qnt::calibration;

static cl::OptionCategory category("quant-calibrate options");
static cl::opt<std::string> modelPath("model", cl::Required,
                                      cl::desc("Model to calibrate: llama2.c "
                                               ".bin, HF directory or .mlir"),
                                      cl::cat(category));
static cl::opt<std::string> passPipeline(
    "pass-pipeline",
    cl::desc("Passes to run on the model first (e.g. a quantization)"),
    cl::cat(category));
static cl::opt<std::string> tokenizerPath("tokenizer",
                                          cl::desc("llama2.c tokenizer.bin"),
                                          cl::cat(category));
static cl::opt<std::string> dataText("data", cl::desc("Calibration text"),
                                     cl::cat(category));
static cl::opt<std::string>
    dataTokens("data-tokens",
               cl::desc("Calibration token ids, one document per line"),
               cl::cat(category));
static cl::opt<int64_t> numSequences("num-seqs",
                                     cl::desc("Number of sequences (1..10000000)"),
                                     cl::init(16), cl::cat(category));
static cl::opt<int64_t> seqLen("seq-len", cl::desc("Tokens per sequence (1..16777216; at most the "
                                        "model's context)"),
                               cl::init(128), cl::cat(category));
static cl::opt<std::string>
    streamName("stream",
               cl::desc("quantized: block inputs come from the model's own "
                        "previous blocks; float: from --float-model"),
               cl::init("quantized"), cl::cat(category));
static cl::opt<std::string>
    floatModelPath("float-model",
                   cl::desc("The float model for --stream=float"),
                   cl::cat(category));
static cl::opt<std::string> outputPath("o", cl::Required,
                                       cl::desc("Statistics file "
                                                "(.safetensors)"),
                                       cl::cat(category));

static bool readDocuments(int64_t vocabSize,
                          std::vector<std::vector<int32_t>> &documents) {
  if (dataText.empty() == dataTokens.empty()) {
    llvm::errs() << "quant-calibrate: give one of --data or --data-tokens\n";
    return false;
  }
  std::string error;
  std::unique_ptr<io::Tokenizer> tokenizer;
  if (!dataText.empty()) {
    if (tokenizerPath.empty()) {
      llvm::errs() << "quant-calibrate: --data needs --tokenizer\n";
      return false;
    }
    tokenizer = io::Tokenizer::open(tokenizerPath, vocabSize, &error);
    if (!tokenizer) {
      llvm::errs() << "quant-calibrate: " << error << "\n";
      return false;
    }
  }
  bool tokenIds = !dataTokens.empty();
  if (io::loadDocuments(tokenIds ? dataTokens : dataText, tokenIds,
                        tokenizer.get(), vocabSize, &documents, &error))
    return true;
  llvm::errs() << "quant-calibrate: " << error << "\n";
  return false;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "quant-calibrate: collect per-layer "
                              "calibration statistics\n");
  DialectRegistry registry;
  ::qnt::registerAllDialects(registry);
  ::qnt::registerAllPasses();
  MLIRContext context(registry);
  // Diagnostics name their location; printing the op would dump whole
  // models.
  context.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, &context);

  calib::Stream stream;
  if (streamName == "quantized")
    stream = calib::Stream::Quantized;
  else if (streamName == "float")
    stream = calib::Stream::Float;
  else {
    llvm::errs() << "quant-calibrate: unknown --stream '" << streamName
                 << "'; expected quantized or float\n";
    return 1;
  }
  if ((stream == calib::Stream::Float) == floatModelPath.empty()) {
    llvm::errs() << "quant-calibrate: --float-model is needed with, and only "
                    "with, --stream=float\n";
    return 1;
  }
  if (!::qnt::checkOptionRange("quant-calibrate", numSequences, 1, 10000000) ||
      !::qnt::checkOptionRange("quant-calibrate", seqLen, 1, 1 << 24))
    return 1;

  // The destination is checked before calibrating, and files a
  // --pass-pipeline writes are removed if the run fails.
  if (std::string problem = io::checkOutputPath(outputPath); !problem.empty()) {
    llvm::errs() << "quant-calibrate: " << problem << "\n";
    return 1;
  }
  bool succeeded = false;
  llvm::scope_exit cleanup([&] {
    if (!succeeded)
      io::removeCreatedFiles();
  });
  OwningOpRef<ModuleOp> model = mlir::qnt::loadModel(&context, modelPath, passPipeline);
  if (!model)
    return 1;
  FailureOr<io::LlamaConfig> config = mlir::qnt::readModelConfig(*model);
  if (failed(config))
    return 1;
  if (seqLen > config->maxSeqLen) {
    llvm::errs() << "quant-calibrate: --seq-len " << seqLen
                 << " exceeds the model's context of " << config->maxSeqLen
                 << "\n";
    return 1;
  }
  OwningOpRef<ModuleOp> floatModel;
  if (stream == calib::Stream::Float &&
      !(floatModel = mlir::qnt::loadModel(&context, floatModelPath)))
    return 1;

  std::vector<std::vector<int32_t>> documents;
  if (!readDocuments(config->vocabSize, documents))
    return 1;
  std::vector<std::vector<int32_t>> sequences =
      calib::makeCalibrationSequences(documents, numSequences, seqLen);
  if (int64_t(sequences.size()) < numSequences)
    llvm::errs() << llvm::formatv("quant-calibrate: the data holds only {0} "
                                  "sequences of {1} tokens (asked for {2})\n",
                                  sequences.size(), seqLen.getValue(),
                                  numSequences.getValue());
  if (sequences.empty())
    return 1;

  FailureOr<calib::Statistics> stats = calib::calibrate(
      *model, floatModel ? *floatModel : ModuleOp(), sequences, stream);
  if (failed(stats))
    return 1;
  stats->metadata["model"] = modelPath;
  std::string error;
  if (!stats->write(outputPath, &error)) {
    llvm::errs() << "quant-calibrate: " << error << "\n";
    return 1;
  }
  succeeded = true;

  llvm::outs() << llvm::formatv("{0,-44} {1,6} {2,8} {3,11} {4,11} {5,12}\n",
                                "layer", "K", "count", "max absmax",
                                "mean |x|", "tr(H)/count");
  for (const auto &[name, layer] : stats->layers) {
    double maxAbs = 0, meanAbs = 0, trace = 0;
    for (int64_t k = 0; k < layer.channels; ++k) {
      maxAbs = std::max<double>(maxAbs, layer.absmax[k]);
      meanAbs += layer.sumAbs[k];
      if (layer.wantsHessian)
        trace += layer.hessian(k, k);
    }
    double n = double(std::max<int64_t>(layer.count, 1));
    llvm::outs() << llvm::formatv(
        "{0,-44} {1,6} {2,8} {3,11:F4} {4,11:F5} {5,12:F4}\n", name,
        layer.channels, layer.count, maxAbs,
        meanAbs / (n * double(layer.channels)), trace / n);
  }
  int64_t tokens = std::stoll(stats->metadata["tokens"]);
  double seconds = std::stod(stats->metadata["seconds"]);
  llvm::outs() << llvm::formatv(
      "calibrated {0} layers on {1} sequences x {2} tokens ({3} tokens, "
      "{4} stream) in {5:F2} s ({6:F1} tokens/s); wrote {7}\n",
      stats->layers.size(), sequences.size(), seqLen.getValue(), tokens,
      streamName.getValue(), seconds, seconds > 0 ? tokens / seconds : 0.0,
      outputPath.getValue());
  return 0;
}
