//===- Checksum.cpp - CRC-32C of buffers and files ------------------------===//
//
// See Checksum.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Checksum.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

using namespace qnt::io;

/// Reflected Castagnoli polynomial.
static constexpr uint32_t kPolynomial = 0x82F63B78u;

static const std::array<uint32_t, 256> &crcTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int bit = 0; bit < 8; ++bit)
        c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

static uint32_t crcBytes(const uint8_t *p, size_t n, uint32_t c) {
  const std::array<uint32_t, 256> &table = crcTable();
  for (size_t i = 0; i < n; ++i)
    c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
/// The crc32 instruction, eight bytes at a time. Compiled for SSE4.2 on its
/// own so that the rest of the library keeps the build's baseline ISA.
__attribute__((target("sse4.2"))) static uint32_t
crcHardware(const uint8_t *p, size_t n, uint32_t c) {
  uint64_t c64 = c;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c64 = _mm_crc32_u64(c64, word);
  }
  c = uint32_t(c64);
  for (; n > 0; --n, ++p)
    c = _mm_crc32_u8(c, *p);
  return c;
}
#endif

uint32_t qnt::io::crc32c(const void *data, size_t size, uint32_t crc) {
  const auto *p = static_cast<const uint8_t *>(data);
  uint32_t c = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware)
    return ~crcHardware(p, size, c);
#endif
  return ~crcBytes(p, size, c);
}

bool qnt::io::fileCrc32c(const std::string &path, uint32_t &crc,
                         uint64_t &size, std::string *error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error)
      *error = path + ": " + std::strerror(errno);
    return false;
  }
  std::vector<uint8_t> buffer(size_t(4) << 20);
  crc = 0;
  size = 0;
  while (true) {
    ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      if (error)
        *error = path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (got == 0)
      break;
    crc = crc32c(buffer.data(), size_t(got), crc);
    size += uint64_t(got);
  }
  ::close(fd);
  return true;
}

std::string qnt::io::crc32cHex(uint32_t crc) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", crc);
  return text;
}
