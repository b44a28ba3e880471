//===- ModelRunner.cpp - Execute an imported model on the CPU -------------===//
//
// See ModelRunner.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/ModelRunner.h"
#include "qnt/import/LlamaImporter.h"

#include "passes/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cstring>

using namespace mlir;
using namespace ::qnt::runtime;

/// The metadata must describe the functions: a block function past
/// n_layers (an edited or mismatched qnt.model) would otherwise be skipped
/// silently and the model would run, wrongly, with fewer layers.
static LogicalResult checkBlockCount(ModuleOp module,
                                     const ::qnt::io::LlamaConfig &config) {
  int64_t blocks = 0;
  for (auto func : module.getOps<func::FuncOp>()) {
    StringRef name = func.getSymName();
    int64_t layer;
    if (!name.consume_front("block") || name.getAsInteger(10, layer))
      continue;
    if (layer < 0 || layer >= config.nLayers)
      return func.emitError()
             << "block function '" << func.getSymName()
             << "' is outside the model's n_layers = " << config.nLayers
             << " (the '" << mlir::qnt::kModelAttrName
             << "' metadata and the functions disagree)";
    ++blocks;
  }
  if (blocks != config.nLayers)
    return emitError(module.getLoc())
           << "the module has " << blocks << " block functions but its '"
           << mlir::qnt::kModelAttrName << "' metadata says n_layers = "
           << config.nLayers;
  return success();
}

namespace qnt::runtime {
FailureOr<std::vector<std::string>>
prepareModelForCpu(ModuleOp module, const ::qnt::io::LlamaConfig &config) {
  // Executing a quantized model means fused kernels: dequantizations
  // feeding matmuls become qnt.matmul before lowering.
  PassManager fuse(module.getContext());
  fuse.addNestedPass<func::FuncOp>(mlir::qnt::createQntFuseDequantMatmul());
  if (failed(fuse.run(module)))
    return failure();
  if (failed(checkBlockCount(module, config)))
    return failure();
  std::vector<std::string> entries = {"embed", "head"};
  for (int64_t layer = 0; layer < config.nLayers; ++layer)
    entries.push_back(mlir::qnt::blockFunctionName(layer));
  return entries;
}
} // namespace qnt::runtime

FailureOr<std::unique_ptr<ModelRunner>>
ModelRunner::create(ModuleOp module, const CpuCompileOptions &options) {
  FailureOr<::qnt::io::LlamaConfig> config = mlir::qnt::readModelConfig(module);
  if (failed(config))
    return failure();
  std::unique_ptr<ModelRunner> runner(new ModelRunner);
  runner->config_ = *config;
  runner->context = module.getContext();
  runner->loc = module.getLoc();
  // Parameters are opened before compiling so that a missing or bad file is
  // reported against the model, not the lowered code.
  FailureOr<mlir::qnt::ParamStore> store = mlir::qnt::ParamStore::open(module);
  if (failed(store))
    return failure();
  runner->store = std::move(*store);

  FailureOr<std::vector<std::string>> entries =
      prepareModelForCpu(module, *config);
  if (failed(entries))
    return failure();
  FailureOr<std::unique_ptr<CompiledModule>> compiled =
      CompiledModule::compile(module, *entries, options);
  if (failed(compiled))
    return failure();
  runner->compiled = std::move(*compiled);
  if (failed(runner->checkSignatures()) ||
      failed(runner->compiled->bindParams(runner->store, runner->loc)))
    return failure();

  // The KV caches are allocated by the first block call, for what it needs.
  runner->keyCaches.resize(config->nLayers);
  runner->valueCaches.resize(config->nLayers);
  return runner;
}

LogicalResult ModelRunner::reserveCache(int64_t positions) {
  if (positions <= cacheRows)
    return success();
  // Grow geometrically up to the model's context; a module imported with
  // static caches takes exactly max_seq_len rows.
  int64_t rows = staticCacheRows > 0
                     ? staticCacheRows
                     : std::min(config_.maxSeqLen,
                                std::max({positions, 2 * cacheRows,
                                          int64_t(64)}));
  const int64_t memoryBytes = physicalMemoryBytes();
  int64_t bytes = 2 * int64_t(sizeof(float));
  bool overflow = llvm::MulOverflow(bytes, config_.nLayers, bytes) ||
                  llvm::MulOverflow(bytes, rows, bytes) ||
                  llvm::MulOverflow(bytes, config_.kvDim(), bytes);
  if (overflow || bytes > memoryBytes)
    return emitError(loc) << "the KV cache for " << rows << " positions ("
                          << config_.nLayers << " layers of " << config_.kvDim()
                          << " keys and values each) needs more than this "
                          << "machine's " << memoryBytes
                          << " bytes of memory; use a shorter context";
  auto type = RankedTensorType::get({rows, config_.kvDim()},
                                    Float32Type::get(context));
  int64_t keptBytes = cacheRows * config_.kvDim() * int64_t(sizeof(float));
  for (std::vector<HostTensor> *caches : {&keyCaches, &valueCaches})
    for (HostTensor &cache : *caches) {
      HostTensor grown(type);
      if (keptBytes)
        std::memcpy(grown.data(), cache.data(), keptBytes);
      cache = std::move(grown);
    }
  cacheRows = rows;
  return success();
}

LogicalResult ModelRunner::embed(ArrayRef<int32_t> tokens, HostTensor &x) {
  auto type = RankedTensorType::get({int64_t(tokens.size())},
                                    IntegerType::get(context, 32));
  HostTensor ids(type);
  for (auto [i, token] : llvm::enumerate(tokens)) {
    if (token < 0 || token >= config_.vocabSize)
      return emitError(loc) << "token id " << token << " at position " << i
                            << " is outside the vocabulary [0, "
                            << config_.vocabSize << ")";
    static_cast<int32_t *>(ids.data())[i] = token;
  }
  std::vector<HostTensor> results;
  FailureOr<SmallVector<RankedTensorType>> types =
      resultTypes("embed", tokens.size());
  if (failed(types) || failed(compiled->call("embed", {ids}, results, loc,
                                             *types)))
    return failure();
  x = std::move(results[0]);
  return success();
}

LogicalResult ModelRunner::block(int64_t layer, HostTensor &x, int64_t pos,
                                 std::vector<HostTensor> *extra) {
  int64_t rows = x.getType().getDimSize(0);
  if (pos < 0 || pos + rows > config_.maxSeqLen)
    return emitError(loc) << "tokens at positions [" << pos << ", "
                          << pos + rows << ") exceed the context of "
                          << config_.maxSeqLen;
  if (failed(reserveCache(pos + rows)))
    return failure();
  std::string name = mlir::qnt::blockFunctionName(layer);
  FailureOr<SmallVector<RankedTensorType>> types = resultTypes(name, rows);
  if (failed(types))
    return failure();
  HostTensor position(RankedTensorType::get({}, IntegerType::get(context, 64)));
  *static_cast<int64_t *>(position.data()) = pos;
  std::vector<HostTensor> results;
  if (failed(compiled->call(name,
                            {x, position, keyCaches[layer], valueCaches[layer]},
                            results, loc, *types)))
    return failure();
  // Store the new keys and values. Redundant when bufferization already
  // inserted them into the cache argument in place, but correct either way.
  int64_t kvBytes = config_.kvDim() * sizeof(float);
  std::memcpy(keyCaches[layer].f32() + pos * config_.kvDim(),
              results[1].data(), rows * kvBytes);
  std::memcpy(valueCaches[layer].f32() + pos * config_.kvDim(),
              results[2].data(), rows * kvBytes);
  x = std::move(results[0]);
  if (extra)
    extra->assign(std::make_move_iterator(results.begin() + 3),
                  std::make_move_iterator(results.end()));
  return success();
}

/// True if `type` is f32 of `shape`, where -1 matches any size.
static bool isF32Shaped(RankedTensorType type, ArrayRef<int64_t> shape) {
  if (!type.getElementType().isF32() || type.getRank() != int64_t(shape.size()))
    return false;
  for (auto [have, want] : llvm::zip(type.getShape(), shape))
    if (want != -1 && have != want)
      return false;
  return true;
}

LogicalResult ModelRunner::checkSignatures() {
  // A hand-edited .mlir may not follow the importer's contract; every
  // buffer the runner reads or copies is checked here once.
  const io::LlamaConfig &c = config_;
  auto bad = [&](StringRef entry, const Twine &what) -> LogicalResult {
    return emitError(loc) << "'" << entry << "' does not have the signature "
                          << "of an imported model: " << what;
  };
  auto checkExtras = [&](const EntrySignature &sig,
                         size_t first) -> LogicalResult {
    for (size_t i = first; i < sig.results.size(); ++i)
      if (!sig.results[i].getElementType().isF32())
        return bad(sig.name, "result #" + Twine(i) + " is not f32");
    return success();
  };
  const EntrySignature *embed = compiled->signature("embed");
  if (embed->results.empty() ||
      !isF32Shaped(embed->results[0], {-1, c.dim}))
    return bad("embed", "its first result must be tensor<?x" + Twine(c.dim) +
                            "xf32>");
  for (int64_t layer = 0; layer < c.nLayers; ++layer) {
    std::string name = mlir::qnt::blockFunctionName(layer);
    const EntrySignature *block = compiled->signature(name);
    if (block->inputs.size() != 4 || block->results.size() < 3 ||
        !isF32Shaped(block->results[0], {-1, c.dim}) ||
        !isF32Shaped(block->results[1], {-1, c.kvDim()}) ||
        !isF32Shaped(block->results[2], {-1, c.kvDim()}) ||
        !isF32Shaped(block->inputs[2], {-1, c.kvDim()}) ||
        block->inputs[3] != block->inputs[2])
      return bad(name, "expected (x, pos, kcache, vcache) -> (x, k, v, ...) "
                       "with dim " + Twine(c.dim) + " and kv dim " +
                           Twine(c.kvDim()));
    // Caches are dynamic (sized per run) or, in modules imported before
    // that, static with max_seq_len rows.
    int64_t cacheDim = block->inputs[2].getDimSize(0);
    if (!ShapedType::isDynamic(cacheDim) && cacheDim != c.maxSeqLen)
      return bad(name, "its KV caches have " + Twine(cacheDim) +
                           " rows, not max_seq_len = " + Twine(c.maxSeqLen));
    staticCacheRows = ShapedType::isDynamic(cacheDim) ? 0 : cacheDim;
    if (failed(checkExtras(*block, 3)))
      return failure();
  }
  const EntrySignature *head = compiled->signature("head");
  if (head->results.empty() ||
      !isF32Shaped(head->results[0], {-1, c.vocabSize}))
    return bad("head", "its first result must be tensor<?x" +
                           Twine(c.vocabSize) + "xf32>");
  return checkExtras(*head, 1);
}

FailureOr<SmallVector<RankedTensorType>>
ModelRunner::resultTypes(StringRef entry, int64_t rows) const {
  const EntrySignature *sig = compiled->signature(entry);
  if (!sig)
    return emitError(loc) << "no function '" << entry << "'";
  SmallVector<RankedTensorType> types;
  for (RankedTensorType type : sig->results) {
    SmallVector<int64_t> shape(type.getShape());
    for (int64_t &d : shape)
      if (ShapedType::isDynamic(d))
        d = rows;
    types.push_back(type.clone(shape));
  }
  return types;
}

LogicalResult ModelRunner::head(const HostTensor &x, HostTensor &logits,
                                std::vector<HostTensor> *extra) {
  FailureOr<SmallVector<RankedTensorType>> types =
      resultTypes("head", x.getType().getDimSize(0));
  if (failed(types))
    return failure();
  std::vector<HostTensor> results;
  if (failed(compiled->call("head", {x}, results, loc, *types)))
    return failure();
  logits = std::move(results[0]);
  if (extra)
    extra->assign(std::make_move_iterator(results.begin() + 1),
                  std::make_move_iterator(results.end()));
  return success();
}

LogicalResult ModelRunner::forward(ArrayRef<int32_t> tokens, int64_t pos,
                                   HostTensor &logits) {
  HostTensor x;
  if (failed(embed(tokens, x)))
    return failure();
  for (int64_t layer = 0; layer < config_.nLayers; ++layer)
    if (failed(block(layer, x, pos)))
      return failure();
  return head(x, logits);
}

LogicalResult ModelRunner::rebindParam(StringRef name, HostTensor tensor) {
  return compiled->rebindParam(name, std::move(tensor), loc);
}

RankedTensorType ModelRunner::paramType(StringRef name) const {
  for (const EntrySignature &sig : compiled->signatures())
    for (const auto &[param, type] : sig.params)
      if (param == name)
        return type;
  return nullptr;
}

int64_t ModelRunner::parameterBytes(StringRef entry) const {
  const EntrySignature *sig = compiled->signature(entry);
  if (!sig)
    return 0;
  int64_t bytes = 0;
  for (const auto &[name, type] : sig->params)
    bytes += type.getNumElements() *
             ((type.getElementTypeBitWidth() + 7) / 8);
  return bytes;
}
