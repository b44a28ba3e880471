//===- ParamStore.cpp - Resolve qnt.param names in files --------*- C++ -*-===//
//
// See ParamStore.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/ParamStore.h"
#include "dialects/qnt/QntDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

#include <cstring>
#include <sys/stat.h>

using namespace mlir;
using namespace mlir::qnt;
namespace io = ::qnt::io;

FailureOr<ParamStore> ParamStore::open(ModuleOp module,
                                       ArrayRef<std::string> extraFiles) {
  std::vector<std::string> paths;
  if (Attribute attr = module->getAttr(kParamFilesAttrName)) {
    auto array = dyn_cast<ArrayAttr>(attr);
    if (!array || !llvm::all_of(array, llvm::IsaPred<StringAttr>))
      return emitError(module.getLoc()) << kParamFilesAttrName
                                << " must be an array of file names";
    for (Attribute path : array)
      paths.push_back(cast<StringAttr>(path).str());
  }
  paths.insert(paths.end(), extraFiles.begin(), extraFiles.end());

  ParamStore store;
  for (const std::string &path : paths) {
    std::string error;
    std::unique_ptr<io::TensorFile> file = io::openTensorFile(path, &error);
    if (!file)
      return emitError(module.getLoc())
             << "cannot open parameter file: " << error;
    store.files.push_back(std::move(file));
  }
  return store;
}

std::optional<io::DType> mlir::qnt::storageDTypeOf(Type elementType) {
  if (elementType.isF32())
    return io::DType::F32;
  if (elementType.isF16())
    return io::DType::F16;
  if (elementType.isBF16())
    return io::DType::BF16;
  if (elementType.isInteger(8))
    return io::DType::I8;
  if (elementType.isInteger(16))
    return io::DType::I16;
  if (elementType.isInteger(32))
    return io::DType::I32;
  if (elementType.isInteger(64))
    return io::DType::I64;
  return std::nullopt;
}

/// True if a tensor stored as `dtype` can be read as `elementType`: its
/// exact storage type, U8 bytes as i8, or F16/BF16 widened to f32.
static bool dtypeMatches(io::DType dtype, Type elementType) {
  if (storageDTypeOf(elementType) == dtype)
    return true;
  if (elementType.isF32())
    return dtype == io::DType::F16 || dtype == io::DType::BF16;
  return elementType.isInteger(8) && dtype == io::DType::U8;
}

FailureOr<ParamView> ParamStore::resolve(Location loc, StringRef name,
                                         RankedTensorType type) const {
  for (const auto &file : files) {
    const io::TensorInfo *info = file->find(name);
    if (!info)
      continue;
    if (ArrayRef<int64_t>(info->shape) != type.getShape() ||
        !dtypeMatches(info->dtype, type.getElementType())) {
      std::string stored;
      llvm::raw_string_ostream os(stored);
      llvm::interleave(info->shape, os, "x");
      return emitError(loc) << "parameter '" << name << "' in "
                            << file->path() << " is " << stored << " "
                            << io::dtypeName(info->dtype)
                            << ", which cannot be read as " << type;
    }
    return ParamView{file.get(), info, file->data(*info)};
  }
  InFlightDiagnostic diag = emitError(loc)
                            << "parameter '" << name << "' not found";
  if (files.empty())
    diag << " (the module lists no qnt.param_files)";
  else
    for (const auto &file : files)
      diag.attachNote() << "searched " << file->path();
  return diag;
}

float mlir::qnt::loadAsF32(io::DType dtype, const uint8_t *element) {
  uint32_t bits = 0;
  switch (dtype) {
  case io::DType::F32:
    std::memcpy(&bits, element, 4);
    break;
  case io::DType::BF16: {
    uint16_t half;
    std::memcpy(&half, element, 2);
    bits = uint32_t(half) << 16;
    break;
  }
  case io::DType::F16: {
    uint16_t half;
    std::memcpy(&half, element, 2);
    uint32_t sign = uint32_t(half & 0x8000) << 16;
    uint32_t exponent = (half >> 10) & 0x1f, mantissa = half & 0x3ff;
    if (exponent == 0x1f) {
      bits = sign | 0x7f800000 | (mantissa << 13);
    } else if (exponent != 0) {
      bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else {
      // Subnormal half: mantissa * 2^-24, exact in f32.
      float magnitude = std::ldexp(float(mantissa), -24);
      std::memcpy(&bits, &magnitude, 4);
      bits |= sign;
    }
    break;
  }
  default:
    llvm_unreachable("loadAsF32 on a non-float dtype");
  }
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

FailureOr<std::vector<float>>
ParamStore::readAsF32(Location loc, StringRef name,
                      RankedTensorType type) const {
  if (!type.getElementType().isF32() && !type.getElementType().isF16() &&
      !type.getElementType().isBF16())
    return emitError(loc) << "parameter '" << name << "' is not a float tensor";
  FailureOr<ParamView> view = resolve(loc, name, type);
  if (failed(view))
    return failure();
  int64_t count = type.getNumElements();
  int64_t size = io::dtypeSize(view->info->dtype);
  std::vector<float> values(count);
  for (int64_t i = 0; i < count; ++i)
    values[i] = loadAsF32(view->info->dtype, view->data + i * size);
  return values;
}

void ParamStore::releasePages(StringRef name) const {
  for (const auto &file : files)
    if (const io::TensorInfo *info = file->find(name))
      return file->releasePages(*info);
}

bool ParamStore::isOpenFile(StringRef path) const {
  struct stat target;
  if (::stat(path.str().c_str(), &target) != 0)
    return false;
  for (const auto &file : files) {
    struct stat other;
    if (::stat(file->path().c_str(), &other) == 0 &&
        other.st_dev == target.st_dev && other.st_ino == target.st_ino)
      return true;
  }
  return false;
}

void mlir::qnt::appendParamFile(ModuleOp module, StringRef path) {
  SmallVector<Attribute> paths;
  if (auto array = module->getAttrOfType<ArrayAttr>(kParamFilesAttrName))
    paths.append(array.begin(), array.end());
  paths.push_back(StringAttr::get(module.getContext(), path));
  module->setAttr(kParamFilesAttrName, ArrayAttr::get(module.getContext(), paths));
}
