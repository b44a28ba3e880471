//===- ModelDrivers.cpp - quant-run's model modes, LLVM-free --------------===//
//
// See ModelDrivers.h.
//
//===----------------------------------------------------------------------===//

#include "ModelDrivers.h"
#include "qnt/io/Artifact.h"
#include "qnt/io/Corpus.h"
#include "qnt/runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sys/resource.h>
#include <sys/stat.h>

using namespace qnt;
using namespace qnt::run;

static int fail(const std::string &message) {
  std::fprintf(stderr, "quant-run: %s\n", message.c_str());
  return 1;
}

std::optional<ModelMode> qnt::run::chooseModelMode(const ModelRunOptions &o) {
  bool perplexity = !o.perplexityText.empty() || !o.perplexityTokens.empty();
  bool generation = !o.prompt.empty() || !o.promptTokens.empty();
  if ((!o.perplexityText.empty() && !o.perplexityTokens.empty()) ||
      (!o.prompt.empty() && !o.promptTokens.empty())) {
    fail("give text or token ids, not both (--perplexity / "
         "--perplexity-tokens, --generate / --generate-tokens)");
    return std::nullopt;
  }
  if (int(perplexity) + int(generation) + int(o.bench) != 1) {
    fail("with --model, give one of --perplexity, --perplexity-tokens, "
         "--generate, --generate-tokens or --bench");
    return std::nullopt;
  }
  return perplexity ? ModelMode::Perplexity
         : generation ? ModelMode::Generate
                      : ModelMode::Bench;
}

bool qnt::run::needsTokenizer(const ModelRunOptions &o) {
  return !o.perplexityText.empty() || !o.prompt.empty();
}

std::unique_ptr<io::Tokenizer>
qnt::run::openTokenizer(const ModelRunOptions &o, int64_t vocabSize) {
  if (o.tokenizerPath.empty()) {
    fail("text input needs --tokenizer (or give token ids with "
         "--perplexity-tokens / --generate-tokens)");
    return nullptr;
  }
  std::string error;
  auto tokenizer = io::Tokenizer::open(o.tokenizerPath, vocabSize, &error);
  if (!tokenizer)
    fail(error);
  return tokenizer;
}

//===----------------------------------------------------------------------===//
// Perplexity
//===----------------------------------------------------------------------===//

static int runPerplexity(ModelExecutor &model, const ModelRunOptions &o,
                         const io::Tokenizer *tokenizer) {
  std::vector<std::vector<int32_t>> documents;
  std::string error;
  bool tokenIds = !o.perplexityTokens.empty();
  if (!io::loadDocuments(tokenIds ? o.perplexityTokens : o.perplexityText,
                         tokenIds, tokenizer, model.vocabSize, &documents,
                         &error))
    return fail(error);
  int64_t context = o.context ? o.context : model.maxSeqLen;
  if (context < 2 || context > model.maxSeqLen)
    return fail("--context must be in [2, " + std::to_string(model.maxSeqLen) +
                "], got " + std::to_string(context));
  if (!tokenIds)
    std::printf("protocol: documents split at '<|endoftext|>' lines and "
                "stripped, encoded with BOS; chunks of at most %lld tokens, "
                "each from an empty KV cache; every token after a chunk's "
                "first is scored\n",
                (long long)context);
  else
    std::printf("protocol: token file, one document per line, ids as given "
                "(BOS included only if present); chunks of at most %lld "
                "tokens, each from an empty KV cache; every token after a "
                "chunk's first is scored\n",
                (long long)context);
  std::fflush(stdout);
  io::PerplexityResult result;
  if (!io::scorePerplexity(documents, context, model.vocabSize, model.forward,
                           result))
    return 1;
  if (result.scored == 0)
    return fail("no token was scored: every chunk has a single token "
                "(documents of one token, or an empty file)");
  std::printf("documents: %lld  chunks: %lld  tokens: %lld  scored: %lld\n"
              "mean NLL: %.6f nats/token\n"
              "time: %.2f s  (%.1f tokens/s)\n"
              "perplexity: %.6f\n",
              (long long)result.documents, (long long)result.chunks,
              (long long)result.tokens, (long long)result.scored,
              result.meanNll(), result.seconds,
              result.seconds > 0 ? result.tokens / result.seconds : 0.0,
              result.perplexity());
  return 0;
}

//===----------------------------------------------------------------------===//
// Generation
//===----------------------------------------------------------------------===//

static int runGenerate(ModelExecutor &model, const ModelRunOptions &o,
                       const io::Tokenizer *tokenizer) {
  std::vector<int32_t> tokens;
  if (!o.promptTokens.empty()) {
    std::vector<std::vector<int32_t>> parsed;
    std::string error;
    if (!io::parseTokenDocuments(o.promptTokens, model.vocabSize,
                                 "--generate-tokens", &parsed, &error))
      return fail(error);
    for (const auto &line : parsed)
      tokens.insert(tokens.end(), line.begin(), line.end());
  } else {
    tokens = tokenizer->encode(o.prompt, /*bos=*/true, /*eos=*/false);
  }
  if (tokens.empty())
    return fail("the prompt has no tokens");
  if (int64_t(tokens.size()) >= model.maxSeqLen)
    return fail("the prompt has " + std::to_string(tokens.size()) +
                " tokens; the context of " + std::to_string(model.maxSeqLen) +
                " leaves no room to generate");
  if (o.steps < 0)
    return fail("--steps must be >= 0, got " + std::to_string(o.steps));
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
    return fail("--temperature must be a finite value >= 0, got " +
                std::to_string(o.temperature));
  if (!(o.topP > 0.0f && o.topP <= 1.0f))
    return fail("--top-p must be in (0, 1], got " + std::to_string(o.topP));
  io::Sampler sampler(o.temperature, o.topP, o.sampleSeed);
  if (tokenizer)
    std::fputs(tokenizer->decode(tokens).c_str(), stdout);
  auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> produced;
  bool ok = io::generateTokens(
      tokens, o.steps, model.maxSeqLen, model.vocabSize, sampler,
      model.forward,
      [&](int32_t previous, int32_t token) {
        if (tokenizer)
          std::fputs(tokenizer->decode(previous, token).c_str(), stdout);
        else
          std::printf(" %d", token);
        std::fflush(stdout);
      },
      produced);
  if (!ok)
    return 1;
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr, "generated %zu tokens in %.2f s (%.1f tokens/s, %s)\n",
               produced.size(), seconds,
               seconds > 0 ? produced.size() / seconds : 0.0,
               o.temperature > 0 ? "top-p sampling" : "greedy");
  return 0;
}

//===----------------------------------------------------------------------===//
// --bench
//===----------------------------------------------------------------------===//

/// The statistic of `values` (sorted in place) at `fraction` (0 min, 0.5
/// median, 1 max).
static double quantile(std::vector<double> &values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[size_t(fraction * double(values.size() - 1) + 0.5)];
}

static void printBenchRow(const std::string &test, std::vector<double> values,
                          const char *unit) {
  std::printf("%-8s %12.3f %12.3f %12.3f %10s\n", test.c_str(),
              quantile(values, 0), quantile(values, 0.5), quantile(values, 1),
              unit);
}

/// A prompt of benchPrompt tokens from an empty cache, then benchDecode
/// single-token steps, per round, after one untimed round.
static int runBench(ModelExecutor &model, const ModelRunOptions &o) {
  int64_t prompt = o.benchPrompt, decode = o.benchDecode;
  if (prompt < 1 || decode < 0 || o.benchRounds < 1 ||
      prompt + decode > model.maxSeqLen)
    return fail("--bench needs --bench-prompt >= 1, --bench-decode >= 0 with "
                "both within the context of " +
                std::to_string(model.maxSeqLen) + ", and --bench-rounds >= 1");
  // BOS, then a fixed spread of ids: the cost does not depend on them.
  std::vector<int32_t> tokens(prompt);
  tokens[0] = io::Tokenizer::kBos;
  int64_t spread = std::max<int64_t>(model.vocabSize - 3, 1);
  for (int64_t i = 1; i < prompt; ++i)
    tokens[i] = int32_t(3 + (i * 7919) % spread);
  std::vector<double> prefillRates, decodeRates, decodeMs;
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  for (int64_t round = -1; round < o.benchRounds; ++round) {
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
    if (decode > 0) {
      decodeMs.push_back(1e3 * seconds(prefilled, done) / decode);
      decodeRates.push_back(1e3 / decodeMs.back());
    }
  }
  std::printf("%-8s %12s %12s %12s %10s\n", "test", "min", "median", "max",
              "unit");
  printBenchRow("pp" + std::to_string(prompt), prefillRates, "tokens/s");
  if (decode > 0) {
    printBenchRow("tg" + std::to_string(decode), decodeRates, "tokens/s");
    printBenchRow("tg" + std::to_string(decode), decodeMs, "ms/token");
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  std::printf("rounds: %lld; peak RSS: %.1f MiB\n", (long long)o.benchRounds,
              usage.ru_maxrss / 1024.0);
  return 0;
}

int qnt::run::runModelMode(ModelMode mode, ModelExecutor &model,
                           const ModelRunOptions &options,
                           const io::Tokenizer *tokenizer) {
  switch (mode) {
  case ModelMode::Perplexity:
    return runPerplexity(model, options, tokenizer);
  case ModelMode::Generate:
    return runGenerate(model, options, tokenizer);
  case ModelMode::Bench:
    return runBench(model, options);
  }
  return 1;
}

//===----------------------------------------------------------------------===//
// Artifacts
//===----------------------------------------------------------------------===//

static bool isDirectory(const std::string &path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

static bool isFile(const std::string &path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

bool qnt::run::isArtifact(const std::string &path) {
  return !path.empty() && isDirectory(path) &&
         isFile(path + "/" + io::kManifestFileName);
}

int qnt::run::runArtifact(const std::string &path, ModelMode mode,
                          ModelRunOptions options) {
  if (options.cpuThreads < 0 || options.cpuThreads > 1024)
    return fail("--cpu-threads must be in 0..1024");
  auto start = std::chrono::steady_clock::now();
  qnt_open_options open;
  qnt_open_options_init(&open);
  open.threads = int(options.cpuThreads);
  if (!options.image.empty())
    open.image = options.image.c_str();
  std::unique_ptr<qnt_model, void (*)(qnt_model *)> handle(
      qnt_model_open(path.c_str(), &open), qnt_model_free);
  if (!handle)
    return fail(qnt_last_error());
  std::unique_ptr<qnt_session, void (*)(qnt_session *)> session(
      qnt_session_create(handle.get(), 0), qnt_session_free);
  if (!session)
    return fail(qnt_last_error());
  ModelExecutor model;
  model.vocabSize = qnt_model_vocab_size(handle.get());
  model.maxSeqLen = qnt_model_context_length(handle.get());
  model.forward = [&](const int32_t *tokens, int64_t count,
                      int64_t pos) -> const float * {
    if (pos == 0)
      qnt_session_reset(session.get());
    if (pos != qnt_session_position(session.get())) {
      fail("internal error: position " + std::to_string(pos) +
           " is not the session's next");
      return nullptr;
    }
    if (qnt_session_prefill(session.get(), tokens, count) != 0) {
      fail(qnt_last_error());
      return nullptr;
    }
    return qnt_session_logits(session.get(), nullptr);
  };
  // The artifact's own tokenizer unless one is given.
  std::string own = path + "/" + io::kArtifactTokenizerFileName;
  if (options.tokenizerPath.empty() && isFile(own))
    options.tokenizerPath = own;
  std::unique_ptr<io::Tokenizer> tokenizer;
  if (needsTokenizer(options) || !options.tokenizerPath.empty()) {
    tokenizer = openTokenizer(options, model.vocabSize);
    if (!tokenizer)
      return 1;
  }
  std::fprintf(
      stderr,
      "artifact: %s, CPU image '%s', vocab %lld, context %lld; opened in "
      "%.2f s\n",
      path.c_str(), qnt_model_image(handle.get()), (long long)model.vocabSize,
      (long long)model.maxSeqLen,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count());
  return runModelMode(mode, model, options, tokenizer.get());
}
