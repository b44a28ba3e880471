//===- Tokenizer.cpp - llama2.c tokenizer.bin -----------------------------===//
//
// A faithful port of the tokenizer in llama2.c's run.c. Two places differ in
// how, not in what:
//   - run.c rescans every adjacent pair after each merge (quadratic in the
//     text length). Here the candidate pairs sit in a max-heap ordered by
//     (merged score, position of the left token), over a doubly linked list
//     of tokens. run.c picks the highest score and, among equal scores, the
//     leftmost pair; the heap pops exactly that pair, because positions in
//     the list keep their order and stale entries are skipped. This keeps a
//     200 KB document (the calibration excerpt is one) in milliseconds.
//   - run.c trusts its inputs. Here a missing " " piece or a byte-fallback
//     id beyond the vocabulary does not produce an invalid id (see
//     byteToken), and file errors are reported instead of exiting.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <queue>

namespace qnt::io {

namespace {

void setError(std::string *error, std::string message) {
  if (error)
    *error = std::move(message);
}

int32_t readI32(const uint8_t *p) {
  uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
               uint32_t(p[3]) << 24;
  int32_t out;
  std::memcpy(&out, &v, sizeof(out));
  return out;
}

float readF32(const uint8_t *p) {
  uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
               uint32_t(p[3]) << 24;
  float out;
  std::memcpy(&out, &v, sizeof(out));
  return out;
}

/// run.c's initial best score: a merge must score strictly more than this.
constexpr float kNoMergeScore = -1e10f;

int hexValue(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace

std::unique_ptr<Tokenizer> Tokenizer::open(const std::string &path,
                                           int64_t vocabSize,
                                           std::string *error) {
  // Ids 0, 1 and 2 are <unk>, <s> and </s> in llama2.c; encode() emits the
  // last two, so a smaller vocabulary could not hold its own output.
  if (vocabSize < 3 || vocabSize > int64_t(INT32_MAX)) {
    setError(error, path + ": invalid vocabulary size " +
                        std::to_string(vocabSize) +
                        " (a llama2.c vocabulary holds at least <unk>, <s> "
                        "and </s>)");
    return nullptr;
  }
  // Tokenizer files are small (a few hundred KB for a 32000-token vocab):
  // read the whole file and parse from memory.
  std::FILE *file = std::fopen(path.c_str(), "rb");
  if (!file) {
    setError(error, path + ": cannot open: " + std::strerror(errno));
    return nullptr;
  }
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), file)) > 0)
    bytes.insert(bytes.end(), buf, buf + got);
  bool readFailed = std::ferror(file) != 0;
  int readErrno = errno;
  std::fclose(file);
  if (readFailed) {
    setError(error, path + ": read error: " + std::strerror(readErrno));
    return nullptr;
  }

  const size_t size = bytes.size();
  size_t offset = 0;
  if (size < 4) {
    setError(error, path + ": truncated: the file has " + std::to_string(size) +
                        " bytes, fewer than the 4-byte max_token_length");
    return nullptr;
  }
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  tok->maxTokenLength_ = readI32(bytes.data());
  offset = 4;
  if (tok->maxTokenLength_ < 0) {
    setError(error, path + ": negative max_token_length " +
                        std::to_string(tok->maxTokenLength_));
    return nullptr;
  }
  // Every entry takes at least 8 bytes: reserve no more than the file can
  // hold (the model states vocabSize; the loop reports a short file).
  const size_t capacity =
      std::min(size_t(vocabSize), (size - offset) / 8 + 1);
  tok->pieces_.reserve(capacity);
  tok->scores_.reserve(capacity);
  tok->ids_.reserve(capacity);
  for (int64_t i = 0; i < vocabSize; ++i) {
    const size_t entryOffset = offset;
    auto where = [&]() {
      return path + ": token " + std::to_string(i) + " (of " +
             std::to_string(vocabSize) + ", at byte offset " +
             std::to_string(entryOffset) + ")";
    };
    if (size - offset < 8) {
      setError(error,
               where() + ": truncated entry: " + std::to_string(size - offset) +
                   " bytes left, the score and length need 8");
      return nullptr;
    }
    float score = readF32(bytes.data() + offset);
    int32_t len = readI32(bytes.data() + offset + 4);
    offset += 8;
    if (len < 0) {
      setError(error, where() + ": negative length " + std::to_string(len));
      return nullptr;
    }
    // run.c sizes its merge buffer from max_token_length: a longer piece
    // would overflow it there, so such a file is malformed.
    if (len > tok->maxTokenLength_) {
      setError(error, where() + ": length " + std::to_string(len) +
                          " exceeds max_token_length " +
                          std::to_string(tok->maxTokenLength_));
      return nullptr;
    }
    if (size - offset < size_t(len)) {
      setError(error, where() + ": truncated entry: the " +
                          std::to_string(len) + "-byte piece has only " +
                          std::to_string(size - offset) + " bytes left");
      return nullptr;
    }
    std::string piece(reinterpret_cast<const char *>(bytes.data() + offset),
                      size_t(len));
    offset += size_t(len);
    // On a duplicate piece the lowest id wins (run.c's bsearch picks an
    // unspecified one; real vocabularies have none).
    tok->ids_.emplace(piece, int32_t(i));
    tok->pieces_.push_back(std::move(piece));
    tok->scores_.push_back(score);
  }
  // Bytes after the last entry are ignored, as run.c does: the file does
  // not store its vocabulary size.
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool bos,
                                       bool eos) const {
  const int32_t vocab = int32_t(pieces_.size());
  auto lookup = [&](const std::string &s) -> int32_t {
    auto it = ids_.find(s);
    return it == ids_.end() ? -1 : it->second;
  };
  // run.c's byte fallback is id = byte + 3 (the <0xXX> pieces follow <unk>,
  // <s>, </s>). A vocabulary too small to hold them gets <unk> (0) instead
  // of an id past its end.
  auto byteToken = [&](uint8_t byte) -> int32_t {
    int32_t id = int32_t(byte) + 3;
    return id < vocab ? id : 0;
  };

  std::vector<int32_t> tokens;
  tokens.reserve(text.size() + 3);
  if (bos)
    tokens.push_back(kBos);
  if (!text.empty()) {
    // The dummy prefix SentencePiece adds (add_dummy_prefix). run.c would
    // push -1 if " " were missing; its byte fallback is the faithful spelling.
    int32_t space = lookup(" ");
    tokens.push_back(space >= 0 ? space : byteToken(' '));
  }

  // Code points: a lead byte and the continuation bytes after it, at most
  // four bytes, looked up whole; an unknown code point falls back to its
  // bytes. Stray continuation bytes form their own (unknown) group, as in
  // run.c.
  std::string buffer;
  for (size_t i = 0; i < text.size(); ++i) {
    buffer.push_back(text[i]);
    bool nextIsContinuation =
        i + 1 < text.size() && (uint8_t(text[i + 1]) & 0xC0) == 0x80;
    if (nextIsContinuation && buffer.size() < 4)
      continue;
    int32_t id = lookup(buffer);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (char c : buffer)
        tokens.push_back(byteToken(uint8_t(c)));
    }
    buffer.clear();
  }

  // Greedy merges over a linked list (see the file comment). The BOS token
  // takes part in merges as in run.c; no vocabulary piece contains "\n<s>\n"
  // followed by text, so in practice it never merges.
  const size_t n = tokens.size();
  if (n >= 2) {
    std::vector<int32_t> prev(n), next(n);
    std::vector<char> alive(n, 1);
    for (size_t i = 0; i < n; ++i) {
      prev[i] = int32_t(i) - 1;
      next[i] = i + 1 < n ? int32_t(i + 1) : -1;
    }
    struct Candidate {
      float score;
      int32_t left, right;
      int32_t leftTok, rightTok, merged;
    };
    // Max score first; on ties the leftmost pair, as run.c's scan with a
    // strict '>' keeps the first best.
    auto worse = [](const Candidate &a, const Candidate &b) {
      if (a.score != b.score)
        return a.score < b.score;
      return a.left > b.left;
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)>
        heap(worse);
    std::string joined;
    auto consider = [&](int32_t left) {
      if (left < 0)
        return;
      int32_t right = next[left];
      if (right < 0)
        return;
      int32_t a = tokens[left], b = tokens[right];
      if (a < 0 || a >= vocab || b < 0 || b >= vocab)
        return;
      joined.assign(pieces_[a]);
      joined.append(pieces_[b]);
      int32_t id = lookup(joined);
      if (id < 0 || !(scores_[id] > kNoMergeScore))
        return;
      heap.push({scores_[id], left, right, a, b, id});
    };
    for (size_t i = 0; i + 1 < n; ++i)
      consider(int32_t(i));
    while (!heap.empty()) {
      Candidate c = heap.top();
      heap.pop();
      // Stale entries: a side was merged away or changed since the push.
      if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
          tokens[c.left] != c.leftTok || tokens[c.right] != c.rightTok)
        continue;
      tokens[c.left] = c.merged;
      alive[c.right] = 0;
      next[c.left] = next[c.right];
      if (next[c.right] >= 0)
        prev[next[c.right]] = c.left;
      consider(prev[c.left]);
      consider(c.left);
    }
    std::vector<int32_t> merged;
    merged.reserve(n);
    for (int32_t i = 0; i >= 0; i = next[i])
      merged.push_back(tokens[i]);
    tokens = std::move(merged);
  }
  if (eos)
    tokens.push_back(kEos);
  return tokens;
}

std::string Tokenizer::decode(int32_t previous, int32_t token) const {
  if (token < 0 || token >= int32_t(pieces_.size()))
    return std::string();
  std::string_view piece = pieces_[token];
  if (previous == kBos && !piece.empty() && piece[0] == ' ')
    piece.remove_prefix(1);
  // Byte-fallback pieces spell a raw byte.
  if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>') {
    int hi = hexValue(piece[3]), lo = hexValue(piece[4]);
    if (hi >= 0 && lo >= 0)
      return std::string(1, char(hi * 16 + lo));
  }
  return std::string(piece);
}

std::string Tokenizer::decode(const std::vector<int32_t> &tokens) const {
  std::string out;
  int32_t previous = -1;
  for (int32_t token : tokens) {
    if (token != kBos && token != kEos)
      out += decode(previous, token);
    previous = token;
  }
  return out;
}

} // namespace qnt::io
