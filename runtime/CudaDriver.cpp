//===- CudaDriver.cpp - The CUDA driver API, loaded at run time -*- C++ -*-===//
//
// See CudaDriver.h. The driver library is opened with dlopen (libcuda.so.1,
// the name the NVIDIA driver installs; libcuda.so as a fallback) and each
// entry point is looked up by its exported, versioned name, so nothing here
// links against libcuda or needs cuda.h. The device state is created once
// and intentionally never destroyed: modules loaded by JIT-compiled code are
// unloaded from global destructors that may run after ours would.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/CudaDriver.h"
#include "CudaDriverApi.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include <dlfcn.h>

using namespace ::qnt::cuda;
using namespace ::qnt::cuda::detail;

char UnavailableError::ID = 0;

void UnavailableError::log(llvm::raw_ostream &os) const { os << message; }

std::error_code UnavailableError::convertToErrorCode() const {
  return llvm::inconvertibleErrorCode();
}

//===----------------------------------------------------------------------===//
// Driver loading
//===----------------------------------------------------------------------===//

namespace {

/// The entry point table; filled once under the initialization call_once.
DriverApi api;

/// One table entry: where the pointer goes, and the exported names to try in
/// order (the versioned name first where cuda.h maps to one).
struct Symbol {
  void **slot;
  const char *names[2];
  bool optional;
};

template <typename Fn> void **slot(Fn *&member) {
  return reinterpret_cast<void **>(&member);
}

/// Resolves every entry point in `library`, or names the first one missing.
llvm::Error resolveSymbols(void *library, const char *libraryName) {
  const Symbol symbols[] = {
      {slot(api.init), {"cuInit"}, false},
      {slot(api.getErrorName), {"cuGetErrorName"}, false},
      {slot(api.getErrorString), {"cuGetErrorString"}, false},
      {slot(api.deviceGetCount), {"cuDeviceGetCount"}, false},
      {slot(api.deviceGet), {"cuDeviceGet"}, false},
      {slot(api.deviceGetName), {"cuDeviceGetName"}, false},
      {slot(api.deviceGetAttribute), {"cuDeviceGetAttribute"}, false},
      {slot(api.deviceTotalMem), {"cuDeviceTotalMem_v2"}, false},
      {slot(api.devicePrimaryCtxRetain), {"cuDevicePrimaryCtxRetain"}, false},
      {slot(api.ctxSetCurrent), {"cuCtxSetCurrent"}, false},
      {slot(api.ctxSynchronize), {"cuCtxSynchronize"}, false},
      {slot(api.memAlloc), {"cuMemAlloc_v2"}, false},
      {slot(api.memAllocManaged), {"cuMemAllocManaged"}, false},
      {slot(api.memFree), {"cuMemFree_v2"}, false},
      {slot(api.memAllocAsync), {"cuMemAllocAsync"}, true},
      {slot(api.memFreeAsync), {"cuMemFreeAsync"}, true},
      {slot(api.memcpyHtoD), {"cuMemcpyHtoD_v2"}, false},
      {slot(api.memcpyDtoH), {"cuMemcpyDtoH_v2"}, false},
      {slot(api.memcpyDtoD), {"cuMemcpyDtoD_v2"}, false},
      {slot(api.memcpyAsync), {"cuMemcpyAsync"}, false},
      {slot(api.memsetD8), {"cuMemsetD8_v2"}, false},
      {slot(api.memsetD16Async), {"cuMemsetD16Async"}, false},
      {slot(api.memsetD32Async), {"cuMemsetD32Async"}, false},
      {slot(api.memHostRegister), {"cuMemHostRegister_v2"}, false},
      {slot(api.memHostUnregister), {"cuMemHostUnregister"}, false},
      {slot(api.moduleLoadDataEx), {"cuModuleLoadDataEx"}, false},
      {slot(api.moduleUnload), {"cuModuleUnload"}, false},
      {slot(api.moduleGetFunction), {"cuModuleGetFunction"}, false},
      {slot(api.funcSetAttribute), {"cuFuncSetAttribute"}, false},
      {slot(api.launchKernel), {"cuLaunchKernel"}, false},
      {slot(api.launchKernelEx), {"cuLaunchKernelEx"}, true},
      {slot(api.streamCreate), {"cuStreamCreate"}, false},
      {slot(api.streamDestroy), {"cuStreamDestroy_v2"}, false},
      {slot(api.streamSynchronize), {"cuStreamSynchronize"}, false},
      {slot(api.streamWaitEvent), {"cuStreamWaitEvent"}, false},
      {slot(api.eventCreate), {"cuEventCreate"}, false},
      {slot(api.eventDestroy), {"cuEventDestroy_v2"}, false},
      {slot(api.eventRecord), {"cuEventRecord"}, false},
      {slot(api.eventSynchronize), {"cuEventSynchronize"}, false},
      // _v2 since CUDA 12.8 (cuda.h maps to it); same signature as the
      // original, which older drivers only have.
      {slot(api.eventElapsedTime),
       {"cuEventElapsedTime_v2", "cuEventElapsedTime"},
       false},
  };
  for (const Symbol &symbol : symbols) {
    *symbol.slot = nullptr;
    for (const char *name : symbol.names)
      if (name && !*symbol.slot)
        *symbol.slot = dlsym(library, name);
    if (!*symbol.slot && !symbol.optional)
      return llvm::createStringError(
          llvm::formatv("the CUDA driver {0} has no {1} (driver too old?)",
                        libraryName, symbol.names[0])
              .str());
  }
  return llvm::Error::success();
}

/// Why the device could not be initialized, kept for every later get().
struct InitFailure {
  std::string message;
  bool unavailable = false;

  llvm::Error toError() const {
    if (unavailable)
      return llvm::make_error<UnavailableError>(message);
    return llvm::createStringError(message);
  }
};

/// Process-wide device state. Leaked on purpose (see the file comment).
struct State {
  std::once_flag once;
  Device *device = nullptr;
  InitFailure failure;

  /// Guards the ordinal choice against selectOrdinal() on other threads.
  std::mutex ordinalMutex;
  int requestedOrdinal = -1;
  bool ordinalFrozen = false;
  int frozenOrdinal = -1;
};

State &state() {
  static State *s = new State;
  return *s;
}

InitFailure unavailable(std::string message) {
  return {std::move(message), /*unavailable=*/true};
}

InitFailure failed(llvm::Error error) {
  return {llvm::toString(std::move(error)), /*unavailable=*/false};
}

/// The ordinal requested by selectOrdinal() or QNT_CUDA_DEVICE, else 0.
llvm::Expected<int> requestedOrdinal() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.ordinalMutex);
  s.ordinalFrozen = true;
  int ordinal = s.requestedOrdinal;
  if (ordinal < 0) {
    ordinal = 0;
    if (const char *env = std::getenv("QNT_CUDA_DEVICE"); env && *env) {
      char *end = nullptr;
      long value = std::strtol(env, &end, 10);
      if (*end || value < 0 || value > 1 << 20)
        return llvm::createStringError(
            llvm::formatv("QNT_CUDA_DEVICE='{0}' is not a device ordinal", env)
                .str());
      ordinal = static_cast<int>(value);
    }
  }
  s.frozenOrdinal = ordinal;
  return ordinal;
}

} // namespace

const DriverApi &detail::driverApi() { return api; }

std::string detail::describeResult(CUresult result) {
  const char *name = nullptr;
  const char *text = nullptr;
  if (api.getErrorName && api.getErrorName(result, &name) != kSuccess)
    name = nullptr;
  if (api.getErrorString && api.getErrorString(result, &text) != kSuccess)
    text = nullptr;
  std::string out =
      name ? std::string(name) : llvm::formatv("CUresult {0}", result).str();
  out += " (";
  out += text ? text : "unknown error";
  out += ")";
  return out;
}

llvm::Error detail::checkResult(CUresult result, const char *call) {
  if (result == kSuccess)
    return llvm::Error::success();
  return llvm::createStringError(
      llvm::formatv("{0} failed: {1}", call, describeResult(result)).str());
}

//===----------------------------------------------------------------------===//
// Device
//===----------------------------------------------------------------------===//

namespace qnt::cuda {
/// Builds the Device (a friend of it); runs once, under State::once.
struct DeviceInit {
  static InitFailure run(Device *&out);
};
} // namespace qnt::cuda

InitFailure DeviceInit::run(Device *&out) {
  // RTLD_LOCAL keeps the driver's symbols out of the process's global scope,
  // where a JIT resolving names of compiled code would also find them.
  void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  const char *libraryName = "libcuda.so.1";
  if (!library) {
    std::string firstError = dlerror();
    library = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    libraryName = "libcuda.so";
    if (!library)
      return unavailable(
          "no CUDA driver found (dlopen libcuda.so.1: " + firstError + ")");
  }
  if (llvm::Error error = resolveSymbols(library, libraryName))
    return failed(std::move(error));

  CUresult result = api.init(0);
  // The stub cannot name its own error code, so say it here.
  if (result == kErrorStubLibrary)
    return unavailable(
        llvm::formatv("no CUDA driver found ({0} is the CUDA toolkit's stub "
                      "library, not a driver: cuInit returned "
                      "CUDA_ERROR_STUB_LIBRARY)",
                      libraryName)
            .str());
  if (result == kErrorNoDevice)
    return unavailable("no CUDA device found (cuInit returned " +
                       describeResult(result) + ")");
  if (llvm::Error error = checkResult(result, "cuInit"))
    return failed(std::move(error));

  int count = 0;
  if (llvm::Error error =
          checkResult(api.deviceGetCount(&count), "cuDeviceGetCount"))
    return failed(std::move(error));
  if (count == 0)
    return unavailable("no CUDA device found");

  llvm::Expected<int> ordinal = requestedOrdinal();
  if (!ordinal)
    return failed(ordinal.takeError());
  if (*ordinal >= count)
    return failed(llvm::createStringError(
        llvm::formatv("CUDA device {0} requested but the driver has {1} "
                      "device(s)",
                      *ordinal, count)
            .str()));

  auto device = std::unique_ptr<Device>(new Device());
  device->deviceOrdinal = *ordinal;
  CUdevice handle = 0;
  if (llvm::Error error =
          checkResult(api.deviceGet(&handle, *ordinal), "cuDeviceGet"))
    return failed(std::move(error));
  device->deviceHandle = handle;

  char name[256] = {};
  if (llvm::Error error =
          checkResult(api.deviceGetName(name, int(sizeof(name)) - 1, handle),
                      "cuDeviceGetName"))
    return failed(std::move(error));
  device->deviceName = name;

  auto attribute = [&](int attr, int &value) {
    return checkResult(api.deviceGetAttribute(&value, attr, handle),
                       "cuDeviceGetAttribute");
  };
  int l2 = 0, sharedOptin = 0;
  for (auto [attr, value] : std::initializer_list<std::pair<int, int *>>{
           {kAttrComputeCapabilityMajor, &device->ccMajor},
           {kAttrComputeCapabilityMinor, &device->ccMinor},
           {kAttrMultiprocessorCount, &device->numSMs},
           {kAttrL2CacheSize, &l2},
           {kAttrMaxSharedMemoryPerBlockOptin, &sharedOptin}})
    if (llvm::Error error = attribute(attr, *value))
      return failed(std::move(error));
  // Only the theoretical bandwidth needs these; a driver that stops
  // reporting them (the runtime API dropped memoryClockRate in CUDA 13)
  // must not make the device unusable.
  if (api.deviceGetAttribute(&device->memoryClockKHz, kAttrMemoryClockRateKHz,
                             handle) != kSuccess ||
      api.deviceGetAttribute(&device->busWidthBits,
                             kAttrGlobalMemoryBusWidthBits, handle) != kSuccess)
    device->memoryClockKHz = device->busWidthBits = 0;
  device->l2Cache = static_cast<size_t>(std::max(l2, 0));
  device->maxSharedOptin = static_cast<size_t>(std::max(sharedOptin, 0));

  if (llvm::Error error = checkResult(
          api.deviceTotalMem(&device->totalMemory, handle), "cuDeviceTotalMem"))
    return failed(std::move(error));

  // The primary context is shared with the CUDA runtime library (and so
  // with cuBLAS & co. in the same process). It stays retained until exit.
  if (llvm::Error error =
          checkResult(api.devicePrimaryCtxRetain(&device->context, handle),
                      "cuDevicePrimaryCtxRetain"))
    return failed(std::move(error));

  out = device.release();
  return {};
}

llvm::Expected<Device &> Device::get() {
  State &s = state();
  std::call_once(s.once, [&s] { s.failure = DeviceInit::run(s.device); });
  if (!s.device)
    return s.failure.toError();
  if (llvm::Error error = s.device->makeCurrent())
    return error;
  return *s.device;
}

llvm::Error Device::selectOrdinal(int ordinal) {
  if (ordinal < 0)
    return llvm::createStringError(
        llvm::formatv("invalid CUDA device ordinal {0}", ordinal).str());
  State &s = state();
  std::lock_guard<std::mutex> lock(s.ordinalMutex);
  if (!s.ordinalFrozen) {
    s.requestedOrdinal = ordinal;
    return llvm::Error::success();
  }
  if (ordinal == s.frozenOrdinal)
    return llvm::Error::success();
  return llvm::createStringError(
      llvm::formatv("the CUDA runtime already uses device {0} and cannot "
                    "switch to device {1} (set QNT_CUDA_DEVICE={1} to choose "
                    "it before the first GPU call)",
                    s.frozenOrdinal, ordinal)
          .str());
}

llvm::Error Device::makeCurrent() const {
  return checkResult(api.ctxSetCurrent(context), "cuCtxSetCurrent");
}

std::string Device::arch() const {
  return llvm::formatv("sm_{0}{1}", ccMajor, ccMinor).str();
}

double Device::theoreticalBandwidthGBs() const {
  return 2.0 * memoryClockKHz * 1e3 * (busWidthBits / 8.0) / 1e9;
}

//===----------------------------------------------------------------------===//
// DeviceBuffer
//===----------------------------------------------------------------------===//

llvm::Expected<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  if (llvm::Error error = Device::get().takeError())
    return error;
  if (bytes == 0)
    return DeviceBuffer();
  CUdeviceptr pointer = 0;
  if (CUresult result = api.memAlloc(&pointer, bytes))
    return llvm::createStringError(
        llvm::formatv("cuMemAlloc failed: {0}; allocating {1} bytes",
                      describeResult(result), bytes)
            .str());
  return DeviceBuffer(pointer, bytes);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : devicePtr(std::exchange(other.devicePtr, 0)),
      numBytes(std::exchange(other.numBytes, 0)) {}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  if (this != &other) {
    reset();
    devicePtr = std::exchange(other.devicePtr, 0);
    numBytes = std::exchange(other.numBytes, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { reset(); }

void DeviceBuffer::reset() {
  if (devicePtr) {
    // A destructor cannot report; a failure here (the driver already shut
    // down at exit) leaks nothing that outlives the process.
    if (llvm::Expected<Device &> device = Device::get())
      (void)api.memFree(devicePtr);
    else
      llvm::consumeError(device.takeError());
  }
  devicePtr = 0;
  numBytes = 0;
}

llvm::Error DeviceBuffer::checkRange(size_t bytes, size_t offset,
                                     const char *what) const {
  if (offset > numBytes || bytes > numBytes - offset)
    return llvm::createStringError(
        llvm::formatv("{0} of {1} bytes at offset {2} does not fit in a "
                      "device buffer of {3} bytes",
                      what, bytes, offset, numBytes)
            .str());
  return llvm::Error::success();
}

llvm::Error DeviceBuffer::copyFromHost(const void *src, size_t bytes,
                                       size_t offset) {
  if (llvm::Error error = checkRange(bytes, offset, "copy from host"))
    return error;
  if (bytes == 0)
    return llvm::Error::success();
  if (llvm::Error error = Device::get().takeError())
    return error;
  return checkResult(api.memcpyHtoD(devicePtr + offset, src, bytes),
                     "cuMemcpyHtoD");
}

llvm::Error DeviceBuffer::copyToHost(void *dst, size_t bytes,
                                     size_t offset) const {
  if (llvm::Error error = checkRange(bytes, offset, "copy to host"))
    return error;
  if (bytes == 0)
    return llvm::Error::success();
  if (llvm::Error error = Device::get().takeError())
    return error;
  return checkResult(api.memcpyDtoH(dst, devicePtr + offset, bytes),
                     "cuMemcpyDtoH");
}

llvm::Error DeviceBuffer::fill(uint8_t value) {
  if (numBytes == 0)
    return llvm::Error::success();
  if (llvm::Error error = Device::get().takeError())
    return error;
  return checkResult(api.memsetD8(devicePtr, value, numBytes), "cuMemsetD8");
}

//===----------------------------------------------------------------------===//
// Module
//===----------------------------------------------------------------------===//

/// True for images the driver takes as binaries: an ELF cubin or a fatbin
/// (magic 0xBA55ED50, little-endian). Everything else is PTX text.
static bool isBinaryImage(llvm::ArrayRef<char> image) {
  static const char elfMagic[] = {0x7f, 'E', 'L', 'F'};
  static const char fatbinMagic[] = {0x50, char(0xed), 0x55, char(0xba)};
  llvm::StringRef bytes(image.data(), image.size());
  return bytes.starts_with(llvm::StringRef(elfMagic, 4)) ||
         bytes.starts_with(llvm::StringRef(fatbinMagic, 4));
}

llvm::Expected<Module> Module::load(llvm::ArrayRef<char> image,
                                    std::optional<int> jitOptimizationLevel) {
  if (image.empty())
    return llvm::createStringError("cannot load an empty CUDA module image");
  if (jitOptimizationLevel &&
      (*jitOptimizationLevel < 0 || *jitOptimizationLevel > 4))
    return llvm::createStringError(
        llvm::formatv("JIT optimization level {0} is not in [0, 4]",
                      *jitOptimizationLevel)
            .str());
  if (llvm::Error error = Device::get().takeError())
    return error;

  // The driver reads PTX up to its terminating NUL; add one if missing.
  std::string terminated;
  const void *data = image.data();
  if (!isBinaryImage(image) && image.back() != '\0') {
    terminated.assign(image.data(), image.size());
    data = terminated.c_str();
  }

  // On input the size option holds the buffer size; on output the length
  // of the log written (pointer-sized integers passed as void *).
  std::string errorLog(16 * 1024, '\0');
  int options[3] = {kJitErrorLogBuffer, kJitErrorLogBufferSizeBytes,
                    kJitOptimizationLevel};
  void *values[3] = {
      errorLog.data(), reinterpret_cast<void *>(uintptr_t(errorLog.size())),
      reinterpret_cast<void *>(uintptr_t(jitOptimizationLevel.value_or(0)))};
  unsigned numOptions = jitOptimizationLevel ? 3 : 2;

  CUmodule module = nullptr;
  CUresult result =
      api.moduleLoadDataEx(&module, data, numOptions, options, values);
  if (result != kSuccess) {
    size_t logLength =
        std::min(static_cast<size_t>(reinterpret_cast<uintptr_t>(values[1])),
                 errorLog.size());
    errorLog.resize(strnlen(errorLog.data(), logLength));
    std::string message =
        llvm::formatv("cuModuleLoadDataEx failed: {0}", describeResult(result))
            .str();
    llvm::StringRef log = llvm::StringRef(errorLog).rtrim();
    if (!log.empty())
      message += "\nJIT error log:\n" + log.str();
    return llvm::createStringError(message);
  }
  return Module(module);
}

Module::Module(Module &&other) noexcept
    : module(std::exchange(other.module, nullptr)) {}

Module &Module::operator=(Module &&other) noexcept {
  if (this != &other) {
    Module old(std::move(*this));
    module = std::exchange(other.module, nullptr);
  }
  return *this;
}

Module::~Module() {
  if (!module)
    return;
  if (llvm::Expected<Device &> device = Device::get())
    (void)api.moduleUnload(module);
  else
    llvm::consumeError(device.takeError());
}

ModuleHandle Module::release() { return std::exchange(module, nullptr); }

llvm::Expected<FunctionHandle> Module::function(llvm::StringRef name) const {
  if (!module)
    return llvm::createStringError("no CUDA module loaded");
  if (llvm::Error error = Device::get().takeError())
    return error;
  CUfunction function = nullptr;
  std::string nameString = name.str();
  if (CUresult result =
          api.moduleGetFunction(&function, module, nameString.c_str()))
    return llvm::createStringError(
        llvm::formatv("cuModuleGetFunction failed: {0}; kernel '{1}'",
                      describeResult(result), name)
            .str());
  return function;
}

//===----------------------------------------------------------------------===//
// Launching and timing
//===----------------------------------------------------------------------===//

llvm::Error qnt::cuda::launch(FunctionHandle function,
                              std::array<unsigned, 3> grid,
                              std::array<unsigned, 3> block,
                              unsigned sharedBytes, void **params) {
  if (!function)
    return llvm::createStringError("cannot launch a null CUDA function");
  llvm::Expected<Device &> device = Device::get();
  if (!device)
    return device.takeError();
  if (sharedBytes > kDefaultMaxDynamicSharedBytes) {
    if (sharedBytes > device->maxSharedMemoryPerBlockOptin())
      return llvm::createStringError(
          llvm::formatv("a launch asks for {0} bytes of dynamic shared "
                        "memory; {1} allows at most {2} per block",
                        sharedBytes, device->name(),
                        device->maxSharedMemoryPerBlockOptin())
              .str());
    if (llvm::Error error = checkResult(
            api.funcSetAttribute(function, kFuncAttrMaxDynamicSharedSizeBytes,
                                 static_cast<int>(sharedBytes)),
            "cuFuncSetAttribute"))
      return error;
  }
  return checkResult(api.launchKernel(function, grid[0], grid[1], grid[2],
                                      block[0], block[1], block[2], sharedBytes,
                                      /*stream=*/nullptr, params,
                                      /*extra=*/nullptr),
                     "cuLaunchKernel");
}

llvm::Error qnt::cuda::synchronize() {
  if (llvm::Error error = Device::get().takeError())
    return error;
  return checkResult(api.ctxSynchronize(), "cuCtxSynchronize");
}

namespace {
/// Events destroyed on scope exit (errors ignored: nothing to report them
/// to, and a failed destroy leaks one event at most).
struct EventList {
  std::vector<CUevent> events;
  ~EventList() {
    for (CUevent event : events)
      (void)api.eventDestroy(event);
  }
};
} // namespace

llvm::Expected<std::vector<double>>
qnt::cuda::timeMilliseconds(llvm::function_ref<llvm::Error()> body,
                            int iterations) {
  if (iterations < 1)
    return llvm::createStringError(
        llvm::formatv("cannot time {0} iterations", iterations).str());
  if (llvm::Error error = Device::get().takeError())
    return error;

  // One event before the first run and one after each run: run i lies
  // between events i and i + 1.
  EventList list;
  for (int i = 0; i <= iterations; ++i) {
    CUevent event = nullptr;
    if (llvm::Error error = checkResult(api.eventCreate(&event, kEventDefault),
                                        "cuEventCreate"))
      return error;
    list.events.push_back(event);
  }
  if (llvm::Error error = checkResult(api.eventRecord(list.events[0], nullptr),
                                      "cuEventRecord"))
    return error;
  for (int i = 0; i < iterations; ++i) {
    if (llvm::Error error = body())
      return error;
    // body may have run on another thread's behalf; be current again.
    if (llvm::Error error = Device::get().takeError())
      return error;
    if (llvm::Error error = checkResult(
            api.eventRecord(list.events[i + 1], nullptr), "cuEventRecord"))
      return error;
  }
  if (llvm::Error error = checkResult(api.eventSynchronize(list.events.back()),
                                      "cuEventSynchronize"))
    return error;

  std::vector<double> times;
  times.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    float ms = 0;
    if (llvm::Error error = checkResult(
            api.eventElapsedTime(&ms, list.events[i], list.events[i + 1]),
            "cuEventElapsedTime"))
      return error;
    times.push_back(ms);
  }
  return times;
}

double qnt::cuda::median(std::vector<double> values) {
  if (values.empty())
    return 0;
  size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + mid, values.end());
  double upper = values[mid];
  if (values.size() % 2)
    return upper;
  double lower = *std::max_element(values.begin(), values.begin() + mid);
  return (lower + upper) / 2;
}

llvm::Expected<double> qnt::cuda::measureCopyBandwidthGBs(size_t bytes,
                                                          int iterations) {
  if (bytes == 0)
    return llvm::createStringError("cannot measure a copy of 0 bytes");
  llvm::Expected<DeviceBuffer> src = DeviceBuffer::allocate(bytes);
  if (!src)
    return src.takeError();
  llvm::Expected<DeviceBuffer> dst = DeviceBuffer::allocate(bytes);
  if (!dst)
    return dst.takeError();
  // Touch both buffers so that the timed copies see no first-use costs.
  if (llvm::Error error = src->fill(0x5a))
    return error;
  if (llvm::Error error = dst->fill(0))
    return error;

  auto copy = [&]() -> llvm::Error {
    return checkResult(api.memcpyDtoD(dst->address(), src->address(), bytes),
                       "cuMemcpyDtoD");
  };
  if (llvm::Error error = copy()) // warm-up
    return error;
  llvm::Expected<std::vector<double>> times =
      timeMilliseconds(copy, iterations);
  if (!times)
    return times.takeError();
  double ms = median(std::move(*times));
  if (ms <= 0)
    return llvm::createStringError(
        llvm::formatv("a {0}-byte device copy timed at {1} ms", bytes, ms)
            .str());
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}
