//===- CompiledCode.h - Host side of calling compiled functions -*- C++ -*-===//
//
// What the JIT (CpuJit.cpp) and the artifact runtime (libqnt_runtime) both
// need to call code from qnt-cpu-pipeline: the C-interface memref
// descriptor of a contiguous buffer, and the malloc settings its temporaries
// want. Header-only, IR-free and LLVM-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_SUPPORT_COMPILEDCODE_H
#define QNT_SUPPORT_COMPILEDCODE_H

#include <cstdint>
#include <mutex>
#include <vector>
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace qnt {

/// The descriptor {allocated, aligned, offset, sizes[rank], strides[rank]}
/// of a contiguous row-major buffer, as 64-bit words.
inline std::vector<int64_t> contiguousDescriptor(const void *data,
                                                 const int64_t *shape,
                                                 size_t rank) {
  std::vector<int64_t> words(3 + 2 * rank, 0);
  words[0] = words[1] = reinterpret_cast<int64_t>(data);
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    words[3 + d] = shape[d];
    words[3 + rank + d] = stride;
    stride *= shape[d];
  }
  return words;
}

/// Compiled functions malloc and free their temporaries on every call. By
/// default glibc returns a freed block above 128 KiB to the kernel, so the
/// next call faults the same pages in again: a fifth of a model's run time,
/// most of it in the kernel. Keeping up to 512 MiB of freed memory (and
/// serving blocks up to 32 MiB from the heap) removes that; the footprint
/// is what the largest call needs anyway. Process-wide, set once.
inline void keepFreedMemory() {
#ifdef __GLIBC__
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
  });
#endif
}

} // namespace qnt

#endif // QNT_SUPPORT_COMPILEDCODE_H
