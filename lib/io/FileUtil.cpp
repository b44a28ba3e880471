//===- FileUtil.cpp - Private file helpers of QntIO -----------------------===//

#include "FileUtil.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qnt::io::detail {

namespace {
/// Largest single read/write request; Linux transfers at most about 2 GiB
/// per call anyway.
constexpr size_t kMaxChunk = size_t(1) << 30;
} // namespace

std::string errnoText(int err) { return std::strerror(err); }

std::string quote(std::string_view name) {
  constexpr size_t kMaxShown = 200;
  bool truncated = false;
  if (name.size() > kMaxShown) {
    size_t cut = kMaxShown;
    // Do not split a UTF-8 sequence.
    while (cut > 0 && (static_cast<uint8_t>(name[cut]) & 0xC0) == 0x80)
      --cut;
    name = name.substr(0, cut);
    truncated = true;
  }
  std::string out = "'";
  for (char ch : name) {
    const auto c = static_cast<uint8_t>(ch);
    if (c < 0x20 || c == 0x7F || c == '\\' || c == '\'') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += truncated ? "...'" : "'";
  return out;
}

mode_t creationMode() {
  mode_t mask = 022;
  if (FILE *f = std::fopen("/proc/self/status", "re")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f)) {
      unsigned value;
      if (std::sscanf(line, "Umask: %o", &value) == 1) {
        mask = static_cast<mode_t>(value) & 0777;
        break;
      }
    }
    std::fclose(f);
  }
  return 0666 & ~mask;
}

bool writeAll(int fd, const void *data, size_t size, int *err) {
  const auto *p = static_cast<const uint8_t *>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min(size, kMaxChunk));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      *err = errno;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool pwriteAll(int fd, const void *data, size_t size, uint64_t offset,
               int *err) {
  const auto *p = static_cast<const uint8_t *>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, std::min(size, kMaxChunk),
                               static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      *err = errno;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

bool preadAll(int fd, void *data, size_t size, uint64_t offset, int *err) {
  auto *p = static_cast<uint8_t *>(data);
  while (size > 0) {
    const ssize_t n = ::pread(fd, p, std::min(size, kMaxChunk),
                              static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      *err = errno;
      return false;
    }
    if (n == 0) {
      *err = 0;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

std::string parentDirectory(const std::string &path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

//===----------------------------------------------------------------------===//
// AtomicFile
//===----------------------------------------------------------------------===//

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  if (!tempPath_.empty())
    ::unlink(tempPath_.c_str());
  tempPath_.clear();
}

bool AtomicFile::create(const std::string &path, std::string *message) {
  discard();
  path_ = path;
  inPlace_ = false;
  struct stat st;
  existed_ = ::stat(path.c_str(), &st) == 0; // Follows symbolic links.
  if (existed_) {
    if (S_ISDIR(st.st_mode)) {
      *message = "is a directory";
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      // A device, FIFO or socket: renaming over it would replace the node
      // (as root, /dev/null with a regular file). Write through it instead.
      fd_ = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
      if (fd_ < 0) {
        *message = "cannot open for writing: " + errnoText(errno);
        return false;
      }
      inPlace_ = true;
      return true;
    }
    // A symbolic link is followed: its target is replaced, the link kept.
    if (char *real = ::realpath(path.c_str(), nullptr)) {
      path_ = real;
      ::free(real);
    }
  } else {
    struct stat link;
    if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      *message = "is a symbolic link to a missing file; refusing to replace "
                 "the link";
      return false;
    }
  }
  // Next to the target, so that the rename stays on one filesystem.
  const std::string templ = path_ + ".tmp-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  fd_ = ::mkstemp(name.data());
  if (fd_ < 0) {
    *message = "cannot create temporary file " + quote(templ) + ": " +
               errnoText(errno);
    return false;
  }
  tempPath_ = name.data();
  ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
  return true;
}

std::string AtomicFile::writeError(int err) const {
  if (inPlace_)
    return "cannot write: " + errnoText(err);
  return "cannot write temporary file " + quote(tempPath_) + ": " +
         errnoText(err);
}

bool AtomicFile::commit(std::string *message) {
  if (inPlace_) {
    // Nothing to rename or sync (fsync fails on /dev/null); a device's
    // close can still report a deferred write error.
    const int closeResult = ::close(fd_);
    fd_ = -1;
    if (closeResult != 0) {
      *message = "cannot close: " + errnoText(errno);
      return false;
    }
    return true;
  }
  auto fail = [&](const char *what, int err) {
    *message = std::string("cannot ") + what + " temporary file " +
               quote(tempPath_) + ": " + errnoText(err);
    discard();
    return false;
  };
  if (::fchmod(fd_, creationMode()) != 0)
    return fail("set the mode of", errno);
  if (::fsync(fd_) != 0)
    return fail("fsync", errno);
  const int closeResult = ::close(fd_);
  const int closeErr = errno;
  fd_ = -1;
  if (closeResult != 0)
    return fail("close", closeErr);
  if (::rename(tempPath_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    *message = "cannot rename temporary file " + quote(tempPath_) +
               " onto it: " + errnoText(err);
    discard();
    return false;
  }
  tempPath_.clear(); // Nothing left to clean up.
  if (!existed_)
    recordCreatedFile(path_);

  // Make the rename durable. Best effort: the file is already complete and
  // in place, so a failure here is not reported.
  const std::string dir = parentDirectory(path_);
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return true;
}

} // namespace qnt::io::detail

//===----------------------------------------------------------------------===//
// Created outputs
//===----------------------------------------------------------------------===//

namespace {
std::mutex createdFilesMutex;
std::vector<std::string> &createdFiles() {
  static std::vector<std::string> files;
  return files;
}
} // namespace

void qnt::io::recordCreatedFile(const std::string &path) {
  std::lock_guard<std::mutex> lock(createdFilesMutex);
  createdFiles().push_back(path);
}

void qnt::io::removeCreatedFiles() {
  std::lock_guard<std::mutex> lock(createdFilesMutex);
  for (const std::string &path : createdFiles()) {
    struct stat st;
    // Only regular files are removed: whatever replaced a created file
    // since (a directory, a device) is not ours.
    if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
      ::unlink(path.c_str());
  }
  createdFiles().clear();
}

std::string qnt::io::checkOutputPath(const std::string &path) {
  if (path.empty())
    return "the output path is empty";
  if (path == "-")
    return "";
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return path + ": is a directory";
    return ::access(path.c_str(), W_OK) == 0
               ? ""
               : path + ": cannot write: " + detail::errnoText(errno);
  }
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
    return path + ": is a symbolic link to a missing file; refusing to "
                  "replace the link";
  const std::string dir = detail::parentDirectory(path);
  if (::stat(dir.c_str(), &st) != 0)
    return path + ": cannot create: directory " + detail::quote(dir) + " " +
           (errno == ENOENT ? std::string("does not exist")
                            : "cannot be read: " + detail::errnoText(errno));
  if (!S_ISDIR(st.st_mode))
    return path + ": cannot create: " + detail::quote(dir) +
           " is not a directory";
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return path + ": cannot create in " + detail::quote(dir) + ": " +
           detail::errnoText(errno);
  return "";
}
