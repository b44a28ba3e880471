//===- ReferenceLlama.h - Plain fp32 LLaMA forward for tests ----*- C++ -*-===//
//
// An independent transcription of the forward pass of Karpathy's llama2.c
// (run.c) in plain loops with float accumulation, used by the unit tests as
// the ground truth for the compiler's generated code. It depends on nothing
// of the project but the IR-free checkpoint reader (qnt/io/Llama.h): every
// weight is converted to f32 once, at construction. Both RoPE pairings of
// LlamaConfig are supported, and the configuration's rmsEps and ropeTheta
// are used.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TEST_UNIT_SUPPORT_REFERENCELLAMA_H
#define QNT_TEST_UNIT_SUPPORT_REFERENCELLAMA_H

#include "qnt/io/Llama.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qnt::testing {

class ReferenceLlama {
public:
  /// Loads every weight of `checkpoint` as f32 (F32, F16, BF16 and F64
  /// converted). Aborts with a message on a tensor it cannot read.
  explicit ReferenceLlama(const qnt::io::LlamaCheckpoint &checkpoint);

  const qnt::io::LlamaConfig &config() const { return config_; }

  /// run.c's forward(): one `token` at position `pos` (0 <= pos <
  /// config.maxSeqLen), reading the KV cache of positions [0, pos) and
  /// writing position `pos`. Returns the logits (vocabSize values), valid
  /// until the next call.
  const std::vector<float> &forward(int32_t token, int64_t pos);

  /// When set, every linear layer's input row is appended to
  /// (*capture)[name of its weight tensor], the name being the
  /// checkpoint's tensorName(role, layer): the attention rmsnorm output for
  /// wq/wk/wv, the attention output for wo, the FFN rmsnorm output for
  /// w1/w3, the silu(gate) * up product for w2 and the final rmsnorm output
  /// for the classifier.
  std::map<std::string, std::vector<std::vector<float>>> *capture = nullptr;

private:
  struct Layer {
    std::vector<float> attnNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3;
    std::string wqName, wkName, wvName, woName, w1Name, w2Name, w3Name;
  };

  void record(const std::string &name, const std::vector<float> &row);

  qnt::io::LlamaConfig config_;
  std::vector<float> tokEmbeddings_, finalNorm_, classifier_;
  std::string classifierName_;
  std::vector<Layer> layers_;

  // Run state, as in run.c's RunState.
  std::vector<float> x_, xb_, xb2_, hb_, hb2_, q_, k_, v_, att_, logits_;
  std::vector<float> keyCache_, valueCache_; // (layer, seq, kv_dim)
};

/// Sum of negative log-likelihoods and number of scored tokens under the
/// perplexity protocol.
struct ReferenceNll {
  double sumNll = 0;
  int64_t scored = 0;
  /// exp(sumNll / scored); NaN when nothing was scored.
  double perplexity() const;
};

/// For each document (token ids, BOS included), consecutive chunks [b, e)
/// of at most `context` tokens (the last one partial) are each evaluated
/// from an empty cache, positions restarting at 0; every token t after a
/// chunk's first is scored: nll += logsumexp(logits(t-1)) -
/// logits(t-1)[token t], accumulated in double.
ReferenceNll referenceNll(ReferenceLlama &model,
                          const std::vector<std::vector<int32_t>> &documents,
                          int64_t context);

} // namespace qnt::testing

#endif // QNT_TEST_UNIT_SUPPORT_REFERENCELLAMA_H
