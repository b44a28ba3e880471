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

#include "mlir/Dialect/SCF/IR/SCF.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// Small builder helpers for the scalar index/i32/f32 arithmetic below.
struct ScalarBuilder {
  OpBuilder &b;
  Location loc;

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
  }
  Value f32(float v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  /// Index value as i32 (all such values here are small column offsets).
  Value toI32(Value index) {
    return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), index);
  }
  Value toIndex(Value i) {
    return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), i);
  }
  /// Zero-extends an integer storage element to i32.
  Value widen(Value v) {
    if (v.getType().isInteger(32))
      return v;
    return arith::ExtUIOp::create(b, loc, b.getI32Type(), v);
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

Value UniformEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                              ComponentLoader load, Value row,
                                              Value col, int64_t numRows,
                                              int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  Value code = loadBitstreamCode(sb, load, /*codes=*/0, row, col, getBits(),
                                 numCols);
  SmallVector<Value, 2> g =
      scaleIndices(sb, getGranularity(), getGroupSize(), row, col);
  Value zero = getMode() == ZeroPointMode::symmetric
                   ? sb.i32(int64_t(1) << (getBits() - 1))
                   : sb.widen(load(b, loc, /*zeros=*/2, g));
  Value diff = arith::SubIOp::create(b, loc, code, zero);
  Value real = arith::SIToFPOp::create(b, loc, b.getF32Type(), diff);
  return sb.fmul({real, loadScale(b, loc, load, /*scales=*/1, g)});
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
  Value normal = arith::BitcastOp::create(b, sb.loc, b.getF32Type(), normalBits);

  Value subMagnitude = sb.fmul({
      arith::UIToFPOp::create(b, sb.loc, b.getF32Type(), mantissa),
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

//===----------------------------------------------------------------------===//
// Codebook: scale[row] * sum_m codebooks[m][code_m]
//===----------------------------------------------------------------------===//

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
    Value code = sb.toIndex(
        sb.widen(load(b, loc, /*codes=*/0, {row, group, codebook})));
    sum = sb.fadd({sum, load(b, loc, /*codebooks=*/1, {codebook, code, within})});
  }
  return sb.fmul({sum, load(b, loc, /*scales=*/2, {row, sb.index(0)})});
}

//===----------------------------------------------------------------------===//
// Binary: alpha * (+-1) + mu
//===----------------------------------------------------------------------===//

Value BinaryEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                             ComponentLoader load, Value row,
                                             Value col, int64_t numRows,
                                             int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  Value bit = loadBitstreamCode(sb, load, /*signs=*/0, row, col, 1, numCols);
  Value sign = sb.select({sb.eq({bit, sb.i32(1)}), sb.f32(1.0f), sb.f32(-1.0f)});
  SmallVector<Value, 2> g =
      scaleIndices(sb, getGranularity(), getGroupSize(), row, col);
  Value value = sb.fmul({load(b, loc, /*scales=*/1, g), sign});
  if (getMode() == ZeroPointMode::symmetric)
    return value;
  return sb.fadd({value, load(b, loc, /*offsets=*/2, g)});
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

Value SalientEncodingAttr::emitDequantElement(OpBuilder &b, Location loc,
                                              ComponentLoader load, Value row,
                                              Value col, int64_t numRows,
                                              int64_t numCols) const {
  ScalarBuilder sb{b, loc};
  Value mapped = load(b, loc, /*channel_map=*/0, {col});
  Value isSalient = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                          mapped, sb.i32(0));
  // Rest columns are stored as -1 - c.
  Value restColumn = arith::SubIOp::create(b, loc, sb.i32(-1), mapped);
  Value partColumn = arith::IndexCastOp::create(
      b, loc, b.getIndexType(), sb.select({isSalient, mapped, restColumn}));

  int64_t numSalient = getNumSalient();
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
