//===- Checksum.h - CRC-32C of buffers and files -----------------*- C++ -*-===//
//
// CRC-32C (Castagnoli, the checksum of iSCSI, ext4 and SCTP): what an
// artifact's manifest records for each of its files and what the runtime
// checks them against. It is IR-free and LLVM-free, so the packager and the
// runtime share one implementation. On x86 with SSE4.2 it runs on the crc32
// instruction (several GB/s, a small fraction of a model's load time);
// elsewhere on a table.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_CHECKSUM_H
#define QNT_IO_CHECKSUM_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace qnt::io {

/// CRC-32C of `size` bytes at `data`, continuing from `crc` (0 to start).
/// crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void *data, size_t size, uint32_t crc = 0);

/// CRC-32C and size of the file at `path`. Returns false and sets *error
/// (starting with the path) when it cannot be read.
bool fileCrc32c(const std::string &path, uint32_t &crc, uint64_t &size,
                std::string *error);

/// `crc` as 8 lowercase hexadecimal digits (the manifest's spelling).
std::string crc32cHex(uint32_t crc);

} // namespace qnt::io

#endif // QNT_IO_CHECKSUM_H
