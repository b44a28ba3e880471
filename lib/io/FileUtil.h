//===- FileUtil.h - Private file helpers of QntIO ---------------*- C++ -*-===//
//
// Helpers shared by the readers and writers in lib/io: complete reads and
// writes that survive EINTR and short transfers, message formatting, and an
// atomically replaced output file. Not installed; IR-free like the rest of
// the library.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_LIB_IO_FILEUTIL_H
#define QNT_LIB_IO_FILEUTIL_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <sys/types.h>

#include "qnt/io/OutputFiles.h"

namespace qnt::io::detail {

/// strerror(err) as a std::string.
std::string errnoText(int err);

/// 'name' for messages: control bytes, quotes and backslashes are escaped as
/// \xNN and very long names are shortened, so a hostile file cannot make a
/// message unreadable.
std::string quote(std::string_view name);

/// The mode bits the process umask leaves from 0666, read without the race
/// of umask(2)'s set-and-restore. Falls back to 0644.
mode_t creationMode();

/// Writes all of [data, data + size) at the file offset. On failure returns
/// false with *err set to errno.
bool writeAll(int fd, const void *data, size_t size, int *err);

/// Writes all of [data, data + size) at `offset` without moving the file
/// offset.
bool pwriteAll(int fd, const void *data, size_t size, uint64_t offset,
               int *err);

/// Reads exactly `size` bytes at `offset`. On failure returns false with
/// *err set to errno, or to 0 if the file ended first.
bool preadAll(int fd, void *data, size_t size, uint64_t offset, int *err);

/// Directory part of `path` ("." for a bare name, "/" for "/name").
std::string parentDirectory(const std::string &path);

/// A file written under a temporary name next to its target and renamed
/// onto it only when complete, so that readers never see a partial file and
/// a failure leaves an existing target untouched. The destructor removes a
/// temporary that was not committed. A symbolic link is followed (its target
/// is replaced and the link kept); an existing path that is not a regular
/// file (/dev/null, /dev/full, a FIFO) is written through in place and never
/// replaced; a directory is refused. A target that did not exist is recorded
/// with recordCreatedFile() when committed.
class AtomicFile {
public:
  AtomicFile() = default;
  AtomicFile(const AtomicFile &) = delete;
  AtomicFile &operator=(const AtomicFile &) = delete;
  ~AtomicFile();

  /// Creates the temporary "<path>.tmp-XXXXXX". On failure returns false and
  /// sets *message (not prefixed with the path).
  bool create(const std::string &path, std::string *message);
  int fd() const { return fd_; }
  const std::string &tempPath() const { return tempPath_; }
  /// The message for a failed write of the temporary.
  std::string writeError(int err) const;
  /// Gives the temporary the umask-derived mode, fsyncs, closes and renames
  /// it onto the target, then fsyncs the directory (best effort). On
  /// failure returns false, sets *message and removes the temporary.
  bool commit(std::string *message);

private:
  void discard() noexcept;

  std::string path_;
  /// The target existed when create() was called (else commit() records it
  /// with recordCreatedFile).
  bool existed_ = false;
  /// The target is not a regular file (a device such as /dev/null, a FIFO):
  /// it is written through, never replaced.
  bool inPlace_ = false;
  std::string tempPath_;
  int fd_ = -1;
};

} // namespace qnt::io::detail

#endif // QNT_LIB_IO_FILEUTIL_H
