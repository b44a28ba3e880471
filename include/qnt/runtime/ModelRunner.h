//===- ModelRunner.h - Execute an imported model on the CPU -----*- C++ -*-===//
//
// Runs the functions of an imported (float or quantized) LLaMA module,
// compiled by the project's CPU pipeline, with a KV cache per layer. The
// caller drives positions: a call at position p with T tokens writes cache
// rows [p, p+T) and attends over rows [0, p+T), so evaluating from an empty
// cache is a call at position 0.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_MODELRUNNER_H
#define QNT_RUNTIME_MODELRUNNER_H

#include "qnt/io/Llama.h"
#include "qnt/runtime/CpuJit.h"

namespace qnt::runtime {

/// Fuses the dequantizations of `module` (an imported model described by
/// `config`) into qnt.matmul and checks that its block functions match
/// n_layers. Returns the functions a model runs: embed, head, block0...
/// The JIT (ModelRunner) and the ahead-of-time packager share it.
mlir::FailureOr<std::vector<std::string>>
prepareModelForCpu(mlir::ModuleOp module, const io::LlamaConfig &config);

class ModelRunner {
public:
  /// Compiles every function of `module` (an imported model; the module is
  /// lowered in place with `options`) and binds its parameters.
  static mlir::FailureOr<std::unique_ptr<ModelRunner>>
  create(mlir::ModuleOp module, const CpuCompileOptions &options = {});

  const io::LlamaConfig &config() const { return config_; }

  /// x = embedding rows of `tokens` ([T, dim]). Ids must be < vocab_size.
  mlir::LogicalResult embed(llvm::ArrayRef<int32_t> tokens, HostTensor &x);
  /// Runs block `layer` on x in place for tokens at positions pos..pos+T-1,
  /// storing their keys and values in the layer's cache. Results beyond the
  /// block's three (activations exposed for calibration) go to `extra`.
  mlir::LogicalResult block(int64_t layer, HostTensor &x, int64_t pos,
                            std::vector<HostTensor> *extra = nullptr);
  /// logits = head(x) ([T, vocab_size]); extra results go to `extra`.
  mlir::LogicalResult head(const HostTensor &x, HostTensor &logits,
                           std::vector<HostTensor> *extra = nullptr);
  /// The whole model on `tokens` at positions pos..: [T, vocab_size].
  mlir::LogicalResult forward(llvm::ArrayRef<int32_t> tokens, int64_t pos,
                              HostTensor &logits);

  /// Binds `tensor` (same type as bound) in place of parameter `name` for
  /// later calls (the sequential PTQ driver runs blocks with quantized
  /// weights this way, without recompiling).
  mlir::LogicalResult rebindParam(llvm::StringRef name, HostTensor tensor);
  /// The type parameter `name` is bound with, or null.
  mlir::RankedTensorType paramType(llvm::StringRef name) const;
  /// Bytes of the parameters one call of `entry` reads, as bound (a
  /// quantized weight's packed codes, scales and zero points): what a decode
  /// step streams from memory. 0 for an unknown entry.
  int64_t parameterBytes(llvm::StringRef entry) const;
  /// Bytes of parameters copied into huge pages
  /// (CpuCompileOptions::hugePageWeights), 0 when they are viewed in place.
  int64_t parameterArenaBytes() const { return compiled->paramArenaBytes(); }

private:
  ModelRunner() = default;
  /// Checks that the compiled functions have the importer's signatures and
  /// the model metadata (qnt.model) agrees with them.
  mlir::LogicalResult checkSignatures();
  /// Makes the KV caches hold at least `positions` rows (keeping what they
  /// hold), or reports that they cannot fit in this machine's memory.
  mlir::LogicalResult reserveCache(int64_t positions);
  /// The result types of `entry` for a call on `rows` tokens: every
  /// dynamic dimension of an imported function's result is the row count.
  mlir::FailureOr<llvm::SmallVector<mlir::RankedTensorType>>
  resultTypes(llvm::StringRef entry, int64_t rows) const;

  io::LlamaConfig config_;
  mlir::MLIRContext *context = nullptr;
  mlir::Location loc = mlir::UnknownLoc();
  mlir::qnt::ParamStore store;
  std::unique_ptr<CompiledModule> compiled;
  /// One per layer, allocated on demand; cacheRows rows each.
  std::vector<HostTensor> keyCaches, valueCaches;
  int64_t cacheRows = 0;
  /// The cache rows of a module imported with static caches (max_seq_len),
  /// or 0 when they are dynamic.
  int64_t staticCacheRows = 0;
};

} // namespace qnt::runtime

#endif // QNT_RUNTIME_MODELRUNNER_H
