//===- Evaluate.cpp - Perplexity and text generation ----------------------===//
//
// See Evaluate.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/Evaluate.h"

using namespace mlir;
using namespace ::qnt::runtime;
namespace runtime = ::qnt::runtime;

::qnt::io::ForwardFn runtime::forwardFunction(ModelRunner &runner,
                                              HostTensor &logits) {
  return [&runner, &logits](const int32_t *tokens, int64_t count,
                            int64_t pos) -> const float * {
    if (failed(runner.forward(ArrayRef<int32_t>(tokens, count), pos, logits)))
      return nullptr;
    return logits.f32();
  };
}

FailureOr<PerplexityResult>
runtime::evaluatePerplexity(ModelRunner &runner,
                            const std::vector<std::vector<int32_t>> &documents,
                            int64_t context) {
  PerplexityResult result;
  HostTensor logits;
  if (!::qnt::io::scorePerplexity(documents, context,
                                  runner.config().vocabSize,
                                  forwardFunction(runner, logits), result))
    return failure();
  return result;
}

FailureOr<std::vector<int32_t>>
runtime::generate(ModelRunner &runner, ArrayRef<int32_t> prompt,
                  int64_t steps, Sampler &sampler,
                  const std::function<void(int32_t, int32_t)> &onToken) {
  std::vector<int32_t> produced;
  HostTensor logits;
  if (!::qnt::io::generateTokens(prompt.vec(), steps, runner.config().maxSeqLen,
                                 runner.config().vocabSize, sampler,
                                 forwardFunction(runner, logits), onToken, produced))
    return failure();
  return produced;
}
