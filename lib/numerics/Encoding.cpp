//===- Encoding.cpp - Spec checks and storage layouts ---------------------===//
//
// verifySpec, componentLayout, bitsPerWeight and describe. componentLayout
// is the single source of truth for what every encoding stores; the qnt
// dialect derives its IR types from it, so any change here is a format
// change (update docs/PackedLayouts.md with it).
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"

#include "NumericsInternal.h"

#include <optional>
#include <variant>

namespace qnt::numerics {

using detail::granularityName;
using detail::ScaleGroups;
using detail::verifyGranularity;

int64_t dtypeBytes(DType t) {
  switch (t) {
  case DType::I8:
    return 1;
  case DType::I16:
  case DType::F16:
    return 2;
  case DType::I32:
  case DType::F32:
    return 4;
  }
  detail::fail("invalid dtype " + std::to_string(static_cast<int>(t)));
}

const char *dtypeName(DType t) {
  switch (t) {
  case DType::I8:
    return "i8";
  case DType::I16:
    return "i16";
  case DType::I32:
    return "i32";
  case DType::F16:
    return "f16";
  case DType::F32:
    return "f32";
  }
  return "<invalid dtype>";
}

static DType scaleDType(ScaleStorage storage) {
  return storage == ScaleStorage::F16 ? DType::F16 : DType::F32;
}

std::vector<int64_t> CodebookSpec::codeShape(int64_t rows, int64_t cols) const {
  int64_t groups = cols / groupSize;
  if (!tiled())
    return {rows, groups, numCodebooks};
  return {(groups + tileGroups - 1) / tileGroups,
          (rows + tileRows - 1) / tileRows, tileGroups, tileRows,
          numCodebooks};
}

bool CodebookSpec::validTiles(int64_t tileRows, int64_t tileGroups) {
  if (tileRows == 0 && tileGroups == 0)
    return true;
  return tileRows > 0 && tileGroups > 0 && tileRows <= kMaxMatrixDim &&
         tileGroups <= kMaxMatrixDim;
}

int64_t CodebookSpec::codeIndex(int64_t rows, int64_t cols, int64_t n,
                                int64_t j, int64_t m) const {
  int64_t groups = cols / groupSize;
  if (!tiled())
    return (n * groups + j) * numCodebooks + m;
  int64_t rowTiles = (rows + tileRows - 1) / tileRows;
  int64_t tile = j / tileGroups * rowTiles + n / tileRows;
  return ((tile * tileGroups + j % tileGroups) * tileRows + n % tileRows) *
             numCodebooks +
         m;
}

int64_t ComponentLayout::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

//===----------------------------------------------------------------------===//
// verifySpec
//===----------------------------------------------------------------------===//

namespace {

/// Checks one spec against the matrix shape (already known to be positive).
struct SpecVerifier {
  int64_t rows, cols;

  std::string operator()(const UniformSpec &s) const {
    if (s.bits < 2 || s.bits > 8)
      return "uniform bits must be in 2..8, got " + std::to_string(s.bits);
    return verifyGranularity(s.granularity, s.groupSize, cols);
  }

  std::string operator()(const MinifloatSpec &s) const {
    std::string error = detail::verifyMinifloatFormat(
        s.exponentBits, s.mantissaBits, s.special);
    if (!error.empty())
      return error;
    return verifyGranularity(s.granularity, s.groupSize, cols);
  }

  std::string operator()(const CodebookSpec &s) const {
    if (s.numCodebooks < 1 || s.numCodebooks > kMaxCodebooks)
      return "codebook count must be in 1.." + std::to_string(kMaxCodebooks) +
             ", got " + std::to_string(s.numCodebooks);
    if (s.codeBits < 1 || s.codeBits > 16)
      return "codebook code bits must be in 1..16, got " +
             std::to_string(s.codeBits);
    if (s.groupSize <= 0)
      return "codebook group size must be positive, got " +
             std::to_string(s.groupSize);
    if (cols % s.groupSize != 0)
      return "group size " + std::to_string(s.groupSize) + " does not divide " +
             std::to_string(cols) + " input channels";
    if (!CodebookSpec::validTiles(s.tileRows, s.tileGroups))
      return "codebook code tiles need rows and groups both positive (or "
             "both 0 for row-major codes), got " +
             std::to_string(s.tileRows) + "x" + std::to_string(s.tileGroups);
    return "";
  }

  std::string operator()(const BinarySpec &s) const {
    return verifyGranularity(s.granularity, s.groupSize, cols);
  }

  std::string operator()(const BitPlaneSpec &s) const {
    if (s.numPlanes < 1 || s.numPlanes > 8)
      return "bit-plane count must be in 1..8, got " +
             std::to_string(s.numPlanes);
    return verifyGranularity(s.granularity, s.groupSize, cols);
  }

  std::string operator()(const SalientSpec &s) const {
    if (cols < 2)
      return "a salient split needs at least 2 input channels, got " +
             std::to_string(cols);
    if (s.numSalient < 1 || s.numSalient >= cols)
      return "salient channel count must be in 1.." + std::to_string(cols - 1) +
             " for " + std::to_string(cols) + " input channels, got " +
             std::to_string(s.numSalient);
    std::string error = verifyPart("salient", s.salient.get(), s.numSalient);
    if (error.empty())
      error = verifyPart("rest", s.rest.get(), cols - s.numSalient);
    return error;
  }

  std::string verifyPart(const char *name, const EncodingSpec *part,
                         int64_t partCols) const {
    if (!part)
      return std::string(name) + " part is missing";
    if (std::holds_alternative<SalientSpec>(*part))
      return std::string(name) + " part must not itself be salient";
    std::string error = verifySpec(*part, rows, partCols);
    return error.empty() ? error : std::string(name) + " part: " + error;
  }
};

} // namespace

/// Byte size of `shape` with `elementBytes`-byte elements, or nothing when
/// it overflows int64_t.
static std::optional<int64_t> checkedBytes(const std::vector<int64_t> &shape,
                                           int64_t elementBytes) {
  int64_t bytes = elementBytes;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes))
      return std::nullopt;
  return bytes;
}

static std::string shapeString(const std::vector<int64_t> &shape) {
  std::string text;
  for (int64_t d : shape)
    text += (text.empty() ? "" : "x") + std::to_string(d);
  return text;
}

static std::string checkLayoutSizes(const EncodingSpec &spec, int64_t rows,
                                    int64_t cols);

std::string verifySpec(const EncodingSpec &spec, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0)
    return "matrix shape " + std::to_string(rows) + "x" + std::to_string(cols) +
           " is empty: rows and cols must be positive";
  if (rows > kMaxMatrixDim || cols > kMaxMatrixDim)
    return "matrix shape " + std::to_string(rows) + "x" + std::to_string(cols) +
           " exceeds the largest supported dimension " +
           std::to_string(kMaxMatrixDim);
  std::string error = std::visit(SpecVerifier{rows, cols}, spec);
  if (!error.empty())
    return error;
  // Each layout dimension is now computed without overflow; their products
  // (what buffers are sized by) are checked here once for every consumer.
  if (!checkedBytes({rows, cols}, 4))
    return "the dequantized " + std::to_string(rows) + "x" +
           std::to_string(cols) + " f32 matrix overflows 64-bit byte sizes";
  return checkLayoutSizes(spec, rows, cols);
}

//===----------------------------------------------------------------------===//
// componentLayout
//===----------------------------------------------------------------------===//

namespace {

std::vector<int64_t> withPlanes(int64_t planes, std::vector<int64_t> shape) {
  shape.insert(shape.begin(), planes);
  return shape;
}

struct LayoutBuilder {
  int64_t rows, cols;

  std::vector<ComponentLayout> operator()(const UniformSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    std::vector<ComponentLayout> out = {
        {"codes", DType::I8, {rows, packedRowBytes(cols, s.bits)}},
        {"scales", scaleDType(s.scaleStorage), groups.shape()}};
    if (!s.symmetric)
      out.push_back({"zeros", DType::I8, groups.shape()});
    return out;
  }

  std::vector<ComponentLayout> operator()(const MinifloatSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    return {
        {"codes", DType::I8, {rows, packedRowBytes(cols, minifloatBits(s))}},
        {"scales", scaleDType(s.scaleStorage), groups.shape()}};
  }

  std::vector<ComponentLayout> operator()(const CodebookSpec &s) const {
    DType codeType = s.codeBits <= 8 ? DType::I8 : DType::I16;
    return {{"codes", codeType, s.codeShape(rows, cols)},
            {"codebooks",
             DType::F32,
             {s.numCodebooks, int64_t(1) << s.codeBits, s.groupSize}},
            {"scales", scaleDType(s.scaleStorage), {rows, 1}}};
  }

  std::vector<ComponentLayout> operator()(const BinarySpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    std::vector<ComponentLayout> out = {
        {"signs", DType::I8, {rows, packedRowBytes(cols, 1)}},
        {"scales", DType::F32, groups.shape()}};
    if (s.withOffset)
      out.push_back({"offsets", DType::F32, groups.shape()});
    return out;
  }

  std::vector<ComponentLayout> operator()(const BitPlaneSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    return {
        {"planes", DType::I32, {s.numPlanes, rows, (cols + 31) / 32}},
        {"plane_scales", DType::F32, withPlanes(s.numPlanes, groups.shape())},
        {"offsets", DType::F32, groups.shape()}};
  }

  std::vector<ComponentLayout> operator()(const SalientSpec &s) const {
    std::vector<ComponentLayout> out = {{"channel_map", DType::I32, {cols}}};
    for (ComponentLayout &c : componentLayout(*s.salient, rows, s.numSalient)) {
      c.name = "salient." + c.name;
      out.push_back(std::move(c));
    }
    for (ComponentLayout &c :
         componentLayout(*s.rest, rows, cols - s.numSalient)) {
      c.name = "rest." + c.name;
      out.push_back(std::move(c));
    }
    return out;
  }
};

} // namespace

/// The byte sizes of `spec`'s components, which verifySpec has checked
/// otherwise: the layout is built directly (componentLayout would verify
/// again).
static std::string checkLayoutSizes(const EncodingSpec &spec, int64_t rows,
                                    int64_t cols) {
  int64_t total = 0;
  for (const ComponentLayout &c : std::visit(LayoutBuilder{rows, cols}, spec)) {
    std::optional<int64_t> bytes = checkedBytes(c.shape, dtypeBytes(c.dtype));
    if (!bytes || __builtin_add_overflow(total, *bytes, &total))
      return "storage component '" + c.name + "' (" + shapeString(c.shape) +
             " " + dtypeName(c.dtype) + ") overflows 64-bit byte sizes";
  }
  return "";
}

std::vector<ComponentLayout> componentLayout(const EncodingSpec &spec,
                                             int64_t rows, int64_t cols) {
  detail::requireValidSpec(spec, rows, cols);
  return std::visit(LayoutBuilder{rows, cols}, spec);
}

double bitsPerWeight(const EncodingSpec &spec, int64_t rows, int64_t cols) {
  int64_t bytes = 0;
  for (const ComponentLayout &c : componentLayout(spec, rows, cols))
    bytes += c.numBytes();
  return static_cast<double>(bytes) * 8.0 /
         (static_cast<double>(rows) * static_cast<double>(cols));
}

//===----------------------------------------------------------------------===//
// describe
//===----------------------------------------------------------------------===//

namespace {

struct Describer {
  static std::string scaleSuffix(ScaleStorage storage) {
    return storage == ScaleStorage::F16 ? " f16-scales" : "";
  }

  std::string operator()(const UniformSpec &s) const {
    return "int" + std::to_string(s.bits) + (s.symmetric ? " sym " : " asym ") +
           granularityName(s.granularity, s.groupSize) +
           scaleSuffix(s.scaleStorage);
  }

  std::string operator()(const MinifloatSpec &s) const {
    return "e" + std::to_string(s.exponentBits) + "m" +
           std::to_string(s.mantissaBits) +
           (s.special == MinifloatSpecial::Ocp ? "(ocp) " : " ") +
           granularityName(s.granularity, s.groupSize) +
           scaleSuffix(s.scaleStorage);
  }

  std::string operator()(const CodebookSpec &s) const {
    std::string name = "aqlm " + std::to_string(s.numCodebooks) + "x" +
                       std::to_string(s.codeBits) + " g" +
                       std::to_string(s.groupSize);
    if (s.tiled())
      name += " tiles " + std::to_string(s.tileRows) + "x" +
              std::to_string(s.tileGroups);
    return name + scaleSuffix(s.scaleStorage);
  }

  std::string operator()(const BinarySpec &s) const {
    return std::string(s.withOffset ? "binary+offset " : "binary ") +
           granularityName(s.granularity, s.groupSize);
  }

  std::string operator()(const BitPlaneSpec &s) const {
    return "bitplanes" + std::to_string(s.numPlanes) + " " +
           granularityName(s.granularity, s.groupSize);
  }

  std::string operator()(const SalientSpec &s) const {
    auto part = [](const std::shared_ptr<const EncodingSpec> &p) {
      return p ? describe(*p) : std::string("<missing>");
    };
    return "salient(" + std::to_string(s.numSalient) + ": " + part(s.salient) +
           " | " + part(s.rest) + ")";
  }
};

} // namespace

std::string describe(const EncodingSpec &spec) {
  return std::visit(Describer{}, spec);
}

} // namespace qnt::numerics
