//===- Evaluate.h - Perplexity and text generation --------------*- C++ -*-===//
//
// Model-level drivers over ModelRunner. The perplexity protocol
// (docs/Evaluation.md): each document is encoded with BOS, cut into
// consecutive chunks of at most `context` tokens, each chunk is evaluated
// from an empty cache, and every token after a chunk's first is scored by
// its negative log-likelihood given the tokens before it in the chunk.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_EVALUATE_H
#define QNT_RUNTIME_EVALUATE_H

#include "qnt/runtime/ModelRunner.h"

#include <functional>

namespace qnt::runtime {

struct PerplexityResult {
  int64_t documents = 0;
  int64_t chunks = 0;
  int64_t tokens = 0; ///< evaluated tokens, BOS included
  int64_t scored = 0; ///< tokens whose NLL was counted
  double sumNll = 0;  ///< natural log, accumulated in double
  double seconds = 0;
  double meanNll() const { return scored ? sumNll / double(scored) : 0; }
  double perplexity() const;
};

/// Runs the protocol over `documents` (token ids, BOS included). Shows
/// progress on a terminal.
mlir::FailureOr<PerplexityResult>
evaluatePerplexity(ModelRunner &runner,
                   const std::vector<std::vector<int32_t>> &documents,
                   int64_t context);

/// Next-token choice: greedy when temperature is 0, else nucleus (top-p)
/// sampling of softmax(logits / temperature), seeded.
class Sampler {
public:
  Sampler(float temperature, float topP, uint64_t seed)
      : temperature(temperature), topP(topP), state(seed ? seed : 1) {}
  int32_t sample(const float *logits, int64_t vocabSize);

private:
  /// xorshift* in [0, 1), as llama2.c's random_f32.
  float uniform();
  float temperature, topP;
  uint64_t state;
};

/// Continues `prompt` (BOS included) by up to `steps` tokens, stopping
/// early at BOS or EOS; calls `onToken(previous, token)` for each new
/// token. Returns the new tokens.
mlir::FailureOr<std::vector<int32_t>>
generate(ModelRunner &runner, llvm::ArrayRef<int32_t> prompt, int64_t steps,
         Sampler &sampler,
         const std::function<void(int32_t, int32_t)> &onToken = {});

} // namespace qnt::runtime

#endif // QNT_RUNTIME_EVALUATE_H
