//===- quant-synth.cpp - Write synthetic LLaMA-shaped checkpoints -*- C++ -*-//
//
// quant-synth writes a deterministic LLaMA-architecture checkpoint of any
// shape (heavy-tailed weights, outlier channels) as a Hugging Face
// directory or a llama2.c file, streamed one tensor at a time, for tests
// and benchmarks at real shapes.
//
//===----------------------------------------------------------------------===//

#include "qnt/support/OptionRange.h"
#include "qnt/io/Llama2c.h"
#include "qnt/io/SyntheticModel.h"
#include "qnt/support/Progress.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <memory>

namespace cl = llvm::cl;
namespace io = ::qnt::io;

static cl::OptionCategory category("quant-synth options");
static cl::opt<std::string> outputPath("o", cl::Required,
                                       cl::desc("Output directory (hf) or "
                                                "file (llama2c)"),
                                       cl::cat(category));
static cl::opt<std::string>
    preset("preset",
           cl::desc("Shape: tiny, small, llama-7b, llama2-7b-gqa"),
           cl::init("tiny"), cl::cat(category));
static cl::opt<std::string> format("format",
                                   cl::desc("hf or llama2c (default hf)"),
                                   cl::init("hf"), cl::cat(category));
static cl::opt<std::string> dtype("dtype",
                                  cl::desc("f32, f16 or bf16 (default bf16; "
                                           "llama2c stores f32 values "
                                           "rounded to it)"),
                                  cl::init("bf16"), cl::cat(category));
static cl::opt<int64_t> shards("shards", cl::desc("Safetensors shards (hf; 1..10000)"),
                               cl::init(1), cl::cat(category));
static cl::opt<int> version("llama2c-version",
                            cl::desc("llama2.c format version: 0 (legacy) "
                                     "or 1"),
                            cl::init(1), cl::cat(category));
static cl::opt<uint64_t> seed("seed", cl::desc("Generator seed"),
                              cl::init(0), cl::cat(category));
static cl::opt<int64_t> layers("layers",
                               cl::desc("Override the preset's layer count (1..100000; 0 keeps "
                                        "the preset's)"),
                               cl::init(0), cl::cat(category));
static cl::opt<bool> untied("untied",
                            cl::desc("Separate classifier (default: the "
                                     "preset's choice)"),
                            cl::cat(category));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "quant-synth: write a synthetic LLaMA-shaped "
                              "checkpoint\n");
  if (!::qnt::checkOptionRange("quant-synth", shards, 1, 10000) ||
      !::qnt::checkOptionRange("quant-synth", version, 0, 1) ||
      !::qnt::checkOptionRange("quant-synth", layers, 0, 100000))
    return 1;
  io::SyntheticModelOptions options;
  options.seed = seed;
  if (!io::syntheticPreset(preset, &options.config)) {
    llvm::errs() << "quant-synth: unknown --preset '" << preset
                 << "'; expected tiny, small, llama-7b or llama2-7b-gqa\n";
    return 1;
  }
  if (layers > 0)
    options.config.nLayers = layers;
  if (untied)
    options.config.tiedEmbeddings = false;
  io::DType storage;
  if (dtype == "f32")
    storage = io::DType::F32;
  else if (dtype == "f16")
    storage = io::DType::F16;
  else if (dtype == "bf16")
    storage = io::DType::BF16;
  else {
    llvm::errs() << "quant-synth: unknown --dtype '" << dtype
                 << "'; expected f32, f16 or bf16\n";
    return 1;
  }
  const io::LlamaConfig &c = options.config;
  llvm::errs() << llvm::formatv(
      "quant-synth: {0} ({1:F2}B parameters): dim {2}, hidden {3}, {4} "
      "layers, {5} heads ({6} kv), vocab {7}, seed {8}\n",
      preset, c.numParameters() / 1e9, c.dim, c.hiddenDim, c.nLayers,
      c.nHeads, c.nKvHeads, c.vocabSize, uint64_t(seed));

  std::string error;
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<::qnt::Progress> progress;
  bool ok;
  if (format == "hf") {
    ok = io::writeSyntheticHf(
        outputPath, options, storage, shards,
        [&](int64_t done, int64_t total, uint64_t bytes) {
          if (!progress)
            progress = std::make_unique<::qnt::Progress>("writing", total);
          progress->update(done,
                           llvm::formatv("{0:F2} GB", bytes / 1e9).str());
        },
        &error);
  } else if (format == "llama2c") {
    options.config.ropeStyle = io::RopeStyle::Interleaved;
    ok = io::writeSyntheticLlama2c(outputPath, options, version, storage,
                                   &error);
  } else {
    llvm::errs() << "quant-synth: unknown --format '" << format
                 << "'; expected hf or llama2c\n";
    return 1;
  }
  progress.reset();
  if (!ok) {
    llvm::errs() << "quant-synth: " << error << "\n";
    return 1;
  }
  llvm::errs() << llvm::formatv("quant-synth: wrote {0} in {1:F1} s\n",
                                outputPath,
                                std::chrono::duration<double>(
                                    std::chrono::steady_clock::now() - start)
                                    .count());
  return 0;
}
