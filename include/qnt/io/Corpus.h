//===- Corpus.h - Text and token-id corpora ---------------------*- C++ -*-===//
//
// How evaluation and calibration text becomes documents (docs/Evaluation.md):
// a text file is split at lines that read `<|endoftext|>` (after trimming
// whitespace); a file without such lines is one document; each document is
// stripped of surrounding whitespace and empty documents are dropped. A
// token file holds decimal token ids separated by whitespace, one document
// per non-empty line.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_CORPUS_H
#define QNT_IO_CORPUS_H

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qnt::io {

/// Splits `text` into documents as described above.
std::vector<std::string> splitDocuments(std::string_view text);

/// Reads a whole file; false and *error (naming the file) on failure.
bool readTextFile(const std::string &path, std::string *out,
                  std::string *error);

/// Parses a token file's contents: one document per non-empty line. Every
/// id must be a decimal integer in [0, vocabSize); the error gives the line
/// and the offending text, prefixed by `name`.
bool parseTokenDocuments(std::string_view text, int64_t vocabSize,
                         const std::string &name,
                         std::vector<std::vector<int32_t>> *documents,
                         std::string *error);

class Tokenizer;

/// Reads `path` as documents of token ids: a token file when `tokenIds`,
/// else text split with splitDocuments and encoded with BOS by `tokenizer`
/// (which text input requires). Errors name the file.
bool loadDocuments(const std::string &path, bool tokenIds,
                   const Tokenizer *tokenizer, int64_t vocabSize,
                   std::vector<std::vector<int32_t>> *documents,
                   std::string *error);

/// The windows scored by the perplexity protocol: a document of n tokens
/// (BOS included) is cut into consecutive chunks of at most `context`
/// tokens; each chunk is evaluated from an empty cache and every token
/// after its first is scored. Returns [begin, end) token ranges:
/// [0, context), [context, 2*context), ..., then the partial rest. A final
/// chunk of one token is still returned (it scores nothing). Empty if
/// `numTokens` <= 0 or `context` <= 0.
std::vector<std::pair<int64_t, int64_t>> contextChunks(int64_t numTokens,
                                                       int64_t context);

} // namespace qnt::io

#endif // QNT_IO_CORPUS_H
