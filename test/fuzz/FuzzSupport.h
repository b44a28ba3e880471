//===- FuzzSupport.h - Shared helpers of the libFuzzer targets --*- C++ -*-===//
//
// The readers take paths (they memory-map their files), so each fuzz input
// becomes an anonymous in-memory file reached through /proc/self/fd: no disk
// traffic and nothing left behind.
//
//===----------------------------------------------------------------------===//
#ifndef QNT_TEST_FUZZ_FUZZSUPPORT_H
#define QNT_TEST_FUZZ_FUZZSUPPORT_H

#include "qnt/io/TensorFile.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace qnt::fuzz {

/// An anonymous file holding a copy of a fuzz input, closed on destruction.
class MemoryFile {
public:
  MemoryFile(const uint8_t *data, size_t size) {
    fd_ = memfd_create("qnt-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) {
      perror("memfd_create");
      abort();
    }
    size_t written = 0;
    while (written < size) {
      ssize_t n = write(fd_, data + written, size - written);
      if (n <= 0) {
        perror("write");
        abort();
      }
      written += size_t(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemoryFile() { close(fd_); }
  MemoryFile(const MemoryFile &) = delete;
  MemoryFile &operator=(const MemoryFile &) = delete;

  const std::string &path() const { return path_; }

private:
  int fd_ = -1;
  std::string path_;
};

/// Reads every byte of every tensor of a successfully opened file, so that
/// an entry the reader let through outside the mapping is caught by ASan or
/// faults; returns a checksum the optimizer cannot drop.
inline uint64_t touchAllTensors(const io::TensorFile &file) {
  uint64_t sum = 0;
  for (const io::TensorInfo &t : file.tensors()) {
    if (t.numElements() < 0 ||
        t.numBytes() != uint64_t(t.numElements()) * io::dtypeSize(t.dtype))
      abort(); // The reader's contract: exact sizes after a successful open.
    const uint8_t *bytes = file.data(t);
    if (!bytes && t.numBytes())
      abort();
    for (uint64_t i = 0; i < t.numBytes(); ++i)
      sum += bytes[i];
  }
  return sum;
}

/// The contract of a tensor-file reader on one input: a failed open names
/// the file in its message, an opened file passes touchAllTensors, and
/// `extraCheck` (e.g. the configuration validates) holds.
template <typename File, typename Check>
int checkOpenedTensorFile(const MemoryFile &input,
                          const std::unique_ptr<File> &opened,
                          const std::string &error, Check extraCheck) {
  if (!opened) {
    if (error.rfind(input.path(), 0) != 0)
      abort(); // Every message names the file.
    return 0;
  }
  if (!extraCheck(*opened))
    abort();
  volatile uint64_t sum = touchAllTensors(*opened);
  (void)sum;
  return 0;
}

} // namespace qnt::fuzz

#endif // QNT_TEST_FUZZ_FUZZSUPPORT_H
