//===- ParamStore.h - Resolve qnt.param names in files ----------*- C++ -*-===//
//
// The checkpoint files a module's qnt.param ops refer to (module attribute
// qnt.param_files: safetensors files or llama2.c checkpoints), memory-mapped,
// with the type checks every consumer of parameters (passes, quant-run)
// needs.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PARAMSTORE_H
#define QNT_PARAMSTORE_H

#include "qnt/io/Safetensors.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"

#include <memory>
#include <optional>
#include <vector>

namespace mlir::qnt {

/// One resolved parameter: where its bytes are and how they are stored.
struct ParamView {
  const ::qnt::io::TensorFile *file = nullptr;
  const ::qnt::io::TensorInfo *info = nullptr;
  const uint8_t *data = nullptr;
};

class ParamStore {
public:
  /// Opens the files listed in `module`'s qnt.param_files followed by
  /// `extraFiles`. Reports the first file that cannot be opened on `module`.
  static FailureOr<ParamStore> open(ModuleOp module,
                                    ArrayRef<std::string> extraFiles = {});

  /// Finds `name` (first file wins) and checks that it can be read as
  /// `type`: same shape, and a dtype that matches the element type (F16 and
  /// BF16 also read as f32). Reports failures at `loc`.
  FailureOr<ParamView> resolve(Location loc, StringRef name,
                               RankedTensorType type) const;

  /// Resolves and reads a float parameter as f32 values.
  FailureOr<std::vector<float>> readAsF32(Location loc, StringRef name,
                                          RankedTensorType type) const;

  /// Drops the resident pages of parameter `name` (if found), so that a pass
  /// streaming over a model larger than memory keeps a bounded footprint.
  void releasePages(StringRef name) const;

  /// True if `path` names one of the opened files (same inode).
  bool isOpenFile(StringRef path) const;

  bool empty() const { return files.empty(); }

private:
  std::vector<std::unique_ptr<::qnt::io::TensorFile>> files;
};

/// The safetensors dtype that stores `elementType` exactly, if any.
std::optional<::qnt::io::DType> storageDTypeOf(Type elementType);

/// Converts one stored element of a float dtype (F32, F16, BF16) to f32.
float loadAsF32(::qnt::io::DType dtype, const uint8_t *element);

/// Appends `path` to `module`'s qnt.param_files.
void appendParamFile(ModuleOp module, StringRef path);

} // namespace mlir::qnt

#endif // QNT_PARAMSTORE_H
