//===- Packing.cpp - LSB-first bitstream packing --------------------------===//
//
// packBits/unpackBits: the one bitstream format of every sub-byte component
// ("codes" of uniform and minifloat encodings, binary "signs"). Element k of
// a row occupies stream bits [k*bits, (k+1)*bits), stream bit i is bit i % 8
// of byte i / 8, and every row starts on a byte boundary. Bits past the last
// element of a row are zero when packed and ignored when unpacked.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"

#include "NumericsInternal.h"

namespace qnt::numerics {

namespace {

void checkPackShape(int64_t rows, int64_t cols, int bits) {
  if (bits < 1 || bits > 32)
    detail::fail("packed code width must be in 1..32 bits, got " +
                 std::to_string(bits));
  if (rows < 0 || cols < 0)
    detail::fail("packed matrix shape " + std::to_string(rows) + "x" +
                 std::to_string(cols) + " is negative");
}

} // namespace

std::vector<uint8_t> packBits(const std::vector<uint32_t> &codes, int64_t rows,
                              int64_t cols, int bits) {
  checkPackShape(rows, cols, bits);
  if (static_cast<int64_t>(codes.size()) != rows * cols)
    detail::fail("packBits got " + std::to_string(codes.size()) +
                 " codes for a " + std::to_string(rows) + "x" +
                 std::to_string(cols) + " matrix");
  const int64_t rowBytes = packedRowBytes(cols, bits);
  const uint64_t limit = uint64_t(1) << bits;
  std::vector<uint8_t> packed(rows * rowBytes, 0);
  for (int64_t n = 0; n < rows; ++n) {
    uint8_t *dst = packed.data() + n * rowBytes;
    // Fewer than 8 pending bits before each append, so at most 39 in use.
    uint64_t pending = 0;
    int numPending = 0;
    for (int64_t k = 0; k < cols; ++k) {
      uint32_t code = codes[n * cols + k];
      if (code >= limit)
        detail::fail("code " + std::to_string(code) + " at [" +
                     std::to_string(n) + ", " + std::to_string(k) +
                     "] does not fit in " + std::to_string(bits) + " bits");
      pending |= uint64_t(code) << numPending;
      numPending += bits;
      for (; numPending >= 8; numPending -= 8, pending >>= 8)
        *dst++ = static_cast<uint8_t>(pending);
    }
    if (numPending > 0)
      *dst = static_cast<uint8_t>(pending);
  }
  return packed;
}

std::vector<uint32_t> unpackBits(const uint8_t *packed, int64_t rows,
                                 int64_t cols, int bits) {
  checkPackShape(rows, cols, bits);
  const int64_t rowBytes = packedRowBytes(cols, bits);
  const uint64_t mask = (uint64_t(1) << bits) - 1;
  std::vector<uint32_t> codes(rows * cols);
  for (int64_t n = 0; n < rows; ++n) {
    // Bytes are pulled only when needed, so exactly rowBytes are read.
    const uint8_t *src = packed + n * rowBytes;
    uint64_t pending = 0;
    int numPending = 0;
    for (int64_t k = 0; k < cols; ++k) {
      for (; numPending < bits; numPending += 8)
        pending |= uint64_t(*src++) << numPending;
      codes[n * cols + k] = static_cast<uint32_t>(pending & mask);
      pending >>= bits;
      numPending -= bits;
    }
  }
  return codes;
}

} // namespace qnt::numerics
