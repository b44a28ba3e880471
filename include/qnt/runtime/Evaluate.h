//===- Evaluate.h - Perplexity and text generation --------------*- C++ -*-===//
//
// Model-level drivers over ModelRunner: the protocol and the loop of
// qnt/io/Evaluation.h (shared with the artifact runtime) with the JIT's
// forward pass.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_EVALUATE_H
#define QNT_RUNTIME_EVALUATE_H

#include "qnt/io/Evaluation.h"
#include "qnt/runtime/ModelRunner.h"

#include <functional>

namespace qnt::runtime {

using ::qnt::io::PerplexityResult;
using ::qnt::io::Sampler;

/// The JIT's forward pass as an io::ForwardFn; `logits` holds the last
/// call's result (the returned pointer points into it).
::qnt::io::ForwardFn forwardFunction(ModelRunner &runner, HostTensor &logits);

/// Runs the protocol over `documents` (token ids, BOS included). Shows
/// progress on a terminal.
mlir::FailureOr<PerplexityResult>
evaluatePerplexity(ModelRunner &runner,
                   const std::vector<std::vector<int32_t>> &documents,
                   int64_t context);

/// Continues `prompt` (BOS included) by up to `steps` tokens, stopping
/// early at BOS or EOS; calls `onToken(previous, token)` for each new
/// token. Returns the new tokens.
mlir::FailureOr<std::vector<int32_t>>
generate(ModelRunner &runner, llvm::ArrayRef<int32_t> prompt, int64_t steps,
         Sampler &sampler,
         const std::function<void(int32_t, int32_t)> &onToken = {});

} // namespace qnt::runtime

#endif // QNT_RUNTIME_EVALUATE_H
