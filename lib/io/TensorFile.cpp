//===- TensorFile.cpp - Named tensors in a memory-mapped file -------------===//
//
// The mapping, the name index and the element types shared by every
// checkpoint reader, and the choice of reader by file content.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/TensorFile.h"

#include "FileUtil.h"
#include "qnt/io/Llama2c.h"
#include "qnt/io/Safetensors.h"

#include <cstring>
#include <algorithm>
#include <cerrno>
#include <limits>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qnt::io {

using detail::errnoText;

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

namespace {

struct DTypeDesc {
  DType dtype;
  const char *name;
  int64_t size;
};

constexpr DTypeDesc kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeDesc *lookupDType(DType dtype) {
  for (const DTypeDesc &d : kDTypes)
    if (d.dtype == dtype)
      return &d;
  return nullptr;
}

} // namespace

const char *dtypeName(DType dtype) {
  const DTypeDesc *d = lookupDType(dtype);
  return d ? d->name : "?";
}

std::optional<DType> parseDType(std::string_view name) {
  for (const DTypeDesc &d : kDTypes)
    if (name == d.name)
      return d.dtype;
  return std::nullopt;
}

int64_t dtypeSize(DType dtype) {
  const DTypeDesc *d = lookupDType(dtype);
  return d ? d->size : 0;
}

int64_t TensorInfo::numElements() const {
  bool hasZero = false;
  for (int64_t d : shape) {
    if (d < 0)
      return -1;
    hasZero |= d == 0;
  }
  if (hasZero)
    return 0;
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n))
      return -1;
  return n;
}

//===----------------------------------------------------------------------===//
// TensorFile
//===----------------------------------------------------------------------===//

TensorFile::~TensorFile() { unmap(); }

TensorFile::TensorFile(TensorFile &&other) noexcept
    : path_(std::move(other.path_)), mapping_(other.mapping_),
      mappingSize_(other.mappingSize_), dataOffset_(other.dataOffset_),
      dataSize_(other.dataSize_), tensors_(std::move(other.tensors_)),
      index_(std::move(other.index_)) {
  // The index's string_views point into the TensorInfo names, which live in
  // the vector's heap buffer and so move with it.
  other.mapping_ = nullptr;
  other.mappingSize_ = 0;
  other.dataOffset_ = other.dataSize_ = 0;
}

TensorFile &TensorFile::operator=(TensorFile &&other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    mapping_ = other.mapping_;
    mappingSize_ = other.mappingSize_;
    dataOffset_ = other.dataOffset_;
    dataSize_ = other.dataSize_;
    tensors_ = std::move(other.tensors_);
    index_ = std::move(other.index_);
    other.mapping_ = nullptr;
    other.mappingSize_ = 0;
    other.dataOffset_ = other.dataSize_ = 0;
  }
  return *this;
}

void TensorFile::unmap() noexcept {
  if (mapping_)
    ::munmap(const_cast<uint8_t *>(mapping_), mappingSize_);
  mapping_ = nullptr;
  mappingSize_ = 0;
  dataOffset_ = dataSize_ = 0;
  index_.clear();
  tensors_.clear();
}

bool TensorFile::mapFile(const std::string &path, std::string *error) {
  unmap();
  path_ = path;
  auto fail = [&](const std::string &message) {
    if (error)
      *error = path + ": " + message;
    return false;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail("cannot open: " + errnoText(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return fail("cannot stat: " + errnoText(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail("not a regular file");
  }
  const auto fileSize = static_cast<uint64_t>(st.st_size);
  if (fileSize > std::numeric_limits<size_t>::max()) {
    ::close(fd);
    return fail("file is " + std::to_string(fileSize) +
                " bytes, too large to map");
  }
  if (fileSize == 0) {
    // mmap refuses a zero length; an empty file simply has no bytes.
    ::close(fd);
    return true;
  }
  void *map = ::mmap(nullptr, static_cast<size_t>(fileSize), PROT_READ,
                     MAP_PRIVATE, fd, 0);
  const int mapErr = errno;
  ::close(fd);
  if (map == MAP_FAILED)
    return fail("cannot map " + std::to_string(fileSize) +
                " bytes: " + errnoText(mapErr));
  mapping_ = static_cast<const uint8_t *>(map);
  mappingSize_ = static_cast<size_t>(fileSize);
  return true;
}

void TensorFile::buildIndex() {
  index_.clear();
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i)
    index_.emplace_back(tensors_[i].name, i);
  std::sort(index_.begin(), index_.end());
}

const TensorInfo *TensorFile::find(std::string_view name) const {
  auto it = std::lower_bound(
      index_.begin(), index_.end(), name,
      [](const std::pair<std::string_view, size_t> &entry,
         std::string_view key) { return entry.first < key; });
  if (it == index_.end() || it->first != name)
    return nullptr;
  return &tensors_[it->second];
}

const uint8_t *TensorFile::data(const TensorInfo &t) const {
  if (!mapping_ || t.begin > t.end || t.end > dataSize_)
    return nullptr;
  return mapping_ + dataOffset_ + t.begin;
}

void TensorFile::releasePages(const TensorInfo &t) const {
  if (!mapping_ || t.begin >= t.end || t.end > dataSize_)
    return;
  // madvise works on whole pages: widen to every page the tensor touches.
  // Dropping a neighbour's bytes on a shared edge page costs at most a
  // re-read; the mapping is private and never written, so nothing is lost.
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t first = (dataOffset_ + t.begin) / page * page;
  const uint64_t last = (dataOffset_ + t.end + page - 1) / page * page;
  ::madvise(const_cast<uint8_t *>(mapping_) + first,
            static_cast<size_t>(last - first), MADV_DONTNEED);
}

//===----------------------------------------------------------------------===//
// openTensorFile
//===----------------------------------------------------------------------===//

std::unique_ptr<TensorFile> openTensorFile(const std::string &path,
                                           std::string *error) {
  // The extension decides when it is explicit, so that a damaged file gets
  // its own format's diagnosis.
  auto endsWith = [&](const char *suffix) {
    size_t n = std::strlen(suffix);
    return path.size() >= n && path.compare(path.size() - n, n, suffix) == 0;
  };
  if (endsWith(".safetensors"))
    return SafetensorsFile::open(path, error);
  // Otherwise peek at the first bytes. A safetensors file starts with its header
  // length (little-endian u64) and the header's '{'. Byte 8 of a legacy
  // llama2.c file is the low byte of n_layers, which may well be '{' (123);
  // but bytes 4..7 are its hidden_dim, never 0 in a usable file, whereas a
  // safetensors header is at most 100 MB, so its length's high half is 0.
  uint8_t head[9] = {};
  ssize_t got = 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    do
      got = ::pread(fd, head, sizeof(head), 0);
    while (got < 0 && errno == EINTR);
    ::close(fd);
  }
  // Errors (a missing file, a directory) are reported by the reader below.
  const bool isSafetensors = got == static_cast<ssize_t>(sizeof(head)) &&
                             head[8] == '{' && head[4] == 0 && head[5] == 0 &&
                             head[6] == 0 && head[7] == 0;
  if (isSafetensors)
    return SafetensorsFile::open(path, error);
  return Llama2cFile::open(path, error);
}

} // namespace qnt::io
