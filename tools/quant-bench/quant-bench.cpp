//===- quant-bench.cpp - Fused dequantize-matmul benchmarks -----*- C++ -*-===//
//
// Times the fused dequantize-matmul kernels per encoding, shape and row
// count, against the memory-bandwidth bound and a baseline measured in the
// same run, and prints a table (and JSON with --json):
//
//  - gpu: the kernels of qnt-lower-matmul-gpu (f16 activations) on the
//    current CUDA device; bound = the device's measured copy bandwidth;
//    baseline = the same kernels on a dense f16 weight.
//  - cpu: qnt.matmul through qnt-cpu-pipeline (the vector kernels of
//    qnt-lower-matmul-cpu) and the JIT (f32 activations); bound = the
//    fastest read of one thread, as the kernel (a vectorized multi-stream
//    sum; the read bound of every thread is reported beside it); baseline
//    = a dense f32 matmul through the same pipeline and kernels.
//
// Weights are rotated through copies larger than the last-level cache (L2
// on the GPU, L3 on the CPU), so every call streams them from DRAM.
//
//===----------------------------------------------------------------------===//

#include "qnt/support/OptionRange.h"
#include "qnt/InitAll.h"
#include "qnt/bench/Bandwidth.h"
#include "qnt/bench/Report.h"
#include "qnt/bench/Stats.h"
#include "qnt/numerics/Encoding.h"
#include "qnt/runtime/CpuJit.h"
#include "qnt/runtime/CudaDriver.h"
#include "qnt/runtime/GpuMatmul.h"
#include "qnt/runtime/ModelRunner.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/support/Progress.h"
#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"
#include "passes/lowering/Int8Matmul.h"
#include "passes/lowering/VectorMatmul.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>

using namespace mlir;
namespace cl = llvm::cl;
namespace nx = ::qnt::numerics;
namespace cuda = ::qnt::cuda;
namespace bench = ::qnt::bench;

static cl::OptionCategory category("quant-bench options");
static cl::opt<std::string>
    targetOpt("target", cl::desc("gpu, cpu, or auto (gpu when a CUDA "
                                 "driver is present, else cpu)"),
              cl::init("auto"), cl::cat(category));
static cl::list<std::string>
    encodingsOpt("encodings", cl::CommaSeparated,
                 cl::desc("Encodings (default: all): int4-g128, int3-g128, "
                          "int8, e2m1-g32, e4m3, aqlm-2x8, aqlm-2x8-tiled "
                          "(codes in tiles of 128 rows by 16 groups, for "
                          "the lookup-table kernel), aqlm-1x16, binary, "
                          "bitplanes3-g128, ptq161"),
                 cl::cat(category));
static cl::list<std::string>
    shapesOpt("shapes", cl::CommaSeparated,
              cl::desc("Weight shapes KxN (inputs x outputs); default gpu: "
                       "4096x4096,4096x14336,14336x4096,8192x28672, cpu: "
                       "4096x4096"),
              cl::cat(category));
static cl::list<int64_t>
    rowsOpt("rows", cl::CommaSeparated,
            cl::desc("Activation rows M; default gpu: 1,4,16,64,256, cpu: "
                     "1,4"),
            cl::cat(category));
static cl::list<int64_t>
    threadsOpt("cpu-threads", cl::CommaSeparated,
               cl::desc("CPU threads per kernel (default: 1 and every "
                        "core); each gets its own read bound"),
               cl::cat(category));
static cl::list<std::string> activationsOpt(
    "cpu-activations", cl::CommaSeparated,
    cl::desc("CPU activation types to measure: f32 (default), int8 (rows "
             "vector-int8-tN, for encodings with an integer form, and "
             "lut-int8-tN, tiled codebooks up to lut-max-rows rows; the "
             "kernel is read from the lowered IR)"),
    cl::cat(category));
static cl::opt<std::string> matmulOptionsOpt(
    "cpu-kernel-options",
    cl::desc("More qnt-lower-matmul-cpu options for every CPU kernel (e.g. "
             "\"col-tile=2 row-tile=8\"), for tuning"),
    cl::init(""), cl::cat(category));
static cl::opt<int64_t> probeMibOpt(
    "read-probe-mib",
    cl::desc("MiB the read bound is measured on before each round (0: 1 GiB "
             "or 1/8 of memory if less; smaller is quicker and less sure "
             "to defeat the caches)"),
    cl::init(0), cl::cat(category));
static cl::list<std::string> variantsOpt(
    "cpu-kernel-variants",
    cl::desc("Alternatives added to --cpu-kernel-options, comma-separated "
             "(e.g. \"prefetch=0,prefetch=4096\"): each a row of its own "
             "(named in the note column), their rounds interleaved so that "
             "they are compared under the same bandwidth phases"),
    cl::CommaSeparated, cl::cat(category));
/// Where the whole-model runtime keeps the weights (--model).
enum class WeightMemory { Mapped, HugePages };
static cl::list<WeightMemory> weightMemoryOpt(
    "weight-memory",
    cl::desc("--model: where the runtime keeps the weights, comma-separated; "
             "with more than one, each is a row of its own (named in the "
             "note column), rounds interleaved"),
    cl::values(clEnumValN(WeightMemory::Mapped, "mapped",
                          "views of the mapped parameter files (default)"),
               clEnumValN(WeightMemory::HugePages, "huge-pages",
                          "copied into an arena advised for transparent huge "
                          "pages")),
    cl::CommaSeparated, cl::cat(category));
static cl::opt<std::string> modelOpt(
    "model",
    cl::desc("Benchmark a whole model instead of single matmuls: a llama2.c "
             ".bin, a Hugging Face directory or a .mlir written by "
             "quant-compile. Rows prefill-tN (one call on the prompt) and "
             "decode-tN (one call per token), against the read bound"),
    cl::init(""), cl::cat(category));
static cl::opt<int64_t> promptTokensOpt(
    "prompt-tokens",
    cl::desc("--model: prompt tokens prefilled before decoding (default "
             "min(128, context / 2))"),
    cl::init(0), cl::cat(category));
static cl::opt<int64_t> decodeTokensOpt(
    "decode-tokens",
    cl::desc("--model: tokens decoded per round (default min(64, context - "
             "prompt))"),
    cl::init(0), cl::cat(category));
static cl::opt<int> roundsOpt(
    "rounds",
    cl::desc("Timed rounds (1..1000): with --model, of prefill and decode "
             "after one untimed; of every CPU kernel, each right after the "
             "read bound is measured again"),
    cl::init(5), cl::cat(category));
static cl::opt<int> iterationsOpt("iterations",
                                  cl::desc("Most timed calls per measurement (GPU) or per round "
                                           "(CPU) (1..1000000)"),
                                  cl::init(50), cl::cat(category));
static cl::opt<std::string> jsonOpt("json", cl::desc("Write results as JSON"),
                                    cl::value_desc("file"), cl::cat(category));

namespace {

struct NamedEncoding {
  std::string name;
  nx::EncodingSpec spec;
};

std::vector<NamedEncoding> knownEncodings() {
  using G = nx::Granularity;
  nx::SalientSpec ptq161;
  ptq161.numSalient = 128;
  ptq161.salient = std::make_shared<const nx::EncodingSpec>(
      nx::UniformSpec{4, false, G::PerChannel, 0});
  ptq161.rest = std::make_shared<const nx::EncodingSpec>(
      nx::BinarySpec{true, G::PerChannel, 0});
  return {
      {"int4-g128", nx::UniformSpec{4, false, G::PerGroup, 128}},
      {"int3-g128", nx::UniformSpec{3, false, G::PerGroup, 128}},
      {"int8", nx::UniformSpec{8, true, G::PerChannel, 0}},
      {"e2m1-g32", nx::MinifloatSpec{2, 1, nx::MinifloatSpecial::Finite,
                                     G::PerGroup, 32}},
      {"e4m3", nx::MinifloatSpec{4, 3, nx::MinifloatSpecial::Ocp,
                                 G::PerChannel, 0}},
      {"aqlm-2x8", nx::CodebookSpec{2, 8, 8}},
      {"aqlm-2x8-tiled", nx::CodebookSpec{2, 8, 8, 128, 16}},
      {"aqlm-1x16", nx::CodebookSpec{1, 16, 8}},
      {"binary", nx::BinarySpec{true, G::PerChannel, 0}},
      {"bitplanes3-g128", nx::BitPlaneSpec{3, G::PerGroup, 128}},
      {"ptq161", ptq161},
  };
}

FailureOr<std::vector<NamedEncoding>> selectedEncodings() {
  std::vector<NamedEncoding> all = knownEncodings();
  if (encodingsOpt.empty())
    return all;
  std::vector<NamedEncoding> chosen;
  for (const std::string &name : encodingsOpt) {
    auto it = llvm::find_if(all, [&](const NamedEncoding &e) {
      return e.name == name;
    });
    if (it == all.end()) {
      llvm::errs() << "quant-bench: unknown encoding '" << name << "'\n";
      return failure();
    }
    chosen.push_back(*it);
  }
  return chosen;
}

struct Shape {
  int64_t k, n;
};

FailureOr<std::vector<Shape>> selectedShapes(bool gpu) {
  std::vector<std::string> texts(shapesOpt.begin(), shapesOpt.end());
  if (texts.empty())
    texts = gpu ? std::vector<std::string>{"4096x4096", "4096x14336",
                                           "14336x4096", "8192x28672"}
                : std::vector<std::string>{"4096x4096"};
  std::vector<Shape> shapes;
  for (const std::string &text : texts) {
    auto [k, n] = StringRef(text).split('x');
    Shape shape;
    if (k.getAsInteger(10, shape.k) || n.getAsInteger(10, shape.n) ||
        shape.k <= 0 || shape.n <= 0) {
      llvm::errs() << "quant-bench: bad shape '" << text
                   << "' (expected KxN, e.g. 4096x14336)\n";
      return failure();
    }
    shapes.push_back(shape);
  }
  return shapes;
}

std::vector<int64_t> selectedRows(bool gpu) {
  if (!rowsOpt.empty())
    return std::vector<int64_t>(rowsOpt.begin(), rowsOpt.end());
  return gpu ? std::vector<int64_t>{1, 4, 16, 64, 256}
             : std::vector<int64_t>{1, 4};
}

/// Bytes of all of a weight's storage components.
int64_t totalBytes(const std::vector<std::vector<uint8_t>> &components) {
  int64_t bytes = 0;
  for (const std::vector<uint8_t> &c : components)
    bytes += c.size();
  return bytes;
}

llvm::Error benchError(const llvm::Twine &message) {
  return llvm::createStringError(message.str());
}

//===----------------------------------------------------------------------===//
// GPU
//===----------------------------------------------------------------------===//

/// Device copies of one weight, `copies` times, rotated call by call.
struct DeviceWeights {
  std::vector<std::vector<cuda::DeviceBuffer>> copies;
  size_t next = 0;

  static llvm::Expected<DeviceWeights>
  upload(const std::vector<std::vector<uint8_t>> &components, int copies) {
    DeviceWeights weights;
    for (int c = 0; c < copies; ++c) {
      std::vector<cuda::DeviceBuffer> buffers;
      for (const std::vector<uint8_t> &bytes : components) {
        auto buffer = cuda::DeviceBuffer::allocate(bytes.size());
        if (!buffer)
          return buffer.takeError();
        if (llvm::Error e = buffer->copyFromHost(bytes.data(), bytes.size()))
          return std::move(e);
        buffers.push_back(std::move(*buffer));
      }
      weights.copies.push_back(std::move(buffers));
    }
    return std::move(weights);
  }
  std::vector<const cuda::DeviceBuffer *> take() {
    std::vector<const cuda::DeviceBuffer *> view;
    for (const cuda::DeviceBuffer &b : copies[next])
      view.push_back(&b);
    next = (next + 1) % copies.size();
    return view;
  }
};

/// Median milliseconds of `matmul` at each of `rows`, or an error.
llvm::Expected<std::vector<bench::TimingStats>>
timeGpu(MLIRContext &ctx, cuda::Device &device,
        nx::EncodingSpec const *spec, Shape shape,
        const std::vector<std::vector<uint8_t>> &components,
        llvm::ArrayRef<int64_t> rows, std::vector<std::string> &kernels) {
  Builder b(&ctx);
  ::qnt::runtime::GpuMatmulProblem problem;
  problem.encoding =
      spec ? mlir::qnt::encodingFromSpec(&ctx, *spec) : nullptr;
  problem.n = shape.n;
  problem.k = shape.k;
  problem.inputType = problem.outputType = b.getF16Type();
  auto program = ::qnt::runtime::GpuMatmulProgram::compile(
      problem, device.arch(), b.getUnknownLoc());
  if (failed(program))
    return benchError("kernel compilation failed");
  auto matmul = ::qnt::runtime::GpuMatmul::load(*program);
  if (!matmul)
    return matmul.takeError();

  int copies = bench::RotatingBuffers::copiesToExceed(
      totalBytes(components), device.l2CacheBytes());
  auto weights = DeviceWeights::upload(components, copies);
  if (!weights)
    return weights.takeError();

  int64_t maxRows = *llvm::max_element(rows);
  auto x = cuda::DeviceBuffer::allocate(maxRows * shape.k * 2);
  auto out = cuda::DeviceBuffer::allocate(maxRows * shape.n * 2);
  if (!x)
    return x.takeError();
  if (!out)
    return out.takeError();
  if (llvm::Error e = x->fill(0x3c)) // f16 ~1.06: finite activations
    return std::move(e);

  std::vector<bench::TimingStats> stats;
  for (int64_t m : rows) {
    const auto &spec = matmul->kernelFor(m);
    kernels.push_back(spec.kind == mlir::qnt::GpuMatmulKind::Gemv ? "gemv"
                                                                  : "gemm");
    auto launch = [&]() -> llvm::Error {
      return matmul->run(m, *x, weights->take(), *out);
    };
    if (llvm::Error e = launch()) // warm-up, and a launch error surfaces
      return std::move(e);
    auto samples = cuda::timeMilliseconds(launch, iterationsOpt);
    if (!samples)
      return samples.takeError();
    stats.push_back(bench::summarize(*samples));
  }
  return stats;
}

int runGpu(MLIRContext &ctx, cuda::Device &device,
           const std::vector<NamedEncoding> &encodings,
           const std::vector<Shape> &shapes, const std::vector<int64_t> &rows,
           bench::BenchContext &context, std::vector<bench::BenchRow> &out) {
  auto copyBandwidth = cuda::measureCopyBandwidthGBs(size_t(1) << 30, 20);
  if (!copyBandwidth) {
    llvm::errs() << "quant-bench: " << llvm::toString(copyBandwidth.takeError())
                 << "\n";
    return 1;
  }
  context.device = device.name().str() + " (" + device.arch() + ")";
  context.boundGBs = *copyBandwidth;
  context.boundName = "measured copy bandwidth";
  context.extra.push_back(
      {"theoretical", llvm::formatv("{0:F0} GB/s",
                                    device.theoreticalBandwidthGBs())});
  context.extra.push_back({"activations", "f16"});

  ::qnt::Progress progress("gpu", shapes.size() * (encodings.size() + 1));
  int64_t done = 0;
  for (Shape shape : shapes) {
    // Baseline: the same kernels on a dense f16 weight.
    std::vector<std::vector<uint8_t>> dense = {
        std::vector<uint8_t>(shape.n * shape.k * 2, 0x3c)};
    std::vector<std::string> baseKernels;
    auto baseline = timeGpu(ctx, device, nullptr, shape, dense, rows,
                            baseKernels);
    progress.update(++done, "fp16 baseline");
    if (!baseline) {
      llvm::errs() << "quant-bench: " << llvm::toString(baseline.takeError())
                   << "\n";
      return 1;
    }
    for (const NamedEncoding &encoding : encodings) {
      if (!nx::verifySpec(encoding.spec, shape.n, shape.k).empty()) {
        progress.update(++done, encoding.name + " (skipped)");
        continue;
      }
      nx::EncodedMatrix encoded =
          nx::randomEncoded(encoding.spec, shape.n, shape.k, 1);
      std::vector<std::vector<uint8_t>> components;
      for (nx::Component &c : encoded.components)
        components.push_back(std::move(c.bytes));
      std::vector<std::string> kernels;
      auto stats = timeGpu(ctx, device, &encoding.spec, shape, components,
                           rows, kernels);
      progress.update(++done, encoding.name);
      if (!stats) {
        llvm::errs() << "quant-bench: " << encoding.name << ": "
                     << llvm::toString(stats.takeError()) << "\n";
        return 1;
      }
      int64_t bytes = totalBytes(components);
      for (size_t i = 0; i < rows.size(); ++i) {
        bench::BenchRow row;
        row.target = "gpu";
        row.kernel = kernels[i];
        row.encoding = nx::describe(encoding.spec);
        row.rows = rows[i];
        row.n = shape.n;
        row.k = shape.k;
        row.bitsPerWeight = nx::bitsPerWeight(encoding.spec, shape.n, shape.k);
        row.weightBytes = bytes;
        row.time = (*stats)[i];
        row.baselineName = "fp16 (same kernels)";
        row.baselineMs = (*baseline)[i].medianMs;
        bench::computeDerived(row, context.boundGBs);
        out.push_back(row);
      }
    }
  }
  return 0;
}

//===----------------------------------------------------------------------===//
// CPU
//===----------------------------------------------------------------------===//

/// `func @matmul(x, weight storage...) -> y` in IR text: qnt.matmul for an
/// encoding, a transpose-B linalg.matmul on a dense f32 weight otherwise.
std::string matmulSource(MLIRContext &ctx, const nx::EncodingSpec *spec,
                         int64_t m, Shape shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  std::string x = llvm::formatv("tensor<{0}x{1}xf32>", m, shape.k);
  std::string y = llvm::formatv("tensor<{0}x{1}xf32>", m, shape.n);
  if (!spec) {
    std::string w = llvm::formatv("tensor<{0}x{1}xf32>", shape.n, shape.k);
    os << "func.func @matmul(%x: " << x << ", %w: " << w << ") -> " << y
       << " {\n  %e = tensor.empty() : " << y
       << "\n  %z = arith.constant 0.0 : f32\n  %f = linalg.fill ins(%z : "
          "f32) outs(%e : "
       << y << ") -> " << y
       << "\n  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> "
          "(m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) "
          "-> (m, n)>] ins(%x, %w : "
       << x << ", " << w << ") outs(%f : " << y << ") -> " << y
       << "\n  return %y : " << y << "\n}\n";
    return text;
  }
  auto encoding = mlir::qnt::encodingFromSpec(&ctx, *spec);
  auto types = encoding.getComponentTypes({shape.n, shape.k});
  os << "func.func @matmul(%x: " << x;
  for (auto [i, type] : llvm::enumerate(types))
    os << ", %c" << i << ": " << type;
  os << ") -> " << y << " {\n  %y = qnt.matmul %x, " << encoding << "(";
  for (size_t i = 0; i < types.size(); ++i)
    os << (i ? ", " : "") << "%c" << i;
  os << ") : (" << x;
  for (auto type : types)
    os << ", " << type;
  os << ") -> " << y << "\n  return %y : " << y << "\n}\n";
  return text;
}

/// What timeInterleaved measured for one kernel: every timed call, and per
/// round the fraction of the read bound measured just before it.
struct CpuTiming {
  bench::TimingStats time;
  std::vector<double> roundFractions;
  double medianBoundGBs = 0;
};

/// The storage of one weight, laid out as one blob (each component at a
/// 64-byte boundary) and rotated through copies that defeat the last-level
/// cache; shared by the kernels timed on it.
struct RotatedWeights {
  std::vector<size_t> offsets;
  int64_t bytes = 0; ///< the components' bytes, without the padding
  std::unique_ptr<bench::RotatingBuffers> buffers;

  explicit RotatedWeights(const std::vector<std::vector<uint8_t>> &components)
      : bytes(totalBytes(components)) {
    size_t blobBytes = 0;
    for (const auto &c : components) {
      offsets.push_back(blobBytes);
      blobBytes += (c.size() + 63) / 64 * 64;
    }
    std::vector<uint8_t> blob(blobBytes);
    for (size_t i = 0; i < components.size(); ++i)
      std::memcpy(blob.data() + offsets[i], components[i].data(),
                  components[i].size());
    buffers = std::make_unique<bench::RotatingBuffers>(
        blob.data(), blob.size(),
        bench::RotatingBuffers::copiesToExceed(blob.size(),
                                               bench::lastLevelCacheBytes()));
  }
};

/// The JIT-compiled `matmulSource` at `m` rows, called on the next copy of
/// its weights each time.
class CpuKernel {
public:
  static FailureOr<std::unique_ptr<CpuKernel>>
  compile(MLIRContext &ctx, const nx::EncodingSpec *spec, Shape shape,
          int64_t m, RotatedWeights &weights,
          ::qnt::runtime::CpuCompileOptions options) {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(matmulSource(ctx, spec, m, shape), &ctx);
    if (!module)
      return failure();
    auto compiled = ::qnt::runtime::CompiledFunction::compile(
        *module, "matmul", options);
    if (failed(compiled))
      return failure();
    return std::unique_ptr<CpuKernel>(
        new CpuKernel(std::move(*compiled), weights, module->getLoc()));
  }

  void operator()() {
    const auto &sig = function.signature();
    uint8_t *copy = weights.buffers->next();
    std::vector<::qnt::runtime::HostTensor> inputs = {x};
    for (size_t i = 0; i < weights.offsets.size(); ++i)
      inputs.emplace_back(sig.inputs[i + 1], copy + weights.offsets[i]);
    ok &= succeeded(function.call(inputs, results, loc));
  }
  bool succeededSoFar() const { return ok; }
  int64_t weightBytes() const { return weights.bytes; }

private:
  CpuKernel(::qnt::runtime::CompiledFunction function,
            RotatedWeights &weights, Location loc)
      : function(std::move(function)), weights(weights), loc(loc),
        x(this->function.signature().inputs[0]) {
    for (int64_t i = 0; i < x.numElements(); ++i)
      x.f32()[i] = 1.0f;
  }
  ::qnt::runtime::CompiledFunction function;
  RotatedWeights &weights;
  Location loc;
  ::qnt::runtime::HostTensor x;
  std::vector<::qnt::runtime::HostTensor> results;
  bool ok = true;
};

/// `bytes` read in `ms` as a fraction of `boundGBs`; 0 when either is
/// missing (a failed probe, no time).
double fractionOfBound(int64_t bytes, double ms, double boundGBs) {
  if (!(boundGBs > 0) || !(ms > 0))
    return 0;
  return double(bytes) / (ms * 1e6) / boundGBs;
}

/// The median of the positive values (the bounds of probes that worked);
/// 0 when there are none.
double medianOfPositive(llvm::ArrayRef<double> values) {
  std::vector<double> kept;
  llvm::copy_if(values, std::back_inserter(kept),
                [](double v) { return v > 0; });
  // summarize's median is that of any numbers, milliseconds or not.
  return bench::summarize(std::move(kept)).medianMs;
}

/// The read bound of `threads` threads now: the kernels' idle OpenMP
/// threads, which would spin on the cores the probe's threads need, are
/// ended first (the next kernel call starts them again).
double boundNow(bench::ReadProbe &probe, int64_t threads) {
  ::qnt::runtime::pauseIdleThreads();
  return probe.measure(int(threads), /*repetitions=*/3);
}

/// Times `kernels` (run on `threads` threads) in --rounds rounds, each
/// right after `probe` measured the read bound again, so that each round
/// is compared with the bandwidth of its own moment (the machine's phases;
/// see bench::ReadProbe). Within a round the kernels take turns, the first
/// turn moving by one each round, so that variants of one kernel are
/// compared under the same phases and none always runs first.
FailureOr<std::vector<CpuTiming>>
timeInterleaved(llvm::ArrayRef<CpuKernel *> kernels, bench::ReadProbe &probe,
                int64_t threads) {
  const int rounds = roundsOpt.getValue();
  const size_t count = kernels.size();
  std::vector<std::vector<double>> samples(count);
  std::vector<double> bounds;
  std::vector<CpuTiming> timings(count);
  for (int round = 0; round < rounds; ++round) {
    double boundGBs = boundNow(probe, threads);
    bounds.push_back(boundGBs);
    for (size_t turn = 0; turn < count; ++turn) {
      size_t k = (size_t(round) + turn) % count;
      CpuKernel &kernel = *kernels[k];
      // One untimed call per round starts the threads again.
      std::vector<double> roundMs = bench::timeRepeated(
          [&] { kernel(); }, /*warmup=*/1, /*iterations=*/3,
          /*minTotalSeconds=*/0.5 / rounds, iterationsOpt);
      if (!kernel.succeededSoFar())
        return failure();
      double fraction = fractionOfBound(
          kernel.weightBytes(), bench::summarize(roundMs).medianMs, boundGBs);
      if (fraction > 0)
        timings[k].roundFractions.push_back(fraction);
      samples[k].insert(samples[k].end(), roundMs.begin(), roundMs.end());
    }
  }
  for (auto [timing, all] : llvm::zip(timings, samples)) {
    timing.time = bench::summarize(all);
    timing.medianBoundGBs = medianOfPositive(bounds);
  }
  return timings;
}

/// The kernel qnt-lower-matmul-cpu, with activations=int8, `threads` and
/// --cpu-kernel-options, lowers `spec` at `shape` and `m` rows to, read
/// from the lowered IR: "lut" (codebook lookup tables: byte permutes),
/// "vector" (the int8 kernel: activations rounded to int8), or "" (the f32
/// kernel: the encoding keeps f32 activations).
FailureOr<std::string> int8Kernel(MLIRContext &ctx,
                                  const nx::EncodingSpec &spec, Shape shape,
                                  int64_t m, int64_t threads,
                                  const std::string &kernelOptions) {
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(matmulSource(ctx, &spec, m, shape), &ctx);
  if (!module)
    return failure();
  std::string pipeline =
      "builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 "
      "threads=" +
      std::to_string(threads) + " " + kernelOptions + "}))";
  if (failed(mlir::qnt::runPassPipeline(*module, pipeline)))
    return failure();
  bool lookups = false, roundedActivations = false;
  module->walk([&](Operation *op) {
    if (auto intrinsic = dyn_cast<mlir::qnt::IntrinsicOp>(op))
      lookups |= intrinsic.getName().contains("vpermi2var");
    roundedActivations |= isa<math::RoundEvenOp>(op);
  });
  if (lookups)
    return std::string("lut");
  return std::string(roundedActivations ? "vector" : "");
}

/// The thread counts to measure: --cpu-threads, or 1 and every core.
std::vector<int64_t> selectedThreads() {
  std::vector<int64_t> counts(threadsOpt.begin(), threadsOpt.end());
  if (counts.empty()) {
    counts.push_back(1);
    if (bench::hardwareThreads() > 1)
      counts.push_back(bench::hardwareThreads());
  }
  return counts;
}

/// The read bound of each thread count, measured before any kernel; the
/// first count's becomes the context's bound, the others extra facts.
std::map<int64_t, double>
measureReadBounds(const std::vector<int64_t> &threadCounts,
                  bench::BenchContext &context) {
  std::map<int64_t, double> bound;
  for (int64_t threads : threadCounts) {
    bench::StreamResult stream = bench::measureHostBandwidth(
        bench::defaultStreamBytes(), int(threads), /*repetitions=*/5);
    bound[threads] = stream.readGBs;
    if (threads == threadCounts.front()) {
      context.hostStream = stream;
      context.boundGBs = stream.readGBs;
      context.boundName =
          "vector read, " + std::to_string(threads) + " thread" +
          (threads > 1 ? "s" : "");
    } else {
      context.extra.push_back(
          {"read bound, " + std::to_string(threads) + " threads",
           llvm::formatv("{0:F2} GB/s", stream.readGBs).str()});
    }
  }
  return bound;
}

/// The read probe every row's rounds measure the bound on (its array
/// first touched by the most threads any row uses), or null after an
/// error; says so in the context.
std::unique_ptr<bench::ReadProbe>
makeReadProbe(const std::vector<int64_t> &threadCounts,
              bench::BenchContext &context) {
  std::unique_ptr<bench::ReadProbe> probe;
  try {
    probe = std::make_unique<bench::ReadProbe>(
        size_t(probeMibOpt.getValue()) << 20,
        int(*llvm::max_element(threadCounts)));
  } catch (const std::exception &e) {
    llvm::errs() << "quant-bench: cannot set up the read probe of "
                 << (probeMibOpt ? std::to_string(probeMibOpt) + " MiB"
                                 : std::string("the default size"))
                 << " (" << e.what() << "); try a smaller --read-probe-mib\n";
    return nullptr;
  }
  context.extra.push_back(
      {"row_bound",
       llvm::formatv("vector read of {0} MiB before each of --rounds={1} "
                     "rounds of every row; %bound is the median round's",
                     probe->bytes() >> 20, roundsOpt)
           .str()});
  return probe;
}

/// --cpu-activations as flags (true: int8), or nothing after an error.
std::optional<std::vector<bool>> selectedActivationKinds() {
  std::vector<bool> kinds;
  for (const std::string &a : activationsOpt) {
    if (a != "f32" && a != "int8") {
      llvm::errs() << "quant-bench: --cpu-activations takes f32 and int8, "
                      "not '"
                   << a << "'\n";
      return std::nullopt;
    }
    kinds.push_back(a == "int8");
  }
  if (kinds.empty())
    kinds.push_back(false);
  return kinds;
}

int runCpu(MLIRContext &ctx, const std::vector<NamedEncoding> &encodings,
           const std::vector<Shape> &shapes, const std::vector<int64_t> &rows,
           bench::BenchContext &context, std::vector<bench::BenchRow> &out) {
  std::vector<int64_t> threadCounts = selectedThreads();
  std::optional<std::vector<bool>> kinds = selectedActivationKinds();
  if (!kinds)
    return 1;
  std::vector<bool> activationKinds = *kinds;
  if (llvm::any_of(threadCounts, [](int64_t t) { return t < 1 || t > 1024; })) {
    llvm::errs() << "quant-bench: --cpu-threads must be in 1..1024\n";
    return 1;
  }
  std::map<int64_t, double> bound = measureReadBounds(threadCounts, context);
  context.device = "host CPU (" + std::to_string(bench::hardwareThreads()) +
                   " hardware threads)";
  context.extra.push_back(
      {"activations",
       "f32 (vector-tN); int8 per row and scale group (vector-int8-tN, " +
           std::string(!mlir::qnt::hostHasVnni()  ? "portable byte dots"
                       : mlir::qnt::hostHasVbmi() ? "AVX512-VNNI and -VBMI"
                                                  : "AVX512-VNNI") +
           ")"});
  context.extra.push_back(
      {"kernel", llvm::formatv("qnt-lower-matmul-cpu, {0} f32 lanes per "
                               "register; vector-tN: N threads",
                               mlir::qnt::hostVectorWidth())
                     .str()});

  std::unique_ptr<bench::ReadProbe> probe =
      makeReadProbe(threadCounts, context);
  if (!probe)
    return 1;
  auto makeRow = [&](const std::string &kernel, const std::string &encoding,
                     Shape shape, int64_t m, double bitsPerWeight,
                     int64_t weightBytes, const CpuTiming &timing) {
    bench::BenchRow row;
    row.target = "cpu";
    row.kernel = kernel;
    row.encoding = encoding;
    row.rows = m;
    row.n = shape.n;
    row.k = shape.k;
    row.bitsPerWeight = bitsPerWeight;
    row.weightBytes = weightBytes;
    row.time = timing.time;
    row.roundFractions = timing.roundFractions;
    row.rowBoundGBs = timing.medianBoundGBs;
    return row;
  };

  ::qnt::Progress progress("cpu", shapes.size() *
                                      (encodings.size() *
                                           activationKinds.size() +
                                       1) *
                                      rows.size() * threadCounts.size());
  int64_t done = 0;
  for (Shape shape : shapes) {
    std::vector<float> dense(shape.n * shape.k, 0.01f);
    std::vector<std::vector<uint8_t>> denseBytes = {std::vector<uint8_t>(
        reinterpret_cast<uint8_t *>(dense.data()),
        reinterpret_cast<uint8_t *>(dense.data() + dense.size()))};
    // The dense f32 product: a row of its own, and every other row's
    // baseline at the same M and threads.
    RotatedWeights denseWeights(denseBytes);
    std::map<std::pair<int64_t, int64_t>, double> baselineMs;
    for (int64_t threads : threadCounts)
      for (int64_t m : rows) {
        auto kernel = CpuKernel::compile(ctx, nullptr, shape, m, denseWeights,
                                         {threads, false, matmulOptionsOpt});
        if (failed(kernel))
          return 1;
        auto timing = timeInterleaved({kernel->get()}, *probe, threads);
        progress.update(++done, "f32 dense");
        if (failed(timing))
          return 1;
        baselineMs[{threads, m}] = timing->front().time.medianMs;
        bench::BenchRow row =
            makeRow("vector-t" + std::to_string(threads), "f32 dense", shape,
                    m, 32, denseWeights.bytes, timing->front());
        bench::computeDerived(row, bound[threads]);
        out.push_back(row);
      }
    std::vector<std::string> variants(variantsOpt.begin(), variantsOpt.end());
    if (variants.empty())
      variants.push_back("");
    for (const NamedEncoding &encoding : encodings) {
      if (!nx::verifySpec(encoding.spec, shape.n, shape.k).empty())
        continue;
      nx::EncodedMatrix encoded =
          nx::randomEncoded(encoding.spec, shape.n, shape.k, 1);
      std::vector<std::vector<uint8_t>> components;
      for (nx::Component &c : encoded.components)
        components.push_back(std::move(c.bytes));
      RotatedWeights weights(components);
      for (bool int8 : activationKinds)
        for (int64_t threads : threadCounts)
          for (int64_t m : rows) {
            // Every variant with a kernel for these activations, compiled
            // first, then timed in turns.
            std::vector<std::string> labels, notes;
            std::vector<std::unique_ptr<CpuKernel>> kernels;
            for (const std::string &variant : variants) {
              std::string options = matmulOptionsOpt + " " + variant;
              FailureOr<std::string> label = std::string("vector");
              if (int8)
                label = int8Kernel(ctx, encoding.spec, shape, m, threads,
                                   options);
              if (failed(label))
                return 1;
              if (label->empty())
                continue;
              auto kernel = CpuKernel::compile(ctx, &encoding.spec, shape, m,
                                               weights,
                                               {threads, int8, options});
              if (failed(kernel))
                return 1;
              labels.push_back(*label);
              notes.push_back(variant);
              kernels.push_back(std::move(*kernel));
            }
            if (kernels.empty()) {
              progress.update(++done, encoding.name + " (no int8 kernel)");
              continue;
            }
            std::vector<CpuKernel *> turns;
            for (auto &kernel : kernels)
              turns.push_back(kernel.get());
            auto timings = timeInterleaved(turns, *probe, threads);
            progress.update(++done, encoding.name);
            if (failed(timings))
              return 1;
            for (size_t v = 0; v < kernels.size(); ++v) {
              bench::BenchRow row = makeRow(
                  labels[v] + (int8 ? "-int8-t" : "-t") +
                      std::to_string(threads),
                  nx::describe(encoding.spec), shape, m,
                  nx::bitsPerWeight(encoding.spec, shape.n, shape.k),
                  weights.bytes, (*timings)[v]);
              row.baselineName = "f32 dense (same pipeline and threads)";
              row.baselineMs = baselineMs[{threads, m}];
              row.note = notes[v];
              bench::computeDerived(row, bound[threads]);
              out.push_back(row);
            }
          }
    }
  }
  return 0;
}


//===----------------------------------------------------------------------===//
// Whole model (--model)
//===----------------------------------------------------------------------===//

/// Prompt ids: BOS (1), then a deterministic walk over the vocabulary, so
/// runs are comparable without a tokenizer or a text.
std::vector<int32_t> benchPrompt(int64_t count, int64_t vocab) {
  std::vector<int32_t> ids(count);
  uint32_t state = 12345;
  for (int64_t i = 0; i < count; ++i) {
    state = state * 1664525u + 1013904223u;
    ids[i] = i == 0 ? 1 : int32_t((state >> 8) % uint32_t(vocab));
  }
  return ids;
}

int32_t argmaxRow(const ::qnt::runtime::HostTensor &logits, int64_t row) {
  int64_t vocab = logits.getType().getDimSize(1);
  const float *p = logits.f32() + row * vocab;
  return int32_t(std::max_element(p, p + vocab) - p);
}

struct ModelTimes {
  std::vector<double> prefillMs; ///< one per round: the whole prompt
  std::vector<double> decodeMs;  ///< one per decoded token
  /// Per timed round: the read bound measured just before it, and the
  /// median of its decoded tokens.
  std::vector<double> roundBoundGBs, roundDecodeMs;
};

std::string weightMemoryName(WeightMemory memory) {
  return memory == WeightMemory::HugePages ? "huge-pages" : "mapped";
}

/// One configuration of the model timed by timeModels: its runner, what
/// sets it apart (the note column; empty for the only one), its times.
struct ModelVariant {
  std::unique_ptr<::qnt::runtime::ModelRunner> runner;
  std::string note;
  ModelTimes times;
};

/// One round of `variant`: prefill `prompt` from an empty cache, then decode
/// `steps` tokens greedily, one call (embedding, every block, head) per
/// token; recorded when `timed`. A timed round starts with `probe`
/// measuring the read bound of `threads` threads again, then an untimed
/// prefill that starts the kernels' threads and warms the caches.
LogicalResult timeModelRound(ModelVariant &variant,
                             llvm::ArrayRef<int32_t> prompt, int64_t steps,
                             bool timed, bench::ReadProbe &probe,
                             int64_t threads) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  ::qnt::runtime::ModelRunner &runner = *variant.runner;
  ModelTimes &times = variant.times;
  ::qnt::runtime::HostTensor logits;
  if (timed) {
    times.roundBoundGBs.push_back(boundNow(probe, threads));
    if (failed(runner.forward(prompt, 0, logits)))
      return failure();
  }
  size_t firstToken = times.decodeMs.size();
  auto start = Clock::now();
  if (failed(runner.forward(prompt, 0, logits)))
    return failure();
  auto end = Clock::now();
  if (timed)
    times.prefillMs.push_back(ms(start, end));
  int32_t token = argmaxRow(logits, int64_t(prompt.size()) - 1);
  for (int64_t i = 0; i < steps; ++i) {
    start = Clock::now();
    if (failed(runner.forward({token}, int64_t(prompt.size()) + i, logits)))
      return failure();
    end = Clock::now();
    if (timed)
      times.decodeMs.push_back(ms(start, end));
    token = argmaxRow(logits, 0);
  }
  if (timed)
    times.roundDecodeMs.push_back(
        bench::summarize({times.decodeMs.begin() + firstToken,
                          times.decodeMs.end()})
            .medianMs);
  return success();
}

/// One untimed round of every variant, then `rounds` timed ones. Within a
/// round the variants take turns, the first turn moving by one each round
/// (as timeInterleaved does for kernels), so that variants are compared
/// under the same bandwidth phases: separate runs of one binary on this
/// machine differ by more than the variants do.
LogicalResult timeModels(std::vector<ModelVariant> &variants,
                         llvm::ArrayRef<int32_t> prompt, int64_t steps,
                         int rounds, bench::ReadProbe &probe, int64_t threads,
                         ::qnt::Progress &progress, int64_t &done,
                         const std::string &label) {
  for (int round = 0; round <= rounds; ++round) {
    for (size_t turn = 0; turn < variants.size(); ++turn) {
      ModelVariant &variant = variants[(turn + size_t(round)) % variants.size()];
      if (failed(timeModelRound(variant, prompt, steps, round > 0, probe,
                                threads)))
        return failure();
    }
    progress.update(++done, label);
  }
  return success();
}

int runModel(MLIRContext &ctx, bench::BenchContext &context,
             std::vector<bench::BenchRow> &out) {
  std::vector<int64_t> threadCounts = selectedThreads();
  std::optional<std::vector<bool>> activationKinds = selectedActivationKinds();
  if (!activationKinds)
    return 1;
  if (llvm::any_of(threadCounts, [](int64_t t) { return t < 1 || t > 1024; })) {
    llvm::errs() << "quant-bench: --cpu-threads must be in 1..1024\n";
    return 1;
  }
  if (promptTokensOpt < 0 || decodeTokensOpt < 0) {
    llvm::errs() << "quant-bench: --prompt-tokens and --decode-tokens must "
                    "not be negative\n";
    return 1;
  }
  // Load once to check the model and choose the token counts, before the
  // read bound is measured (a bad path fails fast).
  OwningOpRef<ModuleOp> checked = mlir::qnt::loadModel(&ctx, modelOpt);
  if (!checked)
    return 1;
  FailureOr<::qnt::io::LlamaConfig> config =
      mlir::qnt::readModelConfig(*checked);
  if (failed(config))
    return 1;
  checked = nullptr;
  int64_t context_ = config->maxSeqLen;
  int64_t prompt = promptTokensOpt ? promptTokensOpt.getValue()
                                   : std::min<int64_t>(128, context_ / 2);
  int64_t steps = decodeTokensOpt ? decodeTokensOpt.getValue()
                                  : std::min<int64_t>(64, context_ - prompt);
  if (prompt < 1 || steps < 1 || prompt + steps > context_) {
    llvm::errs() << "quant-bench: --prompt-tokens (" << prompt
                 << ") + --decode-tokens (" << steps
                 << ") must be at least 1 each and fit the model's context of "
                 << context_ << " tokens\n";
    return 1;
  }

  // Every kernel variant with every placement of the weights, each a row.
  std::vector<std::string> kernelVariants(variantsOpt.begin(),
                                          variantsOpt.end());
  if (kernelVariants.empty())
    kernelVariants.push_back("");
  std::vector<WeightMemory> weightMemories(weightMemoryOpt.begin(),
                                           weightMemoryOpt.end());
  if (weightMemories.empty())
    weightMemories.push_back(WeightMemory::Mapped);

  std::map<int64_t, double> bound = measureReadBounds(threadCounts, context);
  context.device = "host CPU (" + std::to_string(bench::hardwareThreads()) +
                   " hardware threads)";
  context.extra.push_back({"model", modelOpt.getValue()});
  context.extra.push_back(
      {"shape", llvm::formatv("dim {0}, hidden {1}, {2} layers, {3} heads "
                              "({4} kv), vocab {5}",
                              config->dim, config->hiddenDim, config->nLayers,
                              config->nHeads, config->nKvHeads,
                              config->vocabSize)
                    .str()});
  context.extra.push_back(
      {"protocol",
       llvm::formatv("prompt of {0} tokens in one call (prefill-tN, M = "
                     "{0}), then {1} tokens one call each (decode-tN); "
                     "weights MB = parameters the blocks and head read per "
                     "call; {2} timed rounds after one untimed",
                     prompt, steps, roundsOpt.getValue())
           .str()});

  std::unique_ptr<bench::ReadProbe> probe =
      makeReadProbe(threadCounts, context);
  if (!probe)
    return 1;
  std::vector<int32_t> ids = benchPrompt(prompt, config->vocabSize);
  ::qnt::Progress progress("model", int64_t(activationKinds->size()) *
                                        int64_t(threadCounts.size()) *
                                        (roundsOpt + 1));
  int64_t done = 0;
  for (bool int8 : *activationKinds)
    for (int64_t threads : threadCounts) {
      std::vector<ModelVariant> variants;
      for (const std::string &kernelVariant : kernelVariants)
        for (WeightMemory memory : weightMemories) {
          // The runner lowers its module in place: one module per compile.
          OwningOpRef<ModuleOp> module = mlir::qnt::loadModel(&ctx, modelOpt);
          if (!module)
            return 1;
          ::qnt::runtime::CpuCompileOptions options{
              threads, int8, matmulOptionsOpt + " " + kernelVariant,
              memory == WeightMemory::HugePages};
          auto runner = ::qnt::runtime::ModelRunner::create(*module, options);
          if (failed(runner))
            return 1;
          // Named when compared, and always when not the default.
          std::string note = kernelVariant;
          if (weightMemories.size() > 1 || memory != WeightMemory::Mapped)
            note += (note.empty() ? "" : ", ") + weightMemoryName(memory);
          variants.push_back({std::move(*runner), note, {}});
        }
      const ::qnt::runtime::ModelRunner &first = *variants.front().runner;
      int64_t bytes = first.parameterBytes("head");
      for (int64_t layer = 0; layer < config->nLayers; ++layer)
        bytes += first.parameterBytes(mlir::qnt::blockFunctionName(layer));
      std::string suffix =
          std::string(int8 ? "int8-t" : "t") + std::to_string(threads);
      if (failed(timeModels(variants, ids, steps, roundsOpt, *probe, threads,
                            progress, done, "model " + suffix)))
        return 1;
      for (const ModelVariant &variant : variants)
      for (bool decode : {false, true}) {
        const ModelTimes *times = &variant.times;
        bench::BenchRow row;
        row.target = "cpu";
        row.kernel = (decode ? "decode-" : "prefill-") + suffix;
        row.encoding = llvm::sys::path::filename(
                           StringRef(modelOpt).rtrim('/'))
                           .str();
        row.rows = decode ? 1 : prompt;
        row.n = config->dim;
        row.k = config->hiddenDim;
        row.weightBytes = bytes;
        row.time = bench::summarize(decode ? times->decodeMs
                                           : times->prefillMs);
        // Per round: the bytes a call reads over its time, over the bound
        // measured before the round (one prefill call, or the round's
        // median token).
        for (size_t r = 0; r < times->roundBoundGBs.size(); ++r) {
          double fraction = fractionOfBound(
              bytes, decode ? times->roundDecodeMs[r] : times->prefillMs[r],
              times->roundBoundGBs[r]);
          if (fraction > 0)
            row.roundFractions.push_back(fraction);
        }
        row.rowBoundGBs = medianOfPositive(times->roundBoundGBs);
        double tokensPerCall = decode ? 1.0 : double(prompt);
        row.note = llvm::formatv("{0:F1} tokens/s",
                                 row.time.medianMs > 0
                                     ? 1000.0 * tokensPerCall /
                                           row.time.medianMs
                                     : 0.0)
                       .str();
        if (!variant.note.empty())
          row.note += ", " + variant.note;
        bench::computeDerived(row, bound[threads]);
        out.push_back(row);
      }
    }
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "quant-bench: fused dequantize-matmul kernels against the memory "
      "bandwidth bound and a baseline measured in the same run\n");
  if (!::qnt::checkOptionRange("quant-bench", roundsOpt, 1, 1000) ||
      !::qnt::checkOptionRange("quant-bench", probeMibOpt, 0, 1 << 20))
    return 1;
  if (!::qnt::checkOptionRange("quant-bench", iterationsOpt, 1, 1000000))
    return 1;

  bool gpu;
  llvm::Expected<cuda::Device &> device = cuda::Device::get();
  if (targetOpt != "gpu" && targetOpt != "cpu" && targetOpt != "auto") {
    llvm::errs() << "quant-bench: unknown --target '" << targetOpt
                 << "' (expected gpu, cpu or auto)\n";
    return 1;
  }
  if (!modelOpt.empty() && targetOpt == "gpu") {
    llvm::errs() << "quant-bench: --model runs on the CPU (whole-model GPU "
                    "execution does not exist yet); use --target=cpu\n";
    return 1;
  }
  if (modelOpt.empty() && !weightMemoryOpt.empty()) {
    llvm::errs() << "quant-bench: --weight-memory applies to --model (the "
                    "kernel rows read rotated copies of their weights)\n";
    return 1;
  }
  if (!modelOpt.empty()) {
    // Whole models run on the CPU only.
    gpu = false;
    if (!device)
      llvm::consumeError(device.takeError());
  } else if (targetOpt == "gpu" || targetOpt == "auto") {
    gpu = bool(device);
    if (!gpu) {
      std::string message = llvm::toString(device.takeError());
      if (targetOpt == "gpu") {
        llvm::errs() << "quant-bench: " << message << "\n";
        return 1;
      }
      llvm::errs() << "quant-bench: " << message
                   << "; running the CPU benchmarks\n";
    }
  } else if (targetOpt == "cpu") {
    gpu = false;
    if (!device)
      llvm::consumeError(device.takeError());
  } else {
    llvm::errs() << "quant-bench: unknown --target '" << targetOpt
                 << "' (expected gpu, cpu or auto)\n";
    return 1;
  }

  auto encodings = selectedEncodings();
  auto shapes = selectedShapes(gpu);
  if (failed(encodings) || failed(shapes))
    return 1;
  std::vector<int64_t> rows = selectedRows(gpu);
  if (llvm::any_of(rows, [](int64_t m) { return m <= 0; })) {
    llvm::errs() << "quant-bench: --rows must be positive\n";
    return 1;
  }

  ::qnt::registerAllPasses();
  DialectRegistry registry;
  ::qnt::registerAllDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);

  bench::BenchContext context;
  std::vector<bench::BenchRow> results;
  int status = !modelOpt.empty()
                   ? runModel(ctx, context, results)
                   : gpu ? runGpu(ctx, *device, *encodings, *shapes, rows,
                                  context, results)
                         : runCpu(ctx, *encodings, *shapes, rows, context,
                                  results);
  if (status != 0)
    return status;
  bench::printTable(std::cout, context, results);
  if (!jsonOpt.empty()) {
    std::string error;
    if (!bench::writeJsonAtomically(jsonOpt, bench::toJson(context, results),
                                    &error)) {
      llvm::errs() << "quant-bench: cannot write " << jsonOpt << ": " << error
                   << "\n";
      return 1;
    }
  }
  return 0;
}
