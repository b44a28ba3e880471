//===- quant-run.cpp - JIT-compile and run qnt programs on the CPU -*- C++ -*-//
//
// quant-run lowers a module through qnt-cpu-pipeline, JIT-compiles it, binds
// its qnt.param weights to memory-mapped safetensors files, feeds inputs
// (from a safetensors file or generated from a seed), and writes or
// compares the outputs. `--demo` runs the built-in quantized linear layer.
//
//===----------------------------------------------------------------------===//

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

static std::unique_ptr<io::Tokenizer> openTokenizer(int64_t vocabSize) {
  if (tokenizerPath.empty()) {
    llvm::errs() << "quant-run: text input needs --tokenizer (or give token "
                    "ids with --perplexity-tokens / --generate-tokens)\n";
    return nullptr;
  }
  std::string error;
  auto tokenizer = io::Tokenizer::open(tokenizerPath, vocabSize, &error);
  if (!tokenizer)
    llvm::errs() << "quant-run: " << error << "\n";
  return tokenizer;
}

/// The perplexity documents, as token ids.
static std::optional<std::vector<std::vector<int32_t>>>
perplexityDocuments(int64_t vocabSize, const io::Tokenizer *tokenizer) {
  std::vector<std::vector<int32_t>> documents;
  std::string error;
  bool tokenIds = !perplexityTokens.empty();
  if (!io::loadDocuments(tokenIds ? perplexityTokens : perplexityText,
                         tokenIds, tokenizer, vocabSize, &documents, &error)) {
    llvm::errs() << "quant-run: " << error << "\n";
    return std::nullopt;
  }
  return documents;
}

namespace {
/// What the model drivers below run: the JIT's ModelRunner or an artifact
/// through libqnt_runtime, behind one forward pass.
struct ModelExecutor {
  int64_t vocabSize = 0;
  int64_t maxSeqLen = 0;
  io::ForwardFn forward;
};
} // namespace

static int runPerplexity(ModelExecutor &model,
                         const io::Tokenizer *tokenizer) {
  auto documents = perplexityDocuments(model.vocabSize, tokenizer);
  if (!documents)
    return 1;
  int64_t context = contextLength ? contextLength.getValue() : model.maxSeqLen;
  if (context < 2 || context > model.maxSeqLen) {
    llvm::errs() << "quant-run: --context must be in [2, " << model.maxSeqLen
                 << "], got " << context << "\n";
    return 1;
  }
  if (perplexityTokens.empty())
    llvm::outs() << llvm::formatv(
        "protocol: documents split at '<|endoftext|>' lines and stripped, "
        "encoded with BOS; chunks of at most {0} tokens, each from an empty "
        "KV cache; every token after a chunk's first is scored\n",
        context);
  else
    llvm::outs() << llvm::formatv(
        "protocol: token file, one document per line, ids as given (BOS "
        "included only if present); chunks of at most {0} tokens, each from "
        "an empty KV cache; every token after a chunk's first is scored\n",
        context);
  std::optional<PerplexityResult> result(std::in_place);
  if (!io::scorePerplexity(*documents, context, model.vocabSize, model.forward,
                           *result))
    return 1;
  if (result->scored == 0) {
    llvm::errs() << "quant-run: no token was scored: every chunk has a single "
                    "token (documents of one token, or an empty file)\n";
    return 1;
  }
  llvm::outs() << llvm::formatv(
      "documents: {0}  chunks: {1}  tokens: {2}  scored: {3}\n"
      "mean NLL: {4:F6} nats/token\n"
      "time: {5:F2} s  ({6:F1} tokens/s)\n"
      "perplexity: {7:F6}\n",
      result->documents, result->chunks, result->tokens, result->scored,
      result->meanNll(), result->seconds,
      result->seconds > 0 ? result->tokens / result->seconds : 0.0,
      result->perplexity());
  return 0;
}

static int runGenerate(ModelExecutor &model, const io::Tokenizer *tokenizer) {
  std::vector<int32_t> tokens;
  if (!promptTokens.empty()) {
    std::vector<std::vector<int32_t>> parsed;
    std::string error;
    if (!io::parseTokenDocuments(promptTokens, model.vocabSize,
                                 "--generate-tokens", &parsed, &error)) {
      llvm::errs() << "quant-run: " << error << "\n";
      return 1;
    }
    for (const auto &line : parsed)
      tokens.insert(tokens.end(), line.begin(), line.end());
  } else {
    tokens = tokenizer->encode(prompt, /*bos=*/true, /*eos=*/false);
  }
  if (tokens.empty()) {
    llvm::errs() << "quant-run: the prompt has no tokens\n";
    return 1;
  }
  if (int64_t(tokens.size()) >= model.maxSeqLen) {
    llvm::errs() << "quant-run: the prompt has " << tokens.size()
                 << " tokens; the context of " << model.maxSeqLen
                 << " leaves no room to generate\n";
    return 1;
  }
  if (steps < 0) {
    llvm::errs() << "quant-run: --steps must be >= 0, got " << steps << "\n";
    return 1;
  }
  if (!(temperature >= 0.0f) || !std::isfinite(temperature.getValue())) {
    llvm::errs() << "quant-run: --temperature must be a finite value >= 0, "
                    "got "
                 << temperature << "\n";
    return 1;
  }
  if (!(topP > 0.0f && topP <= 1.0f)) {
    llvm::errs() << "quant-run: --top-p must be in (0, 1], got " << topP
                 << "\n";
    return 1;
  }
  Sampler sampler(temperature, topP, sampleSeed);
  if (tokenizer)
    llvm::outs() << tokenizer->decode(tokens);
  auto start = std::chrono::steady_clock::now();
  std::optional<std::vector<int32_t>> produced(std::in_place);
  if (!io::generateTokens(
          tokens, steps, model.maxSeqLen, model.vocabSize, sampler,
          model.forward,
          [&](int32_t previous, int32_t token) {
            if (tokenizer)
              llvm::outs() << tokenizer->decode(previous, token);
            else
              llvm::outs() << " " << token;
            llvm::outs().flush();
          },
          *produced))
    return 1;
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  llvm::outs() << "\n";
  llvm::outs().flush();
  llvm::errs() << llvm::formatv("generated {0} tokens in {1:F2} s ({2:F1} "
                                "tokens/s, {3})\n",
                                produced->size(), seconds,
                                seconds > 0 ? produced->size() / seconds : 0.0,
                                temperature > 0 ? "top-p sampling" : "greedy");
  return 0;
}

/// The statistic of `values` (sorted in place) at `fraction` (0 min, 0.5
/// median, 1 max).
static double quantile(std::vector<double> &values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[size_t(fraction * double(values.size() - 1) + 0.5)];
}

/// --bench: a prompt of --bench-prompt tokens from an empty cache, then
/// --bench-decode single-token steps, per round, after one untimed round.
static int runBench(ModelExecutor &model) {
  int64_t prompt = benchPrompt, decode = benchDecode, rounds = benchRounds;
  if (prompt < 1 || decode < 0 || rounds < 1 ||
      prompt + decode > model.maxSeqLen) {
    llvm::errs() << "quant-run: --bench needs --bench-prompt >= 1, "
                    "--bench-decode >= 0 with both within the context of "
                 << model.maxSeqLen << ", and --bench-rounds >= 1\n";
    return 1;
  }
  // BOS, then a fixed spread of ids: the cost does not depend on them.
  std::vector<int32_t> tokens(prompt);
  tokens[0] = io::Tokenizer::kBos;
  for (int64_t i = 1; i < prompt; ++i)
    tokens[i] = int32_t(3 + (i * 7919) % std::max<int64_t>(model.vocabSize - 3, 1));
  std::vector<double> prefillRates, decodeMs;
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  for (int64_t round = -1; round < rounds; ++round) {
    Clock::time_point start = Clock::now();
    if (!model.forward(tokens.data(), prompt, 0))
      return 1;
    Clock::time_point prefilled = Clock::now();
    for (int64_t step = 0; step < decode; ++step) {
      int32_t token = tokens[(step + 1) % prompt];
      if (!model.forward(&token, 1, prompt + step))
        return 1;
    }
    Clock::time_point done = Clock::now();
    if (round < 0)
      continue; // warm-up: page faults, thread start
    prefillRates.push_back(prompt / seconds(start, prefilled));
    if (decode > 0)
      decodeMs.push_back(1e3 * seconds(prefilled, done) / decode);
  }
  llvm::outs() << llvm::formatv("{0,-8} {1,12} {2,12} {3,12} {4,10}\n",
                                "test", "min", "median", "max", "unit");
  llvm::outs() << llvm::formatv(
      "{0,-8} {1,12:F1} {2,12:F1} {3,12:F1} {4,10}\n",
      "pp" + std::to_string(prompt), quantile(prefillRates, 0),
      quantile(prefillRates, 0.5), quantile(prefillRates, 1), "tokens/s");
  if (decode > 0) {
    std::vector<double> rates;
    for (double ms : decodeMs)
      rates.push_back(1e3 / ms);
    llvm::outs() << llvm::formatv(
        "{0,-8} {1,12:F1} {2,12:F1} {3,12:F1} {4,10}\n",
        "tg" + std::to_string(decode), quantile(rates, 0),
        quantile(rates, 0.5), quantile(rates, 1), "tokens/s");
    llvm::outs() << llvm::formatv(
        "{0,-8} {1,12:F3} {2,12:F3} {3,12:F3} {4,10}\n",
        "tg" + std::to_string(decode), quantile(decodeMs, 0),
        quantile(decodeMs, 0.5), quantile(decodeMs, 1), "ms/token");
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  llvm::outs() << llvm::formatv("rounds: {0}; peak RSS: {1:F1} MiB\n", rounds,
                                usage.ru_maxrss / 1024.0);
  return 0;
}

/// True if `path` is an artifact directory (it has a manifest).
static bool isArtifact(llvm::StringRef path) {
  llvm::SmallString<256> manifest(path);
  llvm::sys::path::append(manifest, io::kManifestFileName);
  return llvm::sys::fs::is_directory(path) && llvm::sys::fs::exists(manifest);
}

enum class ModelMode { Perplexity, Generate, Bench };

static int runMode(ModelMode mode, ModelExecutor &model,
                   const io::Tokenizer *tokenizer) {
  switch (mode) {
  case ModelMode::Perplexity:
    return runPerplexity(model, tokenizer);
  case ModelMode::Generate:
    return runGenerate(model, tokenizer);
  case ModelMode::Bench:
    return runBench(model);
  }
  return 1;
}

/// --model on an artifact: everything through libqnt_runtime's C API.
static int runArtifact(ModelMode mode) {
  if (!passPipeline.empty() || int8Activations || hugePageWeights) {
    llvm::errs() << "quant-run: --pass-pipeline, --int8-activations and "
                    "--huge-page-weights do not apply to an artifact (its "
                    "code was fixed by quant-compile)\n";
    return 1;
  }
  if (cpuThreads < 0 || cpuThreads > 1024) {
    llvm::errs() << "quant-run: --cpu-threads must be in 0..1024\n";
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  qnt_open_options options;
  qnt_open_options_init(&options);
  options.threads = int(cpuThreads);
  if (!artifactImage.empty())
    options.image = artifactImage.c_str();
  std::unique_ptr<qnt_model, void (*)(qnt_model *)> handle(
      qnt_model_open(modelPath.c_str(), &options), qnt_model_free);
  if (!handle) {
    llvm::errs() << "quant-run: " << qnt_last_error() << "\n";
    return 1;
  }
  std::unique_ptr<qnt_session, void (*)(qnt_session *)> session(
      qnt_session_create(handle.get(), 0), qnt_session_free);
  if (!session) {
    llvm::errs() << "quant-run: " << qnt_last_error() << "\n";
    return 1;
  }
  ModelExecutor model;
  model.vocabSize = qnt_model_vocab_size(handle.get());
  model.maxSeqLen = qnt_model_context_length(handle.get());
  model.forward = [&](const int32_t *tokens, int64_t count,
                      int64_t pos) -> const float * {
    if (pos == 0)
      qnt_session_reset(session.get());
    if (pos != qnt_session_position(session.get())) {
      llvm::errs() << "quant-run: internal error: position " << pos
                   << " is not the session's next\n";
      return nullptr;
    }
    if (qnt_session_prefill(session.get(), tokens, count) != 0) {
      llvm::errs() << "quant-run: " << qnt_last_error() << "\n";
      return nullptr;
    }
    return qnt_session_logits(session.get(), nullptr);
  };
  // The artifact's own tokenizer unless one is given.
  std::unique_ptr<io::Tokenizer> tokenizer;
  llvm::SmallString<256> ownTokenizer(modelPath);
  llvm::sys::path::append(ownTokenizer, io::kArtifactTokenizerFileName);
  if (tokenizerPath.empty() && llvm::sys::fs::exists(ownTokenizer))
    tokenizerPath = ownTokenizer.str().str();
  bool needsTokenizer = !perplexityText.empty() || !prompt.empty();
  if (needsTokenizer || !tokenizerPath.empty()) {
    tokenizer = openTokenizer(model.vocabSize);
    if (!tokenizer)
      return 1;
  }
  llvm::errs() << llvm::formatv(
      "artifact: {0}, CPU image '{1}', vocab {2}, context {3}; opened in "
      "{4:F2} s\n",
      modelPath, qnt_model_image(handle.get()), model.vocabSize,
      model.maxSeqLen,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count());
  return runMode(mode, model, tokenizer.get());
}

static int runModel(MLIRContext &context) {
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, &context);
  bool wantsPerplexity = !perplexityText.empty() || !perplexityTokens.empty();
  bool wantsGeneration = !prompt.empty() || !promptTokens.empty();
  if ((!perplexityText.empty() && !perplexityTokens.empty()) ||
      (!prompt.empty() && !promptTokens.empty())) {
    llvm::errs() << "quant-run: give text or token ids, not both (--perplexity "
                    "/ --perplexity-tokens, --generate / --generate-tokens)\n";
    return 1;
  }
  if (int(wantsPerplexity) + int(wantsGeneration) + int(bench) != 1) {
    llvm::errs() << "quant-run: with --model, give one of --perplexity, "
                    "--perplexity-tokens, --generate, --generate-tokens or "
                    "--bench\n";
    return 1;
  }
  ModelMode mode = wantsPerplexity   ? ModelMode::Perplexity
                   : wantsGeneration ? ModelMode::Generate
                                     : ModelMode::Bench;
  if (isArtifact(modelPath))
    return runArtifact(mode);
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
  bool needsTokenizer = !perplexityText.empty() || !prompt.empty();
  if (needsTokenizer || !tokenizerPath.empty()) {
    tokenizer = openTokenizer(config->vocabSize);
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
                hugePageWeights});
  if (failed(runner))
    return 1;
  llvm::errs() << llvm::formatv(
      "model: {0} layers, dim {1}, {2} heads ({3} kv), vocab {4}, context "
      "{5}; compiled in {6:F2} s\n",
      config->nLayers, config->dim, config->nHeads, config->nKvHeads,
      config->vocabSize, config->maxSeqLen,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count());
  ModelExecutor model;
  model.vocabSize = config->vocabSize;
  model.maxSeqLen = config->maxSeqLen;
  HostTensor logits;
  model.forward = [&](const int32_t *tokens, int64_t count,
                      int64_t pos) -> const float * {
    if (failed((*runner)->forward(ArrayRef<int32_t>(tokens, count), pos,
                                  logits)))
      return nullptr;
    return logits.f32();
  };
  return runMode(mode, model, tokenizer.get());
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
