//===- Evaluation.h - Perplexity and generation over any executor -*- C++ -*-===//
//
// The perplexity protocol and the generation loop, over a callback that
// runs tokens and returns their logits, so that the JIT (ModelRunner) and
// the artifact runtime (qnt/runtime.h) are measured by the same code. The
// protocol (docs/Evaluation.md): each document is encoded with BOS, cut
// into consecutive chunks of at most `context` tokens, each chunk is
// evaluated from an empty cache, and every token after a chunk's first is
// scored by its negative log-likelihood given the tokens before it.
// IR-free and LLVM-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_EVALUATION_H
#define QNT_IO_EVALUATION_H

#include <cstdint>
#include <functional>
#include <vector>

namespace qnt::io {

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

/// Runs `count` tokens at positions pos.. of the current sequence (pos 0
/// starts from an empty cache) and returns their logits, count rows of the
/// vocabulary, or null on failure (the callee reports it).
using ForwardFn =
    std::function<const float *(const int32_t *tokens, int64_t count,
                                int64_t pos)>;

/// The protocol over `documents` (token ids, BOS included). Shows progress
/// on a terminal. False when `forward` fails.
bool scorePerplexity(const std::vector<std::vector<int32_t>> &documents,
                     int64_t context, int64_t vocab, const ForwardFn &forward,
                     PerplexityResult &result);

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

/// Continues `prompt` (BOS included) by up to `steps` tokens within
/// `context` positions, stopping early at BOS or EOS; calls
/// `onToken(previous, token)` for each new token, appended to `produced`.
/// False when `forward` fails.
bool generateTokens(const std::vector<int32_t> &prompt, int64_t steps,
                    int64_t context, int64_t vocab, Sampler &sampler,
                    const ForwardFn &forward,
                    const std::function<void(int32_t, int32_t)> &onToken,
                    std::vector<int32_t> &produced);

} // namespace qnt::io

#endif // QNT_IO_EVALUATION_H
