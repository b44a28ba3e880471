//===- MemrefCopy.cpp - The memref copy the compiled code calls -----------===//
//
// MLIR lowers a memref.copy between non-contiguous layouts to a call of
// `memrefCopy(elementSize, source, destination)` with unranked descriptors
// ({rank, pointer to the ranked descriptor}); in the JIT it comes from
// libmlir_c_runner_utils. The runtime links no MLIR library, so it defines
// the function itself and exports it to the images it loads.
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstring>
#include <vector>

namespace {
struct UnrankedDescriptor {
  int64_t rank;
  void *descriptor;
};

/// A ranked descriptor's fields: {allocated, aligned, offset, sizes[rank],
/// strides[rank]}.
struct RankedView {
  char *aligned;
  int64_t offset;
  const int64_t *sizes;
  const int64_t *strides;

  RankedView(const UnrankedDescriptor &d) {
    auto *words = static_cast<int64_t *>(d.descriptor);
    aligned = reinterpret_cast<char *>(words[1]);
    offset = words[2];
    sizes = words + 3;
    strides = words + 3 + d.rank;
  }
};
} // namespace

extern "C" __attribute__((visibility("default"))) void
memrefCopy(int64_t elementSize, UnrankedDescriptor *source,
           UnrankedDescriptor *destination) {
  int64_t rank = source->rank;
  RankedView src(*source), dst(*destination);
  char *from = src.aligned + src.offset * elementSize;
  char *to = dst.aligned + dst.offset * elementSize;
  for (int64_t d = 0; d < rank; ++d)
    if (src.sizes[d] == 0)
      return;
  if (rank == 0) {
    std::memcpy(to, from, elementSize);
    return;
  }
  // Odometer over every dimension but the innermost, which is copied in one
  // memcpy when both sides are contiguous there.
  std::vector<int64_t> index(rank, 0);
  int64_t inner = src.sizes[rank - 1];
  bool contiguous =
      src.strides[rank - 1] == 1 && dst.strides[rank - 1] == 1;
  while (true) {
    int64_t srcOffset = 0, dstOffset = 0;
    for (int64_t d = 0; d < rank - 1; ++d) {
      srcOffset += index[d] * src.strides[d];
      dstOffset += index[d] * dst.strides[d];
    }
    if (contiguous) {
      std::memcpy(to + dstOffset * elementSize, from + srcOffset * elementSize,
                  inner * elementSize);
    } else {
      for (int64_t i = 0; i < inner; ++i)
        std::memcpy(to + (dstOffset + i * dst.strides[rank - 1]) * elementSize,
                    from + (srcOffset + i * src.strides[rank - 1]) *
                               elementSize,
                    elementSize);
    }
    int64_t d = rank - 2;
    for (; d >= 0; --d) {
      if (++index[d] < src.sizes[d])
        break;
      index[d] = 0;
    }
    if (d < 0)
      return;
  }
}
