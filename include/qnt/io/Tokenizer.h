//===- Tokenizer.h - llama2.c tokenizer.bin ---------------------*- C++ -*-===//
//
// The byte-level BPE tokenizer of llama2.c (`tokenizer.bin`: int32
// max_token_length, then per token: f32 merge score, int32 length, bytes).
// encode() reproduces llama2.c's encode(): optional BOS, a dummy-prefix
// space, UTF-8 code points looked up whole, byte fallback to <0xXX> tokens
// (id = byte + 3), then greedy merges of the best-scoring adjacent pair.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_TOKENIZER_H
#define QNT_IO_TOKENIZER_H

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qnt::io {

class Tokenizer {
public:
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;

  /// Reads `vocabSize` tokens from `path` (the model's vocab_size: the file
  /// does not store it; entries after them are ignored). The error names the
  /// file and the token at fault (truncated entry, negative length, a length
  /// above max_token_length, ...). On duplicate pieces the lowest id is the
  /// one encode() produces.
  static std::unique_ptr<Tokenizer> open(const std::string &path,
                                         int64_t vocabSize, std::string *error);

  int64_t vocabSize() const { return int64_t(pieces_.size()); }
  const std::string &piece(int32_t id) const { return pieces_[id]; }

  /// Token ids of `text`, with BOS (1) and EOS (2) as asked; the same ids
  /// as run.c's encode(). Where run.c would produce an invalid id, a byte
  /// whose fallback id (byte + 3) is past the vocabulary becomes <unk> (0),
  /// and a missing " " piece makes the dummy prefix fall back like a space
  /// byte. Empty text gives no dummy prefix.
  std::vector<int32_t> encode(std::string_view text, bool bos, bool eos) const;
  /// The text of `token` following `previous`, as llama2.c's decode(): the
  /// leading space of a piece after BOS is dropped and <0xXX> pieces become
  /// the raw byte. An id outside the vocabulary decodes to nothing.
  std::string decode(int32_t previous, int32_t token) const;
  /// Concatenated decode of `tokens` (BOS/EOS produce no text).
  std::string decode(const std::vector<int32_t> &tokens) const;

private:
  Tokenizer() = default;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
  int64_t maxTokenLength_ = 0;
};

} // namespace qnt::io

#endif // QNT_IO_TOKENIZER_H
