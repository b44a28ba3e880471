//===- Safetensors.cpp - Validating safetensors reader and writer ---------===//
//
// The header is parsed with nlohmann-json's SAX interface rather than into a
// DOM: the handler below checks the structure as the events arrive, so it can
// stop at the first problem (a duplicate key, a nested value where a number
// belongs, ...) with a message naming the tensor and field, it never nests
// deeper than a valid header does, and it keeps the header order of the
// entries. Everything numeric (offsets, sizes, coverage of the data section)
// is checked afterwards on the collected entries. The mapping itself and the
// name index belong to the TensorFile base.
//
// In spill mode the writer keeps only the header entries in memory and the
// data in an unlinked temporary file, so that shards of any size are written
// with one tensor in memory; write() then moves the data with
// copy_file_range, which stays in the kernel (or shares extents) when the
// spill file and the target are on one filesystem.
//
// Exceptions are used only inside this file (nlohmann-json may throw, and
// allocation may fail); every public entry point catches them and reports an
// error through its return value.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Safetensors.h"

#include "FileUtil.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <numeric>
#include <unordered_set>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace qnt::io {

using detail::AtomicFile;
using detail::errnoText;
using detail::preadAll;
using detail::pwriteAll;
using detail::quote;
using detail::writeAll;

namespace {

/// Headers larger than this are rejected (the limit of the reference
/// implementation).
constexpr uint64_t kMaxHeaderSize = 100'000'000;

/// Size of the little-endian u64 header-length prefix.
constexpr uint64_t kPrefixSize = 8;

constexpr const char *kMetadataKey = "__metadata__";

void setError(std::string *error, std::string message) {
  if (error)
    *error = std::move(message);
}

/// Strict UTF-8 check: no overlong forms, no surrogates, nothing past
/// U+10FFFF.
bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len)
      return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

template <typename T> std::string formatShape(const std::vector<T> &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string formatRange(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

//===----------------------------------------------------------------------===//
// Header SAX handler
//===----------------------------------------------------------------------===//

/// One header entry as written, before numeric validation.
struct RawTensor {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::vector<uint64_t> offsets;
  unsigned seen = 0;  // Field bits.
};

constexpr unsigned kDType = 1, kShape = 2, kOffsets = 4;  // Field bits.

const char *fieldName(unsigned field) {
  switch (field) {
  case kDType:
    return "dtype";
  case kShape:
    return "shape";
  case kOffsets:
    return "data_offsets";
  default:
    return "?";
  }
}

/// Checks the structure of the header as nlohmann-json reports it. Any
/// problem sets `error` and returns false, which stops the parser at once.
/// Valid headers nest at most three containers deep (root object, entry
/// object, shape/data_offsets array); anything deeper is refused as soon as
/// it opens, so the parser's own stacks stay tiny whatever the input.
class HeaderHandler {
public:
  using json = nlohmann::json;

  std::vector<RawTensor> tensors;
  std::map<std::string, std::string> metadata;
  std::string error;
  bool isParseError = false;

  bool null() { return unexpected("null"); }
  bool boolean(bool) { return unexpected("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    // Only negative numbers (and -0) arrive here; non-negative ones come
    // through number_unsigned.
    return unexpected("the number " + (v == 0 ? std::string("-0")
                                              : std::to_string(v)));
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (top() == Ctx::Array) {
      RawTensor &t = tensors.back();
      (field_ == kShape ? t.shape : t.offsets).push_back(v);
      ++arrayIndex_;
      return true;
    }
    return unexpected("the number " + std::to_string(v));
  }
  bool number_float(json::number_float_t, const std::string &token) {
    return unexpected("the number " + token);
  }
  bool string(std::string &s) {
    if (top() == Ctx::Metadata) {
      metadata.emplace(metaKey_, std::move(s));
      return true;
    }
    if (top() == Ctx::Entry && field_ == kDType) {
      tensors.back().dtype = std::move(s);
      return true;
    }
    return unexpected("a string");
  }
  bool binary(json::binary_t &) { return unexpected("binary data"); }

  bool start_object(std::size_t) {
    if (stack_.empty()) {
      stack_.push_back(Ctx::Root);
      return true;
    }
    if (top() == Ctx::Root) {
      if (rootKey_ == kMetadataKey) {
        stack_.push_back(Ctx::Metadata);
      } else {
        tensors.emplace_back();
        tensors.back().name = rootKey_;
        stack_.push_back(Ctx::Entry);
      }
      return true;
    }
    return unexpected("an object");
  }

  bool key(std::string &k) {
    switch (top()) {
    case Ctx::Root:
      if (!rootKeys_.insert(k).second)
        return fail(k == kMetadataKey
                        ? std::string("header has two \"__metadata__\" entries")
                        : "header has two entries for tensor " + quote(k));
      rootKey_ = std::move(k);
      return true;
    case Ctx::Metadata:
      if (metadata.count(k))
        return fail("__metadata__ has two entries for key " + quote(k));
      metaKey_ = std::move(k);
      return true;
    case Ctx::Entry: {
      unsigned field = k == "dtype"          ? kDType
                       : k == "shape"        ? kShape
                       : k == "data_offsets" ? kOffsets
                                             : 0;
      RawTensor &t = tensors.back();
      if (!field)
        return fail("tensor " + quote(t.name) + " has unknown field " +
                    quote(k) + " (expected dtype, shape, data_offsets)");
      if (t.seen & field)
        return fail("tensor " + quote(t.name) + " has two '" +
                    fieldName(field) + "' fields");
      t.seen |= field;
      field_ = field;
      return true;
    }
    case Ctx::Array:
    case Ctx::None:
      break;
    }
    return fail("unexpected key " + quote(k));  // Not reachable.
  }

  bool end_object() {
    if (top() == Ctx::Entry) {
      const RawTensor &t = tensors.back();
      for (unsigned field : {kDType, kShape, kOffsets})
        if (!(t.seen & field))
          return fail("tensor " + quote(t.name) + " has no '" +
                      fieldName(field) + "' field");
    }
    stack_.pop_back();
    return true;
  }

  bool start_array(std::size_t) {
    if (top() == Ctx::Entry && (field_ == kShape || field_ == kOffsets)) {
      stack_.push_back(Ctx::Array);
      arrayIndex_ = 0;
      return true;
    }
    return unexpected("an array");
  }

  bool end_array() {
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t, const std::string &,
                   const nlohmann::json::exception &ex) {
    // Drop the "[json.exception.parse_error.101] " prefix.
    std::string what = ex.what();
    const size_t pos = what.find("] ");
    if (what.rfind("[json.exception.", 0) == 0 && pos != std::string::npos)
      what.erase(0, pos + 2);
    isParseError = true;
    return fail("header is not valid JSON: " + what);
  }

private:
  enum class Ctx { None, Root, Metadata, Entry, Array };

  Ctx top() const { return stack_.empty() ? Ctx::None : stack_.back(); }

  bool fail(std::string message) {
    if (error.empty())
      error = std::move(message);
    return false;
  }

  /// Where the value being reported sits, e.g. "tensor 'w' field 'dtype'".
  std::string where() const {
    switch (top()) {
    case Ctx::None:
      return "header";
    case Ctx::Root:
      return rootKey_ == kMetadataKey ? std::string("__metadata__")
                                      : "tensor " + quote(rootKey_) + " entry";
    case Ctx::Metadata:
      return "__metadata__ value for key " + quote(metaKey_);
    case Ctx::Entry:
      return "tensor " + quote(tensors.back().name) + " field '" +
             fieldName(field_) + "'";
    case Ctx::Array:
      return "tensor " + quote(tensors.back().name) + " " + fieldName(field_) +
             " element " + std::to_string(arrayIndex_);
    }
    return "header";
  }

  /// What belongs where the value being reported sits.
  const char *expected() const {
    switch (top()) {
    case Ctx::None:
    case Ctx::Root:
      return "an object";
    case Ctx::Metadata:
      return "a string";
    case Ctx::Entry:
      return field_ == kDType ? "a string"
             : field_ == kShape
                 ? "an array of non-negative integers"
                 : "an array of two non-negative integers [begin, end]";
    case Ctx::Array:
      return "a non-negative integer";
    }
    return "something else";
  }

  bool unexpected(const std::string &what) {
    return fail(where() + " is " + what + ", expected " + expected());
  }

  std::vector<Ctx> stack_;
  std::unordered_set<std::string> rootKeys_;
  std::string rootKey_;
  std::string metaKey_;
  unsigned field_ = 0;
  size_t arrayIndex_ = 0;
};

} // namespace

//===----------------------------------------------------------------------===//
// SafetensorsFile
//===----------------------------------------------------------------------===//

SafetensorsFile::SafetensorsFile(SafetensorsFile &&other) noexcept
    : TensorFile(std::move(other)), headerSize_(other.headerSize_),
      metadata_(std::move(other.metadata_)) {
  other.headerSize_ = 0;
}

SafetensorsFile &SafetensorsFile::operator=(SafetensorsFile &&other) noexcept {
  if (this != &other) {
    TensorFile::operator=(std::move(other));
    headerSize_ = other.headerSize_;
    metadata_ = std::move(other.metadata_);
    other.headerSize_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() = default;

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string &path,
                                                       std::string *error) {
  auto fail = [&](const std::string &message) {
    setError(error, path + ": " + message);
    return nullptr;
  };
  try {
    std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
    if (!file->mapFile(path, error))
      return nullptr;
    const uint64_t fileSize = file->mappingSize_;
    if (fileSize < kPrefixSize)
      return fail("file is " + std::to_string(fileSize) +
                  " bytes, shorter than the 8-byte header length prefix");
    const uint8_t *bytes = file->mapping_;

    // Header length.
    uint64_t headerSize = 0;
    for (int i = 7; i >= 0; --i)
      headerSize = (headerSize << 8) | bytes[i];
    const uint64_t available = fileSize - kPrefixSize;
    if (headerSize == 0)
      return fail("header length is 0");
    if (headerSize > kMaxHeaderSize)
      return fail("header length " + std::to_string(headerSize) +
                  " exceeds the " + std::to_string(kMaxHeaderSize) +
                  "-byte limit");
    if (headerSize > available)
      return fail("header length " + std::to_string(headerSize) +
                  " exceeds the " + std::to_string(available) +
                  " bytes after the 8-byte length prefix");
    file->headerSize_ = headerSize;
    const uint64_t dataSize = available - headerSize;
    file->dataOffset_ = kPrefixSize + headerSize;
    file->dataSize_ = dataSize;

    // Header structure.
    const char *header = reinterpret_cast<const char *>(bytes + kPrefixSize);
    if (header[0] != '{') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "0x%02X",
                    static_cast<unsigned>(static_cast<uint8_t>(header[0])));
      return fail(std::string("header does not start with '{' (first byte is ") +
                  buf + ")");
    }
    // nlohmann-json stops reading at a NUL byte as if the input ended there,
    // which would silently accept anything after it. A NUL is never valid
    // in JSON text (not even inside a string), so refuse it up front.
    if (const void *nul = std::memchr(header, 0, headerSize))
      return fail("header is not valid JSON: NUL byte at offset " +
                  std::to_string(static_cast<const char *>(nul) - header));
    HeaderHandler handler;
    const bool parsed = nlohmann::json::sax_parse(
        header, header + headerSize, &handler, nlohmann::json::input_format_t::json,
        /*strict=*/true, /*ignore_comments=*/false);
    if (!parsed || !handler.error.empty())
      return fail(handler.error.empty() ? std::string("header is not valid JSON")
                                        : handler.error);
    file->metadata_ = std::move(handler.metadata);

    // Per-tensor numbers.
    std::vector<TensorInfo> &tensors = file->tensors_;
    tensors.reserve(handler.tensors.size());
    for (RawTensor &raw : handler.tensors) {
      const std::string name = "tensor " + quote(raw.name);
      std::optional<DType> dtype = parseDType(raw.dtype);
      if (!dtype)
        return fail(name + " has unsupported dtype " + quote(raw.dtype));
      for (size_t i = 0; i < raw.shape.size(); ++i)
        if (raw.shape[i] >
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          return fail(name + " shape dimension " + std::to_string(i) + " is " +
                      std::to_string(raw.shape[i]) +
                      ", larger than 2^63 - 1");
      if (raw.offsets.size() != 2)
        return fail(name + " data_offsets has " +
                    std::to_string(raw.offsets.size()) +
                    " values, expected 2 [begin, end]");
      const uint64_t begin = raw.offsets[0], end = raw.offsets[1];
      const std::string range = "data_offsets " + formatRange(begin, end);
      if (begin > end)
        return fail(name + " " + range + " begin after end");
      if (end > dataSize)
        return fail(name + " " + range + " exceed the " +
                    std::to_string(dataSize) + "-byte data section");
      uint64_t elements = 1;
      if (std::find(raw.shape.begin(), raw.shape.end(), 0) != raw.shape.end()) {
        elements = 0;
      } else {
        for (uint64_t d : raw.shape)
          if (__builtin_mul_overflow(elements, d, &elements))
            return fail(name + " shape " + formatShape(raw.shape) +
                        " has more than 2^64 - 1 elements");
      }
      uint64_t numBytes;
      if (__builtin_mul_overflow(elements,
                                 static_cast<uint64_t>(dtypeSize(*dtype)),
                                 &numBytes))
        return fail(name + " shape " + formatShape(raw.shape) + " of " +
                    dtypeName(*dtype) + " needs more than 2^64 - 1 bytes");
      if (numBytes != end - begin)
        return fail(name + " shape " + formatShape(raw.shape) + " of " +
                    dtypeName(*dtype) + " needs " + std::to_string(numBytes) +
                    " bytes but " + range + " span " +
                    std::to_string(end - begin) + " bytes");
      TensorInfo info;
      info.name = std::move(raw.name);
      info.dtype = *dtype;
      // Every dimension is <= 2^63 - 1 (checked above).
      info.shape.assign(raw.shape.begin(), raw.shape.end());
      info.begin = begin;
      info.end = end;
      tensors.push_back(std::move(info));
    }

    // The tensors must tile the data section: sorted by offset, the first
    // begins at 0, each begins where the previous ends, the last ends at the
    // end of the section. Zero-byte tensors may share an offset.
    std::vector<size_t> order(tensors.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::make_pair(tensors[a].begin, tensors[a].end) <
             std::make_pair(tensors[b].begin, tensors[b].end);
    });
    uint64_t covered = 0;
    const TensorInfo *prev = nullptr;
    for (size_t i : order) {
      const TensorInfo &t = tensors[i];
      if (t.begin > covered)
        return fail(
            "bytes " + formatRange(covered, t.begin) +
            " of the data section belong to no tensor (" +
            (prev ? "between tensor " + quote(prev->name) + " and tensor "
                  : std::string("before tensor ")) +
            quote(t.name) + ")");
      if (t.begin < covered) {
        const std::string which = "tensor " + quote(t.name) + " data_offsets " +
                                  formatRange(t.begin, t.end);
        const std::string other = "tensor " + quote(prev->name) +
                                  " data_offsets " +
                                  formatRange(prev->begin, prev->end);
        if (t.begin == t.end)  // A zero-byte tensor strictly inside another.
          return fail(which + " lie inside " + other);
        return fail(which + " overlap " + other + " by " +
                    std::to_string(std::min(covered, t.end) - t.begin) +
                    " bytes");
      }
      covered = t.end;
      prev = &t;
    }
    if (covered != dataSize)
      return fail(prev ? "bytes " + formatRange(covered, dataSize) +
                             " at the end of the " + std::to_string(dataSize) +
                             "-byte data section belong to no tensor"
                       : "header lists no tensors but the data section has " +
                             std::to_string(dataSize) + " bytes");

    file->buildIndex();
    return file;
  } catch (const std::bad_alloc &) {
    return fail("out of memory while reading the header");
  } catch (const std::exception &e) {
    return fail(std::string("unexpected error: ") + e.what());
  }
}

//===----------------------------------------------------------------------===//
// SafetensorsWriter
//===----------------------------------------------------------------------===//

/// The anonymous file that holds the tensors' data in spill mode.
struct SafetensorsWriter::SpillFile {
  int fd = -1;
  std::string dir;
  ~SpillFile() {
    if (fd >= 0)
      ::close(fd);
  }
};

SafetensorsWriter::SafetensorsWriter() = default;
SafetensorsWriter::SafetensorsWriter(SafetensorsWriter &&) noexcept = default;
SafetensorsWriter &
SafetensorsWriter::operator=(SafetensorsWriter &&) noexcept = default;
SafetensorsWriter::~SafetensorsWriter() = default;

bool SafetensorsWriter::isSpilling() const { return spill_ != nullptr; }

bool SafetensorsWriter::setSpillDirectory(const std::string &dir,
                                          std::string *error) {
  if (spill_)
    return true;
  try {
    auto spill = std::make_unique<SpillFile>();
    spill->dir = dir;
    const std::string templ = dir + "/.qnt-spill-XXXXXX";
    std::vector<char> name(templ.begin(), templ.end());
    name.push_back('\0');
    spill->fd = ::mkstemp(name.data());
    if (spill->fd < 0) {
      setError(error, dir + ": cannot create spill file: " + errnoText(errno));
      return false;
    }
    // Unlinked at once: nothing is left behind whatever happens to the
    // process, and the space is returned when the descriptor is closed.
    ::unlink(name.data());
    ::fcntl(spill->fd, F_SETFD, FD_CLOEXEC);

    // Move what was added so far, back to back in add() order.
    uint64_t offset = 0;
    for (const Entry &e : entries_) {
      int err = 0;
      if (!pwriteAll(spill->fd, e.bytes.data(), e.bytes.size(), offset,
                     &err)) {
        setError(error, dir + ": cannot write spill file: " + errnoText(err));
        return false;
      }
      offset += e.bytes.size();
    }
    for (Entry &e : entries_)
      std::vector<uint8_t>().swap(e.bytes);
    spill_ = std::move(spill);
    return true;
  } catch (const std::bad_alloc &) {
    setError(error, dir + ": out of memory");
    return false;
  }
}

bool SafetensorsWriter::add(const std::string &name, DType dtype,
                            std::vector<int64_t> shape, const void *bytes,
                            size_t numBytes, std::string *error) {
  try {
    const std::string what = "tensor " + quote(name);
    if (name.empty()) {
      setError(error, "tensor name is empty");
      return false;
    }
    if (name == kMetadataKey) {
      setError(error, "tensor name '__metadata__' is reserved");
      return false;
    }
    if (!isValidUtf8(name)) {
      setError(error, what + " name is not valid UTF-8");
      return false;
    }
    if (names_.count(name)) {
      setError(error, what + " was already added");
      return false;
    }
    if (dtypeSize(dtype) == 0) {
      setError(error, what + " has an invalid dtype value " +
                          std::to_string(static_cast<int>(dtype)));
      return false;
    }
    TensorInfo info;
    info.shape = shape;
    for (int64_t d : shape)
      if (d < 0) {
        setError(error, what + " shape " + formatShape(shape) +
                            " has a negative dimension");
        return false;
      }
    const int64_t elements = info.numElements();
    int64_t expected;
    if (elements < 0 ||
        __builtin_mul_overflow(elements, dtypeSize(dtype), &expected)) {
      setError(error, what + " shape " + formatShape(shape) + " of " +
                          dtypeName(dtype) + " has more than 2^63 - 1 bytes");
      return false;
    }
    if (static_cast<uint64_t>(expected) != numBytes) {
      setError(error, what + " shape " + formatShape(shape) + " of " +
                          dtypeName(dtype) + " needs " +
                          std::to_string(expected) + " bytes, got " +
                          std::to_string(numBytes));
      return false;
    }
    if (numBytes > 0 && !bytes) {
      setError(error, what + " has " + std::to_string(numBytes) +
                          " bytes but a null data pointer");
      return false;
    }
    uint64_t newDataBytes;
    if (__builtin_add_overflow(dataBytes_, uint64_t(numBytes), &newDataBytes)) {
      setError(error, what + " would make the data section larger than "
                             "2^64 - 1 bytes");
      return false;
    }
    Entry entry;
    entry.name = name;
    entry.dtype = dtype;
    entry.shape = std::move(shape);
    entry.numBytes = numBytes;
    if (spill_) {
      // A failed write may leave bytes past dataBytes_; the next add
      // overwrites them and write() never reads past dataBytes_.
      int err = 0;
      if (!pwriteAll(spill_->fd, bytes, numBytes, dataBytes_, &err)) {
        setError(error, what + ": cannot write the spill file in " +
                            quote(spill_->dir) + ": " + errnoText(err));
        return false;
      }
    } else if (numBytes > 0) {
      const auto *p = static_cast<const uint8_t *>(bytes);
      entry.bytes.assign(p, p + numBytes);
    }
    names_.emplace(name, entries_.size());
    entries_.push_back(std::move(entry));
    dataBytes_ = newDataBytes;
    return true;
  } catch (const std::bad_alloc &) {
    setError(error, "tensor " + quote(name) + ": out of memory");
    return false;
  }
}

void SafetensorsWriter::setMetadata(const std::string &key,
                                    const std::string &value) {
  metadata_[key] = value;
}

bool SafetensorsWriter::buildHeader(std::string *header,
                                    std::string *error) const {
  using json = nlohmann::json;
  for (const auto &[key, value] : metadata_) {
    if (!isValidUtf8(key)) {
      setError(error, "__metadata__ key " + quote(key) +
                          " is not valid UTF-8");
      return false;
    }
    if (!isValidUtf8(value)) {
      setError(error, "__metadata__ value for key " + quote(key) +
                          " is not valid UTF-8");
      return false;
    }
  }
  std::string h = "{";
  if (!metadata_.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto &[key, value] : metadata_) {
      if (!first)
        h += ',';
      first = false;
      h += json(key).dump() + ":" + json(value).dump();
    }
    h += '}';
  }
  uint64_t offset = 0;
  for (const Entry &e : entries_) {
    if (h.size() > 1)
      h += ',';
    const uint64_t end = offset + e.numBytes;
    h += json(e.name).dump() + ":{\"dtype\":\"" + dtypeName(e.dtype) +
         "\",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) {
      if (i)
        h += ',';
      h += std::to_string(e.shape[i]);
    }
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," +
         std::to_string(end) + "]}";
    offset = end;
  }
  h += '}';
  // Pad so the data section starts 8-byte aligned.
  h.append((8 - h.size() % 8) % 8, ' ');
  if (h.size() > kMaxHeaderSize) {
    setError(error, "header would be " + std::to_string(h.size()) +
                        " bytes, over the " + std::to_string(kMaxHeaderSize) +
                        "-byte limit");
    return false;
  }
  *header = std::move(h);
  return true;
}

namespace {

/// The spill file could not be read back: an I/O error, or (err == 0) it
/// ended early, which means someone truncated it.
std::string spillReadError(int err) {
  return err ? "cannot read the spill file: " + errnoText(err)
             : std::string("the spill file is shorter than the data written "
                           "to it");
}

/// Copies [0, size) of `in` to the current offset of `out`, in the kernel
/// where it can. On failure sets *message.
bool copySpill(int in, int out, uint64_t size, const AtomicFile &target,
               std::string *message) {
  off_t inOffset = 0;
  uint64_t left = size;
  // copy_file_range fails with EXDEV across filesystems (on most kernels),
  // and with ENOSYS, EOPNOTSUPP or EINVAL where unsupported; then copy
  // through user space.
  bool inKernel = true;
  while (inKernel && left > 0) {
    const ssize_t n = ::copy_file_range(
        in, &inOffset, out, nullptr,
        static_cast<size_t>(std::min<uint64_t>(left, uint64_t(1) << 30)), 0);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR)
        continue;
      if (err == EXDEV || err == ENOSYS || err == EOPNOTSUPP ||
          err == EINVAL || err == EBADF) {
        inKernel = false;
        break;
      }
      *message = target.writeError(err);
      return false;
    }
    if (n == 0) {
      *message = spillReadError(0);
      return false;
    }
    left -= static_cast<uint64_t>(n);
  }
  if (left == 0)
    return true;
  constexpr size_t kBufferSize = size_t(4) << 20;
  std::vector<uint8_t> buffer(
      static_cast<size_t>(std::min<uint64_t>(left, kBufferSize)));
  uint64_t offset = static_cast<uint64_t>(inOffset);
  while (left > 0) {
    const auto chunk =
        static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
    int err = 0;
    if (!preadAll(in, buffer.data(), chunk, offset, &err)) {
      *message = spillReadError(err);
      return false;
    }
    if (!writeAll(out, buffer.data(), chunk, &err)) {
      *message = target.writeError(err);
      return false;
    }
    offset += chunk;
    left -= chunk;
  }
  return true;
}

void encodePrefix(uint64_t n, uint8_t prefix[8]) {
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<uint8_t>(n >> (8 * i));
}

} // namespace

bool SafetensorsWriter::serialize(std::vector<uint8_t> *out,
                                  std::string *error) const {
  try {
    std::string header;
    if (!buildHeader(&header, error))
      return false;
    out->clear();
    uint8_t prefix[8];
    encodePrefix(header.size(), prefix);
    out->insert(out->end(), prefix, prefix + 8);
    out->insert(out->end(), header.begin(), header.end());
    if (spill_) {
      const size_t start = out->size();
      out->resize(start + static_cast<size_t>(dataBytes_));
      int err = 0;
      if (!preadAll(spill_->fd, out->data() + start,
                    static_cast<size_t>(dataBytes_), 0, &err)) {
        out->clear();
        setError(error, spillReadError(err));
        return false;
      }
      return true;
    }
    for (const Entry &e : entries_)
      out->insert(out->end(), e.bytes.begin(), e.bytes.end());
    return true;
  } catch (const std::exception &e) {
    setError(error, std::string("cannot serialize: ") + e.what());
    return false;
  }
}

bool SafetensorsWriter::write(const std::string &path,
                              std::string *error) const {
  auto fail = [&](const std::string &message) {
    setError(error, path + ": " + message);
    return false;
  };
  try {
    std::string header, message;
    if (!buildHeader(&header, &message))
      return fail(message);

    AtomicFile file; // Removes the temporary on every early return.
    if (!file.create(path, &message))
      return fail(message);
    int err = 0;
    uint8_t prefix[8];
    encodePrefix(header.size(), prefix);
    bool ok = writeAll(file.fd(), prefix, sizeof(prefix), &err) &&
              writeAll(file.fd(), header.data(), header.size(), &err);
    for (size_t i = 0; ok && !spill_ && i < entries_.size(); ++i)
      ok = writeAll(file.fd(), entries_[i].bytes.data(),
                    entries_[i].bytes.size(), &err);
    if (!ok)
      return fail(file.writeError(err));
    if (spill_ &&
        !copySpill(spill_->fd, file.fd(), dataBytes_, file, &message))
      return fail(message);
    if (!file.commit(&message))
      return fail(message);
    return true;
  } catch (const std::bad_alloc &) {
    return fail("out of memory");
  } catch (const std::exception &e) {
    return fail(std::string("unexpected error: ") + e.what());
  }
}

} // namespace qnt::io
