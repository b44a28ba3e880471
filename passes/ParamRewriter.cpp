//===- ParamRewriter.cpp - New values for float constants and params ------===//

#include "passes/ParamRewriter.h"
#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::qnt;

ParamRewriter::ParamRewriter(ModuleOp module, StringRef output,
                             StringRef passName)
    : module(module), output(output.str()), passName(passName.str()) {}

FailureOr<std::vector<float>> ParamRewriter::read(Operation *source) {
  auto type = cast<RankedTensorType>(source->getResult(0).getType());
  if (!type.getElementType().isF32())
    return source->emitOpError(passName)
           << ": only f32 data can be rescaled, not " << type;
  if (auto constant = dyn_cast<arith::ConstantOp>(source)) {
    auto dense = cast<DenseFPElementsAttr>(constant.getValue());
    std::vector<float> values;
    for (const APFloat &v : dense.getValues<APFloat>())
      values.push_back(v.convertToFloat());
    return values;
  }
  auto param = cast<ParamOp>(source);
  if (output.empty())
    return param.emitOpError(passName)
           << ": rescaling parameter '" << param.getName()
           << "' writes a new parameter; give output=<file.safetensors>";
  if (failed(openStore()))
    return failure();
  return store->readAsF32(param.getLoc(), param.getName(), type);
}

FailureOr<Value> ParamRewriter::replacement(Operation *source, Operation *user,
                                            const std::vector<float> &values,
                                            StringRef suffix) {
  auto type = cast<RankedTensorType>(source->getResult(0).getType());
  OpBuilder b(user);
  if (isa<arith::ConstantOp>(source))
    return arith::ConstantOp::create(
               b, source->getLoc(),
               DenseElementsAttr::get(type, llvm::ArrayRef<float>(values)))
        .getResult();
  auto param = cast<ParamOp>(source);
  std::string name = (param.getName() + suffix).str();
  for (int i = 2; written.contains(name); ++i)
    name = (param.getName() + suffix + std::to_string(i)).str();
  written.insert(name);
  std::string message;
  if (!writer.add(name, ::qnt::io::DType::F32, type.getShape().vec(),
                  values.data(), values.size() * sizeof(float), &message))
    return param.emitOpError(passName) << ": " << message;
  return ParamOp::create(b, param.getLoc(), type, name).getResult();
}

LogicalResult ParamRewriter::finish() {
  if (written.empty())
    return success();
  if (store && store->isOpenFile(output))
    return module.emitError(passName)
           << ": output '" << output << "' is one of the input parameter files";
  writer.setMetadata("producer", "quant-mlir " + passName);
  std::string message;
  if (!writer.write(output, &message))
    return module.emitError(passName) << ": " << message;
  llvm::SmallString<256> recorded(output);
  llvm::sys::fs::make_absolute(recorded);
  llvm::sys::path::remove_dots(recorded, /*remove_dot_dot=*/true);
  appendParamFile(module, recorded);
  return success();
}

LogicalResult ParamRewriter::openStore() {
  if (store)
    return success();
  FailureOr<ParamStore> opened = ParamStore::open(module);
  if (failed(opened))
    return failure();
  store = std::move(*opened);
  return success();
}
