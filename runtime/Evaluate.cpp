//===- Evaluate.cpp - Perplexity and text generation ----------------------===//
//
// See Evaluate.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/Evaluate.h"
#include "qnt/io/Corpus.h"
#include "qnt/io/Tokenizer.h"
#include "qnt/support/Progress.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace mlir;
using namespace ::qnt::runtime;
namespace runtime = ::qnt::runtime;

double PerplexityResult::perplexity() const { return std::exp(meanNll()); }

/// -log softmax(logits)[target], in double.
static double negativeLogLikelihood(const float *logits, int64_t vocab,
                                    int32_t target) {
  double maxLogit = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i)
    sum += std::exp(double(logits[i]) - maxLogit);
  return maxLogit + std::log(sum) - double(logits[target]);
}

FailureOr<PerplexityResult>
runtime::evaluatePerplexity(ModelRunner &runner,
                                 const std::vector<std::vector<int32_t>> &documents,
                                 int64_t context) {
  PerplexityResult result;
  int64_t vocab = runner.config().vocabSize;
  int64_t total = 0;
  for (const auto &doc : documents)
    total += int64_t(doc.size());
  ::qnt::Progress progress("perplexity", total);
  for (const std::vector<int32_t> &doc : documents) {
    ++result.documents;
    for (auto [begin, end] : ::qnt::io::contextChunks(doc.size(), context)) {
      ArrayRef<int32_t> chunk(doc.data() + begin, end - begin);
      HostTensor logits;
      if (failed(runner.forward(chunk, /*pos=*/0, logits)))
        return failure();
      ++result.chunks;
      result.tokens += int64_t(chunk.size());
      for (size_t t = 1; t < chunk.size(); ++t) {
        result.sumNll += negativeLogLikelihood(
            logits.f32() + (t - 1) * vocab, vocab, chunk[t]);
        ++result.scored;
      }
      progress.update(result.tokens,
                      llvm::formatv("ppl {0:F4}", result.perplexity()).str());
    }
  }
  result.seconds = progress.seconds();
  return result;
}

float Sampler::uniform() {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return float((state * 0x2545F4914F6CDD1Dull) >> 32) / 4294967296.0f;
}

int32_t Sampler::sample(const float *logits, int64_t vocabSize) {
  if (temperature <= 0.0f)
    return int32_t(std::max_element(logits, logits + vocabSize) - logits);
  std::vector<float> probs(logits, logits + vocabSize);
  float maxLogit = *std::max_element(probs.begin(), probs.end());
  float sum = 0;
  for (float &p : probs) {
    p = std::exp((p - maxLogit) / temperature);
    sum += p;
  }
  for (float &p : probs)
    p /= sum;
  // Nucleus: the smallest set of most likely tokens whose mass reaches topP.
  std::vector<int32_t> order(vocabSize);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return probs[a] > probs[b]; });
  float mass = 0;
  size_t keep = 0;
  while (keep < order.size()) {
    mass += probs[order[keep++]];
    if (topP > 0 && topP < 1 && mass >= topP)
      break;
  }
  float r = uniform() * mass, cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs[order[i]];
    if (r < cumulative)
      return order[i];
  }
  return order[keep - 1];
}

FailureOr<std::vector<int32_t>>
runtime::generate(ModelRunner &runner, ArrayRef<int32_t> prompt,
                       int64_t steps, Sampler &sampler,
                       const std::function<void(int32_t, int32_t)> &onToken) {
  std::vector<int32_t> produced;
  int64_t context = runner.config().maxSeqLen;
  int64_t vocab = runner.config().vocabSize;
  // Nothing to continue, or no room left in the context.
  steps = std::min<int64_t>(steps, context - int64_t(prompt.size()));
  if (prompt.empty() || steps <= 0)
    return produced;
  HostTensor logits;
  // The prompt in one call, then one token per call.
  if (failed(runner.forward(prompt, 0, logits)))
    return failure();
  int32_t previous = prompt.back();
  const float *last = logits.f32() + (prompt.size() - 1) * vocab;
  for (int64_t step = 0; step < steps; ++step) {
    int32_t next = sampler.sample(last, vocab);
    if (next == ::qnt::io::Tokenizer::kBos ||
        next == ::qnt::io::Tokenizer::kEos)
      break;
    produced.push_back(next);
    if (onToken)
      onToken(previous, next);
    previous = next;
    if (step + 1 == steps)
      break;
    int64_t pos = int64_t(prompt.size() + produced.size()) - 1;
    if (failed(runner.forward({next}, pos, logits)))
      return failure();
    last = logits.f32();
  }
  return produced;
}
