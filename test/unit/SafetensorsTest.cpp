//===- SafetensorsTest.cpp - Tests for qnt::io safetensors I/O ------------===//

#include "qnt/io/Safetensors.h"
#include "support/TempDirTest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

using namespace qnt::io;
namespace fs = std::filesystem;

namespace {

std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

/// [u64 N][header][data], with N = header.size() unless given.
std::string makeFile(const std::string &header, const std::string &data = "") {
  return le64(header.size()) + header + data;
}

std::string bytesOf(const std::vector<uint8_t> &v) {
  return std::string(v.begin(), v.end());
}

template <typename T> std::string rawBytes(const std::vector<T> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()),
                     v.size() * sizeof(T));
}

class SafetensorsTest : public qnt::testing::TempDirTest {
protected:
  SafetensorsTest() : TempDirTest("qnt-safetensors") {}

  static void writeFile(const std::string &path, const std::string &bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
  }

  static std::string readFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::set<std::string> listDir() const {
    std::set<std::string> names;
    for (const auto &entry : fs::directory_iterator(dir_))
      names.insert(entry.path().filename().string());
    return names;
  }

  /// Writes `bytes` to a file, expects open() to fail, checks that the
  /// message starts with the path and returns the rest of it.
  std::string openError(const std::string &bytes) {
    const std::string path = pathOf("bad.safetensors");
    writeFile(path, bytes);
    std::string error;
    auto file = SafetensorsFile::open(path, &error);
    EXPECT_EQ(file, nullptr);
    EXPECT_EQ(error.rfind(path + ": ", 0), 0u) << error;
    return error.size() >= path.size() + 2 ? error.substr(path.size() + 2)
                                           : error;
  }

  std::unique_ptr<SafetensorsFile> openOk(const std::string &bytes) {
    const std::string path = pathOf("good.safetensors");
    writeFile(path, bytes);
    std::string error;
    auto file = SafetensorsFile::open(path, &error);
    EXPECT_NE(file, nullptr) << error;
    return file;
  }

};

#define EXPECT_OPEN_FAILS(bytes, substring)                                    \
  do {                                                                         \
    const std::string msg_ = openError(bytes);                                 \
    EXPECT_NE(msg_.find(substring), std::string::npos)                         \
        << "message: " << msg_ << "\nexpected to contain: " << (substring);    \
  } while (0)

/// A header entry for tensor `name`.
std::string entry(const std::string &name, const std::string &dtype,
                  const std::string &shape, const std::string &offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

//===----------------------------------------------------------------------===//
// DType and TensorInfo
//===----------------------------------------------------------------------===//

TEST(SafetensorsDType, NamesSizesAndParsing) {
  const struct {
    DType dtype;
    const char *name;
    int64_t size;
  } cases[] = {{DType::F64, "F64", 8}, {DType::F32, "F32", 4},
               {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
               {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
               {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
               {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1}};
  for (const auto &c : cases) {
    EXPECT_STREQ(dtypeName(c.dtype), c.name);
    EXPECT_EQ(dtypeSize(c.dtype), c.size);
    ASSERT_TRUE(parseDType(c.name).has_value()) << c.name;
    EXPECT_EQ(*parseDType(c.name), c.dtype);
  }
  EXPECT_FALSE(parseDType("f32").has_value());
  EXPECT_FALSE(parseDType("F8_E4M3").has_value());
  EXPECT_FALSE(parseDType("").has_value());
  EXPECT_FALSE(parseDType(std::string_view("F32\0", 4)).has_value());
  EXPECT_STREQ(dtypeName(static_cast<DType>(99)), "?");
  EXPECT_EQ(dtypeSize(static_cast<DType>(99)), 0);
}

TEST(SafetensorsTensorInfo, NumElements) {
  TensorInfo t;
  EXPECT_EQ(t.numElements(), 1);  // 0-d scalar
  t.shape = {2, 3, 4};
  EXPECT_EQ(t.numElements(), 24);
  t.shape = {5, 0, 7};
  EXPECT_EQ(t.numElements(), 0);
  t.shape = {int64_t(1) << 40, int64_t(1) << 40};
  EXPECT_EQ(t.numElements(), -1);
  t.shape = {int64_t(1) << 40, int64_t(1) << 40, 0};
  EXPECT_EQ(t.numElements(), 0);
  t.shape = {3, -1};
  EXPECT_EQ(t.numElements(), -1);
}

//===----------------------------------------------------------------------===//
// Round trip and exact bytes
//===----------------------------------------------------------------------===//

TEST_F(SafetensorsTest, RoundTrip) {
  struct Expected {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::vector<Expected> expected = {
      {"f64", DType::F64, {2}, rawBytes(std::vector<double>{1.5, -2.25})},
      {"f32", DType::F32, {2, 3}, rawBytes(std::vector<float>{1, 2, 3, 4, 5, 6})},
      {"f16", DType::F16, {3}, rawBytes(std::vector<uint16_t>{0x3C00, 0xC000, 0x7BFF})},
      {"bf16", DType::BF16, {1, 2}, rawBytes(std::vector<uint16_t>{0x3F80, 0x4000})},
      {"scalar.i64", DType::I64, {}, rawBytes(std::vector<int64_t>{-1234567890123})},
      {"i32", DType::I32, {4}, rawBytes(std::vector<int32_t>{-1, 0, 1, 1 << 30})},
      {"i16", DType::I16, {2}, rawBytes(std::vector<int16_t>{-300, 300})},
      {"empty.f32", DType::F32, {0, 3}, ""},
      {"i8", DType::I8, {3}, rawBytes(std::vector<int8_t>{-128, 0, 127})},
      {"u8", DType::U8, {5}, rawBytes(std::vector<uint8_t>{0, 1, 2, 254, 255})},
      {"mask", DType::BOOL, {2}, rawBytes(std::vector<uint8_t>{1, 0})},
      {"empty.i8", DType::I8, {4, 0}, ""},
      {"\xE5\xB1\x82.weight \"quoted\"\\", DType::U8, {1, 1, 1}, "x"},
  };
  SafetensorsWriter writer;
  for (const Expected &e : expected) {
    std::string error;
    ASSERT_TRUE(writer.add(e.name, e.dtype, e.shape,
                           e.bytes.empty() ? nullptr : e.bytes.data(),
                           e.bytes.size(), &error))
        << e.name << ": " << error;
  }
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"unicode", "h\xC3\xA9llo \xE2\x98\x83"},
      {"escapes", "a\"b\\c\nd\te\x01"},
      {"", "empty key"},
  };
  for (const auto &[k, v] : metadata)
    writer.setMetadata(k, v);
  writer.setMetadata("format", "pt");  // Setting again replaces.
  EXPECT_EQ(writer.numTensors(), expected.size());

  const std::string path = pathOf("model.safetensors");
  std::string error;
  ASSERT_TRUE(writer.write(path, &error)) << error;
  EXPECT_EQ(listDir(), std::set<std::string>{"model.safetensors"});

  auto file = SafetensorsFile::open(path, &error);
  ASSERT_NE(file, nullptr) << error;
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->headerSize() % 8, 0u);
  EXPECT_EQ(file->metadata(), metadata);
  ASSERT_EQ(file->tensors().size(), expected.size());
  uint64_t totalBytes = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const Expected &e = expected[i];
    const TensorInfo &t = file->tensors()[i];
    EXPECT_EQ(t.name, e.name);
    EXPECT_EQ(t.dtype, e.dtype) << e.name;
    EXPECT_EQ(t.shape, e.shape) << e.name;
    EXPECT_EQ(t.numBytes(), e.bytes.size()) << e.name;
    EXPECT_EQ(t.numBytes(),
              static_cast<uint64_t>(t.numElements() * dtypeSize(t.dtype)));
    // Written contiguously, in order.
    EXPECT_EQ(t.begin, totalBytes) << e.name;
    totalBytes += t.numBytes();
    const uint8_t *data = file->data(t);
    ASSERT_NE(data, nullptr);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(data), t.numBytes()),
              e.bytes)
        << e.name;
    EXPECT_EQ(file->find(e.name), &t);
  }
  EXPECT_EQ(file->dataSize(), totalBytes);
  EXPECT_EQ(file->find("missing"), nullptr);
  EXPECT_EQ(file->find(""), nullptr);
  // The data section starts 8-byte aligned in the file.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(file->data(file->tensors()[0])) % 8,
            0u);

  // The file is exactly what serialize() produces.
  std::vector<uint8_t> serialized;
  ASSERT_TRUE(writer.serialize(&serialized, &error)) << error;
  EXPECT_EQ(readFile(path), bytesOf(serialized));
}

TEST_F(SafetensorsTest, ByteExactTinyFile) {
  SafetensorsWriter writer;
  const float a[2] = {1.0f, 2.0f};
  const uint8_t b = 7;
  std::string error;
  ASSERT_TRUE(writer.add("a", DType::F32, {2}, a, sizeof(a), &error)) << error;
  ASSERT_TRUE(writer.add("b", DType::U8, {}, &b, 1, &error)) << error;
  writer.setMetadata("k", "v");

  // 130 bytes of JSON + 6 spaces of padding = 136 = 0x88.
  const std::string header =
      "{\"__metadata__\":{\"k\":\"v\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[8,9]}}"
      "      ";
  ASSERT_EQ(header.size(), 136u);
  const std::string expected =
      std::string("\x88\0\0\0\0\0\0\0", 8) + header +
      std::string("\x00\x00\x80\x3F"    // 1.0f
                  "\x00\x00\x00\x40"    // 2.0f
                  "\x07",               // 7
                  9);

  const std::string path = pathOf("tiny.safetensors");
  ASSERT_TRUE(writer.write(path, &error)) << error;
  EXPECT_EQ(readFile(path), expected);
  std::vector<uint8_t> serialized;
  ASSERT_TRUE(writer.serialize(&serialized, &error)) << error;
  EXPECT_EQ(bytesOf(serialized), expected);
}

TEST_F(SafetensorsTest, EmptyWriterWritesEmptyHeader) {
  SafetensorsWriter writer;
  const std::string path = pathOf("empty.safetensors");
  std::string error;
  ASSERT_TRUE(writer.write(path, &error)) << error;
  EXPECT_EQ(readFile(path), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  auto file = SafetensorsFile::open(path, &error);
  ASSERT_NE(file, nullptr) << error;
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_TRUE(file->metadata().empty());
  EXPECT_EQ(file->dataSize(), 0u);
}

TEST_F(SafetensorsTest, ParsesHandBuiltFile) {
  // Pretty-printed, fields in another order, metadata between tensors, header
  // order different from data order, unpadded header (so the data section is
  // not aligned), escaped names, a scalar and zero-byte tensors sharing
  // offsets with others.
  const std::string header = "{\n"
                             "  \"z\": {\"data_offsets\": [4, 6], \"shape\": [], "
                             "\"dtype\": \"I16\"},\n"
                             "  \"__metadata__\": {\"a\": \"b\", \"\\u00e9\": \"\\n\"},\n"
                             "  \"y\\u00e9\": {\"shape\": [2, 2], \"dtype\": \"U8\", "
                             "\"data_offsets\": [0, 4]},\n"
                             "  \"e\": {\"dtype\": \"F32\", \"shape\": [0], "
                             "\"data_offsets\": [6, 6]},\n"
                             "  \"s\": {\"dtype\": \"BOOL\", \"shape\": [7, 0], "
                             "\"data_offsets\": [0, 0]}\n"
                             "}   \n\t";
  const std::string data("\x01\x02\x03\x04\x34\x12", 6);
  auto file = openOk(makeFile(header, data));
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(file->tensors().size(), 4u);
  EXPECT_EQ(file->headerSize(), header.size());
  EXPECT_EQ(file->dataSize(), 6u);

  const TensorInfo &z = file->tensors()[0];
  EXPECT_EQ(z.name, "z");
  EXPECT_EQ(z.dtype, DType::I16);
  EXPECT_TRUE(z.shape.empty());
  EXPECT_EQ(z.numElements(), 1);
  EXPECT_EQ(z.begin, 4u);
  EXPECT_EQ(z.end, 6u);
  int16_t zValue;
  std::memcpy(&zValue, file->data(z), 2);
  EXPECT_EQ(zValue, 0x1234);

  const TensorInfo &y = file->tensors()[1];
  EXPECT_EQ(y.name, "y\xC3\xA9");
  EXPECT_EQ(y.dtype, DType::U8);
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(file->data(y)), 4),
            "\x01\x02\x03\x04");

  const TensorInfo &e = file->tensors()[2];
  EXPECT_EQ(e.name, "e");
  EXPECT_EQ(e.numElements(), 0);
  EXPECT_EQ(e.begin, 6u);
  EXPECT_EQ(e.end, 6u);
  EXPECT_NE(file->data(e), nullptr);

  const TensorInfo &s = file->tensors()[3];
  EXPECT_EQ(s.dtype, DType::BOOL);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{7, 0}));

  EXPECT_EQ(file->find("y\xC3\xA9"), &y);
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{
                                  {"a", "b"}, {"\xC3\xA9", "\n"}}));
}

TEST_F(SafetensorsTest, ZeroTensorsAndZeroElementTensorsAreValid) {
  {
    auto file = openOk(makeFile("{}"));
    ASSERT_NE(file, nullptr);
    EXPECT_TRUE(file->tensors().empty());
    EXPECT_EQ(file->dataSize(), 0u);
  }
  {
    auto file = openOk(makeFile("{\"__metadata__\":{}}"));
    ASSERT_NE(file, nullptr);
    EXPECT_TRUE(file->metadata().empty());
  }
  {
    // Zero-byte tensors at the start, between and after the others, several
    // at the same offset.
    const std::string header =
        "{" + entry("a", "F32", "[0]", "[0,0]") + "," +
        entry("b", "F32", "[1]", "[0,4]") + "," +
        entry("c", "I8", "[3,0]", "[4,4]") + "," +
        entry("d", "U8", "[0]", "[4,4]") + "," +
        entry("f", "I8", "[2]", "[4,6]") + "," +
        entry("g", "F64", "[0,0,0]", "[6,6]") + "}";
    auto file = openOk(makeFile(header, "abcdef"));
    ASSERT_NE(file, nullptr);
    EXPECT_EQ(file->tensors().size(), 6u);
    EXPECT_EQ(file->dataSize(), 6u);
  }
  {
    // Only a zero-element tensor and no data at all.
    auto file = openOk(makeFile("{" + entry("z", "F32", "[0,5]", "[0,0]") + "}"));
    ASSERT_NE(file, nullptr);
    ASSERT_EQ(file->tensors().size(), 1u);
    EXPECT_NE(file->data(file->tensors()[0]), nullptr);
  }
}

TEST_F(SafetensorsTest, MoveKeepsMappingAlive) {
  SafetensorsWriter writer;
  const uint32_t v[3] = {10, 20, 30};
  std::string error;
  ASSERT_TRUE(writer.add("v", DType::I32, {3}, v, sizeof(v), &error));
  const std::string path = pathOf("m.safetensors");
  ASSERT_TRUE(writer.write(path, &error)) << error;
  auto file = SafetensorsFile::open(path, &error);
  ASSERT_NE(file, nullptr) << error;

  SafetensorsFile moved(std::move(*file));
  file.reset();  // Destroying the moved-from object must not unmap.
  const TensorInfo *t = moved.find("v");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::memcmp(moved.data(*t), v, sizeof(v)), 0);

  auto other = SafetensorsFile::open(path, &error);
  ASSERT_NE(other, nullptr) << error;
  *other = std::move(moved);  // Unmaps other's own mapping, takes moved's.
  t = other->find("v");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::memcmp(other->data(*t), v, sizeof(v)), 0);
  EXPECT_EQ(other->path(), path);

  // A TensorInfo that does not lie in this file's data section.
  TensorInfo foreign;
  foreign.begin = 0;
  foreign.end = 1000;
  EXPECT_EQ(other->data(foreign), nullptr);
  foreign.begin = 8;
  foreign.end = 4;
  EXPECT_EQ(other->data(foreign), nullptr);
}

//===----------------------------------------------------------------------===//
// File-level validation
//===----------------------------------------------------------------------===//

TEST_F(SafetensorsTest, RejectsMissingOrSpecialFiles) {
  std::string error;
  const std::string missing = pathOf("missing.safetensors");
  EXPECT_EQ(SafetensorsFile::open(missing, &error), nullptr);
  EXPECT_EQ(error, missing + ": cannot open: No such file or directory");

  EXPECT_EQ(SafetensorsFile::open(dir_, &error), nullptr);
  EXPECT_EQ(error, dir_ + ": not a regular file");

  // A null error pointer is allowed.
  EXPECT_EQ(SafetensorsFile::open(missing, nullptr), nullptr);
}

TEST_F(SafetensorsTest, RejectsFilesShorterThanThePrefix) {
  for (size_t n = 0; n < 8; ++n) {
    const std::string msg = openError(std::string(n, '\x01'));
    EXPECT_EQ(msg, "file is " + std::to_string(n) +
                       " bytes, shorter than the 8-byte header length prefix");
  }
}

TEST_F(SafetensorsTest, RejectsBadHeaderLengths) {
  EXPECT_EQ(openError(le64(0) + "{}"), "header length is 0");
  EXPECT_EQ(openError(le64(100000001) + "{}"),
            "header length 100000001 exceeds the 100000000-byte limit");
  EXPECT_EQ(openError(le64(UINT64_MAX) + "{}"),
            "header length 18446744073709551615 exceeds the "
            "100000000-byte limit");
  EXPECT_EQ(openError(le64(100) + "{}"),
            "header length 100 exceeds the 2 bytes after the 8-byte length "
            "prefix");
  EXPECT_EQ(openError(le64(3) + "{}"),
            "header length 3 exceeds the 2 bytes after the 8-byte length "
            "prefix");
}

TEST_F(SafetensorsTest, RejectsHeadersNotStartingWithBrace) {
  EXPECT_EQ(openError(makeFile(" {}")),
            "header does not start with '{' (first byte is 0x20)");
  EXPECT_EQ(openError(makeFile("[]")),
            "header does not start with '{' (first byte is 0x5B)");
  EXPECT_EQ(openError(makeFile("\"x\"")),
            "header does not start with '{' (first byte is 0x22)");
  EXPECT_EQ(openError(makeFile(std::string(1, '\0'))),
            "header does not start with '{' (first byte is 0x00)");
}

TEST_F(SafetensorsTest, RejectsInvalidJson) {
  EXPECT_OPEN_FAILS(makeFile("{"), "header is not valid JSON: parse error");
  EXPECT_OPEN_FAILS(makeFile("{\"a\":"), "header is not valid JSON");
  EXPECT_OPEN_FAILS(makeFile("{\"a\" 1}"), "header is not valid JSON");
  EXPECT_OPEN_FAILS(makeFile("{} x"), "header is not valid JSON");
  EXPECT_OPEN_FAILS(makeFile("{}{}"), "header is not valid JSON");
  // nlohmann-json would stop at a NUL byte and ignore what follows.
  EXPECT_EQ(openError(makeFile(std::string("{}\0", 3))),
            "header is not valid JSON: NUL byte at offset 2");
  EXPECT_EQ(openError(makeFile(std::string("{}  \0 garbage", 13))),
            "header is not valid JSON: NUL byte at offset 4");
  EXPECT_EQ(openError(makeFile(std::string("{\"a\0\":{}}", 9))),
            "header is not valid JSON: NUL byte at offset 3");
  EXPECT_OPEN_FAILS(makeFile("{'a':1}"), "header is not valid JSON");
  EXPECT_OPEN_FAILS(makeFile("{\"__metadata__\":{},}"), "header is not valid JSON");
  EXPECT_OPEN_FAILS(makeFile("{/* c */}"), "header is not valid JSON");
  // Invalid UTF-8 in a string, and a raw control character.
  EXPECT_OPEN_FAILS(makeFile("{\"\xFF\":{}}"), "header is not valid JSON");
  EXPECT_OPEN_FAILS(makeFile("{\"\xC0\x80\":{}}"), "header is not valid JSON");
  EXPECT_OPEN_FAILS(makeFile("{\"a\nb\":{}}"), "header is not valid JSON");
  // The "[json.exception...] " prefix is dropped.
  const std::string msg = openError(makeFile("{"));
  EXPECT_EQ(msg.find("[json.exception"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, RejectsDeepNestingQuickly) {
  const std::string deep(1000000, '[');
  EXPECT_EQ(openError(makeFile("{\"w\":{\"dtype\":\"F32\",\"shape\":" + deep)),
            "tensor 'w' shape element 0 is an array, expected a non-negative "
            "integer");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":{\"k\":" + deep)),
            "__metadata__ value for key 'k' is an array, expected a string");
  EXPECT_EQ(openError(makeFile("{\"w\":" + deep)),
            "tensor 'w' entry is an array, expected an object");
  EXPECT_OPEN_FAILS(makeFile(std::string(1000000, '{')),
                    "header is not valid JSON");
}

//===----------------------------------------------------------------------===//
// Entry validation
//===----------------------------------------------------------------------===//

TEST_F(SafetensorsTest, RejectsEntriesThatAreNotObjects) {
  EXPECT_EQ(openError(makeFile("{\"w\":5}")),
            "tensor 'w' entry is the number 5, expected an object");
  EXPECT_EQ(openError(makeFile("{\"w\":[1]}")),
            "tensor 'w' entry is an array, expected an object");
  EXPECT_EQ(openError(makeFile("{\"w\":\"F32\"}")),
            "tensor 'w' entry is a string, expected an object");
  EXPECT_EQ(openError(makeFile("{\"w\":null}")),
            "tensor 'w' entry is null, expected an object");
  EXPECT_EQ(openError(makeFile("{\"w\":true}")),
            "tensor 'w' entry is a boolean, expected an object");
}

TEST_F(SafetensorsTest, RejectsMissingUnknownAndDuplicateFields) {
  EXPECT_EQ(openError(makeFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}",
                               "abcd")),
            "tensor 'w' has no 'data_offsets' field");
  EXPECT_EQ(openError(makeFile("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
                               "abcd")),
            "tensor 'w' has no 'dtype' field");
  EXPECT_EQ(openError(makeFile(
                "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "abcd")),
            "tensor 'w' has no 'shape' field");
  EXPECT_EQ(openError(makeFile("{\"w\":{}}")), "tensor 'w' has no 'dtype' field");
  EXPECT_EQ(
      openError(makeFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                         "\"data_offsets\":[0,4],\"extra\":1}}",
                         "abcd")),
      "tensor 'w' has unknown field 'extra' (expected dtype, shape, "
      "data_offsets)");
  EXPECT_EQ(openError(makeFile("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\","
                               "\"shape\":[1],\"data_offsets\":[0,4]}}",
                               "abcd")),
            "tensor 'w' has two 'dtype' fields");
  EXPECT_EQ(openError(makeFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                               "\"shape\":[1],\"data_offsets\":[0,4]}}",
                               "abcd")),
            "tensor 'w' has two 'shape' fields");
}

TEST_F(SafetensorsTest, RejectsBadDType) {
  EXPECT_EQ(openError(makeFile("{" + entry("w", "F8_E4M3", "[1]", "[0,1]") + "}",
                               "a")),
            "tensor 'w' has unsupported dtype 'F8_E4M3'");
  EXPECT_EQ(openError(makeFile("{" + entry("w", "f32", "[1]", "[0,4]") + "}",
                               "abcd")),
            "tensor 'w' has unsupported dtype 'f32'");
  EXPECT_EQ(openError(makeFile(
                "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}",
                "abcd")),
            "tensor 'w' field 'dtype' is the number 4, expected a string");
  EXPECT_EQ(openError(makeFile(
                "{\"w\":{\"dtype\":[\"F32\"],\"shape\":[1],\"data_offsets\":[0,4]}}",
                "abcd")),
            "tensor 'w' field 'dtype' is an array, expected a string");
}

TEST_F(SafetensorsTest, RejectsBadShapes) {
  auto withShape = [](const std::string &shape) {
    return makeFile("{\"w\":{\"dtype\":\"U8\",\"shape\":" + shape +
                        ",\"data_offsets\":[0,0]}}");
  };
  EXPECT_EQ(openError(withShape("3")),
            "tensor 'w' field 'shape' is the number 3, expected an array of "
            "non-negative integers");
  EXPECT_EQ(openError(withShape("{}")),
            "tensor 'w' field 'shape' is an object, expected an array of "
            "non-negative integers");
  EXPECT_EQ(openError(withShape("null")),
            "tensor 'w' field 'shape' is null, expected an array of "
            "non-negative integers");
  EXPECT_EQ(openError(withShape("[-1]")),
            "tensor 'w' shape element 0 is the number -1, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withShape("[-0]")),
            "tensor 'w' shape element 0 is the number -0, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withShape("[2,1.5]")),
            "tensor 'w' shape element 1 is the number 1.5, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withShape("[0,2.0]")),
            "tensor 'w' shape element 1 is the number 2.0, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withShape("[\"2\"]")),
            "tensor 'w' shape element 0 is a string, expected a non-negative "
            "integer");
  EXPECT_EQ(openError(withShape("[[2]]")),
            "tensor 'w' shape element 0 is an array, expected a non-negative "
            "integer");
  EXPECT_EQ(openError(withShape("[0,{}]")),
            "tensor 'w' shape element 1 is an object, expected a non-negative "
            "integer");
  EXPECT_EQ(openError(withShape("[true]")),
            "tensor 'w' shape element 0 is a boolean, expected a non-negative "
            "integer");
  EXPECT_EQ(openError(withShape("[0,9223372036854775808]")),
            "tensor 'w' shape dimension 1 is 9223372036854775808, larger than "
            "2^63 - 1");
  // Beyond u64: nlohmann-json reads it as a floating-point number.
  EXPECT_EQ(openError(withShape("[18446744073709551616]")),
            "tensor 'w' shape element 0 is the number 18446744073709551616, "
            "expected a non-negative integer");
}

TEST_F(SafetensorsTest, RejectsBadDataOffsets) {
  auto withOffsets = [](const std::string &offsets) {
    return makeFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" +
                        offsets + "}}",
                    "abcdefgh");
  };
  EXPECT_EQ(openError(withOffsets("0")),
            "tensor 'w' field 'data_offsets' is the number 0, expected an "
            "array of two non-negative integers [begin, end]");
  EXPECT_EQ(openError(withOffsets("\"0,4\"")),
            "tensor 'w' field 'data_offsets' is a string, expected an array of "
            "two non-negative integers [begin, end]");
  EXPECT_EQ(openError(withOffsets("[]")),
            "tensor 'w' data_offsets has 0 values, expected 2 [begin, end]");
  EXPECT_EQ(openError(withOffsets("[4]")),
            "tensor 'w' data_offsets has 1 values, expected 2 [begin, end]");
  EXPECT_EQ(openError(withOffsets("[0,4,8]")),
            "tensor 'w' data_offsets has 3 values, expected 2 [begin, end]");
  EXPECT_EQ(openError(withOffsets("[-4,0]")),
            "tensor 'w' data_offsets element 0 is the number -4, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withOffsets("[0,4.0]")),
            "tensor 'w' data_offsets element 1 is the number 4.0, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withOffsets("[0,4e0]")),
            "tensor 'w' data_offsets element 1 is the number 4e0, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withOffsets("[0,null]")),
            "tensor 'w' data_offsets element 1 is null, expected a "
            "non-negative integer");
  EXPECT_EQ(openError(withOffsets("[8,4]")),
            "tensor 'w' data_offsets [8, 4) begin after end");
  EXPECT_EQ(openError(withOffsets("[4,18446744073709551615]")),
            "tensor 'w' data_offsets [4, 18446744073709551615) exceed the "
            "8-byte data section");
}

TEST_F(SafetensorsTest, RejectsOffsetsBeyondTheDataSection) {
  const std::string path = pathOf("model.safetensors");
  writeFile(path, makeFile("{" + entry("w", "F32", "[1024]", "[0,4096]") + "}",
                           std::string(2048, '\0')));
  std::string error;
  EXPECT_EQ(SafetensorsFile::open(path, &error), nullptr);
  EXPECT_EQ(error, path + ": tensor 'w' data_offsets [0, 4096) exceed the "
                          "2048-byte data section");
}

TEST_F(SafetensorsTest, RejectsSizeMismatch) {
  EXPECT_EQ(openError(makeFile("{" + entry("w", "F32", "[2,3]", "[0,16]") + "}",
                               std::string(16, 'x'))),
            "tensor 'w' shape [2, 3] of F32 needs 24 bytes but data_offsets "
            "[0, 16) span 16 bytes");
  EXPECT_EQ(openError(makeFile("{" + entry("s", "F64", "[]", "[0,4]") + "}",
                               std::string(4, 'x'))),
            "tensor 's' shape [] of F64 needs 8 bytes but data_offsets [0, 4) "
            "span 4 bytes");
  EXPECT_EQ(openError(makeFile("{" + entry("z", "I8", "[3,0]", "[0,1]") + "}",
                               "x")),
            "tensor 'z' shape [3, 0] of I8 needs 0 bytes but data_offsets "
            "[0, 1) span 1 bytes");
}

TEST_F(SafetensorsTest, RejectsOverflowingShapes) {
  // 2^40 * 2^40 elements.
  EXPECT_EQ(openError(makeFile("{" +
                               entry("w", "F32", "[1099511627776,1099511627776]",
                                     "[0,0]") +
                               "}")),
            "tensor 'w' shape [1099511627776, 1099511627776] has more than "
            "2^64 - 1 elements");
  // 2^62 * 4 elements: wraps to exactly 0, which would match [0, 0).
  EXPECT_EQ(openError(makeFile("{" +
                               entry("w", "U8", "[4611686018427387904,4]",
                                     "[0,0]") +
                               "}")),
            "tensor 'w' shape [4611686018427387904, 4] has more than 2^64 - 1 "
            "elements");
  // (2^62 + 1) F32 elements: the byte count wraps to exactly 4.
  EXPECT_EQ(openError(makeFile("{" +
                               entry("w", "F32", "[4611686018427387905]",
                                     "[0,4]") +
                               "}",
                               "abcd")),
            "tensor 'w' shape [4611686018427387905] of F32 needs more than "
            "2^64 - 1 bytes");
}

TEST_F(SafetensorsTest, RejectsOverlaps) {
  EXPECT_EQ(openError(makeFile("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                                   entry("b", "F32", "[2]", "[4,12]") + "}",
                               std::string(12, 'x'))),
            "tensor 'b' data_offsets [4, 12) overlap tensor 'a' data_offsets "
            "[0, 8) by 4 bytes");
  // Same range twice (header order reversed relative to nothing).
  EXPECT_EQ(openError(makeFile("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                                   entry("b", "F32", "[1]", "[0,4]") + "}",
                               std::string(4, 'x'))),
            "tensor 'b' data_offsets [0, 4) overlap tensor 'a' data_offsets "
            "[0, 4) by 4 bytes");
  // A tensor inside another one.
  EXPECT_EQ(openError(makeFile("{" + entry("big", "F32", "[4]", "[0,16]") + "," +
                                   entry("in", "F32", "[1]", "[4,8]") + "}",
                               std::string(16, 'x'))),
            "tensor 'in' data_offsets [4, 8) overlap tensor 'big' data_offsets "
            "[0, 16) by 4 bytes");
  // A zero-byte tensor strictly inside another one.
  EXPECT_EQ(openError(makeFile("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                                   entry("e", "F32", "[0]", "[4,4]") + "}",
                               std::string(8, 'x'))),
            "tensor 'e' data_offsets [4, 4) lie inside tensor 'a' data_offsets "
            "[0, 8)");
}

TEST_F(SafetensorsTest, RejectsHoles) {
  EXPECT_EQ(openError(makeFile("{" + entry("b", "F32", "[1]", "[8,12]") + "," +
                                   entry("a", "F32", "[1]", "[0,4]") + "}",
                               std::string(12, 'x'))),
            "bytes [4, 8) of the data section belong to no tensor (between "
            "tensor 'a' and tensor 'b')");
  EXPECT_EQ(openError(makeFile("{" + entry("a", "F32", "[1]", "[4,8]") + "}",
                               std::string(8, 'x'))),
            "bytes [0, 4) of the data section belong to no tensor (before "
            "tensor 'a')");
  EXPECT_EQ(openError(makeFile("{" + entry("a", "F32", "[1]", "[0,4]") + "}",
                               std::string(6, 'x'))),
            "bytes [4, 6) at the end of the 6-byte data section belong to no "
            "tensor");
  EXPECT_EQ(openError(makeFile("{}", "xy")),
            "header lists no tensors but the data section has 2 bytes");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":{\"a\":\"b\"}}", "x")),
            "header lists no tensors but the data section has 1 bytes");
}

TEST_F(SafetensorsTest, RejectsDuplicateNames) {
  EXPECT_EQ(openError(makeFile("{" + entry("w", "F32", "[1]", "[0,4]") + "," +
                                   entry("w", "F32", "[1]", "[4,8]") + "}",
                               std::string(8, 'x'))),
            "header has two entries for tensor 'w'");
  // Even when the duplicates are spelled differently.
  EXPECT_EQ(openError(makeFile("{" + entry("w", "F32", "[1]", "[0,4]") + "," +
                                   entry("\\u0077", "F32", "[1]", "[4,8]") + "}",
                               std::string(8, 'x'))),
            "header has two entries for tensor 'w'");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":{},\"__metadata__\":{}}")),
            "header has two \"__metadata__\" entries");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}")),
            "__metadata__ has two entries for key 'k'");
}

TEST_F(SafetensorsTest, RejectsBadMetadata) {
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":[]}")),
            "__metadata__ is an array, expected an object");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":\"x\"}")),
            "__metadata__ is a string, expected an object");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":null}")),
            "__metadata__ is null, expected an object");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":{\"k\":1}}")),
            "__metadata__ value for key 'k' is the number 1, expected a string");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":{\"k\":{\"a\":\"b\"}}}")),
            "__metadata__ value for key 'k' is an object, expected a string");
  EXPECT_EQ(openError(makeFile("{\"__metadata__\":{\"k\":false}}")),
            "__metadata__ value for key 'k' is a boolean, expected a string");
}

TEST_F(SafetensorsTest, MessagesEscapeOddNames) {
  EXPECT_EQ(openError(makeFile("{\"a\\u0001'\\\\\":5}")),
            "tensor 'a\\x01\\x27\\x5C' entry is the number 5, expected an "
            "object");
  const std::string longName(1000, 'n');
  EXPECT_EQ(openError(makeFile("{\"" + longName + "\":5}")),
            "tensor '" + std::string(200, 'n') +
                "...' entry is the number 5, expected an object");
}

//===----------------------------------------------------------------------===//
// Fuzzing
//===----------------------------------------------------------------------===//

std::vector<uint8_t> sampleFile() {
  SafetensorsWriter writer;
  std::vector<float> f(6, 1.5f);
  std::vector<uint16_t> h(4, 0x3C00);
  int64_t scalar = 42;
  std::string error;
  EXPECT_TRUE(writer.add("layer.0.weight", DType::F32, {2, 3}, f.data(),
                         f.size() * 4, &error));
  EXPECT_TRUE(writer.add("layer.0.bias", DType::BF16, {4}, h.data(),
                         h.size() * 2, &error));
  EXPECT_TRUE(writer.add("empty", DType::I8, {0}, nullptr, 0, &error));
  EXPECT_TRUE(writer.add("step", DType::I64, {}, &scalar, 8, &error));
  writer.setMetadata("format", "pt");
  std::vector<uint8_t> out;
  EXPECT_TRUE(writer.serialize(&out, &error)) << error;
  return out;
}

/// Opens `bytes`; if that succeeds, checks the invariants open() promises and
/// touches every data byte (so valgrind sees any out-of-bounds read).
void openAndCheck(const std::string &path, const std::string &bytes,
                  size_t *accepted) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::string error;
  auto file = SafetensorsFile::open(path, &error);
  if (!file) {
    ASSERT_EQ(error.rfind(path + ": ", 0), 0u) << error;
    ASSERT_GT(error.size(), path.size() + 2);
    return;
  }
  ++*accepted;
  ASSERT_EQ(8 + file->headerSize() + file->dataSize(), bytes.size());
  uint64_t total = 0;
  unsigned sum = 0;
  for (const TensorInfo &t : file->tensors()) {
    ASSERT_LE(t.begin, t.end);
    ASSERT_LE(t.end, file->dataSize());
    ASSERT_GE(t.numElements(), 0);
    ASSERT_EQ(t.numBytes(),
              static_cast<uint64_t>(t.numElements()) * dtypeSize(t.dtype));
    const uint8_t *p = file->data(t);
    ASSERT_NE(p, nullptr);
    for (uint64_t i = 0; i < t.numBytes(); ++i)
      sum += p[i];
    total += t.numBytes();
    ASSERT_EQ(file->find(t.name), &t);
  }
  ASSERT_EQ(total, file->dataSize());  // Contiguous, no overlap.
  (void)sum;
}

TEST_F(SafetensorsTest, EveryTruncationFailsCleanly) {
  const std::string bytes = bytesOf(sampleFile());
  const std::string path = pathOf("trunc.safetensors");
  size_t accepted = 0;
  openAndCheck(path, bytes, &accepted);
  ASSERT_EQ(accepted, 1u);
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string truncated = bytes.substr(0, n);
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(truncated.data(), static_cast<std::streamsize>(n));
    }
    std::string error;
    EXPECT_EQ(SafetensorsFile::open(path, &error), nullptr) << "length " << n;
    EXPECT_EQ(error.rfind(path + ": ", 0), 0u) << error;
  }
}

TEST_F(SafetensorsTest, RandomHeaderCorruptionNeverCrashes) {
  const std::string original = bytesOf(sampleFile());
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | static_cast<uint8_t>(original[i]);
  const std::string path = pathOf("fuzz.safetensors");
  static const char kPalette[] = "{}[]\",:0123456789-.eE \\u\x00\xFF\x80tfn";
  const std::string palette(kPalette, sizeof(kPalette) - 1);
  std::mt19937 rng(20240613);
  size_t accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = original;
    const int mode = iter % 3;
    const int edits = 1 + static_cast<int>(rng() % 4);
    if (mode == 0) {
      // Overwrite bytes anywhere in the prefix or the header.
      for (int e = 0; e < edits; ++e) {
        const size_t pos = rng() % (8 + headerSize);
        bytes[pos] = rng() % 2 ? static_cast<char>(rng() & 0xFF)
                               : palette[rng() % palette.size()];
      }
    } else {
      // Overwrite, insert or delete header bytes and fix the length prefix,
      // so the JSON parser and validation see the damage.
      std::string header = bytes.substr(8, headerSize);
      const std::string data = bytes.substr(8 + headerSize);
      for (int e = 0; e < edits && !header.empty(); ++e) {
        const size_t pos = rng() % header.size();
        const char c = palette[rng() % palette.size()];
        switch (rng() % 3) {
        case 0:
          header[pos] = c;
          break;
        case 1:
          header.insert(header.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        default:
          header.erase(pos, 1);
          break;
        }
      }
      if (header.empty())
        header = "{";
      bytes = makeFile(header, data);
    }
    openAndCheck(path, bytes, &accepted);
    if (HasFatalFailure())
      FAIL() << "iteration " << iter;
  }
  // Some edits (e.g. in padding or digits of equal value) keep the file valid.
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, 3000u);
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

TEST_F(SafetensorsTest, WriterRejectsBadTensors) {
  SafetensorsWriter writer;
  const float f[6] = {};
  std::string error;
  ASSERT_TRUE(writer.add("w", DType::F32, {2, 3}, f, sizeof(f), &error));

  EXPECT_FALSE(writer.add("w", DType::F32, {2, 3}, f, sizeof(f), &error));
  EXPECT_EQ(error, "tensor 'w' was already added");
  EXPECT_FALSE(writer.add("x", DType::F32, {2, 3}, f, 20, &error));
  EXPECT_EQ(error, "tensor 'x' shape [2, 3] of F32 needs 24 bytes, got 20");
  EXPECT_FALSE(writer.add("x", DType::F16, {}, f, 4, &error));
  EXPECT_EQ(error, "tensor 'x' shape [] of F16 needs 2 bytes, got 4");
  EXPECT_FALSE(writer.add("", DType::F32, {1}, f, 4, &error));
  EXPECT_EQ(error, "tensor name is empty");
  EXPECT_FALSE(writer.add("__metadata__", DType::F32, {1}, f, 4, &error));
  EXPECT_EQ(error, "tensor name '__metadata__' is reserved");
  EXPECT_FALSE(writer.add("bad\xFF", DType::F32, {1}, f, 4, &error));
  EXPECT_EQ(error, "tensor 'bad\xFF' name is not valid UTF-8");
  EXPECT_FALSE(writer.add("sur\xED\xA0\x80", DType::F32, {1}, f, 4, &error));
  EXPECT_NE(error.find("not valid UTF-8"), std::string::npos);
  EXPECT_FALSE(writer.add("x", DType::F32, {2, -3}, f, 24, &error));
  EXPECT_EQ(error, "tensor 'x' shape [2, -3] has a negative dimension");
  EXPECT_FALSE(writer.add("x", DType::F32, {int64_t(1) << 62, 4}, f, 0, &error));
  EXPECT_EQ(error, "tensor 'x' shape [4611686018427387904, 4] of F32 has more "
                   "than 2^63 - 1 bytes");
  EXPECT_FALSE(writer.add("x", DType::F32, {int64_t(1) << 62}, f, 0, &error));
  EXPECT_NE(error.find("more than 2^63 - 1 bytes"), std::string::npos);
  EXPECT_FALSE(writer.add("x", DType::F32, {1}, nullptr, 4, &error));
  EXPECT_EQ(error, "tensor 'x' has 4 bytes but a null data pointer");
  EXPECT_FALSE(writer.add("x", static_cast<DType>(42), {1}, f, 4, &error));
  EXPECT_EQ(error, "tensor 'x' has an invalid dtype value 42");
  EXPECT_FALSE(writer.add("w", DType::F32, {1}, f, 4, nullptr));  // No crash.
  EXPECT_EQ(writer.numTensors(), 1u);

  // Failed adds leave nothing behind.
  const std::string path = pathOf("w.safetensors");
  ASSERT_TRUE(writer.write(path, &error)) << error;
  auto file = SafetensorsFile::open(path, &error);
  ASSERT_NE(file, nullptr) << error;
  ASSERT_EQ(file->tensors().size(), 1u);
  EXPECT_EQ(file->tensors()[0].name, "w");
}

TEST_F(SafetensorsTest, WriteIntoMissingDirectoryFailsAndLeavesNothing) {
  SafetensorsWriter writer;
  const uint8_t b = 1;
  std::string error;
  ASSERT_TRUE(writer.add("b", DType::U8, {1}, &b, 1, &error));
  const std::string path = pathOf("no/such/dir/out.safetensors");
  EXPECT_FALSE(writer.write(path, &error));
  EXPECT_EQ(error.rfind(path + ": cannot create temporary file", 0), 0u)
      << error;
  EXPECT_NE(error.find("No such file or directory"), std::string::npos)
      << error;
  EXPECT_TRUE(listDir().empty());
}

TEST_F(SafetensorsTest, WriteReplacesExistingFile) {
  const std::string path = pathOf("out.safetensors");
  writeFile(path, "old contents that are not a safetensors file");
  SafetensorsWriter writer;
  const int32_t v[2] = {5, 6};
  std::string error;
  ASSERT_TRUE(writer.add("v", DType::I32, {2}, v, sizeof(v), &error));
  ASSERT_TRUE(writer.write(path, &error)) << error;
  EXPECT_EQ(listDir(), std::set<std::string>{"out.safetensors"});
  auto file = SafetensorsFile::open(path, &error);
  ASSERT_NE(file, nullptr) << error;
  ASSERT_NE(file->find("v"), nullptr);
  EXPECT_EQ(std::memcmp(file->data(*file->find("v")), v, sizeof(v)), 0);

  // Writing again while the old file is still mapped: the mapping keeps the
  // old contents, the path gets the new ones.
  SafetensorsWriter second;
  ASSERT_TRUE(second.add("w", DType::I32, {1}, v, 4, &error));
  ASSERT_TRUE(second.write(path, &error)) << error;
  EXPECT_EQ(std::memcmp(file->data(*file->find("v")), v, sizeof(v)), 0);
  auto reread = SafetensorsFile::open(path, &error);
  ASSERT_NE(reread, nullptr) << error;
  EXPECT_NE(reread->find("w"), nullptr);
  EXPECT_EQ(reread->find("v"), nullptr);
  EXPECT_EQ(listDir(), std::set<std::string>{"out.safetensors"});
}

TEST_F(SafetensorsTest, WriteUsesUmaskMode) {
  const mode_t mask = ::umask(027);
  SafetensorsWriter writer;
  const std::string path = pathOf("mode.safetensors");
  std::string error;
  const bool ok = writer.write(path, &error);
  ::umask(mask);
  ASSERT_TRUE(ok) << error;
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(SafetensorsTest, WriteToRelativePath) {
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  SafetensorsWriter writer;
  std::string error;
  const bool ok = writer.write("rel.safetensors", &error);
  auto file = SafetensorsFile::open("rel.safetensors", &error);
  ASSERT_EQ(::chdir(cwd), 0);
  EXPECT_TRUE(ok) << error;
  EXPECT_NE(file, nullptr) << error;
  EXPECT_EQ(listDir(), std::set<std::string>{"rel.safetensors"});
}

TEST_F(SafetensorsTest, DirectoryTargetRefusedWithoutTemporary) {
  // The target is a directory: refused before any temporary is written
  // (it used to fail only at the rename).
  const std::string target = pathOf("target");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  SafetensorsWriter writer;
  const uint8_t b[3] = {1, 2, 3};
  std::string error;
  ASSERT_TRUE(writer.add("b", DType::U8, {3}, b, 3, &error));
  EXPECT_FALSE(writer.write(target, &error));
  EXPECT_EQ(error, target + ": is a directory");
  EXPECT_EQ(listDir(), std::set<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(target));
  EXPECT_TRUE(fs::is_empty(target));

  // Same with a trailing slash.
  EXPECT_FALSE(writer.write(target + "/", &error));
  EXPECT_EQ(listDir(), std::set<std::string>{"target"});
  EXPECT_TRUE(fs::is_empty(target));
}

TEST_F(SafetensorsTest, InvalidMetadataFailsWriteAndKeepsOldFile) {
  const std::string path = pathOf("out.safetensors");
  writeFile(path, "previous");
  SafetensorsWriter writer;
  writer.setMetadata("k", "bad\xC3");
  std::string error;
  EXPECT_FALSE(writer.write(path, &error));
  EXPECT_EQ(error, path + ": __metadata__ value for key 'k' is not valid UTF-8");
  std::vector<uint8_t> bytes;
  EXPECT_FALSE(writer.serialize(&bytes, &error));
  EXPECT_EQ(readFile(path), "previous");
  EXPECT_EQ(listDir(), std::set<std::string>{"out.safetensors"});

  SafetensorsWriter keyWriter;
  keyWriter.setMetadata("\xFF", "v");
  EXPECT_FALSE(keyWriter.write(path, &error));
  EXPECT_EQ(error, path + ": __metadata__ key '\xFF' is not valid UTF-8");
  EXPECT_EQ(readFile(path), "previous");
  EXPECT_FALSE(keyWriter.write(path, nullptr));  // No crash.
}

} // namespace
