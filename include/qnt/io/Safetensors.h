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

#include "qnt/io/TensorFile.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qnt::io {

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

/// A validated, memory-mapped (read-only, MAP_PRIVATE) safetensors file.
/// Movable, not copyable. The mapping lives as long as the object; pointers
/// returned by data() are valid until then. path(), tensors() (in the order
/// their entries appear in the header), find(), data() (for a zero-byte
/// tensor the pointer must not be dereferenced), releasePages() and
/// dataSize() come from TensorFile.
class SafetensorsFile : public TensorFile {
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
  ~SafetensorsFile() override; ///< Unmaps the file.

  /// The "__metadata__" object (empty if the header has none).
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }
  /// Size of the JSON header in bytes (N, including any padding).
  uint64_t headerSize() const { return headerSize_; }

private:
  SafetensorsFile() = default;

  uint64_t headerSize_ = 0;
  std::map<std::string, std::string> metadata_;
};

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

/// Collects tensors and metadata and writes them as one safetensors file.
/// The header lists "__metadata__" (if any) first, then the tensors in the
/// order they were added; the tensors' data is written contiguously in that
/// same order with no gaps. The header is padded with spaces to a multiple
/// of 8 bytes so the data section starts 8-byte aligned.
///
/// By default the tensors' bytes are kept in memory until write(). After
/// setSpillDirectory() they are appended to an anonymous temporary file
/// instead, so a writer of a multi-gigabyte shard holds one tensor at a time
/// in memory. Movable, not copyable.
class SafetensorsWriter {
public:
  SafetensorsWriter();
  SafetensorsWriter(SafetensorsWriter &&) noexcept;
  SafetensorsWriter &operator=(SafetensorsWriter &&) noexcept;
  SafetensorsWriter(const SafetensorsWriter &) = delete;
  SafetensorsWriter &operator=(const SafetensorsWriter &) = delete;
  ~SafetensorsWriter(); ///< Closes (and so frees) the spill file.

  /// Adds a tensor; `bytes` is copied (it may be null when numBytes == 0).
  /// Returns false and sets *error (if non-null) on a duplicate name, a bad
  /// name (empty, "__metadata__", or not valid UTF-8), a negative dimension,
  /// an element count or byte size that overflows, or a `numBytes` that does
  /// not match shape * dtypeSize(dtype); in spill mode also when the spill
  /// file cannot be written (e.g. the disk is full). A failed add leaves
  /// the writer as it was.
  bool add(const std::string &name, DType dtype, std::vector<int64_t> shape,
           const void *bytes, size_t numBytes, std::string *error);

  /// Switches to spill mode: creates a temporary file in directory `dir`
  /// (mkstemp, then unlinked at once, so it never shows in `dir` and the
  /// space is freed when the writer goes away) and from now on add() appends
  /// each tensor's bytes to it rather than keeping them. Tensors already
  /// added are moved there too. Choose `dir` on the filesystem of the
  /// target so that write() can copy in the kernel. Returns false and sets
  /// *error (if non-null; starting with `dir`) if the file cannot be
  /// created or written, leaving the writer as it was. Calling it again
  /// when already spilling does nothing.
  bool setSpillDirectory(const std::string &dir, std::string *error);
  /// True after a successful setSpillDirectory().
  bool isSpilling() const;

  /// Sets (or replaces) one "__metadata__" entry. Keys and values must be
  /// valid UTF-8; otherwise write() fails.
  void setMetadata(const std::string &key, const std::string &value);

  /// Writes to a temporary file in the same directory as `path`, fsyncs it,
  /// then renames it onto `path`. A failure never leaves a partial `path`
  /// (an existing file is left untouched) and removes the temporary. Returns
  /// false and sets *error (if non-null; starting with the path) on failure.
  /// The new file gets mode 0666 minus the process umask. In spill mode the
  /// data section is copied from the spill file (copy_file_range, falling
  /// back to read/write through a bounded buffer).
  bool write(const std::string &path, std::string *error) const;

  /// The exact bytes write() would put in the file (useful for tests and for
  /// in-memory use; in spill mode the data are read back from the spill
  /// file). Returns false and sets *error on an unencodable metadata string,
  /// an oversized header or an unreadable spill file.
  bool serialize(std::vector<uint8_t> *out, std::string *error) const;

  size_t numTensors() const { return entries_.size(); }

private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t numBytes = 0;
    /// The data when not spilling; empty in spill mode.
    std::vector<uint8_t> bytes;
  };
  struct SpillFile;
  /// Builds the padded JSON header for the current entries.
  bool buildHeader(std::string *header, std::string *error) const;

  std::vector<Entry> entries_;
  std::map<std::string, size_t> names_;
  std::map<std::string, std::string> metadata_;
  /// The spill file; null when the data are kept in memory. Tensors are
  /// stored back to back in add() order, so the data section is the file's
  /// first dataBytes_ bytes.
  std::unique_ptr<SpillFile> spill_;
  uint64_t dataBytes_ = 0; ///< Size of the data section so far.
};

} // namespace qnt::io

#endif // QNT_IO_SAFETENSORS_H
