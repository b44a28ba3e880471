//===- Corpus.cpp - Text and token-id corpora -----------------------------===//
//
// Document splitting and token-file parsing for evaluation and calibration.
// Everything works on byte strings: text is not decoded, so any encoding
// passes through unchanged to the tokenizer.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Corpus.h"
#include "qnt/io/Tokenizer.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace qnt::io {

namespace {

constexpr std::string_view kSeparator = "<|endoftext|>";

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && isSpace(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back()))
    s.remove_suffix(1);
  return s;
}

/// Shortens text quoted in an error message so a garbage file cannot make
/// the message unreadable.
std::string shown(std::string_view s) {
  constexpr size_t kMaxShown = 40;
  if (s.size() <= kMaxShown)
    return std::string(s);
  return std::string(s.substr(0, kMaxShown)) + "...";
}

} // namespace

std::vector<std::string> splitDocuments(std::string_view text) {
  std::vector<std::string> documents;
  auto emit = [&](std::string_view doc) {
    doc = strip(doc);
    if (!doc.empty())
      documents.emplace_back(doc);
  };
  size_t docBegin = 0;
  size_t lineBegin = 0;
  while (lineBegin <= text.size()) {
    size_t lineEnd = text.find('\n', lineBegin);
    if (lineEnd == std::string_view::npos)
      lineEnd = text.size();
    if (strip(text.substr(lineBegin, lineEnd - lineBegin)) == kSeparator) {
      emit(text.substr(docBegin, lineBegin - docBegin));
      docBegin = lineEnd + 1 <= text.size() ? lineEnd + 1 : text.size();
    }
    lineBegin = lineEnd + 1;
  }
  if (docBegin < text.size())
    emit(text.substr(docBegin));
  return documents;
}

bool readTextFile(const std::string &path, std::string *out,
                  std::string *error) {
  std::FILE *file = std::fopen(path.c_str(), "rb");
  if (!file) {
    if (error)
      *error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  out->clear();
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), file)) > 0)
    out->append(buf, got);
  bool failed = std::ferror(file) != 0;
  int savedErrno = errno;
  std::fclose(file);
  if (failed) {
    if (error)
      *error = path + ": read error: " + std::strerror(savedErrno);
    return false;
  }
  return true;
}

bool parseTokenDocuments(std::string_view text, int64_t vocabSize,
                         const std::string &name,
                         std::vector<std::vector<int32_t>> *documents,
                         std::string *error) {
  documents->clear();
  int64_t lineNo = 0;
  size_t lineBegin = 0;
  while (lineBegin < text.size()) {
    ++lineNo;
    size_t lineEnd = text.find('\n', lineBegin);
    if (lineEnd == std::string_view::npos)
      lineEnd = text.size();
    std::string_view line = text.substr(lineBegin, lineEnd - lineBegin);
    lineBegin = lineEnd + 1;

    std::vector<int32_t> doc;
    size_t i = 0;
    while (true) {
      while (i < line.size() && isSpace(line[i]))
        ++i;
      if (i == line.size())
        break;
      size_t begin = i;
      while (i < line.size() && !isSpace(line[i]))
        ++i;
      std::string_view word = line.substr(begin, i - begin);
      auto fail = [&](const std::string &what) {
        if (error)
          *error = name + ":" + std::to_string(lineNo) + ": " + what;
        documents->clear();
        return false;
      };
      // A leading '-' is accepted by the syntax only so that "-1" is
      // reported as out of range rather than as not a number.
      size_t digits = word[0] == '-' ? 1 : 0;
      if (digits == word.size())
        return fail("'" + shown(word) + "' is not a decimal token id");
      int64_t value = 0;
      bool overflow = false;
      for (size_t k = digits; k < word.size(); ++k) {
        char c = word[k];
        if (c < '0' || c > '9')
          return fail("'" + shown(word) + "' is not a decimal token id");
        if (value > (INT64_MAX - 9) / 10)
          overflow = true;
        else
          value = value * 10 + (c - '0');
      }
      if (digits == 1)
        value = -value;
      if (overflow || value < 0 || value >= vocabSize)
        return fail("token id " + shown(word) + " is out of range [0, " +
                    std::to_string(vocabSize) + ")");
      doc.push_back(int32_t(value));
    }
    if (!doc.empty())
      documents->push_back(std::move(doc));
  }
  return true;
}

std::vector<std::pair<int64_t, int64_t>> contextChunks(int64_t numTokens,
                                                       int64_t context) {
  // Every chunk is returned, including a final chunk of a single token: it
  // scores nothing (no token after its first), but callers see the same
  // chunking for every model and can count it.
  std::vector<std::pair<int64_t, int64_t>> chunks;
  if (numTokens <= 0 || context <= 0)
    return chunks;
  for (int64_t begin = 0; begin < numTokens;) {
    // Written so that begin + context cannot overflow.
    int64_t end = numTokens - begin > context ? begin + context : numTokens;
    chunks.emplace_back(begin, end);
    begin = end;
  }
  return chunks;
}

bool loadDocuments(const std::string &path, bool tokenIds,
                   const Tokenizer *tokenizer, int64_t vocabSize,
                   std::vector<std::vector<int32_t>> *documents,
                   std::string *error) {
  std::string text;
  if (!readTextFile(path, &text, error))
    return false;
  documents->clear();
  if (tokenIds)
    return parseTokenDocuments(text, vocabSize, path, documents, error);
  if (!tokenizer) {
    if (error)
      *error = path + ": text needs a tokenizer (or give token ids)";
    return false;
  }
  for (const std::string &doc : splitDocuments(text))
    documents->push_back(tokenizer->encode(doc, /*bos=*/true, /*eos=*/false));
  return true;
}

} // namespace qnt::io
