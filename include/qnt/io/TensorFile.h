//===- TensorFile.h - Named tensors in a memory-mapped file -----*- C++ -*-===//
//
// IR-free view of a checkpoint file as a table of named tensors whose bytes
// are read in place from a read-only mapping. Safetensors files and llama2.c
// checkpoints are both TensorFiles, so the parameter store, the importers
// and the tools treat them alike.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_TENSORFILE_H
#define QNT_IO_TENSORFILE_H

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qnt::io {

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

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  ///< [] is a 0-d scalar (one element).
  /// [begin, end) relative to the start of the file's data section.
  uint64_t begin = 0, end = 0;

  /// Product of the dimensions (1 for a scalar, 0 if any dimension is 0), or
  /// -1 if a dimension is negative or the product does not fit in int64_t.
  /// Tensors returned by a TensorFile always give a value >= 0.
  int64_t numElements() const;
  /// end - begin.
  uint64_t numBytes() const { return end - begin; }
};

/// A validated, read-only, memory-mapped file of named tensors. After a
/// successful open every TensorInfo lies inside the mapping and has exactly
/// numElements() * dtypeSize(dtype) bytes.
class TensorFile {
public:
  virtual ~TensorFile();

  const std::string &path() const { return path_; }
  /// The tensors in file order.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// The tensor called `name`, or nullptr if there is none.
  const TensorInfo *find(std::string_view name) const;
  /// Pointer to the first byte of `t`'s data inside the mapping (no
  /// particular alignment is guaranteed). `t` must come from this file;
  /// returns nullptr if its offsets do not lie inside the data section.
  const uint8_t *data(const TensorInfo &t) const;
  /// Drops this process's resident pages of `t` (madvise DONTNEED); the
  /// bytes are read again from the file on the next access. Lets a
  /// streaming consumer keep its resident memory bounded on models larger
  /// than RAM.
  void releasePages(const TensorInfo &t) const;
  /// Size of the data section in bytes.
  uint64_t dataSize() const { return dataSize_; }

  TensorFile(const TensorFile &) = delete;
  TensorFile &operator=(const TensorFile &) = delete;

protected:
  TensorFile() = default;
  /// Moves take the mapping; the moved-from file is left empty (unmapped)
  /// and its destructor does not unmap. Protected so that only a concrete
  /// class moves its own objects, never a base slice.
  TensorFile(TensorFile &&other) noexcept;
  TensorFile &operator=(TensorFile &&other) noexcept;
  /// Maps `path` read-only; returns false and sets *error (starting with
  /// the path) on failure. An empty file maps to no bytes.
  bool mapFile(const std::string &path, std::string *error);
  /// Rebuilds the name index after tensors_ is filled.
  void buildIndex();
  /// Unmaps the file and forgets its tensors.
  void unmap() noexcept;

  std::string path_;
  const uint8_t *mapping_ = nullptr; ///< Whole file, mapped read-only.
  size_t mappingSize_ = 0;
  uint64_t dataOffset_ = 0; ///< Start of the data section in the file.
  uint64_t dataSize_ = 0;
  std::vector<TensorInfo> tensors_;

private:
  std::vector<std::pair<std::string_view, size_t>> index_; ///< sorted
};

/// Opens a checkpoint file by content: safetensors (an 8-byte header length
/// followed by '{') or a llama2.c checkpoint (legacy or versioned). The
/// error names the file.
std::unique_ptr<TensorFile> openTensorFile(const std::string &path,
                                           std::string *error);

} // namespace qnt::io

#endif // QNT_IO_TENSORFILE_H
