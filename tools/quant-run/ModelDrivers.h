//===- ModelDrivers.h - quant-run's model modes, LLVM-free ------*- C++ -*-===//
//
// Perplexity, generation and --bench over a ModelExecutor (a forward pass
// that returns logits), and the executor of an artifact through
// libqnt_runtime. Both quant-run binaries use them: the LLVM-free front end
// (quant-run, which runs artifacts itself) and the JIT (quant-run-jit, which
// runs checkpoints and .mlir models), so a model's numbers are printed by
// one piece of code whichever ran it. No LLVM, no MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TOOLS_QUANT_RUN_MODELDRIVERS_H
#define QNT_TOOLS_QUANT_RUN_MODELDRIVERS_H

#include "qnt/io/Evaluation.h"
#include "qnt/io/Tokenizer.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace qnt::run {

/// The options of quant-run's model modes (docs/Tools.md).
struct ModelRunOptions {
  std::string perplexityText, perplexityTokens;
  std::string prompt, promptTokens;
  std::string tokenizerPath;
  int64_t context = 0; ///< 0: the model's
  int64_t steps = 64;
  float temperature = 0.0f;
  float topP = 0.9f;
  uint64_t sampleSeed = 42;
  bool bench = false;
  int64_t benchPrompt = 128, benchDecode = 64, benchRounds = 5;
  /// Artifacts: threads of threaded kernels (0: every core), CPU image.
  int64_t cpuThreads = 0;
  std::string image;
};

enum class ModelMode { Perplexity, Generate, Bench };

/// The mode the options ask for, or nothing (after an error message) when
/// they give none or several.
std::optional<ModelMode> chooseModelMode(const ModelRunOptions &options);

/// True when the mode reads text, so that a tokenizer is required.
bool needsTokenizer(const ModelRunOptions &options);

/// The model to run: a forward pass and its sizes.
struct ModelExecutor {
  int64_t vocabSize = 0;
  int64_t maxSeqLen = 0;
  io::ForwardFn forward;
};

/// Opens options.tokenizerPath for `vocabSize` ids; null after an error
/// message (also when no path was given).
std::unique_ptr<io::Tokenizer> openTokenizer(const ModelRunOptions &options,
                                             int64_t vocabSize);

/// Runs `mode`: results on stdout, errors on stderr; the exit status.
int runModelMode(ModelMode mode, ModelExecutor &model,
                 const ModelRunOptions &options,
                 const io::Tokenizer *tokenizer);

/// True if `path` is an artifact directory (it holds a manifest).
bool isArtifact(const std::string &path);

/// Opens the artifact at `path` with libqnt_runtime and runs `mode` on it.
int runArtifact(const std::string &path, ModelMode mode,
                ModelRunOptions options);

} // namespace qnt::run

#endif // QNT_TOOLS_QUANT_RUN_MODELDRIVERS_H
