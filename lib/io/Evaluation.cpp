//===- Evaluation.cpp - Perplexity and generation over any executor -------===//
//
// See Evaluation.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Evaluation.h"
#include "qnt/io/Corpus.h"
#include "qnt/io/Tokenizer.h"
#include "qnt/support/Progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

using namespace qnt::io;

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

bool qnt::io::scorePerplexity(
    const std::vector<std::vector<int32_t>> &documents, int64_t context,
    int64_t vocab, const ForwardFn &forward, PerplexityResult &result) {
  result = PerplexityResult();
  int64_t total = 0;
  for (const auto &doc : documents)
    total += int64_t(doc.size());
  ::qnt::Progress progress("perplexity", total);
  for (const std::vector<int32_t> &doc : documents) {
    ++result.documents;
    for (auto [begin, end] : contextChunks(doc.size(), context)) {
      const int32_t *chunk = doc.data() + begin;
      int64_t count = end - begin;
      const float *logits = forward(chunk, count, /*pos=*/0);
      if (!logits)
        return false;
      ++result.chunks;
      result.tokens += count;
      for (int64_t t = 1; t < count; ++t) {
        result.sumNll +=
            negativeLogLikelihood(logits + (t - 1) * vocab, vocab, chunk[t]);
        ++result.scored;
      }
      char status[32];
      std::snprintf(status, sizeof status, "ppl %.4f", result.perplexity());
      progress.update(result.tokens, status);
    }
  }
  result.seconds = progress.seconds();
  return true;
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

bool qnt::io::generateTokens(
    const std::vector<int32_t> &prompt, int64_t steps, int64_t context,
    int64_t vocab, Sampler &sampler, const ForwardFn &forward,
    const std::function<void(int32_t, int32_t)> &onToken,
    std::vector<int32_t> &produced) {
  produced.clear();
  // Nothing to continue, or no room left in the context.
  steps = std::min<int64_t>(steps, context - int64_t(prompt.size()));
  if (prompt.empty() || steps <= 0)
    return true;
  // The prompt in one call, then one token per call.
  const float *logits = forward(prompt.data(), int64_t(prompt.size()), 0);
  if (!logits)
    return false;
  int32_t previous = prompt.back();
  const float *last = logits + (prompt.size() - 1) * vocab;
  for (int64_t step = 0; step < steps; ++step) {
    int32_t next = sampler.sample(last, vocab);
    if (next == Tokenizer::kBos || next == Tokenizer::kEos)
      break;
    produced.push_back(next);
    if (onToken)
      onToken(previous, next);
    previous = next;
    if (step + 1 == steps)
      break;
    int64_t pos = int64_t(prompt.size() + produced.size()) - 1;
    if (!(last = forward(&next, 1, pos)))
      return false;
  }
  return true;
}
