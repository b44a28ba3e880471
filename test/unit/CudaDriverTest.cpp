//===- CudaDriverTest.cpp - Tests for qnt::cuda and the mgpu* ABI ---------===//
//
// On a machine without a CUDA driver only the failure paths run (Device::get
// reports "no CUDA driver found", the mgpu* entry points exit with status
// 1); tests that need a device are skipped there, not passed. With a device
// they allocate, copy, launch hand-written PTX and time copies.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/CudaDriver.h"
#include "qnt/runtime/CudaRuntimeWrappers.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>

using namespace qnt::cuda;

namespace {

/// out[tid.x] = tid.x * 3, for a u32 array.
const char kWriteTidPtx[] = R"(
.version 8.0
.target sm_80
.address_size 64

.visible .entry write_tid_times3(
    .param .u64 out
)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r1, %tid.x;
    mul.lo.u32 %r2, %r1, 3;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r2;
    ret;
}

.extern .shared .align 16 .b8 dynamic_smem[];

// Each thread stores tid.x * 3 into dynamic shared memory at
// offset + 4 * tid.x, reads it back after a barrier and writes it to
// out[tid.x]: checks that `offset` (near the end of a large dynamic shared
// allocation) is usable.
.visible .entry smem_roundtrip(
    .param .u64 out,
    .param .u32 offset
)
{
    .reg .b32 %r<7>;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [offset];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r2, %tid.x;
    mul.lo.u32 %r3, %r2, 3;
    shl.b32 %r4, %r2, 2;
    add.u32 %r5, %r1, %r4;
    mov.u32 %r6, dynamic_smem;
    add.u32 %r5, %r5, %r6;
    st.shared.u32 [%r5], %r3;
    bar.sync 0;
    ld.shared.u32 %r3, [%r5];
    mul.wide.u32 %rd3, %r2, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r3;
    ret;
}
)";

/// Not PTX: `bogus` is no instruction, so the JIT log names it.
const char kBrokenPtx[] = R"(
.version 8.0
.target sm_80
.address_size 64

.visible .entry broken(
    .param .u64 out
)
{
    bogus.instruction %r1;
    ret;
}
)";

/// The PTX text without its terminating NUL (Module::load must add one).
llvm::ArrayRef<char> ptxImage(const char *ptx) {
  return llvm::ArrayRef<char>(ptx, std::strlen(ptx));
}

/// Whether libcuda can be opened at all, checked without the code under
/// test.
bool driverLibraryPresent() {
  for (const char *name : {"libcuda.so.1", "libcuda.so"}) {
    if (void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)) {
      dlclose(handle);
      return true;
    }
  }
  return false;
}

std::string errorMessage(llvm::Error error) {
  return llvm::toString(std::move(error));
}

template <typename T> std::string errorMessage(llvm::Expected<T> &value) {
  if (value)
    return "";
  return llvm::toString(value.takeError());
}

#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    llvm::Error assertOkError = (expr);                                        \
    ASSERT_FALSE(static_cast<bool>(assertOkError))                             \
        << llvm::toString(std::move(assertOkError));                           \
  } while (false)

template <typename T> T unwrap(llvm::Expected<T> value) {
  if (!value) {
    ADD_FAILURE() << llvm::toString(value.takeError());
    return T();
  }
  return std::move(*value);
}

//===----------------------------------------------------------------------===//
// Without a driver
//===----------------------------------------------------------------------===//

TEST(CudaDriverTest, MissingDriverIsReportedAndRemembered) {
  if (driverLibraryPresent())
    GTEST_SKIP() << "libcuda is present: the missing-driver path needs a "
                    "machine without a CUDA driver";
  llvm::Expected<Device &> first = Device::get();
  ASSERT_FALSE(static_cast<bool>(first));
  llvm::Error firstError = first.takeError();
  EXPECT_TRUE(firstError.isA<UnavailableError>());
  std::string message = errorMessage(std::move(firstError));
  EXPECT_EQ(message.rfind("no CUDA driver found (dlopen libcuda.so.1: ", 0), 0u)
      << message;

  // The failure is remembered: same message, no crash, no retry.
  llvm::Expected<Device &> second = Device::get();
  ASSERT_FALSE(static_cast<bool>(second));
  EXPECT_EQ(errorMessage(second), message);

  // Everything that needs the device fails the same way.
  llvm::Expected<DeviceBuffer> buffer = DeviceBuffer::allocate(16);
  EXPECT_EQ(errorMessage(buffer), message);
  llvm::Expected<Module> module = Module::load(ptxImage(kWriteTidPtx));
  EXPECT_EQ(errorMessage(module), message);
  llvm::Expected<double> bandwidth = measureCopyBandwidthGBs(1 << 20, 3);
  EXPECT_EQ(errorMessage(bandwidth), message);
  EXPECT_EQ(errorMessage(synchronize()), message);
}

TEST(CudaDriverTest, InitializationOutcomeIsStable) {
  llvm::Expected<Device &> first = Device::get();
  llvm::Expected<Device &> second = Device::get();
  ASSERT_EQ(static_cast<bool>(first), static_cast<bool>(second));
  if (first) {
    EXPECT_EQ(&*first, &*second);
    return;
  }
  std::string message = errorMessage(first);
  EXPECT_FALSE(message.empty());
  EXPECT_EQ(errorMessage(second), message);
}

// The host code of qnt-gpu-model-pipeline takes its stream with
// mgpuStreamCreate and never destroys it: with a current stream set, every
// call gets that one (no driver call, so this runs anywhere) and destroying
// it is a no-op; without one, a fresh stream would be made.
TEST(CudaRuntimeWrappersTest, CurrentStreamIsSharedAndNotDestroyed) {
  auto *fake = reinterpret_cast<void *>(uintptr_t(0x1000));
  EXPECT_EQ(qnt::cuda::currentStream(), nullptr);
  qnt::cuda::setCurrentStream(fake);
  EXPECT_EQ(qnt::cuda::currentStream(), fake);
  EXPECT_EQ(mgpuStreamCreate(), fake);
  EXPECT_EQ(mgpuStreamCreate(), fake);
  mgpuStreamDestroy(fake);
  // Another thread has no current stream.
  void *seenByOtherThread = fake;
  std::thread([&] { seenByOtherThread = qnt::cuda::currentStream(); }).join();
  EXPECT_EQ(seenByOtherThread, nullptr);
  qnt::cuda::setCurrentStream(nullptr);
  EXPECT_EQ(qnt::cuda::currentStream(), nullptr);
}

TEST(CudaRuntimeWrappersTest, MissingDriverExitsWithStatusOne) {
  if (driverLibraryPresent())
    GTEST_SKIP() << "libcuda is present: the missing-driver path needs a "
                    "machine without a CUDA driver";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(mgpuStreamCreate(), testing::ExitedWithCode(1),
              "quant-mlir CUDA runtime: no CUDA driver found \\(dlopen "
              "libcuda.so.1: ");
  EXPECT_EXIT(mgpuModuleLoadJIT(const_cast<char *>(kWriteTidPtx), 2),
              testing::ExitedWithCode(1), "no CUDA driver found");
  EXPECT_EXIT(mgpuMemAlloc(64, nullptr, 0), testing::ExitedWithCode(1),
              "no CUDA driver found");
  // Releasing nothing needs no driver.
  mgpuModuleUnload(nullptr);
  mgpuMemFree(nullptr, nullptr);
  mgpuStreamDestroy(nullptr);
  mgpuEventDestroy(nullptr);
}

//===----------------------------------------------------------------------===//
// Host-only helpers
//===----------------------------------------------------------------------===//

TEST(CudaDriverTest, Median) {
  EXPECT_EQ(median({}), 0);
  EXPECT_EQ(median({7}), 7);
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(median({5, 5, 1, 100, 5}), 5);
}

TEST(CudaDriverTest, InvalidOrdinalIsRejected) {
  llvm::Error error = Device::selectOrdinal(-1);
  ASSERT_TRUE(static_cast<bool>(error));
  EXPECT_NE(errorMessage(std::move(error)).find("invalid CUDA device ordinal"),
            std::string::npos);
}

TEST(CudaRuntimeWrappersTest, SymbolTableListsEveryEntryPoint) {
  llvm::ArrayRef<RuntimeSymbol> symbols = runtimeWrapperSymbols();
  std::set<std::string> names;
  for (const RuntimeSymbol &symbol : symbols) {
    EXPECT_NE(symbol.address, nullptr) << symbol.name;
    names.insert(symbol.name);
  }
  EXPECT_EQ(names.size(), symbols.size()) << "duplicate names";
  // Everything MLIR 22's gpu-to-llvm and module embedding call.
  for (const char *name : {"mgpuModuleLoad",
                           "mgpuModuleLoadJIT",
                           "mgpuModuleUnload",
                           "mgpuModuleGetFunction",
                           "mgpuLaunchKernel",
                           "mgpuLaunchClusterKernel",
                           "mgpuStreamCreate",
                           "mgpuStreamDestroy",
                           "mgpuStreamSynchronize",
                           "mgpuStreamWaitEvent",
                           "mgpuEventCreate",
                           "mgpuEventDestroy",
                           "mgpuEventSynchronize",
                           "mgpuEventRecord",
                           "mgpuMemAlloc",
                           "mgpuMemFree",
                           "mgpuMemcpy",
                           "mgpuMemset32",
                           "mgpuMemset16",
                           "mgpuMemHostRegisterMemRef",
                           "mgpuMemHostUnregisterMemRef",
                           "mgpuSetDefaultDevice"})
    EXPECT_TRUE(names.count(name)) << name;
  for (const RuntimeSymbol &symbol : symbols) {
    if (std::string(symbol.name) == "mgpuLaunchKernel") {
      EXPECT_EQ(symbol.address, reinterpret_cast<void *>(&mgpuLaunchKernel));
    }
  }
}

//===----------------------------------------------------------------------===//
// With a device
//===----------------------------------------------------------------------===//

/// Skips (not passes) when the machine has no CUDA driver or device.
class CudaDeviceTest : public testing::Test {
protected:
  void SetUp() override {
    llvm::Expected<Device &> device = Device::get();
    if (!device) {
      llvm::Error error = device.takeError();
      bool unavailable = error.isA<UnavailableError>();
      std::string message = errorMessage(std::move(error));
      if (unavailable)
        GTEST_SKIP() << "no CUDA driver/device: " << message;
      FAIL() << message;
    }
    dev = &*device;
  }

  /// Reads `count` u32 values from `buffer`.
  std::vector<uint32_t> readU32(const DeviceBuffer &buffer, size_t count) {
    std::vector<uint32_t> values(count);
    llvm::Error error =
        buffer.copyToHost(values.data(), count * sizeof(uint32_t));
    EXPECT_FALSE(static_cast<bool>(error)) << errorMessage(std::move(error));
    return values;
  }

  Device *dev = nullptr;
};

TEST_F(CudaDeviceTest, Properties) {
  EXPECT_FALSE(dev->name().empty());
  auto [major, minor] = dev->computeCapability();
  EXPECT_GE(major, 5);
  EXPECT_GE(minor, 0);
  EXPECT_EQ(dev->arch(), "sm_" + std::to_string(major) + std::to_string(minor));
  EXPECT_GT(dev->smCount(), 0);
  EXPECT_GT(dev->totalMemoryBytes(), size_t(1) << 30);
  EXPECT_GT(dev->l2CacheBytes(), 0u);
  EXPECT_GE(dev->maxSharedMemoryPerBlockOptin(), size_t(48) * 1024);
  EXPECT_GT(dev->theoreticalBandwidthGBs(), 100.0);
  EXPECT_LT(dev->theoreticalBandwidthGBs(), 100000.0);
}

TEST_F(CudaDeviceTest, CopyRoundTrip) {
  const size_t bytes = (1 << 20) + 3;
  DeviceBuffer buffer = unwrap(DeviceBuffer::allocate(bytes));
  ASSERT_EQ(buffer.size(), bytes);
  ASSERT_NE(buffer.address(), 0u);
  EXPECT_EQ(buffer.pointer(), reinterpret_cast<void *>(buffer.address()));

  std::vector<uint8_t> pattern(bytes);
  for (size_t i = 0; i < bytes; ++i)
    pattern[i] = static_cast<uint8_t>(i * 131 + (i >> 8));
  ASSERT_OK(buffer.copyFromHost(pattern.data(), bytes));
  std::vector<uint8_t> back(bytes, 0);
  ASSERT_OK(buffer.copyToHost(back.data(), bytes));
  EXPECT_EQ(back, pattern);

  // Partial copies at an offset touch only their range.
  const uint8_t patch[5] = {1, 2, 3, 4, 5};
  ASSERT_OK(buffer.copyFromHost(patch, sizeof(patch), 1000));
  uint8_t window[9] = {};
  ASSERT_OK(buffer.copyToHost(window, sizeof(window), 998));
  const uint8_t expected[9] = {pattern[998],  pattern[999], 1, 2, 3, 4, 5,
                               pattern[1005], pattern[1006]};
  EXPECT_EQ(std::memcmp(window, expected, sizeof(window)), 0);
}

TEST_F(CudaDeviceTest, Fill) {
  DeviceBuffer buffer = unwrap(DeviceBuffer::allocate(4097));
  ASSERT_OK(buffer.fill(0xa5));
  std::vector<uint8_t> back(4097, 0);
  ASSERT_OK(buffer.copyToHost(back.data(), back.size()));
  for (size_t i = 0; i < back.size(); ++i)
    ASSERT_EQ(back[i], 0xa5) << "byte " << i;
  ASSERT_OK(buffer.fill(0));
  ASSERT_OK(buffer.copyToHost(back.data(), back.size()));
  EXPECT_EQ(std::accumulate(back.begin(), back.end(), 0u), 0u);
}

TEST_F(CudaDeviceTest, CopiesAreBoundsChecked) {
  DeviceBuffer buffer = unwrap(DeviceBuffer::allocate(256));
  std::vector<uint8_t> host(512, 7);
  llvm::Error tooLong = buffer.copyFromHost(host.data(), 257);
  ASSERT_TRUE(static_cast<bool>(tooLong));
  EXPECT_NE(errorMessage(std::move(tooLong)).find("does not fit"),
            std::string::npos);
  EXPECT_TRUE(static_cast<bool>(buffer.copyToHost(host.data(), 1, 256)))
      << "one byte past the end";
  EXPECT_TRUE(
      static_cast<bool>(buffer.copyToHost(host.data(), 16, SIZE_MAX - 8)))
      << "offset + bytes wraps around";
  EXPECT_TRUE(static_cast<bool>(buffer.copyFromHost(host.data(), 8, 252)));
  // Exactly at the end, and empty copies, are fine.
  ASSERT_OK(buffer.copyFromHost(host.data(), 4, 252));
  ASSERT_OK(buffer.copyToHost(host.data(), 0, 256));
}

TEST_F(CudaDeviceTest, BuffersMove) {
  DeviceBuffer a = unwrap(DeviceBuffer::allocate(64));
  uint64_t address = a.address();
  ASSERT_NE(address, 0u);
  DeviceBuffer b = std::move(a);
  EXPECT_EQ(a.address(), 0u);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.address(), address);
  EXPECT_EQ(b.size(), 64u);
  DeviceBuffer c = unwrap(DeviceBuffer::allocate(32));
  c = std::move(b);
  EXPECT_EQ(c.address(), address);
  EXPECT_EQ(c.size(), 64u);
  c.reset();
  EXPECT_EQ(c.address(), 0u);
  DeviceBuffer empty = unwrap(DeviceBuffer::allocate(0));
  EXPECT_EQ(empty.address(), 0u);
  EXPECT_EQ(empty.size(), 0u);
}

TEST_F(CudaDeviceTest, LaunchHandWrittenPtx) {
  Module module = unwrap(Module::load(ptxImage(kWriteTidPtx)));
  ASSERT_NE(module.handle(), nullptr);
  FunctionHandle function = unwrap(module.function("write_tid_times3"));
  ASSERT_NE(function, nullptr);

  DeviceBuffer out = unwrap(DeviceBuffer::allocate(64 * sizeof(uint32_t)));
  ASSERT_OK(out.fill(0xff));
  uint64_t address = out.address();
  void *params[] = {&address};
  ASSERT_OK(launch(function, {1, 1, 1}, {32, 1, 1}, 0, params));
  ASSERT_OK(synchronize());
  std::vector<uint32_t> values = readU32(out, 64);
  for (uint32_t i = 0; i < 32; ++i)
    EXPECT_EQ(values[i], 3 * i) << "thread " << i;
  for (uint32_t i = 32; i < 64; ++i)
    EXPECT_EQ(values[i], 0xffffffffu) << "untouched element " << i;
}

TEST_F(CudaDeviceTest, LaunchFromAnotherThread) {
  Module module = unwrap(Module::load(ptxImage(kWriteTidPtx), 2));
  FunctionHandle function = unwrap(module.function("write_tid_times3"));
  ASSERT_NE(function, nullptr);
  std::vector<uint32_t> values;
  std::string failure;
  // A fresh thread has no current context until the API makes it current.
  std::thread worker([&] {
    llvm::Expected<DeviceBuffer> out = DeviceBuffer::allocate(128);
    if (!out) {
      failure = llvm::toString(out.takeError());
      return;
    }
    uint64_t address = out->address();
    void *params[] = {&address};
    values.resize(32);
    if (llvm::Error error = launch(function, {1, 1, 1}, {32, 1, 1}, 0, params))
      failure = llvm::toString(std::move(error));
    else if (llvm::Error error = out->copyToHost(values.data(), 128))
      failure = llvm::toString(std::move(error));
  });
  worker.join();
  ASSERT_EQ(failure, "");
  for (uint32_t i = 0; i < 32; ++i)
    EXPECT_EQ(values[i], 3 * i);
}

TEST_F(CudaDeviceTest, UnknownKernelName) {
  Module module = unwrap(Module::load(ptxImage(kWriteTidPtx)));
  llvm::Expected<FunctionHandle> function = module.function("no_such_kernel");
  std::string message = errorMessage(function);
  EXPECT_NE(message.find("cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("no_such_kernel"), std::string::npos) << message;
}

TEST_F(CudaDeviceTest, LargeDynamicSharedMemory) {
  const unsigned sharedBytes = 64 * 1024;
  if (dev->maxSharedMemoryPerBlockOptin() < sharedBytes)
    GTEST_SKIP() << dev->name().str() << " has less than 64 KiB of shared "
                 << "memory per block";
  Module module = unwrap(Module::load(ptxImage(kWriteTidPtx)));
  FunctionHandle function = unwrap(module.function("smem_roundtrip"));
  ASSERT_NE(function, nullptr);
  DeviceBuffer out = unwrap(DeviceBuffer::allocate(32 * sizeof(uint32_t)));
  uint64_t address = out.address();
  uint32_t offset = sharedBytes - 32 * sizeof(uint32_t);
  void *params[] = {&address, &offset};
  ASSERT_OK(launch(function, {1, 1, 1}, {32, 1, 1}, sharedBytes, params));
  ASSERT_OK(synchronize());
  std::vector<uint32_t> values = readU32(out, 32);
  for (uint32_t i = 0; i < 32; ++i)
    EXPECT_EQ(values[i], 3 * i) << "thread " << i;

  // More than the device allows is an error before the driver is asked.
  unsigned tooMuch =
      static_cast<unsigned>(dev->maxSharedMemoryPerBlockOptin()) + 4;
  llvm::Error error = launch(function, {1, 1, 1}, {32, 1, 1}, tooMuch, params);
  ASSERT_TRUE(static_cast<bool>(error));
  EXPECT_NE(errorMessage(std::move(error)).find("dynamic shared memory"),
            std::string::npos);
}

TEST_F(CudaDeviceTest, MalformedPtxReportsTheJitLog) {
  llvm::Expected<Module> module = Module::load(ptxImage(kBrokenPtx));
  std::string message = errorMessage(module);
  ASSERT_FALSE(message.empty()) << "broken PTX loaded";
  EXPECT_EQ(message.rfind("cuModuleLoadDataEx failed: CUDA_ERROR_", 0), 0u)
      << message;
  size_t log = message.find("\nJIT error log:\n");
  ASSERT_NE(log, std::string::npos) << message;
  EXPECT_NE(message.find("bogus", log), std::string::npos) << message;
}

TEST_F(CudaDeviceTest, Timing) {
  DeviceBuffer buffer = unwrap(DeviceBuffer::allocate(1 << 20));
  int runs = 0;
  llvm::Expected<std::vector<double>> times = timeMilliseconds(
      [&]() -> llvm::Error {
        ++runs;
        return buffer.fill(static_cast<uint8_t>(runs));
      },
      5);
  ASSERT_TRUE(static_cast<bool>(times)) << errorMessage(times);
  EXPECT_EQ(runs, 5);
  ASSERT_EQ(times->size(), 5u);
  for (double ms : *times) {
    EXPECT_GE(ms, 0.0);
    EXPECT_LT(ms, 10000.0);
  }

  // An error from the body stops the timing and is returned.
  llvm::Expected<std::vector<double>> stopped = timeMilliseconds(
      [] { return llvm::createStringError("body failed"); }, 3);
  EXPECT_EQ(errorMessage(stopped), "body failed");
  llvm::Expected<std::vector<double>> none =
      timeMilliseconds([] { return llvm::Error::success(); }, 0);
  EXPECT_FALSE(static_cast<bool>(none));
  llvm::consumeError(none.takeError());
}

TEST_F(CudaDeviceTest, CopyBandwidthIsBelowTheory) {
  llvm::Expected<double> bandwidth = measureCopyBandwidthGBs(64 << 20, 10);
  ASSERT_TRUE(static_cast<bool>(bandwidth)) << errorMessage(bandwidth);
  EXPECT_GT(*bandwidth, 0.0);
  EXPECT_LT(*bandwidth, dev->theoreticalBandwidthGBs() * 1.1)
      << "theoretical " << dev->theoreticalBandwidthGBs() << " GB/s";
}

TEST_F(CudaDeviceTest, OrdinalIsFixedOnceInitialized) {
  ASSERT_OK(Device::selectOrdinal(dev->ordinal()));
  llvm::Error error = Device::selectOrdinal(dev->ordinal() + 1);
  ASSERT_TRUE(static_cast<bool>(error));
  EXPECT_NE(errorMessage(std::move(error)).find("cannot switch"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// mgpu* with a device
//===----------------------------------------------------------------------===//

using CudaRuntimeWrappersDeviceTest = CudaDeviceTest;

TEST_F(CudaRuntimeWrappersDeviceTest, MemoryOnAStream) {
  void *stream = mgpuStreamCreate();
  ASSERT_NE(stream, nullptr);
  void *device = mgpuMemAlloc(64, stream, 0);
  ASSERT_NE(device, nullptr);
  mgpuMemset32(device, 0xdeadbeef, 16, stream);
  std::vector<uint32_t> words(16, 0);
  mgpuMemcpy(words.data(), device, 64, stream);
  mgpuStreamSynchronize(stream);
  for (uint32_t word : words)
    EXPECT_EQ(word, 0xdeadbeefu);

  // Only the low 16 bits of the value are defined by the IR's i16.
  mgpuMemset16(device, 0xabcd1234u, 32, stream);
  std::vector<uint16_t> halves(32, 0);
  mgpuMemcpy(halves.data(), device, 64, stream);
  void *event = mgpuEventCreate();
  ASSERT_NE(event, nullptr);
  mgpuEventRecord(event, stream);
  void *other = mgpuStreamCreate();
  mgpuStreamWaitEvent(other, event);
  mgpuStreamSynchronize(other);
  mgpuEventSynchronize(event);
  for (uint16_t half : halves)
    EXPECT_EQ(half, 0x1234u);

  mgpuEventDestroy(event);
  mgpuStreamDestroy(other);
  mgpuMemFree(device, stream);
  EXPECT_EQ(mgpuMemAlloc(0, stream, 0), nullptr);
  mgpuStreamDestroy(stream);
}

// A real stream as the thread's current one: allocations with it are
// stream-ordered, freed without waiting, and it survives mgpuStreamDestroy.
TEST_F(CudaRuntimeWrappersDeviceTest, CurrentStreamOrdersMemory) {
  void *stream = mgpuStreamCreate();
  ASSERT_NE(stream, nullptr);
  qnt::cuda::setCurrentStream(stream);
  EXPECT_EQ(mgpuStreamCreate(), stream);
  void *device = mgpuMemAlloc(256, mgpuStreamCreate(), 0);
  ASSERT_NE(device, nullptr);
  mgpuMemset32(device, 7, 64, stream);
  std::vector<uint32_t> words(64, 0);
  mgpuMemcpy(words.data(), device, 256, stream);
  mgpuMemFree(device, stream);
  mgpuStreamDestroy(stream);
  mgpuStreamSynchronize(stream);
  for (uint32_t word : words)
    EXPECT_EQ(word, 7u);
  qnt::cuda::setCurrentStream(nullptr);
  mgpuStreamDestroy(stream);
}

TEST_F(CudaRuntimeWrappersDeviceTest, LoadAndLaunch) {
  void *stream = mgpuStreamCreate();
  // format=isa: NUL-terminated PTX.
  void *module = mgpuModuleLoadJIT(const_cast<char *>(kWriteTidPtx), 2);
  ASSERT_NE(module, nullptr);
  void *function = mgpuModuleGetFunction(module, "write_tid_times3");
  ASSERT_NE(function, nullptr);

  // Host-shared (managed) memory is read directly after synchronization.
  auto *out = static_cast<uint32_t *>(mgpuMemAlloc(64 * 4, stream, 1));
  ASSERT_NE(out, nullptr);
  for (int i = 0; i < 64; ++i)
    out[i] = 0xffffffffu;
  void *params[] = {&out};
  mgpuLaunchKernel(function, 1, 1, 1, 32, 1, 1, 0, stream, params, nullptr, 1);
  mgpuStreamSynchronize(stream);
  for (uint32_t i = 0; i < 32; ++i)
    EXPECT_EQ(out[i], 3 * i);
  EXPECT_EQ(out[32], 0xffffffffu);

  // No blocks: nothing runs (the driver would reject the launch).
  out[0] = 77;
  mgpuLaunchKernel(function, 0, 1, 1, 32, 1, 1, 0, stream, params, nullptr, 1);
  mgpuStreamSynchronize(stream);
  EXPECT_EQ(out[0], 77u);

  mgpuMemFree(out, stream);
  mgpuModuleUnload(module);

  // format=bin/fatbin go through mgpuModuleLoad with the image size; PTX
  // without a NUL is accepted there too.
  void *sized = mgpuModuleLoad(const_cast<char *>(kWriteTidPtx),
                               std::strlen(kWriteTidPtx));
  ASSERT_NE(sized, nullptr);
  EXPECT_NE(mgpuModuleGetFunction(sized, "smem_roundtrip"), nullptr);
  mgpuModuleUnload(sized);
  mgpuStreamDestroy(stream);
}

TEST_F(CudaRuntimeWrappersDeviceTest, HostRegisterMemRef) {
  std::vector<float> host(2 * 32, 1.5f);
  struct {
    float *allocated, *aligned;
    int64_t offset;
    int64_t sizes[2];
    int64_t strides[2];
  } descriptor = {host.data(), host.data(), 0, {2, 32}, {32, 1}};
  mgpuMemHostRegisterMemRef(2, &descriptor, sizeof(float));
  void *stream = mgpuStreamCreate();
  void *device = mgpuMemAlloc(host.size() * sizeof(float), stream, 0);
  mgpuMemcpy(device, host.data(), host.size() * sizeof(float), stream);
  std::vector<float> back(host.size(), 0);
  mgpuMemcpy(back.data(), device, back.size() * sizeof(float), stream);
  mgpuStreamSynchronize(stream);
  EXPECT_EQ(back, host);
  mgpuMemFree(device, stream);
  mgpuStreamDestroy(stream);
  mgpuMemHostUnregisterMemRef(2, &descriptor, sizeof(float));
}

TEST_F(CudaRuntimeWrappersDeviceTest, FailuresAbortWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void *module = mgpuModuleLoadJIT(const_cast<char *>(kWriteTidPtx), 2);
        mgpuModuleGetFunction(module, "no_such_kernel");
      },
      "quant-mlir CUDA runtime: mgpuModuleGetFunction failed: "
      "cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND");
  EXPECT_DEATH(mgpuModuleLoadJIT(const_cast<char *>(kBrokenPtx), 2),
               "mgpuModuleLoadJIT failed: cuModuleLoadDataEx failed: "
               "CUDA_ERROR_[A-Z_]+ \\(.*\\)\nJIT error log:\n.*bogus");
  EXPECT_DEATH(
      {
        void *module = mgpuModuleLoadJIT(const_cast<char *>(kWriteTidPtx), 2);
        void *function = mgpuModuleGetFunction(module, "write_tid_times3");
        mgpuLaunchKernel(function, -1, 1, 1, 32, 1, 1, 0, nullptr, nullptr,
                         nullptr, 0);
      },
      "gridX = -1 is not a valid launch extent");
  EXPECT_DEATH(mgpuSetDefaultDevice(dev->ordinal() + 1),
               "mgpuSetDefaultDevice failed: the CUDA runtime already uses "
               "device");
  mgpuSetDefaultDevice(dev->ordinal());
}

} // namespace
