//===- SyntheticModel.h - Deterministic LLaMA checkpoints -------*- C++ -*-===//
//
// Writes checkpoints of any LLaMA shape (up to 7B and beyond) for tests and
// benchmarks: heavy-tailed (Student-t) weights scaled by 1/sqrt(fan_in),
// and a few fixed "outlier" input channels whose RMSNorm gains are large so
// that the activations entering q/k/v and gate/up carry the outlier
// channels real LLMs have. Every tensor is a pure function of (seed, role,
// layer), generated and written one at a time, so memory stays at one
// tensor whatever the model size.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_SYNTHETICMODEL_H
#define QNT_IO_SYNTHETICMODEL_H

#include "qnt/io/Llama.h"

#include <functional>

namespace qnt::io {

struct SyntheticModelOptions {
  LlamaConfig config;
  uint64_t seed = 0;
  /// Degrees of freedom of the Student-t weights (smaller = heavier tails).
  /// <= 0, NaN or above 1e6: Gaussian weights.
  double tailDof = 4.0;
  int64_t numOutlierChannels = 4;
  /// RMSNorm gain of the outlier channels (others are ~1).
  double outlierGain = 20.0;
};

/// Named shapes: "tiny" (dim 64, hidden 176, 2 layers, 8 heads, 4 KV
/// heads, vocab 512, ctx 128), "small" (256, 704, 4 layers, 8/4 heads,
/// vocab 1024, ctx 256), both with tied embeddings; "llama-7b" (4096, 11008,
/// 32 layers, 32 heads, vocab 32000, ctx 4096, untied), "llama2-7b-gqa" (as
/// 7b with 8 KV heads). rms_eps 1e-5, rope theta 10000. False for an
/// unknown name.
bool syntheticPreset(const std::string &name, LlamaConfig *config);

/// The values of `role` (of `layer`) in Meta's layout (as llama2.c stores
/// them), f32, rounded to `roundTo` (F32, F16 or BF16) so that the same
/// weights can be written losslessly in that dtype:
///   - projections: Student-t(tailDof), std 1/sqrt(fan_in), |t| <= 50;
///   - embedding: N(0, 1); untied classifier: N(0, 1/dim); a tied
///     classifier is the embedding;
///   - norms: 1 + 0.1 N(0, 1), with syntheticOutlierChannels() set to
///     outlierGain in the attention and FFN norms (not the final norm).
/// The config's ropeStyle is ignored. Empty for an invalid configuration
/// or dtype, a layer out of range, or when memory runs out.
std::vector<float> syntheticTensor(const SyntheticModelOptions &options,
                                   TensorRole role, int64_t layer,
                                   DType roundTo = DType::F32);

/// The outlier channels (sorted), a function of the seed only: the same in
/// every layer.
std::vector<int64_t>
syntheticOutlierChannels(const SyntheticModelOptions &options);

/// Progress callback: (tensors done, tensors total, bytes written).
using SyntheticProgress = std::function<void(int64_t, int64_t, uint64_t)>;

/// Writes a Hugging Face style directory `dir` (created if missing):
/// config.json and model.safetensors, or `numShards` > 1 files
/// model-0000i-of-0000n.safetensors with model.safetensors.index.json.
/// Weights are stored as `dtype` (F32, F16 or BF16) with q/k rows permuted
/// to the rotate_half convention, exactly as Hugging Face's conversion
/// script does, so the model computes the same function as the llama2.c
/// file of the same options. Each shard is written atomically, its tensors
/// spilled to disk as they are made so that memory holds one tensor; the
/// index and config.json are written last. A model.safetensors (when
/// sharding) or index (when not) left by an earlier write is removed. The
/// number of shards is at most the number of tensors.
bool writeSyntheticHf(const std::string &dir,
                      const SyntheticModelOptions &options, DType dtype,
                      int64_t numShards, const SyntheticProgress &progress,
                      std::string *error);

/// Writes the same weights (rounded to `roundTo`) as a llama2.c checkpoint.
bool writeSyntheticLlama2c(const std::string &path,
                           const SyntheticModelOptions &options, int version,
                           DType roundTo, std::string *error);

} // namespace qnt::io

#endif // QNT_IO_SYNTHETICMODEL_H
