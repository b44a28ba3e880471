//===- QntOps.cpp - qnt op verifiers ----------------------------*- C++ -*-===//
//
// Semantic checks that cut across operands. Structural rules (operand kinds,
// element types) come from the ODS constraints in QntOps.td.
//
//===----------------------------------------------------------------------===//

#include "dialects/qnt/QntDialect.h"

#include "mlir/IR/Matchers.h"
#include "llvm/IR/Intrinsics.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::qnt;

LogicalResult mlir::qnt::verifyEncodedWeight(Operation *op,
                                             EncodingAttrInterface encoding,
                                             ValueRange components,
                                             ArrayRef<int64_t> shape) {
  auto emitError = [op]() { return op->emitOpError(); };
  if (failed(encoding.verifyForShape(shape, emitError)))
    return failure();
  SmallVector<RankedTensorType> expected = encoding.getComponentTypes(shape);
  SmallVector<std::string> names = encoding.getComponentNames(shape);
  std::string weight = llvm::formatv("{0}x{1}", shape[0], shape[1]).str();
  if (components.size() != expected.size())
    return op->emitOpError() << "encoding " << encoding << " stores a "
                             << weight << " weight in " << expected.size()
                             << " components, got " << components.size();
  for (auto [index, value, type, name] :
       llvm::enumerate(components, expected, names)) {
    if (value.getType() != type)
      return op->emitOpError()
             << "component #" << index << " ('" << name << "') of a " << weight
             << " weight must be " << type << ", got " << value.getType();
  }
  return success();
}

/// True if `type` is a 2-D tensor with static sizes.
static bool isStaticMatrix(ShapedType type) {
  return type.getRank() == 2 && type.hasStaticShape();
}

//===----------------------------------------------------------------------===//
// ParamOp
//===----------------------------------------------------------------------===//

LogicalResult ParamOp::verify() {
  if (getName().empty())
    return emitOpError("needs a non-empty parameter name");
  if (!getType().hasStaticShape())
    return emitOpError("result must have a static shape, got ") << getType();
  return success();
}

//===----------------------------------------------------------------------===//
// ObserveOp
//===----------------------------------------------------------------------===//

LogicalResult ObserveOp::verify() {
  if (getName().empty())
    return emitOpError("needs a non-empty activation name");
  if (getStats().empty())
    return emitOpError("needs at least one statistic");
  if (getInput().getType().getRank() < 1 ||
      ShapedType::isDynamic(getInput().getType().getShape().back()))
    return emitOpError("input needs a static channel (last) dimension");
  llvm::StringSet<> seen;
  for (Attribute stat : getStats()) {
    StringRef kind = cast<StringAttr>(stat).getValue();
    if (kind != "absmax" && kind != "mean_abs" && kind != "hessian")
      return emitOpError("unknown statistic '")
             << kind << "'; expected absmax, mean_abs or hessian";
    if (!seen.insert(kind).second)
      return emitOpError("statistic '") << kind << "' is listed twice";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// SmoothOp
//===----------------------------------------------------------------------===//

LogicalResult SmoothOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType factors = getFactors().getType();
  if (input.getRank() < 1)
    return emitOpError("input must have at least one dimension");
  if (factors.getRank() != 1 ||
      factors.getDimSize(0) != input.getShape().back())
    return emitOpError("factors must be a vector with one entry per input "
                       "channel (")
           << input.getShape().back() << "), got " << factors;
  if (factors.getElementType() != input.getElementType())
    return emitOpError("factors element type ")
           << factors.getElementType() << " differs from the input's "
           << input.getElementType();
  return success();
}

//===----------------------------------------------------------------------===//
// DequantOp
//===----------------------------------------------------------------------===//

LogicalResult DequantOp::verify() {
  RankedTensorType result = getResult().getType();
  if (!isStaticMatrix(result))
    return emitOpError("result must be a static 2-D [N, K] weight, got ")
           << result;
  return verifyEncodedWeight(*this, getEncoding(), getComponents(),
                             result.getShape());
}

//===----------------------------------------------------------------------===//
// MatmulOp
//===----------------------------------------------------------------------===//

SmallVector<int64_t, 2> MatmulOp::getWeightShape() {
  return {getResult().getType().getShape().back(),
          getInput().getType().getShape().back()};
}

LogicalResult IntrinsicOp::verify() {
  if (llvm::Intrinsic::lookupIntrinsicID(getName()) ==
      llvm::Intrinsic::not_intrinsic)
    return emitOpError() << "'" << getName() << "' is not an LLVM intrinsic";
  SmallVector<Type> types(getArgs().getTypes());
  types.push_back(getResult().getType());
  for (Type type : types)
    if (cast<VectorType>(type).getRank() != 1)
      return emitOpError() << "operands and result must be 1-D vectors (LLVM "
                              "vectors), not "
                           << type;
  return success();
}

LogicalResult MatmulOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType result = getResult().getType();
  // The rows (tokens) may be dynamic; K and N are the weight's.
  auto isActivation = [](RankedTensorType t) {
    return t.getRank() == 2 && !ShapedType::isDynamic(t.getDimSize(1));
  };
  if (!isActivation(input) || !isActivation(result))
    return emitOpError("input and result must be 2-D tensors with a static "
                       "last dimension, got ")
           << input << " and " << result;
  if (input.getDimSize(0) != result.getDimSize(0))
    return emitOpError("input has ")
           << input.getDimSize(0) << " rows but the result has "
           << result.getDimSize(0);
  if (input.getElementType() != result.getElementType())
    return emitOpError("input element type ")
           << input.getElementType() << " differs from the result's "
           << result.getElementType();
  return verifyEncodedWeight(*this, getEncoding(), getComponents(),
                             getWeightShape());
}

//===----------------------------------------------------------------------===//
// LowRankAddOp
//===----------------------------------------------------------------------===//

LogicalResult LowRankAddOp::verify() {
  auto acc = getAcc().getType(), input = getInput().getType();
  auto u = getU().getType(), v = getV().getType();
  // acc and input are activations: their rows (tokens) may be dynamic, as
  // in an imported model; the factors are static weights.
  for (RankedTensorType t : {acc, input})
    if (t.getRank() != 2 || ShapedType::isDynamic(t.getDimSize(1)))
      return emitOpError("acc and input must be 2-D tensors with a static "
                         "last dimension, got ")
             << t;
  for (RankedTensorType t : {u, v})
    if (!isStaticMatrix(t))
      return emitOpError("u and v must be static 2-D tensors, got ") << t;
  for (RankedTensorType t : {input, u, v})
    if (t.getElementType() != acc.getElementType())
      return emitOpError("operands must share one element type, got ")
             << acc.getElementType() << " and " << t.getElementType();
  int64_t m = acc.getDimSize(0), n = acc.getDimSize(1);
  int64_t k = input.getDimSize(1), rank = u.getDimSize(1);
  auto rowsText = [](int64_t rows) {
    return ShapedType::isDynamic(rows) ? std::string("?")
                                       : std::to_string(rows);
  };
  if (input.getDimSize(0) != m)
    return emitOpError("input has ") << rowsText(input.getDimSize(0))
                                     << " rows, acc has " << rowsText(m);
  if (u.getDimSize(0) != n)
    return emitOpError("u must be [N, r] with N = ") << n << ", got " << u;
  if (v.getDimSize(0) != k || v.getDimSize(1) != rank)
    return emitOpError("v must be [K, r] = [")
           << k << ", " << rank << "], got " << v;
  return success();
}

//===----------------------------------------------------------------------===//
// FakeQuantOp
//===----------------------------------------------------------------------===//

LogicalResult FakeQuantOp::verify() {
  RankedTensorType input = getInput().getType();
  // Leading (token) dimensions may be dynamic, as in an imported model;
  // the channels may not (a noise vector spans them).
  if (input.getRank() < 1 || input.isDynamicDim(input.getRank() - 1))
    return emitOpError("input must have a static last dimension, got ")
           << input;
  if (Value scale = getScale()) {
    if (getGranularity() != ActivationGranularity::per_tensor)
      return emitOpError("a static scale is only valid per tensor; per_token "
                         "scales are computed at run time");
    auto type = cast<RankedTensorType>(scale.getType());
    if (!type.hasStaticShape() || type.getNumElements() != 1)
      return emitOpError("scale must hold exactly one value, got ") << type;
  }
  if (Value clip = getClip()) {
    if (getScale())
      return emitOpError("a clip ratio applies to run-time scales; it cannot "
                         "be combined with a static scale");
    auto type = cast<RankedTensorType>(clip.getType());
    if (!type.hasStaticShape() || type.getNumElements() != 1)
      return emitOpError("clip must hold exactly one value, got ") << type;
    DenseFPElementsAttr value;
    if (matchPattern(clip, m_Constant(&value)) &&
        !((*value.value_begin<APFloat>()).convertToDouble() > 0))
      return emitOpError("clip must be positive, got ")
             << (*value.value_begin<APFloat>()).convertToDouble();
  }
  if (Value noise = getNoise()) {
    auto type = cast<RankedTensorType>(noise.getType());
    if (type.getRank() != 1 || type.getDimSize(0) != input.getShape().back() ||
        type.getElementType() != input.getElementType())
      return emitOpError("noise must be a vector of ")
             << input.getShape().back() << " " << input.getElementType()
             << ", got " << type;
  }
  return success();
}

#define GET_OP_CLASSES
#include "dialects/qnt/QntOps.cpp.inc"
