//===- Llama.h - LLaMA-family model configuration and tensors ---*- C++ -*-===//
//
// IR-free description of a LLaMA-architecture checkpoint: its
// hyper-parameters, the role of every tensor, where each role is stored in
// the llama2.c and Hugging Face layouts, and the opening of a checkpoint
// (llama2.c .bin, or a Hugging Face directory with config.json and one or
// more safetensors shards) with every tensor checked against the config.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_LLAMA_H
#define QNT_IO_LLAMA_H

#include "qnt/io/TensorFile.h"

#include <memory>
#include <string>
#include <vector>

namespace qnt::io {

/// How rotary embeddings pair the dimensions of a head.
enum class RopeStyle {
  /// (2i, 2i+1) pairs: Meta's original code and llama2.c.
  Interleaved,
  /// (i, i + head_dim/2) pairs ("rotate_half"): Hugging Face, whose q/k
  /// weights are permuted accordingly when converted from Meta's layout.
  HalfSplit,
};

struct LlamaConfig {
  int64_t dim = 0;        ///< hidden_size
  int64_t hiddenDim = 0;  ///< intermediate_size (FFN)
  int64_t nLayers = 0;
  int64_t nHeads = 0;
  int64_t nKvHeads = 0;
  int64_t vocabSize = 0;
  int64_t maxSeqLen = 0;  ///< context length
  double ropeTheta = 10000.0;
  double rmsEps = 1e-5;
  bool tiedEmbeddings = true;
  RopeStyle ropeStyle = RopeStyle::Interleaved;

  int64_t headDim() const { return nHeads ? dim / nHeads : 0; }
  int64_t kvDim() const { return headDim() * nKvHeads; }
  /// Empty if the configuration is usable, else what is wrong with it
  /// (non-positive sizes, dim not divisible by n_heads, n_heads not a
  /// multiple of n_kv_heads, odd head dimension, ...).
  std::string validate() const;
  /// Number of weights (embedding, blocks, norms, classifier if untied), or
  /// -1 if it overflows int64_t (validate() reports that).
  int64_t numParameters() const;
};

/// The tensors of a LLaMA model. Per-layer roles come with a layer index.
enum class TensorRole {
  TokEmbeddings, ///< [vocab, dim]
  AttnNorm,      ///< [dim], per layer
  Wq,            ///< [n_heads*head_dim, dim]
  Wk,            ///< [kv_dim, dim]
  Wv,            ///< [kv_dim, dim]
  Wo,            ///< [dim, n_heads*head_dim]
  FfnNorm,       ///< [dim]
  W1,            ///< gate_proj [hidden, dim]
  W2,            ///< down_proj [dim, hidden]
  W3,            ///< up_proj   [hidden, dim]
  FinalNorm,     ///< [dim]
  Classifier,    ///< [vocab, dim]; the embedding when tied
};

/// The roles stored once per model and once per layer, in the order
/// checkpoints list them.
inline constexpr TensorRole kGlobalRoles[] = {
    TensorRole::TokEmbeddings, TensorRole::FinalNorm, TensorRole::Classifier};
inline constexpr TensorRole kLayerRoles[] = {
    TensorRole::AttnNorm, TensorRole::Wq, TensorRole::Wk,
    TensorRole::Wv,       TensorRole::Wo, TensorRole::FfnNorm,
    TensorRole::W1,       TensorRole::W2, TensorRole::W3};

bool isPerLayer(TensorRole role);
/// "wq", "attn_norm", ... (for messages).
const char *roleName(TensorRole role);
/// The shape `role` must have under `config`.
std::vector<int64_t> expectedShape(const LlamaConfig &config, TensorRole role);

enum class CheckpointFormat { Llama2cLegacy, Llama2cV1, HuggingFace };
const char *formatName(CheckpointFormat format);

/// An opened checkpoint: its configuration and its files, memory-mapped.
/// Every role's tensor has been found and checked (shape, float dtype).
class LlamaCheckpoint {
public:
  /// Opens `path`: a llama2.c `.bin` file, or a Hugging Face model
  /// directory (or its config.json) holding model.safetensors or
  /// model.safetensors.index.json with its shards. On failure returns
  /// nullptr and sets *error to a message naming the file (and the tensor
  /// or config key) at fault.
  ///
  /// Hugging Face: config.json must have model_type "llama" or "mistral",
  /// hidden_size, intermediate_size, num_hidden_layers,
  /// num_attention_heads, vocab_size and max_position_embeddings;
  /// num_key_value_heads (default num_attention_heads), rms_norm_eps
  /// (1e-6), rope_theta (10000), tie_word_embeddings (false) and head_dim
  /// (must be hidden_size / num_attention_heads) are optional. A non-null
  /// rope_scaling, a hidden_act other than "silu" or attention/MLP biases
  /// are refused. A Mistral sliding_window shorter than the context
  /// becomes maxSeqLen, the length up to which the model is exact. With
  /// model.safetensors.index.json every shard it names must open; the
  /// index wins over a model.safetensors beside it. The classifier of a
  /// tied model is the embedding (a stored lm_head.weight is ignored).
  static std::unique_ptr<LlamaCheckpoint> open(const std::string &path,
                                               std::string *error);

  const LlamaConfig &config() const { return config_; }
  CheckpointFormat format() const { return format_; }
  /// The files tensors are read from, in search order.
  const std::vector<std::unique_ptr<TensorFile>> &files() const {
    return files_;
  }
  /// Name of the tensor holding `role` (of `layer` for per-layer roles).
  /// For a tied classifier, the embedding's name.
  std::string tensorName(TensorRole role, int64_t layer = -1) const;
  /// The file and entry holding `role`; never null after a successful open.
  std::pair<const TensorFile *, const TensorInfo *>
  lookup(TensorRole role, int64_t layer = -1) const;

private:
  using Location = std::pair<const TensorFile *, const TensorInfo *>;
  LlamaCheckpoint() = default;
  /// Index of (role, layer) in locations_, or -1 if out of range.
  int64_t slot(TensorRole role, int64_t layer) const;

  LlamaConfig config_;
  CheckpointFormat format_ = CheckpointFormat::Llama2cLegacy;
  std::vector<std::unique_ptr<TensorFile>> files_;
  /// Every role's tensor, resolved by open(): the global roles first, then
  /// the per-layer roles layer by layer.
  std::vector<Location> locations_;
};

/// Name of `role` in a Hugging Face LLaMA checkpoint, e.g.
/// "model.layers.3.self_attn.q_proj.weight".
std::string hfTensorName(TensorRole role, int64_t layer);
/// Name given to `role` in a llama2.c checkpoint (Meta's names, e.g.
/// "layers.3.attention.wq.weight").
std::string llama2cTensorName(TensorRole role, int64_t layer);

} // namespace qnt::io

#endif // QNT_IO_LLAMA_H
