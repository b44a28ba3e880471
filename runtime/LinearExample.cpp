//===- LinearExample.cpp - The built-in quantized linear layer --*- C++ -*-===//
//
// See LinearExample.h. The checks are independent of the code under test:
// the reference products are computed here in double from the host
// dequantization (lib/numerics) of the file qnt-rtn wrote, never through
// the IR lowering being checked.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/LinearExample.h"
#include "qnt/runtime/CpuJit.h"

#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <random>

using namespace mlir;
using namespace ::qnt::runtime;
namespace nx = ::qnt::numerics;
namespace io = ::qnt::io;

namespace qnt::runtime {
std::vector<float> syntheticWeights(int64_t rows, int64_t cols,
                                                  uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t3(3.0f);
  std::vector<float> w(rows * cols);
  float scale = 1.0f / std::sqrt(float(cols));
  for (float &v : w)
    v = scale * t3(rng);
  return w;
}

std::vector<float> syntheticActivations(int64_t rows,
                                                      int64_t cols,
                                                      uint64_t seed,
                                                      int numOutliers) {
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * cols);
  for (float &v : x)
    v = normal(rng);
  for (int i = 0; i < numOutliers; ++i) {
    int64_t channel = (i * 7919 + 13) % cols;
    for (int64_t r = 0; r < rows; ++r)
      x[r * cols + channel] *= 20.0f;
  }
  return x;
}
} // namespace qnt::runtime

/// The example's IR: a transpose-B matmul whose weight is a parameter.
static std::string exampleIR(const LinearExample &ex,
                             const std::string &weightFile) {
  return llvm::formatv(R"mlir(
module attributes {{qnt.param_files = ["{0}"]} {{
  func.func @linear(%x: tensor<{1}x{3}xf32>) -> tensor<{1}x{2}xf32> {{
    %w = qnt.param "linear.weight" : tensor<{2}x{3}xf32>
    %zero = arith.constant 0.0 : f32
    %empty = tensor.empty() : tensor<{1}x{2}xf32>
    %acc = linalg.fill ins(%zero : f32) outs(%empty : tensor<{1}x{2}xf32>) -> tensor<{1}x{2}xf32>
    %y = linalg.matmul indexing_maps = [
        affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>,
        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<{1}x{3}xf32>, tensor<{2}x{3}xf32>)
        outs(%acc : tensor<{1}x{2}xf32>) -> tensor<{1}x{2}xf32>
    return %y : tensor<{1}x{2}xf32>
  }
}
)mlir",
                       weightFile, ex.tokens, ex.outputs, ex.inputs)
      .str();
}

/// y = x W^T in double.
static std::vector<double> referenceProduct(const std::vector<float> &x,
                                            const std::vector<float> &w,
                                            int64_t m, int64_t n, int64_t k) {
  std::vector<double> y(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t l = 0; l < k; ++l)
        sum += double(x[i * k + l]) * double(w[j * k + l]);
      y[i * n + j] = sum;
    }
  return y;
}

/// Reads back the components qnt-rtn wrote for "linear.weight".
static FailureOr<nx::EncodedMatrix>
readEncoded(Location loc, const std::string &path, mlir::qnt::EncodingAttrInterface
            encoding, int64_t rows, int64_t cols) {
  std::string error;
  auto file = io::SafetensorsFile::open(path, &error);
  if (!file)
    return emitError(loc) << error;
  nx::EncodedMatrix encoded;
  encoded.rows = rows;
  encoded.cols = cols;
  for (const nx::ComponentLayout &layout :
       nx::componentLayout(encoding.toSpec(), rows, cols)) {
    const io::TensorInfo *info = file->find("linear.weight." + layout.name);
    if (!info || int64_t(info->numBytes()) != layout.numBytes())
      return emitError(loc) << path << " lacks component " << layout.name;
    const uint8_t *data = file->data(*info);
    encoded.components.push_back(
        {layout, std::vector<uint8_t>(data, data + layout.numBytes())});
  }
  return encoded;
}

/// Half the quantization step around w (weight units) for one element.
static double halfStep(const nx::EncodingSpec &spec, float scale, float w,
                       float wq) {
  if (const auto *mf = std::get_if<nx::MinifloatSpec>(&spec)) {
    double bias = std::ldexp(1.0, mf->exponentBits - 1) - 1;
    double magnitude = std::max(std::fabs(w), std::fabs(wq)) / scale;
    double binade = std::max(magnitude > 0 ? std::floor(std::log2(magnitude))
                                           : -1e9,
                             1.0 - bias);
    return 0.5 * scale * std::ldexp(1.0, int(binade) - mf->mantissaBits);
  }
  return 0.5 * scale;
}

/// Scale of element (row, col) of a uniform/minifloat encoding.
static float scaleOf(const nx::EncodingSpec &spec,
                     const nx::EncodedMatrix &encoded, int64_t row,
                     int64_t col) {
  nx::Granularity granularity;
  int64_t groupSize;
  if (const auto *u = std::get_if<nx::UniformSpec>(&spec)) {
    granularity = u->granularity;
    groupSize = u->groupSize;
  } else {
    const auto &mf = std::get<nx::MinifloatSpec>(spec);
    granularity = mf.granularity;
    groupSize = mf.groupSize;
  }
  const nx::Component &scales = encoded.components[1];
  int64_t groupCols = scales.layout.shape[1];
  int64_t r = granularity == nx::Granularity::PerTensor ? 0 : row;
  int64_t c = granularity == nx::Granularity::PerGroup ? col / groupSize : 0;
  float scale;
  std::memcpy(&scale, scales.bytes.data() + 4 * (r * groupCols + c), 4);
  return scale;
}

namespace qnt::runtime {
FailureOr<SchemeResult>
runLinearScheme(MLIRContext &context, const LinearExample &ex,
                              StringRef rtnOptions) {
  Location loc = UnknownLoc::get(&context);
  int64_t m = ex.tokens, n = ex.outputs, k = ex.inputs;
  std::vector<float> w = syntheticWeights(n, k, ex.seed);
  std::vector<float> x = syntheticActivations(m, k, ex.seed);

  std::string weightFile = ex.workDir + "/linear.safetensors";
  io::SafetensorsWriter writer;
  std::string error;
  if (!writer.add("linear.weight", io::DType::F32, {n, k}, w.data(),
                  w.size() * 4, &error) ||
      !writer.write(weightFile, &error))
    return emitError(loc) << error;

  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(exampleIR(ex, weightFile), &context);
  if (!module)
    return failure();

  SchemeResult result;
  result.options = rtnOptions.str();
  result.encoding = "float";
  std::vector<float> wq = w;
  nx::EncodingSpec spec;
  nx::EncodedMatrix encoded;
  if (!rtnOptions.empty()) {
    std::string quantFile =
        ex.workDir + "/linear.q" + std::to_string(std::hash<std::string>()(
                                       rtnOptions.str()) % 100000) +
        ".safetensors";
    PassManager pm(&context);
    std::string pipeline = llvm::formatv(
        "qnt-rtn{{{0} output={1}},func.func(qnt-fuse-dequant-matmul)",
        rtnOptions, quantFile);
    if (failed(parsePassPipeline(pipeline, pm)) || failed(pm.run(*module)))
      return failure();
    mlir::qnt::MatmulOp matmul;
    module->walk([&](mlir::qnt::MatmulOp op) { matmul = op; });
    if (!matmul)
      return emitError(loc) << "qnt-rtn + fusion produced no qnt.matmul";
    spec = matmul.getEncoding().toSpec();
    result.encoding = nx::describe(spec);
    result.bitsPerWeight = nx::bitsPerWeight(spec, n, k);
    FailureOr<nx::EncodedMatrix> read =
        readEncoded(loc, quantFile, matmul.getEncoding(), n, k);
    if (failed(read))
      return failure();
    encoded = std::move(*read);
    wq = nx::dequantize(spec, encoded);
  }

  FailureOr<CompiledFunction> compiled =
      CompiledFunction::compile(*module, "linear");
  if (failed(compiled))
    return failure();
  FailureOr<mlir::qnt::ParamStore> store = mlir::qnt::ParamStore::open(*module);
  if (failed(store) || failed(compiled->bindParams(*store, loc)))
    return failure();
  HostTensor input(compiled->signature().inputs[0]);
  std::memcpy(input.data(), x.data(), x.size() * 4);
  std::vector<HostTensor> outputs;
  if (failed(compiled->call({input}, outputs, loc)))
    return failure();
  const float *y = outputs[0].f32();

  std::vector<double> yFloat = referenceProduct(x, w, m, n, k);
  std::vector<double> yRef = referenceProduct(x, wq, m, n, k);
  double wErr = 0, wNorm = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    wErr += double(w[i] - wq[i]) * (w[i] - wq[i]);
    wNorm += double(w[i]) * w[i];
  }
  result.weightRelError = std::sqrt(wErr / wNorm);

  double outErr = 0, outNorm = 0, refDev = 0, refMax = 0, ratio = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double got = y[i * n + j];
      outErr += (got - yFloat[i * n + j]) * (got - yFloat[i * n + j]);
      outNorm += yFloat[i * n + j] * yFloat[i * n + j];
      refDev = std::max(refDev, std::fabs(got - yRef[i * n + j]));
      refMax = std::max(refMax, std::fabs(yRef[i * n + j]));
      double bound = 0, magnitude = 0;
      for (int64_t l = 0; l < k; ++l) {
        double ax = std::fabs(x[i * k + l]);
        magnitude += ax * std::fabs(w[j * k + l]);
        if (!rtnOptions.empty())
          bound += ax * halfStep(spec, scaleOf(spec, encoded, j, l),
                                 w[j * k + l], wq[j * k + l]);
      }
      bound += 1e-5 * magnitude;
      ratio = std::max(ratio, std::fabs(got - yFloat[i * n + j]) / bound);
    }
  result.outputRelError = std::sqrt(outErr / outNorm);
  result.refRelDeviation = refDev / refMax;
  result.stepBoundRatio = ratio;
  return result;
}
} // namespace qnt::runtime
