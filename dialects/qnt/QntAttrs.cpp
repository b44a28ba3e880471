//===- QntAttrs.cpp - qnt encodings: verifiers and host specs ---*- C++ -*-===//
//
// Shape-independent verification of every encoding, conversion to and from
// the host specs of lib/numerics, and the interface queries derived from
// those specs (component types, bits per weight, shape checks).
//
//===----------------------------------------------------------------------===//

#include "dialects/qnt/QntDialect.h"

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

//===----------------------------------------------------------------------===//
// Shared parameter rules
//===----------------------------------------------------------------------===//

/// Checks that `groupSize` is positive exactly when the granularity is
/// per_group.
static LogicalResult
verifyGranularity(function_ref<InFlightDiagnostic()> emitError,
                  Granularity granularity, int64_t groupSize) {
  if (granularity == Granularity::per_group && groupSize <= 0)
    return emitError() << "per_group granularity needs a positive group_size, "
                          "got "
                       << groupSize;
  if (granularity != Granularity::per_group && groupSize != 0)
    return emitError() << "group_size " << groupSize << " is only valid with "
                       << "per_group granularity, not "
                       << stringifyGranularity(granularity);
  return success();
}

static nx::Granularity toHost(Granularity g) {
  switch (g) {
  case Granularity::per_tensor:
    return nx::Granularity::PerTensor;
  case Granularity::per_channel:
    return nx::Granularity::PerChannel;
  case Granularity::per_group:
    return nx::Granularity::PerGroup;
  }
  llvm_unreachable("unknown granularity");
}

static nx::ScaleStorage toHost(ScaleType t) {
  return t == ScaleType::f16 ? nx::ScaleStorage::F16 : nx::ScaleStorage::F32;
}

static ScaleType fromHost(nx::ScaleStorage s) {
  return s == nx::ScaleStorage::F16 ? ScaleType::f16 : ScaleType::f32;
}

static Granularity fromHost(nx::Granularity g) {
  switch (g) {
  case nx::Granularity::PerTensor:
    return Granularity::per_tensor;
  case nx::Granularity::PerChannel:
    return Granularity::per_channel;
  case nx::Granularity::PerGroup:
    return Granularity::per_group;
  }
  llvm_unreachable("unknown granularity");
}

//===----------------------------------------------------------------------===//
// Verifiers
//===----------------------------------------------------------------------===//

LogicalResult
UniformEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                            int64_t bits, ZeroPointMode mode,
                            Granularity granularity, int64_t groupSize,
                            ScaleType) {
  if (bits < 2 || bits > 8)
    return emitError() << "uniform encoding needs 2..8 bits, got " << bits;
  return verifyGranularity(emitError, granularity, groupSize);
}

LogicalResult
MinifloatEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                              int64_t exponentBits, int64_t mantissaBits,
                              MinifloatSpecial special,
                              Granularity granularity, int64_t groupSize,
                              ScaleType) {
  if (exponentBits < 1 || exponentBits > 5)
    return emitError() << "minifloat needs 1..5 exponent bits, got "
                       << exponentBits;
  if (mantissaBits < 0 || 1 + exponentBits + mantissaBits > 8 ||
      1 + exponentBits + mantissaBits < 3)
    return emitError() << "minifloat E" << exponentBits << "M" << mantissaBits
                       << " must have 3..8 bits including the sign";
  if (special == MinifloatSpecial::ocp &&
      !((exponentBits == 4 && mantissaBits == 3) ||
        (exponentBits == 5 && mantissaBits == 2)))
    return emitError() << "ocp special values are defined for E4M3 and E5M2 "
                          "only, not E"
                       << exponentBits << "M" << mantissaBits;
  return verifyGranularity(emitError, granularity, groupSize);
}

LogicalResult
CodebookEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                             int64_t numCodebooks, int64_t codeBits,
                             int64_t groupSize, int64_t tileRows,
                             int64_t tileGroups, ScaleType) {
  // toSpec() narrows to int, and the emitters unroll over the codebooks.
  if (numCodebooks < 1 || numCodebooks > nx::kMaxCodebooks)
    return emitError() << "codebook encoding needs 1.." << nx::kMaxCodebooks
                       << " codebooks, got " << numCodebooks;
  if (codeBits < 1 || codeBits > 16)
    return emitError() << "code_bits must be in 1..16, got " << codeBits;
  if (groupSize < 1)
    return emitError() << "codebook group_size must be positive, got "
                       << groupSize;
  if (!nx::CodebookSpec::validTiles(tileRows, tileGroups))
    return emitError() << "codebook tile_rows and tile_groups must both be "
                          "positive (or both 0 for row-major codes), got "
                       << tileRows << " and " << tileGroups;
  return success();
}

LogicalResult
BinaryEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                           ZeroPointMode mode, Granularity granularity,
                           int64_t groupSize) {
  return verifyGranularity(emitError, granularity, groupSize);
}

LogicalResult
BitPlaneEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                             int64_t planes, Granularity granularity,
                             int64_t groupSize) {
  if (planes < 1 || planes > 8)
    return emitError() << "bitplanes needs 1..8 planes, got " << planes;
  return verifyGranularity(emitError, granularity, groupSize);
}

LogicalResult
SalientEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                            int64_t numSalient, EncodingAttrInterface salient,
                            EncodingAttrInterface rest) {
  if (numSalient < 1)
    return emitError() << "num_salient must be positive, got " << numSalient;
  if (isa<SalientEncodingAttr>(salient) || isa<SalientEncodingAttr>(rest))
    return emitError() << "salient encodings do not nest";
  return success();
}

//===----------------------------------------------------------------------===//
// Host specs
//===----------------------------------------------------------------------===//

nx::EncodingSpec UniformEncodingAttr::toSpec() const {
  nx::UniformSpec spec;
  spec.bits = getBits();
  spec.symmetric = getMode() == ZeroPointMode::symmetric;
  spec.granularity = toHost(getGranularity());
  spec.groupSize = getGroupSize();
  spec.scaleStorage = toHost(getScaleType());
  return spec;
}

nx::EncodingSpec MinifloatEncodingAttr::toSpec() const {
  nx::MinifloatSpec spec;
  spec.exponentBits = getExponentBits();
  spec.mantissaBits = getMantissaBits();
  spec.special = getSpecial() == MinifloatSpecial::ocp
                     ? nx::MinifloatSpecial::Ocp
                     : nx::MinifloatSpecial::Finite;
  spec.granularity = toHost(getGranularity());
  spec.groupSize = getGroupSize();
  spec.scaleStorage = toHost(getScaleType());
  return spec;
}

nx::EncodingSpec CodebookEncodingAttr::toSpec() const {
  nx::CodebookSpec spec;
  spec.numCodebooks = getNumCodebooks();
  spec.codeBits = getCodeBits();
  spec.groupSize = getGroupSize();
  spec.tileRows = getTileRows();
  spec.tileGroups = getTileGroups();
  spec.scaleStorage = toHost(getScaleType());
  return spec;
}

nx::EncodingSpec BinaryEncodingAttr::toSpec() const {
  nx::BinarySpec spec;
  spec.withOffset = getMode() == ZeroPointMode::asymmetric;
  spec.granularity = toHost(getGranularity());
  spec.groupSize = getGroupSize();
  return spec;
}

nx::EncodingSpec BitPlaneEncodingAttr::toSpec() const {
  nx::BitPlaneSpec spec;
  spec.numPlanes = getPlanes();
  spec.granularity = toHost(getGranularity());
  spec.groupSize = getGroupSize();
  return spec;
}

nx::EncodingSpec SalientEncodingAttr::toSpec() const {
  nx::SalientSpec spec;
  spec.numSalient = getNumSalient();
  spec.salient = std::make_shared<const nx::EncodingSpec>(
      getSalient().toSpec());
  spec.rest = std::make_shared<const nx::EncodingSpec>(getRest().toSpec());
  return spec;
}

EncodingAttrInterface
mlir::qnt::encodingFromSpec(MLIRContext *ctx, const nx::EncodingSpec &spec) {
  auto mode = [](bool symmetric) {
    return symmetric ? ZeroPointMode::symmetric : ZeroPointMode::asymmetric;
  };
  return std::visit(
      [&](const auto &s) -> EncodingAttrInterface {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, nx::UniformSpec>)
          return UniformEncodingAttr::get(ctx, s.bits, mode(s.symmetric),
                                          fromHost(s.granularity),
                                          s.groupSize,
                                          fromHost(s.scaleStorage));
        else if constexpr (std::is_same_v<T, nx::MinifloatSpec>)
          return MinifloatEncodingAttr::get(
              ctx, s.exponentBits, s.mantissaBits,
              s.special == nx::MinifloatSpecial::Ocp
                  ? MinifloatSpecial::ocp
                  : MinifloatSpecial::finite,
              fromHost(s.granularity), s.groupSize,
              fromHost(s.scaleStorage));
        else if constexpr (std::is_same_v<T, nx::CodebookSpec>)
          return CodebookEncodingAttr::get(ctx, s.numCodebooks, s.codeBits,
                                           s.groupSize, s.tileRows,
                                           s.tileGroups,
                                           fromHost(s.scaleStorage));
        else if constexpr (std::is_same_v<T, nx::BinarySpec>)
          return BinaryEncodingAttr::get(ctx, mode(!s.withOffset),
                                         fromHost(s.granularity), s.groupSize);
        else if constexpr (std::is_same_v<T, nx::BitPlaneSpec>)
          return BitPlaneEncodingAttr::get(ctx, s.numPlanes,
                                           fromHost(s.granularity),
                                           s.groupSize);
        else
          return SalientEncodingAttr::get(
              ctx, s.numSalient, encodingFromSpec(ctx, *s.salient),
              encodingFromSpec(ctx, *s.rest));
      },
      spec);
}

//===----------------------------------------------------------------------===//
// Interface queries derived from the spec
//===----------------------------------------------------------------------===//

Type mlir::qnt::elementTypeOf(MLIRContext *ctx, nx::DType dtype) {
  switch (dtype) {
  case nx::DType::I8:
    return IntegerType::get(ctx, 8);
  case nx::DType::I16:
    return IntegerType::get(ctx, 16);
  case nx::DType::I32:
    return IntegerType::get(ctx, 32);
  case nx::DType::F16:
    return Float16Type::get(ctx);
  case nx::DType::F32:
    return Float32Type::get(ctx);
  }
  llvm_unreachable("unknown dtype");
}

SmallVector<RankedTensorType>
EncodingAttrInterface::getComponentTypes(ArrayRef<int64_t> shape) const {
  SmallVector<RankedTensorType> types;
  for (const nx::ComponentLayout &c :
       nx::componentLayout(toSpec(), shape[0], shape[1]))
    types.push_back(RankedTensorType::get(
        c.shape, elementTypeOf(getContext(), c.dtype)));
  return types;
}

SmallVector<std::string>
EncodingAttrInterface::getComponentNames(ArrayRef<int64_t> shape) const {
  SmallVector<std::string> names;
  for (const nx::ComponentLayout &c :
       nx::componentLayout(toSpec(), shape[0], shape[1]))
    names.push_back(c.name);
  return names;
}

double EncodingAttrInterface::getBitsPerWeight(ArrayRef<int64_t> shape) const {
  return nx::bitsPerWeight(toSpec(), shape[0], shape[1]);
}

LogicalResult EncodingAttrInterface::verifyForShape(
    ArrayRef<int64_t> shape,
    function_ref<InFlightDiagnostic()> emitError) const {
  if (shape.size() != 2 || ShapedType::isDynamicShape(shape))
    return emitError() << "quantized weights must be static 2-D [N, K]";
  std::string message = nx::verifySpec(toSpec(), shape[0], shape[1]);
  if (!message.empty())
    return emitError() << message;
  return success();
}
