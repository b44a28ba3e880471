//===- CudaDriverApi.h - The CUDA driver entry points we use ----*- C++ -*-===//
//
// Private to runtime/: the handful of CUDA driver types, constants and entry
// points that CudaDriver.cpp and CudaRuntimeWrappers.cpp call, declared here
// instead of taken from cuda.h so that the runtime builds on machines without
// the CUDA toolkit. The values are those of the driver ABI (cuda.h, CUDA 12
// and 13); the ABI is stable, so they do not change between driver versions.
//
// The entry points are function pointers filled by dlsym when Device::get()
// first runs. Where cuda.h maps an API name to a versioned symbol
// (cuMemAlloc -> cuMemAlloc_v2, ...), the table holds the versioned one: the
// unversioned symbols are kept by libcuda for old binaries and have older
// signatures (32-bit sizes).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_CUDADRIVERAPI_H
#define QNT_RUNTIME_CUDADRIVERAPI_H

#include "llvm/Support/Error.h"

#include <cstddef>
#include <cstdint>

// Opaque handle types, with cuda.h's tags (see CudaDriver.h).
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;

namespace qnt::cuda::detail {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = ::CUctx_st *;
using CUmodule = ::CUmod_st *;
using CUfunction = ::CUfunc_st *;
using CUstream = ::CUstream_st *;
using CUevent = ::CUevent_st *;

// CUresult values we react to.
constexpr CUresult kSuccess = 0;            // CUDA_SUCCESS
constexpr CUresult kErrorDeinitialized = 4; // CUDA_ERROR_DEINITIALIZED
constexpr CUresult kErrorStubLibrary = 34;  // CUDA_ERROR_STUB_LIBRARY
constexpr CUresult kErrorNoDevice = 100;    // CUDA_ERROR_NO_DEVICE
constexpr CUresult kErrorNotSupported = 801; // CUDA_ERROR_NOT_SUPPORTED

// CUdevice_attribute.
constexpr int kAttrMultiprocessorCount = 16;
constexpr int kAttrMemoryClockRateKHz = 36;
constexpr int kAttrGlobalMemoryBusWidthBits = 37;
constexpr int kAttrL2CacheSize = 38;
constexpr int kAttrComputeCapabilityMajor = 75;
constexpr int kAttrComputeCapabilityMinor = 76;
constexpr int kAttrMaxSharedMemoryPerBlockOptin = 97;

// CUjit_option.
constexpr int kJitErrorLogBuffer = 5;
constexpr int kJitErrorLogBufferSizeBytes = 6;
constexpr int kJitOptimizationLevel = 7;

// CUfunction_attribute.
constexpr int kFuncAttrMaxDynamicSharedSizeBytes = 8;
constexpr int kFuncAttrNonPortableClusterSizeAllowed = 14;

// Flags.
constexpr unsigned kMemAttachGlobal = 0x1;    // CU_MEM_ATTACH_GLOBAL
constexpr unsigned kStreamNonBlocking = 0x1;  // CU_STREAM_NON_BLOCKING
constexpr unsigned kEventDefault = 0x0;       // CU_EVENT_DEFAULT
constexpr unsigned kEventDisableTiming = 0x2; // CU_EVENT_DISABLE_TIMING

// CUlaunchAttributeID and CUclusterSchedulingPolicy.
constexpr int kLaunchAttrClusterDimension = 4;
constexpr int kLaunchAttrClusterSchedulingPolicy = 5;
constexpr int kClusterSchedulingPolicySpread = 1;

/// Dynamic shared memory a kernel may use without opting in per function.
constexpr unsigned kDefaultMaxDynamicSharedBytes = 48 * 1024;

/// CUlaunchAttribute: a 4-byte id padded to 8, then a 64-byte value union
/// of which we only use the cluster dimension and the scheduling policy.
struct LaunchAttribute {
  int id;
  char pad[4];
  union {
    char bytes[64];
    struct {
      unsigned x, y, z;
    } clusterDim;
    int clusterSchedulingPolicyPreference;
  } value;
};
static_assert(sizeof(LaunchAttribute) == 72, "CUlaunchAttribute layout");

/// CUlaunchConfig, the argument of cuLaunchKernelEx.
struct LaunchConfig {
  unsigned gridDimX, gridDimY, gridDimZ;
  unsigned blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  CUstream stream;
  LaunchAttribute *attrs;
  unsigned numAttrs;
};

/// The driver entry points, resolved once. Members are named after the API
/// function without its `cu` prefix (cuda.h's macros would rename `cu*`).
struct DriverApi {
  CUresult (*init)(unsigned flags);
  CUresult (*getErrorName)(CUresult error, const char **name);
  CUresult (*getErrorString)(CUresult error, const char **text);
  CUresult (*deviceGetCount)(int *count);
  CUresult (*deviceGet)(CUdevice *device, int ordinal);
  CUresult (*deviceGetName)(char *name, int length, CUdevice device);
  CUresult (*deviceGetAttribute)(int *value, int attribute, CUdevice device);
  CUresult (*deviceTotalMem)(size_t *bytes, CUdevice device);
  CUresult (*devicePrimaryCtxRetain)(CUcontext *context, CUdevice device);
  CUresult (*ctxSetCurrent)(CUcontext context);
  CUresult (*ctxSynchronize)();
  CUresult (*memAlloc)(CUdeviceptr *pointer, size_t bytes);
  CUresult (*memAllocManaged)(CUdeviceptr *pointer, size_t bytes,
                              unsigned flags);
  CUresult (*memFree)(CUdeviceptr pointer);
  // Stream-ordered allocation (CUDA 11.2); optional, null on older drivers.
  CUresult (*memAllocAsync)(CUdeviceptr *pointer, size_t bytes,
                            CUstream stream);
  CUresult (*memFreeAsync)(CUdeviceptr pointer, CUstream stream);
  CUresult (*memcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);
  CUresult (*memcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);
  CUresult (*memcpyDtoD)(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
  CUresult (*memcpyAsync)(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                          CUstream stream);
  CUresult (*memsetD8)(CUdeviceptr dst, unsigned char value, size_t count);
  CUresult (*memsetD16Async)(CUdeviceptr dst, unsigned short value,
                             size_t count, CUstream stream);
  CUresult (*memsetD32Async)(CUdeviceptr dst, unsigned value, size_t count,
                             CUstream stream);
  CUresult (*memHostRegister)(void *pointer, size_t bytes, unsigned flags);
  CUresult (*memHostUnregister)(void *pointer);
  CUresult (*moduleLoadDataEx)(CUmodule *module, const void *image,
                               unsigned numOptions, int *options,
                               void **optionValues);
  CUresult (*moduleUnload)(CUmodule module);
  CUresult (*moduleGetFunction)(CUfunction *function, CUmodule module,
                                const char *name);
  CUresult (*funcSetAttribute)(CUfunction function, int attribute, int value);
  CUresult (*launchKernel)(CUfunction function, unsigned gridX, unsigned gridY,
                           unsigned gridZ, unsigned blockX, unsigned blockY,
                           unsigned blockZ, unsigned sharedBytes,
                           CUstream stream, void **params, void **extra);
  /// Null with drivers older than CUDA 12 (only cluster launches need it).
  CUresult (*launchKernelEx)(const LaunchConfig *config, CUfunction function,
                             void **params, void **extra);
  CUresult (*streamCreate)(CUstream *stream, unsigned flags);
  CUresult (*streamDestroy)(CUstream stream);
  CUresult (*streamSynchronize)(CUstream stream);
  CUresult (*streamWaitEvent)(CUstream stream, CUevent event, unsigned flags);
  CUresult (*eventCreate)(CUevent *event, unsigned flags);
  CUresult (*eventDestroy)(CUevent event);
  CUresult (*eventRecord)(CUevent event, CUstream stream);
  CUresult (*eventSynchronize)(CUevent event);
  CUresult (*eventElapsedTime)(float *milliseconds, CUevent start, CUevent end);
};

/// The resolved entry points. Only valid once Device::get() has succeeded
/// (every caller goes through it first, which also makes the context
/// current on the calling thread).
const DriverApi &driverApi();

/// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for `result`, using the
/// driver's own names when it knows the code.
std::string describeResult(CUresult result);

/// Success for CUDA_SUCCESS, else "<call> failed: CUDA_ERROR_X (text)".
llvm::Error checkResult(CUresult result, const char *call);

} // namespace qnt::cuda::detail

#endif // QNT_RUNTIME_CUDADRIVERAPI_H
