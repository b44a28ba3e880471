//===- CudaDriver.h - The CUDA driver API, loaded at run time ---*- C++ -*-===//
//
// A small C++ layer over the CUDA driver API for the GPU backend: the device
// and its properties, device buffers, loaded modules (cubin or PTX), kernel
// launches, event timing and a copy-bandwidth probe.
//
// libcuda is opened with dlopen on first use and never linked, so everything
// that uses this header builds, starts and runs its CPU paths on machines
// without a GPU; there, Device::get() fails with an UnavailableError ("no
// CUDA driver found (...)" or "no CUDA device found ..."). Every call that
// reaches the driver first makes the device's primary context current on
// the calling thread, so the API may be used from any thread.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_CUDADRIVER_H
#define QNT_RUNTIME_CUDADRIVER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// The driver's opaque handle types, declared with cuda.h's tags so that this
// header and cuda.h can be included together.
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;

namespace qnt::cuda {

/// A kernel in a loaded module (CUfunction). Valid while its Module lives.
using FunctionHandle = ::CUfunc_st *;
/// A loaded module (CUmodule).
using ModuleHandle = ::CUmod_st *;

/// The CUDA driver or a CUDA device is missing. Distinct from other errors
/// so that callers (tests, benchmarks, tools) can skip GPU work on such
/// machines instead of failing: `if (err.isA<UnavailableError>())`.
class UnavailableError : public llvm::ErrorInfo<UnavailableError> {
public:
  static char ID;
  explicit UnavailableError(std::string message)
      : message(std::move(message)) {}
  void log(llvm::raw_ostream &os) const override;
  std::error_code convertToErrorCode() const override;
  const std::string &getMessage() const { return message; }

private:
  std::string message;
};

/// The process's CUDA device: one device per process, chosen on first use
/// (device 0, or the ordinal in the environment variable QNT_CUDA_DEVICE, or
/// one given to selectOrdinal() before), used through its primary context
/// (the one the CUDA runtime library also uses). Properties are read once at
/// initialization; they cannot change while the process runs.
class Device {
public:
  /// Loads the driver and initializes the device on the first call (once per
  /// process, thread-safe), then makes the device's context current on the
  /// calling thread. A failed initialization is not retried: every later
  /// call returns a fresh error with the same message, so a machine without
  /// a driver costs one dlopen, not one per call.
  static llvm::Expected<Device &> get();

  /// Chooses the device ordinal used when the device is initialized (it
  /// overrides QNT_CUDA_DEVICE). After initialization it succeeds only for
  /// the ordinal in use: the runtime does not switch devices.
  static llvm::Error selectOrdinal(int ordinal);

  /// Makes the device's primary context current on the calling thread.
  /// Needed only before calling the driver directly; every function of
  /// this header already does it.
  llvm::Error makeCurrent() const;

  /// The ordinal of the device among the driver's devices.
  int ordinal() const { return deviceOrdinal; }
  /// The marketing name, e.g. "NVIDIA H100 80GB HBM3".
  llvm::StringRef name() const { return deviceName; }
  /// {major, minor}, e.g. {9, 0} for Hopper.
  std::pair<int, int> computeCapability() const { return {ccMajor, ccMinor}; }
  /// The target name the NVPTX backend and ptxas use, e.g. "sm_90".
  std::string arch() const;
  /// Number of streaming multiprocessors.
  int smCount() const { return numSMs; }
  /// Global memory size.
  size_t totalMemoryBytes() const { return totalMemory; }
  /// L2 cache size.
  size_t l2CacheBytes() const { return l2Cache; }
  /// Largest dynamic shared memory one block may use after opting in
  /// (launch() opts in when a launch asks for more than 48 KiB).
  size_t maxSharedMemoryPerBlockOptin() const { return maxSharedOptin; }
  /// Peak DRAM bandwidth from the memory clock and bus width attributes:
  /// 2 (double data rate) * clock * bus width in bytes, in GB/s (1e9 B/s).
  /// 0 if the driver does not report them.
  double theoreticalBandwidthGBs() const;

  Device(const Device &) = delete;
  Device &operator=(const Device &) = delete;

private:
  Device() = default;
  friend struct DeviceInit;

  int deviceOrdinal = 0;
  int deviceHandle = 0;
  ::CUctx_st *context = nullptr;
  std::string deviceName;
  int ccMajor = 0, ccMinor = 0;
  int numSMs = 0;
  size_t totalMemory = 0;
  size_t l2Cache = 0;
  size_t maxSharedOptin = 0;
  int memoryClockKHz = 0;
  int busWidthBits = 0;
};

/// An owned device allocation (cuMemAlloc). Movable, not copyable; freed on
/// destruction. Copies are bounds-checked: a copy that does not fit is an
/// error, not undefined behaviour.
class DeviceBuffer {
public:
  /// An empty buffer (no allocation, address 0).
  DeviceBuffer() = default;
  /// Allocates `bytes` of device memory (uninitialized). Zero bytes gives
  /// an empty buffer.
  static llvm::Expected<DeviceBuffer> allocate(size_t bytes);

  DeviceBuffer(DeviceBuffer &&other) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer();

  /// The device address, as kernels see it (CUdeviceptr).
  uint64_t address() const { return devicePtr; }
  /// The device address as a pointer, for kernel parameter arrays and the
  /// mgpu* ABI. Not dereferenceable on the host.
  void *pointer() const { return reinterpret_cast<void *>(devicePtr); }
  /// Size of the allocation in bytes.
  size_t size() const { return numBytes; }

  /// Copies `bytes` from host memory to the buffer at `offset`; waits for
  /// the copy to finish.
  llvm::Error copyFromHost(const void *src, size_t bytes, size_t offset = 0);
  /// Copies `bytes` from the buffer at `offset` to host memory, after the
  /// work queued before it on the default stream has finished.
  llvm::Error copyToHost(void *dst, size_t bytes, size_t offset = 0) const;
  /// Sets every byte of the buffer to `value`.
  llvm::Error fill(uint8_t value);

  /// Frees the allocation now; the buffer becomes empty.
  void reset();

private:
  DeviceBuffer(uint64_t devicePtr, size_t numBytes)
      : devicePtr(devicePtr), numBytes(numBytes) {}
  llvm::Error checkRange(size_t bytes, size_t offset, const char *what) const;

  uint64_t devicePtr = 0;
  size_t numBytes = 0;
};

/// A loaded module (cuModuleLoadDataEx), unloaded on destruction.
class Module {
public:
  Module() = default;
  /// Loads a cubin, a fatbin or PTX text. PTX is JIT-compiled by the driver
  /// for the device; `jitOptimizationLevel` (0-4) applies to PTX only,
  /// default: the driver's (4). PTX need not be NUL-terminated in `image`.
  /// A failure includes the driver's JIT error log.
  static llvm::Expected<Module>
  load(llvm::ArrayRef<char> image,
       std::optional<int> jitOptimizationLevel = std::nullopt);

  Module(Module &&other) noexcept;
  Module &operator=(Module &&other) noexcept;
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;
  ~Module();

  /// The kernel (`.entry`) named `name`.
  llvm::Expected<FunctionHandle> function(llvm::StringRef name) const;

  /// The driver handle; null for an empty Module.
  ModuleHandle handle() const { return module; }
  /// Gives up ownership: the caller unloads the handle (cuModuleUnload).
  /// Used by the mgpu* ABI, whose callers own modules as raw handles.
  ModuleHandle release();

private:
  explicit Module(ModuleHandle module) : module(module) {}
  ModuleHandle module = nullptr;
};

/// Launches `function` on the default stream with `grid` blocks of `block`
/// threads and `sharedBytes` of dynamic shared memory, which may exceed
/// 48 KiB up to Device::maxSharedMemoryPerBlockOptin() (the function is
/// opted in first). `params` holds one pointer per kernel parameter, to the
/// parameter's value. Does not wait for the kernel.
llvm::Error launch(FunctionHandle function, std::array<unsigned, 3> grid,
                   std::array<unsigned, 3> block, unsigned sharedBytes,
                   void **params);

/// Waits for all work queued on the device's context.
llvm::Error synchronize();

/// Runs `body` `iterations` times, each between two events on the default
/// stream, and returns the device time of each run in milliseconds. `body`
/// must queue its work on the default stream (launch() and the DeviceBuffer
/// copies do). No warm-up: callers that want one run `body` first.
llvm::Expected<std::vector<double>>
timeMilliseconds(llvm::function_ref<llvm::Error()> body, int iterations);

/// The median of `values` (mean of the two middle ones for an even count);
/// 0 for none.
double median(std::vector<double> values);

/// Measured device memory bandwidth: copies a `bytes` buffer to another
/// with cuMemcpyDtoD `iterations` times after one warm-up copy, and returns
/// 2 * bytes (each copy reads and writes) / median copy time, in GB/s. The
/// benchmark's reference for "fraction of achievable bandwidth"; needs
/// 2 * bytes of free device memory.
llvm::Expected<double> measureCopyBandwidthGBs(size_t bytes, int iterations);

} // namespace qnt::cuda

#endif // QNT_RUNTIME_CUDADRIVER_H
