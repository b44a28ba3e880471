//===- TokenizerTest.cpp - Tests for the tokenizer and corpus helpers -----===//
//
// The hand-built vocabularies check encode() against results worked out by
// hand; the real stories260K tokenizer is checked against a deliberately
// naive transcription of run.c's encode() (the quadratic rescan), so the
// heap-based merge loop in the library must agree with it pair for pair.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Tokenizer.h"
#include "qnt/io/Corpus.h"
#include "support/TempDirTest.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

using namespace qnt::io;
namespace fs = std::filesystem;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

std::string le32(uint32_t v) {
  std::string out;
  for (int i = 0; i < 4; ++i)
    out += char((v >> (8 * i)) & 0xFF);
  return out;
}

std::string f32(float f) {
  uint32_t v;
  std::memcpy(&v, &f, 4);
  return le32(v);
}

struct Piece {
  std::string text;
  float score;
};

std::string tokenizerBytes(const std::vector<Piece> &pieces,
                           int32_t maxTokenLength) {
  std::string out = le32(uint32_t(maxTokenLength));
  for (const Piece &p : pieces)
    out += f32(p.score) + le32(uint32_t(p.text.size())) + p.text;
  return out;
}

/// <unk>, <s>, </s>, the 256 byte pieces: ids 0..258 as in llama2.c.
std::vector<Piece> basePieces() {
  std::vector<Piece> pieces = {{"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    pieces.push_back({buf, 0});
  }
  return pieces;
}

// Ids of the hand-built vocabulary (after the 259 base pieces).
enum : int32_t {
  kSpace = 259,
  kA,
  kB,
  kC,
  kAB,
  kBC,
  kSpaceA,
  kEAcute,
  kAA,
  kCC,
  kABig,
  kNumHandPieces
};

std::vector<Piece> handPieces() {
  std::vector<Piece> pieces = basePieces();
  pieces.push_back({" ", 0});
  pieces.push_back({"a", 0});
  pieces.push_back({"b", 0});
  pieces.push_back({"c", 0});
  pieces.push_back({"ab", 5});
  pieces.push_back({"bc", 6});
  pieces.push_back({" a", 1});
  pieces.push_back({"\xC3\xA9", 0}); // é
  pieces.push_back({"aa", 2});
  // At run.c's starting best score: never merged (strict '>').
  pieces.push_back({"cc", -1e10f});
  pieces.push_back({"A", 0});
  return pieces;
}

class TokenizerTest : public qnt::testing::TempDirTest {
protected:
  TokenizerTest() : TempDirTest("qnt-tokenizer") {}
  std::string writeFile(const std::string &name, const std::string &bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::unique_ptr<Tokenizer> handTokenizer() {
    std::string error;
    auto tok =
        Tokenizer::open(writeFile("hand.bin", tokenizerBytes(handPieces(), 8)),
                        kNumHandPieces, &error);
    EXPECT_NE(tok, nullptr) << error;
    return tok;
  }
};

std::vector<int32_t> ids(std::initializer_list<int32_t> l) { return l; }

//===----------------------------------------------------------------------===//
// Hand-built vocabulary
//===----------------------------------------------------------------------===//

TEST_F(TokenizerTest, OpensAndExposesPieces) {
  auto tok = handTokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocabSize(), kNumHandPieces);
  EXPECT_EQ(tok->piece(kAB), "ab");
  EXPECT_EQ(tok->piece(3 + 'x'), "<0x78>");
}

TEST_F(TokenizerTest, MergesHighestScoreFirst) {
  auto tok = handTokenizer();
  ASSERT_NE(tok, nullptr);
  // [" ", a, b, c]: "bc" (6) beats "ab" (5) and " a" (1); then " a" merges.
  // Merging "ab" first would leave [" ", ab, c] with nothing more to merge.
  EXPECT_EQ(tok->encode("abc", false, false), ids({kSpaceA, kBC}));
  // [" ", a, b]: "ab" (5) first; " ab" is not a piece.
  EXPECT_EQ(tok->encode("ab", false, false), ids({kSpace, kAB}));
}

TEST_F(TokenizerTest, TiesMergeLeftmostPair) {
  auto tok = handTokenizer();
  ASSERT_NE(tok, nullptr);
  // [" ", a, a, a]: the two "aa" pairs tie; the leftmost merges, leaving
  // [" ", aa, a]. The rightmost would give [" ", a, aa] -> [" a", aa].
  EXPECT_EQ(tok->encode("aaa", false, false), ids({kSpace, kAA, kA}));
  EXPECT_EQ(tok->encode("aaaa", false, false), ids({kSpace, kAA, kAA}));
}

TEST_F(TokenizerTest, ScoreAtThresholdNeverMerges) {
  auto tok = handTokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->encode("cc", false, false), ids({kSpace, kC, kC}));
}

TEST_F(TokenizerTest, BosEosAndEmptyText) {
  auto tok = handTokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->encode("a", true, true), ids({1, kSpaceA, 2}));
  EXPECT_EQ(tok->encode("a", true, false), ids({1, kSpaceA}));
  EXPECT_EQ(tok->encode("a", false, true), ids({kSpaceA, 2}));
  // No dummy prefix for empty text.
  EXPECT_EQ(tok->encode("", true, true), ids({1, 2}));
  EXPECT_EQ(tok->encode("", false, false), ids({}));
}

TEST_F(TokenizerTest, ByteFallbackAndUtf8) {
  auto tok = handTokenizer();
  ASSERT_NE(tok, nullptr);
  // 'x' is not a piece: byte 0x78 -> id 0x78 + 3.
  EXPECT_EQ(tok->encode("x", false, false), ids({kSpace, 0x78 + 3}));
  // 'é' (C3 A9) is a piece and is looked up whole.
  EXPECT_EQ(tok->encode("\xC3\xA9", false, false), ids({kSpace, kEAcute}));
  // 'ü' (C3 BC) is not: both bytes fall back.
  EXPECT_EQ(tok->encode("\xC3\xBC", false, false),
            ids({kSpace, 0xC3 + 3, 0xBC + 3}));
  // A 4-byte code point (U+1F600) falls back to 4 byte tokens.
  EXPECT_EQ(tok->encode("\xF0\x9F\x98\x80", false, false),
            ids({kSpace, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}));
  // Five continuation bytes after a lead byte: groups of at most 4 bytes,
  // the rest a group of its own; neither is a piece.
  std::string odd = "\xF0\x80\x80\x80\x80\x80";
  std::vector<int32_t> expected = {kSpace};
  for (char c : odd)
    expected.push_back(int32_t(uint8_t(c)) + 3);
  EXPECT_EQ(tok->encode(odd, false, false), expected);
  // Mixed: "aé!" -> " a", é, '!' by bytes.
  EXPECT_EQ(tok->encode("a\xC3\xA9!", false, false),
            ids({kSpaceA, kEAcute, '!' + 3}));
}

TEST_F(TokenizerTest, ByteBeyondVocabularyBecomesUnk) {
  // Only the specials and " ", "a": byte fallback ids do not exist.
  std::vector<Piece> pieces = {
      {"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}, {" ", 0}, {"a", 0}};
  std::string error;
  auto tok = Tokenizer::open(writeFile("small.bin", tokenizerBytes(pieces, 6)),
                             5, &error);
  ASSERT_NE(tok, nullptr) << error;
  EXPECT_EQ(tok->encode("a\x05z", false, false), ids({3, 4, 0, 0}));
  // Without a " " piece the dummy prefix falls back like a space byte.
  std::vector<Piece> noSpace = {{"<unk>", 0}, {"\n<s>\n", 0}, {"a", 0}};
  tok = Tokenizer::open(writeFile("nospace.bin", tokenizerBytes(noSpace, 6)), 3,
                        &error);
  ASSERT_NE(tok, nullptr) << error;
  EXPECT_EQ(tok->encode("a", false, false), ids({0, 2}));
}

TEST_F(TokenizerTest, Decode) {
  auto tok = handTokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->decode(Tokenizer::kBos, kSpaceA), "a");
  EXPECT_EQ(tok->decode(kB, kSpaceA), " a");
  EXPECT_EQ(tok->decode(kB, 3 + 'A'), "A");
  EXPECT_EQ(tok->decode(kB, 3 + 0xC3), "\xC3");
  EXPECT_EQ(tok->decode(kB, 3 + 0x00), std::string(1, '\0'));
  // The "A" piece is not a byte piece; out-of-range ids decode to nothing.
  EXPECT_EQ(tok->decode(kB, kABig), "A");
  EXPECT_EQ(tok->decode(kB, -1), "");
  EXPECT_EQ(tok->decode(kB, kNumHandPieces), "");
  EXPECT_EQ(tok->decode(ids({1, kSpaceA, kBC, 2})), "abc");
  EXPECT_EQ(tok->decode(ids({kSpaceA, kBC})), " abc");

  for (std::string text :
       {"abc", "aaa x", "\xC3\xA9\xC3\xBC \xF0\x9F\x98\x80!", "cc ab\n\tba"}) {
    EXPECT_EQ(tok->decode(tok->encode(text, true, true)), text);
    EXPECT_EQ(tok->decode(tok->encode(text, false, false)), " " + text);
  }
}

//===----------------------------------------------------------------------===//
// File errors
//===----------------------------------------------------------------------===//

TEST_F(TokenizerTest, MissingFile) {
  std::string error;
  std::string path = dir_ + "/absent.bin";
  EXPECT_EQ(Tokenizer::open(path, 10, &error), nullptr);
  EXPECT_NE(error.find(path), std::string::npos) << error;
}

TEST_F(TokenizerTest, TruncatedAtEveryLength) {
  std::string bytes = tokenizerBytes(handPieces(), 8);
  // Every length inside the header and the first entries, then a stride
  // that lands at every offset within an entry somewhere in the file.
  for (size_t len = 0; len < bytes.size(); len += len < 64 ? 1 : 7) {
    std::string path = writeFile("trunc.bin", bytes.substr(0, len));
    std::string error;
    EXPECT_EQ(Tokenizer::open(path, kNumHandPieces, &error), nullptr) << len;
    EXPECT_NE(error.find(path), std::string::npos) << error;
    EXPECT_NE(error.find("truncated"), std::string::npos) << error;
    if (len >= 4) {
      EXPECT_NE(error.find("token "), std::string::npos) << error;
    }
  }
  // The last token named when only its piece is cut.
  std::string path = writeFile("trunc.bin", bytes.substr(0, bytes.size() - 1));
  std::string error;
  EXPECT_EQ(Tokenizer::open(path, kNumHandPieces, &error), nullptr);
  EXPECT_NE(error.find("token " + std::to_string(kNumHandPieces - 1)),
            std::string::npos)
      << error;
  // Asking for more tokens than the file holds is the same error.
  path = writeFile("full.bin", bytes);
  EXPECT_EQ(Tokenizer::open(path, kNumHandPieces + 1, &error), nullptr);
  EXPECT_NE(error.find("token " + std::to_string(kNumHandPieces)),
            std::string::npos)
      << error;
  // Fewer is fine: trailing entries are ignored.
  auto tok = Tokenizer::open(path, 10, &error);
  ASSERT_NE(tok, nullptr) << error;
  EXPECT_EQ(tok->vocabSize(), 10);
}

TEST_F(TokenizerTest, BadLengths) {
  std::string error;
  std::string bytes =
      le32(8) + f32(0) + le32(1) + "a" + f32(0) + le32(uint32_t(-5)) + "bbbbb";
  std::string path = writeFile("neg.bin", bytes);
  EXPECT_EQ(Tokenizer::open(path, 3, &error), nullptr);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("token 1"), std::string::npos) << error;
  EXPECT_NE(error.find("negative length -5"), std::string::npos) << error;

  bytes = le32(2) + f32(0) + le32(3) + "abc";
  path = writeFile("long.bin", bytes);
  EXPECT_EQ(Tokenizer::open(path, 3, &error), nullptr);
  EXPECT_NE(error.find("token 0"), std::string::npos) << error;
  EXPECT_NE(error.find("exceeds max_token_length 2"), std::string::npos)
      << error;

  path = writeFile("negmax.bin", le32(uint32_t(-1)));
  EXPECT_EQ(Tokenizer::open(path, 3, &error), nullptr);
  EXPECT_NE(error.find("max_token_length"), std::string::npos) << error;

  path = writeFile("ok.bin", le32(4) + f32(0) + le32(0));
  EXPECT_EQ(Tokenizer::open(path, 0, &error), nullptr);
  EXPECT_NE(error.find("vocabulary size"), std::string::npos) << error;
  // Fewer than <unk>, <s>, </s>: encode() would emit ids outside the
  // vocabulary (found by the tokenizer fuzzer).
  for (int64_t vocab : {1, 2}) {
    EXPECT_EQ(Tokenizer::open(path, vocab, &error), nullptr);
    EXPECT_NE(error.find("invalid vocabulary size " + std::to_string(vocab)),
              std::string::npos)
        << error;
  }
}

// A model that states a huge vocabulary for a small file: a clear
// truncation error, without reserving room for 2^31 pieces first.
TEST_F(TokenizerTest, HugeVocabularyNotTrusted) {
  std::string error;
  std::string path =
      writeFile("small.bin", le32(4) + f32(0) + le32(1) + "a");
  EXPECT_EQ(Tokenizer::open(path, INT32_MAX, &error), nullptr);
  EXPECT_NE(error.find("token 1 (of 2147483647"), std::string::npos) << error;
  EXPECT_NE(error.find("truncated entry"), std::string::npos) << error;
}

//===----------------------------------------------------------------------===//
// The real stories260K tokenizer against a naive run.c transcription
//===----------------------------------------------------------------------===//

std::string sharedDir() {
#ifdef QNT_SOURCE_DIR
  std::string dir = std::string(QNT_SOURCE_DIR) + "/../shared";
#else
  std::string dir = "../shared";
#endif
  std::error_code ec;
  return fs::is_directory(dir, ec) ? dir : std::string();
}

#define REQUIRE_SHARED(dir)                                                    \
  std::string dir = sharedDir();                                               \
  if (dir.empty())                                                             \
  GTEST_SKIP() << "../shared not found beside the checkout: the stories260K "  \
                  "tokenizer and TinyStories samples live there"

/// run.c's encode(), transcribed literally: linear-time lookups in a
/// std::map, a full rescan of all pairs after every merge.
struct NaiveTokenizer {
  std::vector<std::string> vocab;
  std::vector<float> scores;
  std::map<std::string, int> sorted;

  bool load(const std::string &path, int vocabSize) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    size_t off = 4;
    for (int i = 0; i < vocabSize; ++i) {
      float score;
      int32_t len;
      if (off + 8 > bytes.size())
        return false;
      std::memcpy(&score, bytes.data() + off, 4);
      std::memcpy(&len, bytes.data() + off + 4, 4);
      off += 8;
      if (len < 0 || off + size_t(len) > bytes.size())
        return false;
      vocab.push_back(bytes.substr(off, size_t(len)));
      scores.push_back(score);
      sorted.emplace(vocab.back(), i);
      off += size_t(len);
    }
    return true;
  }
  int lookup(const std::string &s) const {
    auto it = sorted.find(s);
    return it == sorted.end() ? -1 : it->second;
  }
  std::vector<int32_t> encode(const std::string &text, bool bos) const {
    std::vector<int32_t> tokens;
    if (bos)
      tokens.push_back(1);
    if (!text.empty())
      tokens.push_back(lookup(" "));
    std::string buf;
    for (size_t c = 0; c < text.size(); ++c) {
      if ((text[c] & 0xC0) != 0x80)
        buf.clear();
      buf += text[c];
      char next = c + 1 < text.size() ? text[c + 1] : '\0';
      if ((next & 0xC0) == 0x80 && buf.size() < 4)
        continue;
      int id = lookup(buf);
      if (id != -1) {
        tokens.push_back(id);
      } else {
        for (char b : buf)
          tokens.push_back(int32_t(uint8_t(b)) + 3);
      }
      buf.clear();
    }
    while (true) {
      float bestScore = -1e10f;
      int bestId = -1, bestIdx = -1;
      for (size_t i = 0; i + 1 < tokens.size(); ++i) {
        int id = lookup(vocab[tokens[i]] + vocab[tokens[i + 1]]);
        if (id != -1 && scores[id] > bestScore) {
          bestScore = scores[id];
          bestId = id;
          bestIdx = int(i);
        }
      }
      if (bestIdx == -1)
        break;
      tokens[bestIdx] = bestId;
      tokens.erase(tokens.begin() + bestIdx + 1);
    }
    return tokens;
  }
};

TEST(Stories260KTokenizer, OnceUponATime) {
  REQUIRE_SHARED(shared);
  std::string error;
  auto tok =
      Tokenizer::open(shared + "/models/stories260K/tok512.bin", 512, &error);
  ASSERT_NE(tok, nullptr) << error;
  EXPECT_EQ(tok->vocabSize(), 512);
  std::vector<int32_t> ids = tok->encode("Once upon a time", true, false);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids.front(), Tokenizer::kBos);
  EXPECT_LT(ids.size(), 16u) << "merges should shorten the text";
  for (int32_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 512);
  }
  EXPECT_EQ(tok->decode(ids), "Once upon a time");
  // After BOS the first piece loses its space, token by token as well.
  EXPECT_EQ(tok->decode(ids[0], ids[1]).substr(0, 1), "O");
}

TEST(Stories260KTokenizer, MatchesNaiveEncoderOnEveryLine) {
  REQUIRE_SHARED(shared);
  std::string tokPath = shared + "/models/stories260K/tok512.bin";
  std::string error;
  auto tok = Tokenizer::open(tokPath, 512, &error);
  ASSERT_NE(tok, nullptr) << error;
  NaiveTokenizer naive;
  ASSERT_TRUE(naive.load(tokPath, 512));

  std::string text;
  ASSERT_TRUE(
      readTextFile(shared + "/data/tinystories_sample5.txt", &text, &error))
      << error;
  size_t begin = 0, lines = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos)
      end = text.size();
    std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    ++lines;
    for (bool bos : {false, true})
      EXPECT_EQ(tok->encode(line, bos, false), naive.encode(line, bos))
          << "line " << lines << ": " << line;
  }
  EXPECT_GT(lines, 20u);
  // And the whole file at once (multi-line text, the separators included).
  EXPECT_EQ(tok->encode(text, true, false), naive.encode(text, true));

  // More text: the paragraphs of the calibration excerpt.
  ASSERT_TRUE(
      readTextFile(shared + "/data/tinystories_excerpt.txt", &text, &error))
      << error;
  size_t paragraphs = 0;
  for (begin = 0; begin < text.size() && paragraphs < 400;) {
    size_t end = text.find("\n\n", begin);
    if (end == std::string::npos)
      end = text.size();
    std::string paragraph = text.substr(begin, end - begin);
    begin = end + 2;
    ++paragraphs;
    EXPECT_EQ(tok->encode(paragraph, true, false),
              naive.encode(paragraph, true))
        << "paragraph " << paragraphs << ": " << paragraph;
  }
  EXPECT_GT(paragraphs, 100u);
}

TEST(Stories260KTokenizer, DocumentsRoundTrip) {
  REQUIRE_SHARED(shared);
  std::string error;
  auto tok =
      Tokenizer::open(shared + "/models/stories260K/tok512.bin", 512, &error);
  ASSERT_NE(tok, nullptr) << error;
  std::string text;
  ASSERT_TRUE(
      readTextFile(shared + "/data/tinystories_sample5.txt", &text, &error))
      << error;
  std::vector<std::string> docs = splitDocuments(text);
  ASSERT_EQ(docs.size(), 5u);
  for (const std::string &doc : docs) {
    std::vector<int32_t> ids = tok->encode(doc, true, true);
    EXPECT_EQ(ids.front(), Tokenizer::kBos);
    EXPECT_EQ(ids.back(), Tokenizer::kEos);
    EXPECT_LT(ids.size(), doc.size());
    EXPECT_EQ(tok->decode(ids), doc);
    EXPECT_EQ(tok->decode(tok->encode(doc, false, false)), " " + doc);
  }
}

//===----------------------------------------------------------------------===//
// Corpus
//===----------------------------------------------------------------------===//

using Docs = std::vector<std::string>;

TEST(Corpus, SplitWithoutSeparators) {
  EXPECT_EQ(splitDocuments("  one\n\ntwo lines \n\n"),
            Docs({"one\n\ntwo lines"}));
  EXPECT_EQ(splitDocuments(""), Docs());
  EXPECT_EQ(splitDocuments(" \n\t\r\n"), Docs());
  // The separator must be a whole line.
  EXPECT_EQ(splitDocuments("a <|endoftext|> b"), Docs({"a <|endoftext|> b"}));
}

TEST(Corpus, SplitAtSeparatorLines) {
  EXPECT_EQ(splitDocuments("first\n<|endoftext|>\nsecond\n"),
            Docs({"first", "second"}));
  // Whitespace around the separator, CRLF line ends, a trailing separator,
  // empty documents between separators.
  EXPECT_EQ(splitDocuments("<|endoftext|>\r\n a \r\n  <|endoftext|>  \r\n"
                           "\n<|endoftext|>\nb\nc\n<|endoftext|>"),
            Docs({"a", "b\nc"}));
  EXPECT_EQ(splitDocuments("<|endoftext|>"), Docs());
  EXPECT_EQ(splitDocuments("x\n<|endoftext|>\n<|endoftext|>\ny"),
            Docs({"x", "y"}));
}

TEST(Corpus, ReadTextFileErrors) {
  std::string out, error;
  EXPECT_FALSE(readTextFile("/nonexistent/qnt/file.txt", &out, &error));
  EXPECT_NE(error.find("/nonexistent/qnt/file.txt"), std::string::npos);
}

TEST(Corpus, ParseTokenDocuments) {
  std::vector<std::vector<int32_t>> docs;
  std::string error;
  ASSERT_TRUE(parseTokenDocuments("1 5 7\n\n  \n 2\t3 \r\n9", 10, "t.txt",
                                  &docs, &error))
      << error;
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0], ids({1, 5, 7}));
  EXPECT_EQ(docs[1], ids({2, 3}));
  EXPECT_EQ(docs[2], ids({9}));
  ASSERT_TRUE(parseTokenDocuments("", 10, "t.txt", &docs, &error));
  EXPECT_TRUE(docs.empty());
}

TEST(Corpus, ParseTokenDocumentsErrors) {
  std::vector<std::vector<int32_t>> docs;
  std::string error;
  EXPECT_FALSE(
      parseTokenDocuments("1 2\n\n3 x4\n", 10, "t.txt", &docs, &error));
  EXPECT_EQ(error, "t.txt:3: 'x4' is not a decimal token id");
  EXPECT_TRUE(docs.empty());
  EXPECT_FALSE(parseTokenDocuments("1 2.5", 10, "t.txt", &docs, &error));
  EXPECT_EQ(error, "t.txt:1: '2.5' is not a decimal token id");
  EXPECT_FALSE(parseTokenDocuments("-", 10, "t.txt", &docs, &error));
  EXPECT_EQ(error, "t.txt:1: '-' is not a decimal token id");
  EXPECT_FALSE(parseTokenDocuments("1\n10", 10, "t.txt", &docs, &error));
  EXPECT_EQ(error, "t.txt:2: token id 10 is out of range [0, 10)");
  EXPECT_FALSE(parseTokenDocuments("-1", 10, "t.txt", &docs, &error));
  EXPECT_EQ(error, "t.txt:1: token id -1 is out of range [0, 10)");
  EXPECT_FALSE(parseTokenDocuments("99999999999999999999999", 10, "t.txt",
                                   &docs, &error));
  EXPECT_NE(error.find("out of range"), std::string::npos) << error;
}

using Chunks = std::vector<std::pair<int64_t, int64_t>>;

TEST(Corpus, ContextChunks) {
  EXPECT_EQ(contextChunks(10, 4), Chunks({{0, 4}, {4, 8}, {8, 10}}));
  EXPECT_EQ(contextChunks(8, 4), Chunks({{0, 4}, {4, 8}}));
  // A last chunk of one token is still returned.
  EXPECT_EQ(contextChunks(9, 4), Chunks({{0, 4}, {4, 8}, {8, 9}}));
  EXPECT_EQ(contextChunks(3, 100), Chunks({{0, 3}}));
  EXPECT_EQ(contextChunks(1, 1), Chunks({{0, 1}}));
  EXPECT_EQ(contextChunks(3, 1), Chunks({{0, 1}, {1, 2}, {2, 3}}));
  EXPECT_EQ(contextChunks(0, 4), Chunks());
  EXPECT_EQ(contextChunks(-3, 4), Chunks());
  EXPECT_EQ(contextChunks(10, 0), Chunks());
  EXPECT_EQ(contextChunks(10, -1), Chunks());
  EXPECT_EQ(contextChunks(INT64_MAX, INT64_MAX - 1),
            Chunks({{0, INT64_MAX - 1}, {INT64_MAX - 1, INT64_MAX}}));
}

} // namespace
