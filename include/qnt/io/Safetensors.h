//===- Safetensors.h - Validating safetensors reader and writer -*- C++ -*-===//
//
// IR-free reader and writer for the safetensors format
// (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, the header length, little-endian u64
//   [N bytes]  UTF-8 JSON object (may be padded with trailing spaces)
//   [rest]     the data section
//
// Every header entry other than "__metadata__" describes one tensor:
//   "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// with offsets relative to the start of the data section. "__metadata__", if
// present, is an object whose values are all strings.
//
// The reader validates the whole file when it is opened (see
// docs/Safetensors.md for the complete list of rules); after a successful
// open every TensorInfo is known to lie inside the mapping and to have exactly
// numElements() * dtypeSize(dtype) bytes. No function here throws: failures
// are reported through return values and an error string that starts with
// the file's path.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_SAFETENSORS_H
#define QNT_IO_SAFETENSORS_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qnt::io {

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

/// The element types this library understands. Other safetensors dtypes
/// (F8_*, U16/U32/U64, C64, ...) are rejected as unsupported.
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// The safetensors spelling of `dtype`: "F64", "F32", "F16", "BF16", "I64",
/// "I32", "I16", "I8", "U8", "BOOL". Returns "?" for an out-of-range value.
const char *dtypeName(DType dtype);

/// The inverse of dtypeName (case-sensitive); std::nullopt if unknown.
std::optional<DType> parseDType(std::string_view name);

/// Bytes per element (BOOL is one byte). Returns 0 for an out-of-range value.
int64_t dtypeSize(DType dtype);

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  ///< [] is a 0-d scalar (one element).
  /// [begin, end) relative to the start of the data section.
  uint64_t begin = 0, end = 0;

  /// Product of the dimensions (1 for a scalar, 0 if any dimension is 0), or
  /// -1 if a dimension is negative or the product does not fit in int64_t.
  /// Tensors returned by SafetensorsFile always give a value >= 0.
  int64_t numElements() const;
  /// end - begin.
  uint64_t numBytes() const { return end - begin; }
};

/// A validated, memory-mapped (read-only, MAP_PRIVATE) safetensors file.
/// Movable, not copyable. The mapping lives as long as the object; pointers
/// returned by data() are valid until then.
class SafetensorsFile {
public:
  /// Opens and fully validates `path`. On failure returns nullptr and, if
  /// `error` is non-null, sets *error to a message that starts with the path,
  /// e.g. "model.safetensors: tensor 'w' data_offsets [0, 4096) exceed the
  /// 2048-byte data section".
  static std::unique_ptr<SafetensorsFile> open(const std::string &path,
                                               std::string *error);

  SafetensorsFile(SafetensorsFile &&other) noexcept;
  SafetensorsFile &operator=(SafetensorsFile &&other) noexcept;
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;
  ~SafetensorsFile();  ///< Unmaps the file.

  const std::string &path() const { return path_; }
  /// The tensors in the order their entries appear in the header.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// The tensor called `name`, or nullptr if there is none.
  const TensorInfo *find(std::string_view name) const;
  /// Pointer to the first byte of `t`'s data inside the mapping (no
  /// particular alignment is guaranteed). `t` must come from this file;
  /// returns nullptr if its offsets do not lie inside this file's data
  /// section. For a zero-byte tensor the pointer must not be dereferenced.
  const uint8_t *data(const TensorInfo &t) const;
  /// The "__metadata__" object (empty if the header has none).
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }
  /// Size of the JSON header in bytes (N, including any padding).
  uint64_t headerSize() const { return headerSize_; }
  /// Size of the data section in bytes.
  uint64_t dataSize() const { return dataSize_; }

private:
  SafetensorsFile() = default;
  void reset() noexcept;

  std::string path_;
  const uint8_t *mapping_ = nullptr;  ///< Whole file, mapped read-only.
  size_t mappingSize_ = 0;
  uint64_t headerSize_ = 0;
  uint64_t dataSize_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  ///< name -> tensors_[i]
  std::map<std::string, std::string> metadata_;
};

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

/// Collects tensors and metadata in memory and writes them as one
/// safetensors file. The header lists "__metadata__" (if any) first, then the
/// tensors in the order they were added; the tensors' data is written
/// contiguously in that same order with no gaps. The header is padded with
/// spaces to a multiple of 8 bytes so the data section starts 8-byte aligned.
class SafetensorsWriter {
public:
  /// Adds a tensor; `bytes` is copied (it may be null when numBytes == 0).
  /// Returns false and sets *error (if non-null) on a duplicate name, a bad
  /// name (empty, "__metadata__", or not valid UTF-8), a negative dimension,
  /// an element count or byte size that overflows, or a `numBytes` that does
  /// not match shape * dtypeSize(dtype).
  bool add(const std::string &name, DType dtype, std::vector<int64_t> shape,
           const void *bytes, size_t numBytes, std::string *error);

  /// Sets (or replaces) one "__metadata__" entry. Keys and values must be
  /// valid UTF-8; otherwise write() fails.
  void setMetadata(const std::string &key, const std::string &value);

  /// Writes to a temporary file in the same directory as `path`, fsyncs it,
  /// then renames it onto `path`. A failure never leaves a partial `path`
  /// (an existing file is left untouched) and removes the temporary. Returns
  /// false and sets *error (if non-null; starting with the path) on failure.
  /// The new file gets mode 0666 minus the process umask.
  bool write(const std::string &path, std::string *error) const;

  /// The exact bytes write() would put in the file (useful for tests and for
  /// in-memory use). Returns false and sets *error on an unencodable
  /// metadata string or an oversized header.
  bool serialize(std::vector<uint8_t> *out, std::string *error) const;

  size_t numTensors() const { return entries_.size(); }

private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  /// Builds the padded JSON header for the current entries.
  bool buildHeader(std::string *header, std::string *error) const;

  std::vector<Entry> entries_;
  std::map<std::string, size_t> names_;
  std::map<std::string, std::string> metadata_;
};

} // namespace qnt::io

#endif // QNT_IO_SAFETENSORS_H
