//===- Llama2c.h - llama2.c checkpoint files --------------------*- C++ -*-===//
//
// Reader and writer for the checkpoint format of Karpathy's llama2.c
// (docs/Models.md has the byte layouts):
//   - legacy: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//     vocab_size, seq_len; a negative vocab_size means a separate
//     classifier), then f32 tensors stacked over layers in the order
//     embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
//     freq_cis_real, freq_cis_imag, [classifier];
//   - version 1: a 256-byte header (magic "ak42", int32 version 1, the 7
//     int32, uint8 shared_classifier, zero padding), then f32 tensors in the
//     order rms_att, rms_ffn, rms_final, embedding, wq, wk, wv, wo, w1, w2,
//     w3, [classifier].
// Each layer's slice is exposed as its own tensor named as in Meta's code
// (llama2cTensorName), so a layer's weight is a view into the file.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_LLAMA2C_H
#define QNT_IO_LLAMA2C_H

#include "qnt/io/Llama.h"
#include "qnt/io/TensorFile.h"

#include <functional>

namespace qnt::io {

class Llama2cFile : public TensorFile {
public:
  /// Opens and validates `path`: header values, file size against the
  /// tensors the header implies (a short file names the first tensor that
  /// does not fit; a longer one is refused too), unsupported versions (2 is
  /// llama2.c's int8 export). The legacy RoPE tables are checked for size
  /// but not exposed. config() has ropeTheta 10000, rmsEps 1e-5 and
  /// Interleaved rotary pairs, as llama2.c's run.c assumes.
  static std::unique_ptr<Llama2cFile> open(const std::string &path,
                                           std::string *error);

  const LlamaConfig &config() const { return config_; }
  /// 0 for the legacy format, else the header's version (1).
  int version() const { return version_; }

private:
  Llama2cFile() = default;
  LlamaConfig config_;
  int version_ = 0;
};

/// Supplies `role`'s f32 values (of `layer`) in Meta's layout, row-major,
/// expectedShape(config, role) elements.
using TensorSource =
    std::function<std::vector<float>(TensorRole role, int64_t layer)>;

/// Writes a llama2.c checkpoint (`version` 0 = legacy or 1) of `config`
/// (its ropeStyle must be Interleaved) atomically: a temporary file next to
/// `path`, renamed on success. Tensors are requested one at a time, in file
/// order; the legacy format's RoPE tables are computed from
/// config.ropeTheta as llama2.c's export does. The format stores neither
/// rmsEps nor ropeTheta (readers assume 1e-5 and 10000). On failure
/// (invalid config, a size over the int32 header fields, a source giving
/// the wrong number of values or throwing, an I/O error) returns false and
/// sets *error starting with `path`; an existing file is left untouched.
bool writeLlama2c(const std::string &path, const LlamaConfig &config,
                  int version, const TensorSource &source, std::string *error);

} // namespace qnt::io

#endif // QNT_IO_LLAMA2C_H
