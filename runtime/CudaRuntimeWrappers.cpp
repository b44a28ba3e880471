//===- CudaRuntimeWrappers.cpp - MLIR's mgpu* host ABI on CUDA --*- C++ -*-===//
//
// See CudaRuntimeWrappers.h. The list and the signatures are those LLVM/MLIR
// 22 emits: GPUToLLVMConversion.cpp (streams, events, memory, host
// registration, default device) and SelectObjectAttr.cpp (module load and
// unload in global constructors/destructors, kernel lookup, launches),
// checked against the declarations in IR produced by mlir-opt-22 and
// mlir-translate-22. Semantics follow upstream's CudaRuntimeWrappers.cpp
// where it has them; differences:
//  - failures abort after a message instead of printing and going on with a
//    null handle, except that an unusable driver or device exits (status 1);
//  - one device per process (qnt::cuda::Device); mgpuSetDefaultDevice only
//    chooses it before the first GPU call;
//  - launches with zero blocks or threads run nothing;
//  - device memory allocated with a stream is stream-ordered
//    (cuMemAllocAsync) and freed in stream order (cuMemFreeAsync) where the
//    driver has them; otherwise mgpuMemFree waits for the stream it is
//    given before freeing;
//  - while a thread has a current stream (setCurrentStream),
//    mgpuStreamCreate returns it and mgpuStreamDestroy leaves it alone.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/CudaRuntimeWrappers.h"
#include "CudaDriverApi.h"
#include "qnt/runtime/CudaDriver.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>

using namespace ::qnt::cuda;
using namespace ::qnt::cuda::detail;

namespace {

/// Ends the process because the GPU cannot be used here (no driver, no
/// device, a driver that cannot be initialized). Not a crash: the message
/// is printed once and the exit status is 1.
[[noreturn]] void exitUnusable(const std::string &message) {
  static std::atomic<bool> reported{false};
  if (!reported.exchange(true)) {
    std::fflush(stdout);
    std::fprintf(stderr, "quant-mlir CUDA runtime: %s\n", message.c_str());
    std::fflush(stderr);
    std::exit(1);
  }
  // Reached again from an exit handler (global destructors of compiled
  // code unload modules) or from another thread while the first exits:
  // leave without running the handlers a second time.
  std::fflush(nullptr);
  std::_Exit(1);
}

/// Reports a failed mgpu* call and aborts: the ABI has no way to return an
/// error, and going on with a null handle only moves the failure elsewhere.
[[noreturn]] void fail(const char *entry, const std::string &message) {
  std::fflush(stdout);
  std::fprintf(stderr, "quant-mlir CUDA runtime: %s failed: %s\n", entry,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

[[noreturn]] void fail(const char *entry, llvm::Error error) {
  fail(entry, llvm::toString(std::move(error)));
}

/// The device with its context current on this thread. Every entry point
/// calls this before the driver: without a driver the entry points are
/// null, and the first call ends the process with the reason.
Device &device() {
  llvm::Expected<Device &> device = Device::get();
  if (!device)
    exitUnusable(llvm::toString(device.takeError()));
  return *device;
}

void check(const char *entry, CUresult result, const char *call) {
  if (result != kSuccess)
    fail(entry, checkResult(result, call));
}

/// For releasing calls, which also run from global destructors at exit,
/// possibly after the driver has shut down (CUDA_ERROR_DEINITIALIZED):
/// then everything is released already.
void checkRelease(const char *entry, CUresult result, const char *call) {
  if (result != kErrorDeinitialized)
    check(entry, result, call);
}

/// A grid or block extent from the index-typed IR value. Zero is allowed
/// (the launch is then skipped); negative or above 2^32 - 1 is a bug.
unsigned extent(const char *entry, const char *what, intptr_t value) {
  if (value < 0 ||
      static_cast<uintmax_t>(value) > std::numeric_limits<unsigned>::max())
    fail(entry, llvm::formatv("{0} = {1} is not a valid launch extent", what,
                              static_cast<int64_t>(value))
                    .str());
  return static_cast<unsigned>(value);
}

/// Lets `function` use `sharedBytes` of dynamic shared memory, opting in
/// above the default 48 KiB.
void allowSharedMemory(const char *entry, Device &dev, CUfunction function,
                       int32_t sharedBytes) {
  if (sharedBytes < 0)
    fail(entry,
         llvm::formatv("negative dynamic shared memory size {0}", sharedBytes)
             .str());
  if (static_cast<unsigned>(sharedBytes) <= kDefaultMaxDynamicSharedBytes)
    return;
  if (static_cast<size_t>(sharedBytes) > dev.maxSharedMemoryPerBlockOptin())
    fail(entry, llvm::formatv("the kernel asks for {0} bytes of dynamic "
                              "shared memory; {1} allows at most {2} per "
                              "block",
                              sharedBytes, dev.name(),
                              dev.maxSharedMemoryPerBlockOptin())
                    .str());
  check(entry,
        driverApi().funcSetAttribute(
            function, kFuncAttrMaxDynamicSharedSizeBytes, sharedBytes),
        "cuFuncSetAttribute");
}

CUdeviceptr devicePointer(void *pointer) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(pointer));
}

/// The leading fields of a ranked memref descriptor; `rank` sizes and then
/// `rank` strides (int64_t each) follow.
struct MemRefPrefix {
  char *allocated;
  char *aligned;
  int64_t offset;
};

/// The first byte of the memref's data and its size in bytes; fails unless
/// the memref is dense in row-major order (host registration covers one
/// contiguous range).
std::pair<char *, uint64_t> denseRange(const char *entry, int64_t rank,
                                       void *descriptor,
                                       int64_t elementSizeBytes) {
  if (rank < 0 || elementSizeBytes <= 0 || !descriptor)
    fail(entry, llvm::formatv("invalid memref (rank {0}, element size {1})",
                              rank, elementSizeBytes)
                    .str());
  auto *prefix = static_cast<MemRefPrefix *>(descriptor);
  auto *sizes = reinterpret_cast<int64_t *>(static_cast<char *>(descriptor) +
                                            sizeof(MemRefPrefix));
  const int64_t *strides = sizes + rank;
  uint64_t elements = 1;
  for (int64_t i = rank - 1; i >= 0; --i) {
    if (sizes[i] > 1 && strides[i] != static_cast<int64_t>(elements))
      fail(entry, llvm::formatv("memref dimension {0} has stride {1}; only "
                                "dense row-major memrefs can be registered "
                                "(expected stride {2})",
                                i, strides[i], elements)
                      .str());
    elements *= static_cast<uint64_t>(std::max<int64_t>(sizes[i], 0));
  }
  char *data = prefix->aligned + prefix->offset * elementSizeBytes;
  return {data, elements * static_cast<uint64_t>(elementSizeBytes)};
}

} // namespace

//===----------------------------------------------------------------------===//
// Modules and kernels
//===----------------------------------------------------------------------===//

extern "C" void *mgpuModuleLoad(void *data, size_t sizeBytes) {
  device();
  llvm::Expected<Module> module = Module::load(
      llvm::ArrayRef<char>(static_cast<const char *>(data), sizeBytes));
  if (!module)
    fail("mgpuModuleLoad", module.takeError());
  return module->release();
}

extern "C" void *mgpuModuleLoadJIT(void *data, int optLevel) {
  device();
  // NUL-terminated PTX; the terminator is part of the image.
  const char *ptx = static_cast<const char *>(data);
  llvm::Expected<Module> module =
      Module::load(llvm::ArrayRef<char>(ptx, std::strlen(ptx) + 1),
                   std::min(std::max(optLevel, 0), 4));
  if (!module)
    fail("mgpuModuleLoadJIT", module.takeError());
  return module->release();
}

extern "C" void mgpuModuleUnload(void *module) {
  if (!module)
    return;
  device();
  checkRelease("mgpuModuleUnload",
               driverApi().moduleUnload(static_cast<CUmodule>(module)),
               "cuModuleUnload");
}

extern "C" void *mgpuModuleGetFunction(void *module, const char *name) {
  device();
  CUfunction function = nullptr;
  if (CUresult result = driverApi().moduleGetFunction(
          &function, static_cast<CUmodule>(module), name))
    fail("mgpuModuleGetFunction",
         llvm::formatv("cuModuleGetFunction failed: {0}; kernel '{1}'",
                       describeResult(result), name)
             .str());
  return function;
}

extern "C" void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                 intptr_t gridZ, intptr_t blockX,
                                 intptr_t blockY, intptr_t blockZ,
                                 int32_t sharedBytes, void *stream,
                                 void **params, void **extra,
                                 size_t /*paramsCount*/) {
  const char *entry = "mgpuLaunchKernel";
  Device &dev = device();
  unsigned grid[3] = {extent(entry, "gridX", gridX),
                      extent(entry, "gridY", gridY),
                      extent(entry, "gridZ", gridZ)};
  unsigned block[3] = {extent(entry, "blockX", blockX),
                       extent(entry, "blockY", blockY),
                       extent(entry, "blockZ", blockZ)};
  if (!grid[0] || !grid[1] || !grid[2] || !block[0] || !block[1] || !block[2])
    return;
  auto *cuFunction = static_cast<CUfunction>(function);
  allowSharedMemory(entry, dev, cuFunction, sharedBytes);
  check(entry,
        driverApi().launchKernel(cuFunction, grid[0], grid[1], grid[2],
                                 block[0], block[1], block[2],
                                 static_cast<unsigned>(sharedBytes),
                                 static_cast<CUstream>(stream), params, extra),
        "cuLaunchKernel");
}

extern "C" void mgpuLaunchClusterKernel(void *function, intptr_t clusterX,
                                        intptr_t clusterY, intptr_t clusterZ,
                                        intptr_t gridX, intptr_t gridY,
                                        intptr_t gridZ, intptr_t blockX,
                                        intptr_t blockY, intptr_t blockZ,
                                        int32_t sharedBytes, void *stream,
                                        void **params, void **extra) {
  const char *entry = "mgpuLaunchClusterKernel";
  Device &dev = device();
  if (!driverApi().launchKernelEx)
    fail(entry, "cluster launches need cuLaunchKernelEx (a CUDA 12 or newer "
                "driver)");
  unsigned cluster[3] = {extent(entry, "clusterX", clusterX),
                         extent(entry, "clusterY", clusterY),
                         extent(entry, "clusterZ", clusterZ)};
  unsigned grid[3] = {extent(entry, "gridX", gridX),
                      extent(entry, "gridY", gridY),
                      extent(entry, "gridZ", gridZ)};
  unsigned block[3] = {extent(entry, "blockX", blockX),
                       extent(entry, "blockY", blockY),
                       extent(entry, "blockZ", blockZ)};
  if (!grid[0] || !grid[1] || !grid[2] || !block[0] || !block[1] || !block[2])
    return;
  auto *cuFunction = static_cast<CUfunction>(function);
  allowSharedMemory(entry, dev, cuFunction, sharedBytes);
  // Portable clusters have at most 8 blocks; larger ones (up to 16 on
  // Hopper) need the kernel's opt-in.
  uint64_t clusterBlocks = uint64_t(cluster[0]) * cluster[1] * cluster[2];
  if (clusterBlocks > 8)
    check(entry,
          driverApi().funcSetAttribute(
              cuFunction, kFuncAttrNonPortableClusterSizeAllowed, 1),
          "cuFuncSetAttribute");

  LaunchAttribute attributes[2] = {};
  attributes[0].id = kLaunchAttrClusterDimension;
  attributes[0].value.clusterDim = {cluster[0], cluster[1], cluster[2]};
  attributes[1].id = kLaunchAttrClusterSchedulingPolicy;
  attributes[1].value.clusterSchedulingPolicyPreference =
      kClusterSchedulingPolicySpread;
  LaunchConfig config = {};
  config.gridDimX = grid[0];
  config.gridDimY = grid[1];
  config.gridDimZ = grid[2];
  config.blockDimX = block[0];
  config.blockDimY = block[1];
  config.blockDimZ = block[2];
  config.sharedMemBytes = static_cast<unsigned>(sharedBytes);
  config.stream = static_cast<CUstream>(stream);
  config.attrs = attributes;
  config.numAttrs = 2;
  check(entry, driverApi().launchKernelEx(&config, cuFunction, params, extra),
        "cuLaunchKernelEx");
}

//===----------------------------------------------------------------------===//
// Streams and events
//===----------------------------------------------------------------------===//

namespace {
thread_local void *currentStreamOfThread = nullptr;

/// Pointers from cuMemAllocAsync, which must be freed with cuMemFreeAsync,
/// and the stream each was allocated on.
struct StreamOrderedAllocations {
  std::mutex mutex;
  std::unordered_map<void *, CUstream> streams;
};
StreamOrderedAllocations &streamOrderedAllocations() {
  // Never destroyed: a free from another static destructor at exit must
  // still find it.
  static auto *allocations = new StreamOrderedAllocations;
  return *allocations;
}
} // namespace

void qnt::cuda::setCurrentStream(void *stream) {
  currentStreamOfThread = stream;
}

void *qnt::cuda::currentStream() { return currentStreamOfThread; }

extern "C" void *mgpuStreamCreate() {
  if (currentStreamOfThread)
    return currentStreamOfThread;
  device();
  CUstream stream = nullptr;
  // Non-blocking: no implicit ordering with the legacy default stream; the
  // IR orders work with events.
  check("mgpuStreamCreate",
        driverApi().streamCreate(&stream, kStreamNonBlocking),
        "cuStreamCreate");
  return stream;
}

extern "C" void mgpuStreamDestroy(void *stream) {
  if (!stream || stream == currentStreamOfThread)
    return;
  device();
  checkRelease("mgpuStreamDestroy",
               driverApi().streamDestroy(static_cast<CUstream>(stream)),
               "cuStreamDestroy");
}

extern "C" void mgpuStreamSynchronize(void *stream) {
  device();
  check("mgpuStreamSynchronize",
        driverApi().streamSynchronize(static_cast<CUstream>(stream)),
        "cuStreamSynchronize");
}

extern "C" void mgpuStreamWaitEvent(void *stream, void *event) {
  device();
  check("mgpuStreamWaitEvent",
        driverApi().streamWaitEvent(static_cast<CUstream>(stream),
                                    static_cast<CUevent>(event), 0),
        "cuStreamWaitEvent");
}

extern "C" void *mgpuEventCreate() {
  device();
  CUevent event = nullptr;
  // Events only order work here; timing would make them costlier.
  check("mgpuEventCreate", driverApi().eventCreate(&event, kEventDisableTiming),
        "cuEventCreate");
  return event;
}

extern "C" void mgpuEventDestroy(void *event) {
  if (!event)
    return;
  device();
  checkRelease("mgpuEventDestroy",
               driverApi().eventDestroy(static_cast<CUevent>(event)),
               "cuEventDestroy");
}

extern "C" void mgpuEventSynchronize(void *event) {
  device();
  check("mgpuEventSynchronize",
        driverApi().eventSynchronize(static_cast<CUevent>(event)),
        "cuEventSynchronize");
}

extern "C" void mgpuEventRecord(void *event, void *stream) {
  device();
  check("mgpuEventRecord",
        driverApi().eventRecord(static_cast<CUevent>(event),
                                static_cast<CUstream>(stream)),
        "cuEventRecord");
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

// `isHostShared` is an i8 in the IR and `value` of mgpuMemset16 an i16, both
// passed without zeroext: only their low bits are defined, so they are read
// from wider parameters and masked rather than trusted as bool/uint16_t.

extern "C" void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
                              uint32_t isHostShared) {
  device();
  // The driver rejects empty allocations; an empty memref needs none.
  if (sizeBytes == 0)
    return nullptr;
  CUdeviceptr pointer = 0;
  // With a stream, the allocation is ordered on it: host code that queues a
  // whole function on one stream never waits for the device.
  if (stream && !(isHostShared & 0xff) && driverApi().memAllocAsync) {
    CUresult result = driverApi().memAllocAsync(
        &pointer, sizeBytes, static_cast<CUstream>(stream));
    if (result == kSuccess) {
      void *address =
          reinterpret_cast<void *>(static_cast<uintptr_t>(pointer));
      StreamOrderedAllocations &allocations = streamOrderedAllocations();
      std::lock_guard<std::mutex> lock(allocations.mutex);
      allocations.streams[address] = static_cast<CUstream>(stream);
      return address;
    }
    // A device without memory pools takes the synchronous path below.
    if (result != kErrorNotSupported)
      fail("mgpuMemAlloc",
           llvm::formatv("cuMemAllocAsync failed: {0}; allocating {1} bytes",
                         describeResult(result), sizeBytes)
               .str());
  }
  // Otherwise allocation is synchronous, so it precedes all later work on
  // any stream.
  CUresult result =
      (isHostShared & 0xff)
          ? driverApi().memAllocManaged(&pointer, sizeBytes, kMemAttachGlobal)
          : driverApi().memAlloc(&pointer, sizeBytes);
  if (result != kSuccess)
    fail("mgpuMemAlloc",
         llvm::formatv("{0} failed: {1}; allocating {2} bytes",
                       (isHostShared & 0xff) ? "cuMemAllocManaged"
                                             : "cuMemAlloc",
                       describeResult(result), sizeBytes)
             .str());
  return reinterpret_cast<void *>(static_cast<uintptr_t>(pointer));
}

extern "C" void mgpuMemFree(void *pointer, void *stream) {
  if (!pointer)
    return;
  device();
  std::optional<CUstream> allocatedOn;
  {
    StreamOrderedAllocations &allocations = streamOrderedAllocations();
    std::lock_guard<std::mutex> lock(allocations.mutex);
    auto it = allocations.streams.find(pointer);
    if (it != allocations.streams.end()) {
      allocatedOn = it->second;
      allocations.streams.erase(it);
    }
  }
  if (allocatedOn) {
    // Freed after the work queued so far on `stream`, or without one on
    // the stream it was allocated on (the legacy stream would not wait
    // for a non-blocking one); the host does not wait.
    CUstream on = stream ? static_cast<CUstream>(stream) : *allocatedOn;
    checkRelease("mgpuMemFree",
                 driverApi().memFreeAsync(devicePointer(pointer), on),
                 "cuMemFreeAsync");
    return;
  }
  // Work queued on `stream` may still use the memory.
  if (stream)
    checkRelease("mgpuMemFree",
                 driverApi().streamSynchronize(static_cast<CUstream>(stream)),
                 "cuStreamSynchronize");
  checkRelease("mgpuMemFree", driverApi().memFree(devicePointer(pointer)),
               "cuMemFree");
}

extern "C" void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                           void *stream) {
  if (sizeBytes == 0)
    return;
  device();
  // Unified addressing: the driver tells host from device pointers.
  check("mgpuMemcpy",
        driverApi().memcpyAsync(devicePointer(dst), devicePointer(src),
                                sizeBytes, static_cast<CUstream>(stream)),
        "cuMemcpyAsync");
}

extern "C" void mgpuMemset32(void *dst, uint32_t value, size_t count,
                             void *stream) {
  if (count == 0)
    return;
  device();
  check("mgpuMemset32",
        driverApi().memsetD32Async(devicePointer(dst), value, count,
                                   static_cast<CUstream>(stream)),
        "cuMemsetD32Async");
}

extern "C" void mgpuMemset16(void *dst, uint32_t value, size_t count,
                             void *stream) {
  if (count == 0)
    return;
  device();
  check("mgpuMemset16",
        driverApi().memsetD16Async(devicePointer(dst),
                                   static_cast<unsigned short>(value & 0xffff),
                                   count, static_cast<CUstream>(stream)),
        "cuMemsetD16Async");
}

extern "C" void mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                                          int64_t elementSizeBytes) {
  const char *entry = "mgpuMemHostRegisterMemRef";
  device();
  auto [data, bytes] = denseRange(entry, rank, descriptor, elementSizeBytes);
  if (bytes == 0)
    return;
  check(entry, driverApi().memHostRegister(data, bytes, /*flags=*/0),
        "cuMemHostRegister");
}

extern "C" void mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                                            int64_t elementSizeBytes) {
  const char *entry = "mgpuMemHostUnregisterMemRef";
  device();
  auto [data, bytes] = denseRange(entry, rank, descriptor, elementSizeBytes);
  if (bytes == 0)
    return;
  checkRelease(entry, driverApi().memHostUnregister(data),
               "cuMemHostUnregister");
}

//===----------------------------------------------------------------------===//
// Devices
//===----------------------------------------------------------------------===//

extern "C" void mgpuSetDefaultDevice(int32_t ordinal) {
  if (llvm::Error error = Device::selectOrdinal(ordinal))
    fail("mgpuSetDefaultDevice", std::move(error));
}

//===----------------------------------------------------------------------===//
// Symbol table
//===----------------------------------------------------------------------===//

llvm::ArrayRef<RuntimeSymbol> qnt::cuda::runtimeWrapperSymbols() {
#define QNT_SYMBOL(name)                                                       \
  { #name, reinterpret_cast < void *>(&name) }
  static const RuntimeSymbol symbols[] = {
      QNT_SYMBOL(mgpuModuleLoad),
      QNT_SYMBOL(mgpuModuleLoadJIT),
      QNT_SYMBOL(mgpuModuleUnload),
      QNT_SYMBOL(mgpuModuleGetFunction),
      QNT_SYMBOL(mgpuLaunchKernel),
      QNT_SYMBOL(mgpuLaunchClusterKernel),
      QNT_SYMBOL(mgpuStreamCreate),
      QNT_SYMBOL(mgpuStreamDestroy),
      QNT_SYMBOL(mgpuStreamSynchronize),
      QNT_SYMBOL(mgpuStreamWaitEvent),
      QNT_SYMBOL(mgpuEventCreate),
      QNT_SYMBOL(mgpuEventDestroy),
      QNT_SYMBOL(mgpuEventSynchronize),
      QNT_SYMBOL(mgpuEventRecord),
      QNT_SYMBOL(mgpuMemAlloc),
      QNT_SYMBOL(mgpuMemFree),
      QNT_SYMBOL(mgpuMemcpy),
      QNT_SYMBOL(mgpuMemset32),
      QNT_SYMBOL(mgpuMemset16),
      QNT_SYMBOL(mgpuMemHostRegisterMemRef),
      QNT_SYMBOL(mgpuMemHostUnregisterMemRef),
      QNT_SYMBOL(mgpuSetDefaultDevice),
  };
#undef QNT_SYMBOL
  return symbols;
}
