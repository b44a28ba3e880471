//===- LlamaImporter.h - LLaMA checkpoints to func/linalg/qnt IR -*- C++ -*-===//
//
// Turns an opened LLaMA-family checkpoint into a module with one function
// per transformer block plus the embedding and the head (docs/Models.md):
//
//   func @embed(%tokens: tensor<?xi32>) -> tensor<?xDxf32>
//   func @block<i>(%x: tensor<?xDxf32>, %pos: tensor<i64>,
//                  %kcache: tensor<CxKVxf32>, %vcache: tensor<CxKVxf32>)
//       -> (tensor<?xDxf32>, tensor<?xKVxf32>, tensor<?xKVxf32>)
//   func @head(%x: tensor<?xDxf32>) -> tensor<?xVxf32>
//
// A block call processes the T rows of %x as tokens at positions
// pos..pos+T-1, attends over the cache rows [0, pos) and its own rows, and
// returns its output with the new (rotated) keys and values, which the
// caller stores at rows [pos, pos+T) of the caches. Weights are qnt.param
// ops naming tensors of the checkpoint's files (listed in qnt.param_files),
// in their stored element type; every linear layer is a transpose-B
// linalg.matmul on its weight, which is what the PTQ passes look for.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IMPORT_LLAMAIMPORTER_H
#define QNT_IMPORT_LLAMAIMPORTER_H

#include "qnt/io/Llama.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>

namespace mlir::qnt {

/// Module attribute holding the model's hyper-parameters (a dictionary).
inline constexpr llvm::StringLiteral kModelAttrName = "qnt.model";

/// "block<layer>".
std::string blockFunctionName(int64_t layer);

/// Registers the dialects the imported IR uses.
void loadImportDialects(MLIRContext *context);

/// Builds the module of `checkpoint`; `sourcePath` names the checkpoint in
/// locations. Reports on the context and returns null on failure.
OwningOpRef<ModuleOp> importLlama(MLIRContext *context,
                                  const ::qnt::io::LlamaCheckpoint &checkpoint,
                                  llvm::StringRef sourcePath);

/// Reads the qnt.model attribute back; reports on `module` if it is missing
/// or incomplete.
FailureOr<::qnt::io::LlamaConfig> readModelConfig(ModuleOp module);

/// The module file in a directory written by `quant-compile --recipe`.
inline constexpr llvm::StringLiteral kCompiledModelFileName = "model.mlir";

/// Imports `path` (a llama2.c file or Hugging Face directory), or parses it
/// when it is a .mlir/.mlirbc file produced by an earlier import or a
/// directory holding one as model.mlir (quant-compile --recipe).
OwningOpRef<ModuleOp> loadModel(MLIRContext *context, llvm::StringRef path);

/// loadModel, then runs `pipeline` on the module when it is not empty
/// (anchored or bare, as runPassPipeline). Reports on the context.
OwningOpRef<ModuleOp> loadModel(MLIRContext *context, llvm::StringRef path,
                                llvm::StringRef pipeline);

} // namespace mlir::qnt

#endif // QNT_IMPORT_LLAMAIMPORTER_H
