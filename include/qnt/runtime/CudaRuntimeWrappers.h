//===- CudaRuntimeWrappers.h - MLIR's mgpu* host ABI on CUDA ----*- C++ -*-===//
//
// The C functions that host code from MLIR's `gpu-to-llvm` conversion and
// the GPU module embedding (gpu-module-to-binary + translation to LLVM IR)
// calls, as declared by LLVM/MLIR 22. Debian ships no
// libmlir_cuda_runtime.so, so runtime/CudaRuntimeWrappers.cpp implements
// them on qnt::cuda (the driver loaded with dlopen).
//
// Handles (modules, functions, streams, events) are the driver's, passed as
// `void *`, as in the LLVM IR (`ptr`). Errors cannot be returned through this
// ABI: a failing call prints "quant-mlir CUDA runtime: <call> failed:
// <message>" and aborts. A machine without a usable driver or device is not
// a crash: the first call prints "quant-mlir CUDA runtime: no CUDA driver
// found (...)" (or "no CUDA device found") and exits with status 1.
//
// For a JIT in the same process: the functions have default visibility, but
// an executable exports nothing to dlsym unless linked with -rdynamic
// (ENABLE_EXPORTS), and a static library member that nothing references is
// not linked at all. Register runtimeWrapperSymbols() with the JIT instead
// (mlir::ExecutionEngine::registerSymbols), which also pulls them in.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_CUDARUNTIMEWRAPPERS_H
#define QNT_RUNTIME_CUDARUNTIMEWRAPPERS_H

#include "llvm/ADT/ArrayRef.h"

#include <cstddef>
#include <cstdint>

#define QNT_CUDA_RUNTIME_EXPORT __attribute__((visibility("default")))

extern "C" {

// Modules and kernels. gpu-module-to-binary{format=bin|fatbin} embeds a
// binary loaded with mgpuModuleLoad; format=isa embeds NUL-terminated PTX
// loaded with mgpuModuleLoadJIT. Both run from a global constructor of the
// compiled code, mgpuModuleUnload from its global destructor.
QNT_CUDA_RUNTIME_EXPORT void *mgpuModuleLoad(void *data, size_t sizeBytes);
QNT_CUDA_RUNTIME_EXPORT void *mgpuModuleLoadJIT(void *data, int optLevel);
QNT_CUDA_RUNTIME_EXPORT void mgpuModuleUnload(void *module);
QNT_CUDA_RUNTIME_EXPORT void *mgpuModuleGetFunction(void *module,
                                                    const char *name);
QNT_CUDA_RUNTIME_EXPORT void
mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY, intptr_t gridZ,
                 intptr_t blockX, intptr_t blockY, intptr_t blockZ,
                 int32_t sharedBytes, void *stream, void **params, void **extra,
                 size_t paramsCount);
QNT_CUDA_RUNTIME_EXPORT void
mgpuLaunchClusterKernel(void *function, intptr_t clusterX, intptr_t clusterY,
                        intptr_t clusterZ, intptr_t gridX, intptr_t gridY,
                        intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                        intptr_t blockZ, int32_t sharedBytes, void *stream,
                        void **params, void **extra);

// Streams and events.
QNT_CUDA_RUNTIME_EXPORT void *mgpuStreamCreate();
QNT_CUDA_RUNTIME_EXPORT void mgpuStreamDestroy(void *stream);
QNT_CUDA_RUNTIME_EXPORT void mgpuStreamSynchronize(void *stream);
QNT_CUDA_RUNTIME_EXPORT void mgpuStreamWaitEvent(void *stream, void *event);
QNT_CUDA_RUNTIME_EXPORT void *mgpuEventCreate();
QNT_CUDA_RUNTIME_EXPORT void mgpuEventDestroy(void *event);
QNT_CUDA_RUNTIME_EXPORT void mgpuEventSynchronize(void *event);
QNT_CUDA_RUNTIME_EXPORT void mgpuEventRecord(void *event, void *stream);

// Memory. The IR passes `isHostShared` as i8 and the mgpuMemset16 value as
// i16 without zero-extension, so the definitions take wider integers and
// use only the low bits (see CudaRuntimeWrappers.cpp).
QNT_CUDA_RUNTIME_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
                                           uint32_t isHostShared);
QNT_CUDA_RUNTIME_EXPORT void mgpuMemFree(void *pointer, void *stream);
QNT_CUDA_RUNTIME_EXPORT void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                                        void *stream);
QNT_CUDA_RUNTIME_EXPORT void mgpuMemset32(void *dst, uint32_t value,
                                          size_t count, void *stream);
QNT_CUDA_RUNTIME_EXPORT void mgpuMemset16(void *dst, uint32_t value,
                                          size_t count, void *stream);
QNT_CUDA_RUNTIME_EXPORT void
mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                          int64_t elementSizeBytes);
QNT_CUDA_RUNTIME_EXPORT void
mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                            int64_t elementSizeBytes);

// Devices.
QNT_CUDA_RUNTIME_EXPORT void mgpuSetDefaultDevice(int32_t device);

} // extern "C"

namespace qnt::cuda {

/// One mgpu* entry point, for a JIT's symbol map.
struct RuntimeSymbol {
  const char *name;
  void *address;
};

/// Every function declared above, by its C name.
llvm::ArrayRef<RuntimeSymbol> runtimeWrapperSymbols();

/// Makes `stream` (a CUstream; null: none) this thread's current stream:
/// mgpuStreamCreate returns it and mgpuStreamDestroy ignores it. The host
/// code of qnt-gpu-model-pipeline takes its stream with `gpu.wait async`
/// and never destroys or waits for it, so that consecutive calls (the
/// blocks of a model) queue on one stream; a runtime sets its session's
/// stream around those calls and synchronizes when it reads results.
void setCurrentStream(void *stream);

/// This thread's current stream (null when none is set).
void *currentStream();

} // namespace qnt::cuda

#endif // QNT_RUNTIME_CUDARUNTIMEWRAPPERS_H
