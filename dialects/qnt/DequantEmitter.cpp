//===- DequantEmitter.cpp - Per-encoding dequantization IR -----*- C++ -*-===//
//
// The one piece of code generation each encoding owns: the IR that computes
// the f32 value of weight element (row, col) from its storage components.
// Every lowering (linalg reference, CPU loops, GPU kernels) calls these
// through EncodingAttrInterface::emitDequantElement. The arithmetic mirrors
// lib/numerics/Quantize.cpp operation for operation, so the host and the
// generated code agree bit for bit (docs/PackedLayouts.md).
//
//===----------------------------------------------------------------------===//

#include "dialects/qnt/QntDialect.h"
#include "dialects/qnt/SalientChannels.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/TypeUtilities.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// Small builder helpers for the index/i32/f32 arithmetic below. With
/// `lanes` set, the i32/f32 constants are splats of that many lanes, so the
/// same code builds the scalar hook and its vector form: the element
/// arithmetic of both is then identical op for op.
struct ScalarBuilder {
  OpBuilder &b;
  Location loc;
  int64_t lanes = 0;

  /// `element`, or a vector of `lanes` of it.
  Type shaped(Type element) {
    return lanes ? Type(VectorType::get({lanes}, element)) : element;
  }
  Type i32Type() { return shaped(b.getI32Type()); }
  Type f32Type() { return shaped(b.getF32Type()); }
  Value constant(Type element, Attribute value) {
    if (!lanes)
      return arith::ConstantOp::create(b, loc, cast<TypedAttr>(value));
    auto type = VectorType::get({lanes}, element);
    return arith::ConstantOp::create(b, loc,
                                     SplatElementsAttr::get(type, value));
  }
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(int64_t v) {
    return constant(b.getI32Type(), b.getI32IntegerAttr(v));
  }
  Value f32(float v) { return constant(b.getF32Type(), b.getF32FloatAttr(v)); }
  /// A scalar value repeated in every lane (itself when scalar).
  Value splat(Value scalar) {
    if (!lanes)
      return scalar;
    return vector::BroadcastOp::create(
        b, loc, VectorType::get({lanes}, scalar.getType()), scalar);
  }
  /// Index value as i32 (all such values here are small column offsets).
  Value toI32(Value index) {
    return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), index);
  }
  Value toIndex(Value i) {
    return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), i);
  }
  /// Zero-extends integer storage elements (a scalar or a vector) to i32.
  Value widen(Value v) {
    Type type = v.getType();
    if (getElementTypeOrSelf(type).isInteger(32))
      return v;
    Type i32 = b.getI32Type();
    if (auto vector = dyn_cast<VectorType>(type))
      i32 = vector.clone(i32);
    return arith::ExtUIOp::create(b, loc, i32, v);
  }
  // Operands come as braced lists: unlike function arguments, the elements
  // of a braced list are evaluated left to right, so the ops that nested
  // helper calls create are emitted in source order with every compiler
  // (GCC and clang emitted differently ordered IR before).
  struct Two {
    Value x, y;
  };
  struct Three {
    Value c, x, y;
  };
  Value mul(Two o) { return arith::MulIOp::create(b, loc, o.x, o.y); }
  Value add(Two o) { return arith::AddIOp::create(b, loc, o.x, o.y); }
  Value div(Two o) { return arith::DivUIOp::create(b, loc, o.x, o.y); }
  Value rem(Two o) { return arith::RemUIOp::create(b, loc, o.x, o.y); }
  Value shr(Two o) { return arith::ShRUIOp::create(b, loc, o.x, o.y); }
  Value shl(Two o) { return arith::ShLIOp::create(b, loc, o.x, o.y); }
  Value andi(Two o) { return arith::AndIOp::create(b, loc, o.x, o.y); }
  Value ori(Two o) { return arith::OrIOp::create(b, loc, o.x, o.y); }
  Value eq(Two o) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, o.x, o.y);
  }
  Value select(Three o) { return arith::SelectOp::create(b, loc, o.c, o.x, o.y); }
  Value fmul(Two o) { return arith::MulFOp::create(b, loc, o.x, o.y); }
  Value fadd(Two o) { return arith::AddFOp::create(b, loc, o.x, o.y); }
};

} // namespace

/// Reads the `bits`-bit code of (`row`, `col`) from component `component`, an
/// i8 [N, rowBytes] LSB-first bitstream. Codes that straddle a byte read the
/// next byte too; the index is clamped so that the read stays in bounds for
/// the last code of a row, whose high byte is then masked away. Returns i32.
static Value loadBitstreamCode(ScalarBuilder &sb, ComponentLoader load,
                               unsigned component, Value row, Value col,
                               int bits, int64_t numCols) {
  if (bits == 8)
    return sb.widen(load(sb.b, sb.loc, component, {row, col}));
  int64_t rowBytes = ::qnt::numerics::packedRowBytes(numCols, bits);
  Value bitOffset = sb.mul({col, sb.index(bits)});
  Value byteIndex = sb.div({bitOffset, sb.index(8)});
  Value word = sb.widen(load(sb.b, sb.loc, component, {row, byteIndex}));
  if (8 % bits != 0) {
    Value following = sb.add({byteIndex, sb.index(1)});
    Value next = arith::MinUIOp::create(sb.b, sb.loc, following,
                                        sb.index(rowBytes - 1));
    Value high = sb.widen(load(sb.b, sb.loc, component, {row, next}));
    word = sb.ori({word, sb.shl({high, sb.i32(8)})});
  }
  Value shift = sb.toI32(sb.rem({bitOffset, sb.index(8)}));
  return sb.andi({sb.shr({word, shift}), sb.i32((1 << bits) - 1)});
}

/// Lane i of the result is element i / parts.size() of parts[i % size]:
/// the parts interleaved lane by lane (pairwise, as vector.interleave does).
static Value interleaveParts(ScalarBuilder &sb, ArrayRef<Value> parts) {
  if (parts.size() == 1)
    return parts.front();
  SmallVector<Value> evens, odds;
  for (auto [i, part] : llvm::enumerate(parts))
    (i % 2 ? odds : evens).push_back(part);
  return vector::InterleaveOp::create(sb.b, sb.loc, interleaveParts(sb, evens),
                                      interleaveParts(sb, odds));
}

/// Reads the `width` codes of (`row`, `col` ..) from the same bitstream as
/// loadBitstreamCode with one wide load of the bytes that hold them, and
/// returns them as vector<width x i32>. The run must start and end on a
/// byte boundary (`col * bits` and `width * bits` multiples of 8).
///  - 1-bit codes: the bytes bitcast to a vector of i1, widened.
///  - Codes that divide the byte (2, 4 bits): the bytes are widened
///    once; code j of every byte is one shift and mask of all of them, and
///    the 8 / bits such vectors are interleaved back into element order.
///  - Other widths: lane i picks its byte (and the next, for codes that
///    straddle bytes; that byte is inside the run) with a constant shuffle
///    and shifts by a constant: the scalar extraction, lane by lane.
static Value loadBitstreamCodeVector(ScalarBuilder &sb,
                                     VectorComponentLoader loadVector,
                                     unsigned component, Value row, Value col,
                                     int bits, int64_t width) {
  int64_t numBytes = width * bits / 8;
  Value firstByte = sb.div({sb.mul({col, sb.index(bits)}), sb.index(8)});
  Value bytes = loadVector(sb.b, sb.loc, component, {row, firstByte}, numBytes);
  if (bits == 8)
    return sb.widen(bytes);
  if (bits == 1) {
    // The bytes are the lanes' bits already (LSB-first): one bitcast to a
    // mask, a single mask-register move on AVX-512, where the shifts and
    // interleaves below took about 20 instructions per 32 signs.
    Value mask = vector::BitCastOp::create(
        sb.b, sb.loc, VectorType::get({width}, sb.b.getI1Type()), bytes);
    return sb.widen(mask);
  }
  if (8 % bits == 0) {
    ScalarBuilder perByte{sb.b, sb.loc, numBytes};
    Value words = perByte.widen(bytes);
    SmallVector<Value> parts;
    for (int shift = 0; shift < 8; shift += bits) {
      Value shifted =
          shift ? perByte.shr({words, perByte.i32(shift)}) : words;
      parts.push_back(perByte.andi({shifted, perByte.i32((1 << bits) - 1)}));
    }
    return interleaveParts(sb, parts);
  }
  SmallVector<int64_t> low, high;
  SmallVector<int32_t> shifts;
  for (int64_t i = 0; i < width; ++i) {
    int64_t byte = i * bits / 8;
    low.push_back(byte);
    high.push_back(std::min(byte + 1, numBytes - 1));
    shifts.push_back(int32_t(i * bits % 8));
  }
  Value word =
      sb.widen(vector::ShuffleOp::create(sb.b, sb.loc, bytes, bytes, low));
  Value next =
      sb.widen(vector::ShuffleOp::create(sb.b, sb.loc, bytes, bytes, high));
  word = sb.ori({word, sb.shl({next, sb.i32(8)})});
  Value shift = arith::ConstantOp::create(
      sb.b, sb.loc,
      DenseElementsAttr::get(VectorType::get({width}, sb.b.getI32Type()),
                             ArrayRef<int32_t>(shifts)));
  return sb.andi({sb.shr({word, shift}), sb.i32((1 << bits) - 1)});
}

/// Whether a run of `width` elements starting at a multiple of `width` can
/// be read with loadBitstreamCodeVector and one scale entry.
static bool isVectorRun(int bits, int64_t width, Granularity granularity,
                        int64_t groupSize) {
  if (width * bits % 8 != 0)
    return false;
  return granularity != Granularity::per_group || groupSize % width == 0;
}

/// Indices of the scale entry of (`row`, `col`) for a granularity.
static SmallVector<Value, 2> scaleIndices(ScalarBuilder &sb,
                                          Granularity granularity,
                                          int64_t groupSize, Value row,
                                          Value col) {
  switch (granularity) {
  case Granularity::per_tensor:
    return {sb.index(0), sb.index(0)};
  case Granularity::per_channel:
    return {row, sb.index(0)};
  case Granularity::per_group:
    return {row, sb.div({col, sb.index(groupSize)})};
  }
  llvm_unreachable("unknown granularity");
}

/// The vector form shared by the bitstream encodings (uniform, minifloat,
/// binary): a run that isVectorRun allows is read with one wide load and
/// turned into values by `decode`, the scalar hook's arithmetic run with
/// `sb` in vector mode on the codes and the run's scale group `g`; any other
/// run takes the lane-by-lane default.
static Value emitBitstreamRun(
    EncodingAttrInterface encoding, int bits, Granularity granularity,
    int64_t groupSize, OpBuilder &b, Location loc, ComponentLoader load,
    VectorComponentLoader loadVector, Value row, Value col, int64_t width,
    int64_t numRows, int64_t numCols,
    function_ref<Value(ScalarBuilder &, Value, ArrayRef<Value>)> decode) {
  if (!isVectorRun(bits, width, granularity, groupSize))
    return emitDequantVectorByElements(encoding, b, loc, load, row, col, width,
                                       numRows, numCols);
  ScalarBuilder sb{b, loc, width};
  Value codes = loadBitstreamCodeVector(sb, loadVector, /*component=*/0, row,
                                        col, bits, width);
  return decode(sb, codes, scaleIndices(sb, granularity, groupSize, row, col));
}

/// The scale at `g` as f32: half-precision scales are widened (exactly).
static Value loadScale(OpBuilder &b, Location loc, ComponentLoader load,
                       unsigned component, ArrayRef<Value> g) {
  Value scale = load(b, loc, component, g);
  if (scale.getType().isF32())
    return scale;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), scale);
}

//===----------------------------------------------------------------------===//
// Uniform: scale * (u - zero)
//===----------------------------------------------------------------------===//

/// scale * (code - zero) for the code(s) `code` of scale group `g`.
static Value dequantUniform(ScalarBuilder &sb, UniformEncodingAttr encoding,
                            ComponentLoader load, Value code,
                            ArrayRef<Value> g) {
  Value zero = encoding.getMode() == ZeroPointMode::symmetric
                   ? sb.i32(int64_t(1) << (encoding.getBits() - 1))
                   : sb.splat(sb.widen(load(sb.b, sb.loc, /*zeros=*/2, g)));
  Value diff = arith::SubIOp::create(sb.b, sb.loc, code, zero);
  Value real = arith::SIToFPOp::create(sb.b, sb.loc, sb.f32Type(), diff);
  return sb.fmul(
      {real, sb.splat(loadScale(sb.b, sb.loc, load, /*scales=*/1, g))});
}

Value UniformEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                              ComponentLoader load, Value row,
                                              Value col, int64_t numRows,
                                              int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  Value code = loadBitstreamCode(sb, load, /*codes=*/0, row, col, getBits(),
                                 numCols);
  return dequantUniform(
      sb, *this, load, code,
      scaleIndices(sb, getGranularity(), getGroupSize(), row, col));
}

Value UniformEncodingAttr::emitDequantVector(
    OpBuilder &b, Location loc, ComponentLoader load,
    VectorComponentLoader loadVector, Value row, Value col, int64_t width,
    int64_t numRows, int64_t numCols) const {
  return emitBitstreamRun(
      *this, getBits(), getGranularity(), getGroupSize(), b, loc, load,
      loadVector, row, col, width, numRows, numCols,
      [&](ScalarBuilder &sb, Value codes, ArrayRef<Value> g) {
        return dequantUniform(sb, *this, load, codes, g);
      });
}

/// Elements per scale entry along a row for a granularity.
static int64_t scaleGroupSize(Granularity granularity, int64_t groupSize,
                              int64_t numCols) {
  return granularity == Granularity::per_group ? groupSize : numCols;
}

std::optional<IntegerWeightForm>
UniformEncodingAttr::getIntegerForm(int64_t numRows, int64_t numCols) const {
  IntegerWeightForm form;
  form.bits = getBits();
  form.groupSize = scaleGroupSize(getGranularity(), getGroupSize(), numCols);
  form.perTensor = getGranularity() == Granularity::per_tensor;
  if (getMode() == ZeroPointMode::symmetric)
    form.zero = int64_t(1) << (getBits() - 1);
  else
    form.zeroComponent = 2;
  return form;
}

//===----------------------------------------------------------------------===//
// Minifloat: scale * decode(code)
//===----------------------------------------------------------------------===//

/// Decodes an ExMy code (i32) to f32. Normal numbers are assembled directly
/// as IEEE single bits (every ExMy normal with E <= 5 is an f32 normal);
/// subnormals are m * 2^(1-bias-M), exact in f32.
static Value decodeMinifloat(ScalarBuilder &sb, Value code, int64_t e,
                             int64_t m, MinifloatSpecial special) {
  OpBuilder &b = sb.b;
  int64_t bias = (int64_t(1) << (e - 1)) - 1;
  Value sign = sb.andi({sb.shr({code, sb.i32(e + m)}), sb.i32(1)});
  Value exponent = sb.andi({sb.shr({code, sb.i32(m)}), sb.i32((1 << e) - 1)});
  Value mantissa = sb.andi({code, sb.i32((1 << m) - 1)});

  Value normalBits = sb.ori({
      sb.ori({sb.shl({sign, sb.i32(31)}),
             sb.shl({sb.add({exponent, sb.i32(127 - bias)}), sb.i32(23)})}),
      sb.shl({mantissa, sb.i32(23 - m)})});
  Value normal = arith::BitcastOp::create(b, sb.loc, sb.f32Type(), normalBits);

  Value subMagnitude = sb.fmul({
      arith::UIToFPOp::create(b, sb.loc, sb.f32Type(), mantissa),
      sb.f32(std::ldexp(1.0f, int(1 - bias - m)))});
  Value subnormal =
      sb.select({sb.eq({sign, sb.i32(1)}),
                arith::NegFOp::create(b, sb.loc, subMagnitude), subMagnitude});
  Value value = sb.select({sb.eq({exponent, sb.i32(0)}), subnormal, normal});
  if (special != MinifloatSpecial::ocp)
    return value;

  // OCP special codes: E4M3 has one NaN per sign (S.1111.111); E5M2 reserves
  // the top exponent for Inf (mantissa 0) and NaN.
  Value topExponent = sb.eq({exponent, sb.i32((1 << e) - 1)});
  Value nan = sb.f32(std::numeric_limits<float>::quiet_NaN());
  if (e == 4) {
    Value isNan = arith::AndIOp::create(
        b, sb.loc, topExponent, sb.eq({mantissa, sb.i32((1 << m) - 1)}));
    return sb.select({isNan, nan, value});
  }
  Value inf = sb.select({sb.eq({sign, sb.i32(1)}),
                        sb.f32(-std::numeric_limits<float>::infinity()),
                        sb.f32(std::numeric_limits<float>::infinity())});
  Value special_ = sb.select({sb.eq({mantissa, sb.i32(0)}), inf, nan});
  return sb.select({topExponent, special_, value});
}

Value MinifloatEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                                ComponentLoader load,
                                                Value row, Value col,
                                                int64_t numRows,
                                                int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  int bits = 1 + getExponentBits() + getMantissaBits();
  Value code = loadBitstreamCode(sb, load, /*codes=*/0, row, col, bits,
                                 numCols);
  Value real = decodeMinifloat(sb, code, getExponentBits(), getMantissaBits(),
                               getSpecial());
  SmallVector<Value, 2> g =
      scaleIndices(sb, getGranularity(), getGroupSize(), row, col);
  return sb.fmul({real, loadScale(b, loc, load, /*scales=*/1, g)});
}

std::optional<IntegerWeightForm>
MinifloatEncodingAttr::getIntegerForm(int64_t numRows, int64_t numCols) const {
  // Every finite ExMy value is an integer times 2^(1 - bias - M): a
  // subnormal m, a normal (2^M + m) * 2^(exponent - 1). Offset by the
  // largest magnitude, the codes are unsigned bytes when that fits.
  int64_t e = getExponentBits(), m = getMantissaBits();
  if (getSpecial() != MinifloatSpecial::finite)
    return std::nullopt;
  int64_t maxMagnitude = ((int64_t(2) << m) - 1) << ((int64_t(1) << e) - 2);
  if (2 * maxMagnitude > 255)
    return std::nullopt;
  IntegerWeightForm form;
  form.bits = 1 + e + m;
  form.groupSize = scaleGroupSize(getGranularity(), getGroupSize(), numCols);
  form.perTensor = getGranularity() == Granularity::per_tensor;
  form.zero = maxMagnitude;
  int64_t bias = (int64_t(1) << (e - 1)) - 1;
  form.multiplier = std::ldexp(1.0f, int(1 - bias - m));
  for (int64_t code = 0; code < (int64_t(1) << form.bits); ++code) {
    int64_t exponent = (code >> m) & ((int64_t(1) << e) - 1);
    int64_t mantissa = code & ((int64_t(1) << m) - 1);
    int64_t magnitude = exponent == 0
                            ? mantissa
                            : ((int64_t(1) << m) + mantissa) << (exponent - 1);
    bool negative = (code >> (e + m)) & 1;
    form.codeValues.push_back(
        uint8_t(maxMagnitude + (negative ? -magnitude : magnitude)));
  }
  return form;
}

Value MinifloatEncodingAttr::emitDequantVector(
    OpBuilder &b, Location loc, ComponentLoader load,
    VectorComponentLoader loadVector, Value row, Value col, int64_t width,
    int64_t numRows, int64_t numCols) const {
  return emitBitstreamRun(
      *this, 1 + getExponentBits() + getMantissaBits(), getGranularity(),
      getGroupSize(), b, loc, load, loadVector, row, col, width, numRows,
      numCols, [&](ScalarBuilder &sb, Value codes, ArrayRef<Value> g) {
        Value real = decodeMinifloat(sb, codes, getExponentBits(),
                                     getMantissaBits(), getSpecial());
        return sb.fmul(
            {real, sb.splat(loadScale(b, loc, load, /*scales=*/1, g))});
      });
}

//===----------------------------------------------------------------------===//
// Codebook: scale[row] * sum_m codebooks[m][code_m]
//===----------------------------------------------------------------------===//

/// The code of codebook `codebook` (an index) for (`row`, `group`), as an
/// index. The codes are [row, group, m] row-major, or with tiles [group
/// tile, row tile, group in tile, row in tile, m].
static Value loadCodebookCode(ScalarBuilder &sb, CodebookEncodingAttr encoding,
                              ComponentLoader load, Value row, Value group,
                              Value codebook) {
  SmallVector<Value> at = {row, group};
  if (encoding.getTileRows() > 0) {
    Value tileRows = sb.index(encoding.getTileRows());
    Value tileGroups = sb.index(encoding.getTileGroups());
    at = {sb.div({group, tileGroups}), sb.div({row, tileRows}),
          sb.rem({group, tileGroups}), sb.rem({row, tileRows})};
  }
  at.push_back(codebook);
  return sb.toIndex(sb.widen(load(sb.b, sb.loc, /*codes=*/0, at)));
}

Value CodebookEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                               ComponentLoader load, Value row,
                                               Value col, int64_t numRows,
                                               int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  Value groupSize = sb.index(getGroupSize());
  Value group = sb.div({col, groupSize});
  Value within = sb.rem({col, groupSize});
  Value sum = sb.f32(0.0f);
  for (int64_t m = 0; m < getNumCodebooks(); ++m) {
    Value codebook = sb.index(m);
    Value code = loadCodebookCode(sb, *this, load, row, group, codebook);
    sum = sb.fadd({sum, load(b, loc, /*codebooks=*/1, {codebook, code, within})});
  }
  return sb.fmul(
      {sum, loadScale(b, loc, load, /*scales=*/2, {row, sb.index(0)})});
}

/// A run of whole groups reads each group's code once and its word as one
/// vector load, instead of the lane-by-lane default's code, word and scale
/// per element (which made a kernel's IR, and its compile time, several
/// times larger). Same arithmetic as the scalar hook: 0 plus each codebook's
/// word in order, times the row scale.
Value CodebookEncodingAttr::emitDequantVector(
    OpBuilder &b, Location loc, ComponentLoader load,
    VectorComponentLoader loadVector, Value row, Value col, int64_t width,
    int64_t numRows, int64_t numCols) const {
  int64_t groupSize = getGroupSize();
  if (width % groupSize != 0)
    return emitDequantVectorByElements(*this, b, loc, load, row, col, width,
                                       numRows, numCols);
  ScalarBuilder sb{b, loc};
  ScalarBuilder words{b, loc, groupSize};
  ScalarBuilder lanes{b, loc, width};
  Value firstGroup = sb.div({col, sb.index(groupSize)});
  Value run = lanes.f32(0.0f);
  for (int64_t i = 0; i < width / groupSize; ++i) {
    Value group = sb.add({firstGroup, sb.index(i)});
    Value sum = words.f32(0.0f);
    for (int64_t m = 0; m < getNumCodebooks(); ++m) {
      Value codebook = sb.index(m);
      Value code = loadCodebookCode(sb, *this, load, row, group, codebook);
      sum = words.fadd({sum, loadVector(b, loc, /*codebooks=*/1,
                                        {codebook, code, sb.index(0)},
                                        groupSize)});
    }
    run = vector::InsertStridedSliceOp::create(
        b, loc, sum, run, /*offsets=*/ArrayRef<int64_t>{i * groupSize},
        /*strides=*/ArrayRef<int64_t>{1});
  }
  Value scale = loadScale(b, loc, load, /*scales=*/2, {row, sb.index(0)});
  return lanes.fmul({run, lanes.splat(scale)});
}

//===----------------------------------------------------------------------===//
// Binary: alpha * (+-1) + mu
//===----------------------------------------------------------------------===//

/// alpha * (+-1) (+ mu) for the sign bit(s) `bit` of scale group `g`.
static Value dequantBinary(ScalarBuilder &sb, BinaryEncodingAttr encoding,
                           ComponentLoader load, Value bit,
                           ArrayRef<Value> g) {
  Value sign = sb.select({sb.eq({bit, sb.i32(1)}), sb.f32(1.0f), sb.f32(-1.0f)});
  Value value =
      sb.fmul({sb.splat(load(sb.b, sb.loc, /*scales=*/1, g)), sign});
  if (encoding.getMode() == ZeroPointMode::symmetric)
    return value;
  return sb.fadd({value, sb.splat(load(sb.b, sb.loc, /*offsets=*/2, g))});
}

Value BinaryEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                             ComponentLoader load, Value row,
                                             Value col, int64_t numRows,
                                             int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  Value bit = loadBitstreamCode(sb, load, /*signs=*/0, row, col, 1, numCols);
  return dequantBinary(
      sb, *this, load, bit,
      scaleIndices(sb, getGranularity(), getGroupSize(), row, col));
}

Value BinaryEncodingAttr::emitDequantVector(
    OpBuilder &b, Location loc, ComponentLoader load,
    VectorComponentLoader loadVector, Value row, Value col, int64_t width,
    int64_t numRows, int64_t numCols) const {
  return emitBitstreamRun(
      *this, /*bits=*/1, getGranularity(), getGroupSize(), b, loc, load,
      loadVector, row, col, width, numRows, numCols,
      [&](ScalarBuilder &sb, Value bits, ArrayRef<Value> g) {
        return dequantBinary(sb, *this, load, bits, g);
      });
}

//===----------------------------------------------------------------------===//
// Bit-planes: sum_p plane_scales[p] * bit_p + offset
//===----------------------------------------------------------------------===//

Value BitPlaneEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                               ComponentLoader load, Value row,
                                               Value col, int64_t numRows,
                                               int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  Value word = sb.div({col, sb.index(32)});
  Value shift = sb.toI32(sb.rem({col, sb.index(32)}));
  SmallVector<Value, 2> g =
      scaleIndices(sb, getGranularity(), getGroupSize(), row, col);
  Value zero = sb.f32(0.0f);
  Value sum = zero;
  for (int64_t p = 0; p < getPlanes(); ++p) {
    Value plane = sb.index(p);
    Value bits = load(b, loc, /*planes=*/0, {plane, row, word});
    Value bit = sb.andi({sb.shr({bits, shift}), sb.i32(1)});
    Value planeScale = load(b, loc, /*plane_scales=*/1, {plane, g[0], g[1]});
    sum = sb.fadd({sum, sb.select({sb.eq({bit, sb.i32(1)}), planeScale, zero})});
  }
  return sb.fadd({sum, load(b, loc, /*offsets=*/2, g)});
}

//===----------------------------------------------------------------------===//
// Salient mask: dispatch on channel_map[col]
//===----------------------------------------------------------------------===//

SalientChannel mlir::qnt::decodeSalientChannel(OpBuilder &b, Location loc,
                                               Value entry, int64_t numSalient,
                                               int64_t numCols) {
  ScalarBuilder sb{b, loc};
  Value isSalient = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                          entry, sb.i32(0));
  // Rest columns are stored as -1 - c: both cases are >= 0 as i32, so the
  // unsigned minimum is the clamp.
  Value restColumn = arith::SubIOp::create(b, loc, sb.i32(-1), entry);
  Value column = arith::IndexCastUIOp::create(
      b, loc, b.getIndexType(), sb.select({isSalient, entry, restColumn}));
  Value lastColumn =
      sb.select({isSalient, sb.index(numSalient - 1),
                 sb.index(std::max<int64_t>(numCols - numSalient - 1, 0))});
  return {isSalient, arith::MinUIOp::create(b, loc, column, lastColumn)};
}

Value SalientEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                              ComponentLoader load, Value row,
                                              Value col, int64_t numRows,
                                              int64_t numCols) const {
  int64_t numSalient = getNumSalient();
  auto [isSalient, partColumn] =
      decodeSalientChannel(b, loc, load(b, loc, /*channel_map=*/0, {col}),
                           numSalient, numCols);

  unsigned restFirst =
      1 + getSalient().getComponentTypes({numRows, numSalient}).size();
  auto emitPart = [&](OpBuilder &nested, EncodingAttrInterface part,
                      unsigned first, int64_t partCols) {
    auto shifted = [&](OpBuilder &bb, Location l, unsigned component,
                       ValueRange indices) {
      return load(bb, l, first + component, indices);
    };
    Value v = part.emitDequantElement(nested, loc, shifted, row, partColumn,
                                      numRows, partCols);
    scf::YieldOp::create(nested, loc, v);
  };
  auto ifOp = scf::IfOp::create(
      b, loc, isSalient,
      [&](OpBuilder &nested, Location) {
        emitPart(nested, getSalient(), 1, numSalient);
      },
      [&](OpBuilder &nested, Location) {
        emitPart(nested, getRest(), restFirst, numCols - numSalient);
      });
  return ifOp.getResult(0);
}

//===----------------------------------------------------------------------===//
// The default vector form: the scalar hook, lane by lane
//===----------------------------------------------------------------------===//

Value mlir::qnt::emitDequantVectorByElements(EncodingAttrInterface encoding,
                                             OpBuilder &b, Location loc,
                                             ComponentLoader load, Value row,
                                             Value col, int64_t width,
                                             int64_t numRows,
                                             int64_t numCols) {
  ScalarBuilder sb{b, loc};
  SmallVector<Value> lanes;
  for (int64_t i = 0; i < width; ++i)
    lanes.push_back(encoding.emitDequantElement(
        b, loc, load, row, sb.add({col, sb.index(i)}), numRows, numCols));
  return vector::FromElementsOp::create(
      b, loc, VectorType::get({width}, b.getF32Type()), lanes);
}
