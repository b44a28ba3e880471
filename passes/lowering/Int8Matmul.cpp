//===- Int8Matmul.cpp - Int8-activation matmul kernels for the CPU --------===//
//
// See Int8Matmul.h. Layout of the work:
//  - The packed codes of a row are read a chunk of 64 bytes at a time. For
//    codes of `bits` dividing 8, byte i of a chunk holds elements i * per ..
//    i * per + per - 1 (per = 8 / bits); part p of the chunk, the 64 codes
//    (bytes >> p * bits) & mask, are elements p, p + per, ... No code is
//    moved back into element order: the activations are stored permuted the
//    same way instead (once per call, not once per weight byte), so each
//    part meets its activations in one 64-byte load.
//  - Codes that straddle bytes (3, 5, 6, 7 bits) are read 64 at a time
//    (8 * bits bytes) and put in element order: one part, per = 1, the
//    activations in their own order. With VBMI, a masked load, a byte
//    permute giving each 64-bit lane its eight codes' bytes, vpmultishiftqb
//    and a mask; otherwise one constant byte shuffle per byte pair, a
//    per-lane 16-bit shift and a mask.
//  - An i32 lane of a byte dot product sums four consecutive bytes of a
//    part, so it covers 4 * per consecutive elements, all in one scale
//    group when the group size is a multiple of 16: chunks spanning several
//    groups scale each lane by its own group.
//
//===----------------------------------------------------------------------===//

#include "passes/lowering/Int8Matmul.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// Bytes of packed codes per chunk (one 512-bit register) and i32 lanes of
/// its dot products.
constexpr int64_t kChunkBytes = 64;
constexpr int64_t kLanes = kChunkBytes / 4;
/// f32 activations per run of the quantization loops.
constexpr int64_t kInputRun = 16;

/// The static facts of one int8 kernel.
struct Int8Layout {
  /// Codes per byte (1 for codes that straddle bytes), packed bytes and
  /// elements per chunk.
  int64_t bits, per, chunkBytes, chunkElements, numChunks, fullChunks;
  int64_t groupSize, numGroups;
  /// Scale groups per chunk when groups are smaller than a chunk (lanes
  /// then carry different groups), else 1.
  int64_t groupsPerChunk;
  /// Length of the activation-scale rows: padded to whole chunks of groups
  /// so that a chunk's lane scales are read in bounds.
  int64_t paddedGroups;

  Int8Layout(const IntegerWeightForm &form, int64_t k) {
    bits = form.bits;
    bool dividesByte = 8 % bits == 0;
    per = dividesByte ? 8 / bits : 1;
    chunkBytes = dividesByte ? kChunkBytes : kChunkBytes * bits / 8;
    chunkElements = kChunkBytes * per;
    int64_t rowBytes = (k * bits + 7) / 8;
    numChunks = (rowBytes + chunkBytes - 1) / chunkBytes;
    fullChunks = rowBytes / chunkBytes;
    groupSize = std::min(form.groupSize, k);
    numGroups = (k + groupSize - 1) / groupSize;
    groupsPerChunk = numGroups > 1 && groupSize < chunkElements
                         ? chunkElements / groupSize
                         : 1;
    paddedGroups = std::max(numGroups, numChunks * groupsPerChunk);
  }
  bool singleGroup() const { return numGroups == 1; }
  bool lanesPerGroup() const { return groupsPerChunk > 1; }
};

} // namespace

bool mlir::qnt::hostHasVnni() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  return features.lookup("avx512vnni") && features.lookup("avx512bw");
}

bool mlir::qnt::hostHasVbmi() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  return features.lookup("avx512vbmi") && features.lookup("avx512bw");
}

std::string mlir::qnt::int8KernelLimitation(const IntegerWeightForm &form,
                                            int64_t k) {
  if (form.bits < 1 || form.bits > 8)
    return "codes of " + std::to_string(form.bits) + " bits";
  if (!form.codeValues.empty() && form.bits > 4)
    return "a code table of more than 16 entries";
  Int8Layout layout(form, k);
  if (layout.singleGroup())
    return "";
  if (layout.groupSize % kInputRun != 0)
    return "scale groups of " + std::to_string(layout.groupSize) +
           " elements (a multiple of 16 is needed)";
  if (k % layout.groupSize != 0)
    return "a ragged last scale group";
  // An i32 lane of the byte dot products sums 4 unpacked codes of each of
  // the `per` parts, i.e. 4 * per elements: a group may not split one.
  if (layout.groupSize % (4 * layout.per) != 0)
    return "scale groups of " + std::to_string(layout.groupSize) +
           " elements (an i32 lane holds " + std::to_string(4 * layout.per) +
           " codes of " + std::to_string(form.bits) + " bits)";
  if (layout.chunkElements % layout.groupSize != 0 &&
      layout.groupSize % layout.chunkElements != 0)
    return "scale groups of " + std::to_string(layout.groupSize) +
           " elements neither dividing nor multiples of " +
           std::to_string(layout.chunkElements);
  return "";
}

namespace {

/// The code generation of one int8 kernel; see buildInt8Matmul.
struct Int8MatmulBuilder {
  Location loc;
  Value input;
  ValueRange components;
  const IntegerWeightForm &form;
  int64_t n, k;
  Int8Layout layout;
  VectorMatmulShape shape;
  Int8DotInstructions instructions;

  /// The quantized activations: `codes` [M, numChunks * chunkElements] i8
  /// in chunk-part order (zero past K), `scales` [M, paddedGroups] f32
  /// (zero past the groups) and `scaledSums` [M, numGroups] f32, the scale
  /// times the sum of the group's codes (for the zero point).
  Value xCodes, xScales, xScaledSums;
  /// The packed codes as a one-dimensional memref (the same buffer once
  /// bufferized), for memref.prefetch and the masked loads of short
  /// chunks; null when neither is used.
  Value codesBuffer;
  /// The per-group scales and zero points as one-dimensional memrefs, for
  /// memref.prefetch; null when not prefetched (per-tensor scales, a
  /// constant zero point, or no prefetch).
  Value scalesBuffer, zerosBuffer;

  //===--------------------------------------------------------------===//
  // Small helpers
  //===--------------------------------------------------------------===//

  Value index(OpBuilder &b, int64_t v) const {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  Value addIndex(OpBuilder &b, Value base, int64_t offset) const {
    if (offset == 0)
      return base;
    return arith::AddIOp::create(b, loc, base, index(b, offset));
  }
  Value mulIndex(OpBuilder &b, Value v, int64_t factor) const {
    if (factor == 1)
      return v;
    return arith::MulIOp::create(b, loc, v, index(b, factor));
  }
  static VectorType vec(int64_t lanes, Type element) {
    return VectorType::get({lanes}, element);
  }
  Value splatConstant(OpBuilder &b, VectorType type, Attribute value) const {
    return arith::ConstantOp::create(b, loc,
                                     SplatElementsAttr::get(type, value));
  }
  Value zeroI32(OpBuilder &b) const {
    return splatConstant(b, vec(kLanes, b.getI32Type()),
                         b.getI32IntegerAttr(0));
  }
  Value zeroF32(OpBuilder &b, int64_t lanes = kLanes) const {
    return splatConstant(b, vec(lanes, b.getF32Type()),
                         b.getF32FloatAttr(0.0f));
  }
  Value broadcast(OpBuilder &b, Value scalar, int64_t lanes = kLanes) const {
    return vector::BroadcastOp::create(b, loc, vec(lanes, scalar.getType()),
                                       scalar);
  }
  /// A float scalar or vector as f32.
  Value toF32(OpBuilder &b, Value v) const {
    Type element = getElementTypeOrSelf(v.getType());
    if (element.isF32())
      return v;
    Type f32 = b.getF32Type();
    if (auto type = dyn_cast<VectorType>(v.getType()))
      f32 = type.clone(f32);
    return arith::ExtFOp::create(b, loc, f32, v);
  }
  /// `count` elements of `tensor` from `indices`; past the end of the last
  /// dimension (when not `inBounds`) the lanes are zero.
  Value read(OpBuilder &b, Value tensor, ValueRange indices, int64_t count,
             bool inBounds) const {
    if (inBounds)
      return readRun(b, loc, tensor, indices, count);
    Type element = cast<RankedTensorType>(tensor.getType()).getElementType();
    Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
    return vector::TransferReadOp::create(b, loc, vec(count, element), tensor,
                                          indices, pad,
                                          ArrayRef<bool>{false});
  }
  /// Whether full chunks are read by a masked load of a whole register:
  /// chunks of codes that straddle bytes (8 * bits bytes) unpacked with
  /// VBMI, whose byte permute takes any register. A plain read of 24 or 40
  /// bytes is split into two or three loads and an insert; a masked load is
  /// one instruction and reads nothing past the chunk.
  bool shortChunks() const {
    return 8 % layout.bits != 0 && instructions == Int8DotInstructions::Vbmi;
  }
  Value reduceAdd(OpBuilder &b, Value v) const {
    return vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, v,
                                       arith::FastMathFlags::reassoc);
  }
  /// Lane l of the result is lane firstGroup + l / (kLanes /
  /// groupsPerChunk) of `v` (a vector of one value per group): the groups
  /// of the chunk whose first group is `firstGroup`, spread over its lanes.
  Value spreadGroups(OpBuilder &b, Value v, int64_t firstGroup) const {
    SmallVector<int64_t> mask;
    int64_t lanesPerGroup = kLanes / layout.groupsPerChunk;
    for (int64_t l = 0; l < kLanes; ++l)
      mask.push_back(firstGroup + l / lanesPerGroup);
    return vector::ShuffleOp::create(b, loc, v, v, mask);
  }
  Value scaleRow(OpBuilder &b, Value row) const {
    return form.perTensor ? index(b, 0) : row;
  }

  //===--------------------------------------------------------------===//
  // Instructions
  //===--------------------------------------------------------------===//

  /// acc + the sums of four adjacent products of unsigned `u` and signed
  /// `s` bytes (vector<64xi8> each) in each i32 lane, exactly (the products
  /// and sums cannot overflow).
  Value dotBytes(OpBuilder &b, Value acc, Value u, Value s) const {
    if (instructions != Int8DotInstructions::Generic)
      return IntrinsicOp::create(b, loc, acc.getType(),
                                 "llvm.x86.avx512.vpdpbusd.512",
                                 ValueRange{acc, u, s});
    auto wide = vec(kChunkBytes, b.getI32Type());
    Value products = arith::MulIOp::create(
        b, loc, arith::ExtUIOp::create(b, loc, wide, u),
        arith::ExtSIOp::create(b, loc, wide, s));
    // Lane l sums products 4l .. 4l + 3: four strided picks, added.
    Value sum = acc;
    for (int64_t j = 0; j < 4; ++j) {
      SmallVector<int64_t> lanes;
      for (int64_t l = 0; l < kLanes; ++l)
        lanes.push_back(4 * l + j);
      sum = arith::AddIOp::create(
          b, loc, sum,
          vector::ShuffleOp::create(b, loc, products, products, lanes));
    }
    return sum;
  }

  /// The codes of `part` (values < 16) mapped through form.codeValues.
  Value lookUpCodes(OpBuilder &b, Value part) const {
    auto type = vec(kChunkBytes, b.getI8Type());
    if (instructions != Int8DotInstructions::Generic) {
      // vpshufb looks up within each 128-bit lane: the table is repeated.
      SmallVector<int8_t> table;
      for (int64_t i = 0; i < kChunkBytes; ++i) {
        size_t code = i % 16;
        table.push_back(code < form.codeValues.size()
                            ? int8_t(form.codeValues[code])
                            : int8_t(0));
      }
      Value tableValue = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(type, ArrayRef<int8_t>(table)));
      return IntrinsicOp::create(b, loc, type, "llvm.x86.avx512.pshuf.b.512",
                                 ValueRange{tableValue, part});
    }
    Value result = splatConstant(b, type, b.getI8IntegerAttr(0));
    for (auto [code, value] : llvm::enumerate(form.codeValues)) {
      Value isCode = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::eq, part,
          splatConstant(b, type, b.getI8IntegerAttr(int8_t(code))));
      result = arith::SelectOp::create(
          b, loc, isCode,
          splatConstant(b, type, b.getI8IntegerAttr(int8_t(value))), result);
    }
    return result;
  }

  //===--------------------------------------------------------------===//
  // Activations
  //===--------------------------------------------------------------===//

  /// Writes the i8 codes `q` of x[m, k0 .. k0 + kInputRun) (k0 a multiple of
  /// kInputRun) at their chunk-part positions of xCodes.
  Value writeInputCodes(OpBuilder &b, Value codes, Value m, Value k0,
                        Value q) const {
    Value inChunk = arith::RemUIOp::create(b, loc, k0,
                                           index(b, layout.chunkElements));
    Value chunkStart = arith::SubIOp::create(b, loc, k0, inChunk);
    Value byte = arith::DivUIOp::create(b, loc, inChunk, index(b, layout.per));
    Value base = arith::AddIOp::create(b, loc, chunkStart, byte);
    for (int64_t p = 0; p < layout.per; ++p) {
      Value part = q;
      if (layout.per > 1) {
        SmallVector<int64_t> lanes;
        for (int64_t l = p; l < kInputRun; l += layout.per)
          lanes.push_back(l);
        part = vector::ShuffleOp::create(b, loc, q, q, lanes);
      }
      Value position = addIndex(b, base, p * kChunkBytes);
      codes = vector::TransferWriteOp::create(b, loc, part, codes,
                                              ValueRange{m, position},
                                              ArrayRef<bool>{true})
                  .getResult();
    }
    return codes;
  }

  /// Quantizes scale group `group` of row m: updates the three tensors.
  SmallVector<Value> quantizeGroup(OpBuilder &b, Value m, Value group,
                                   ValueRange tensors) const {
    int64_t runs = (layout.groupSize + kInputRun - 1) / kInputRun;
    bool inBounds = layout.groupSize % kInputRun == 0 &&
                    layout.groupSize * layout.numGroups == k;
    Value base = mulIndex(b, group, layout.groupSize);
    auto runStart = [&](OpBuilder &lb, Value r) {
      return arith::AddIOp::create(lb, loc, base, mulIndex(lb, r, kInputRun))
          .getResult();
    };
    Type f32 = b.getF32Type(), i32 = b.getI32Type();

    auto maxLoop = scf::ForOp::create(
        b, loc, index(b, 0), index(b, runs), index(b, 1),
        ValueRange{zeroF32(b, kInputRun)},
        [&](OpBuilder &lb, Location, Value r, ValueRange acc) {
          Value x = toF32(lb, read(lb, input, {m, runStart(lb, r)}, kInputRun,
                                   inBounds));
          Value magnitude = math::AbsFOp::create(lb, loc, x);
          scf::YieldOp::create(
              lb, loc,
              ValueRange{arith::MaxNumFOp::create(lb, loc, acc[0], magnitude)
                             .getResult()});
        });
    Value amax = vector::ReductionOp::create(
        b, loc, vector::CombiningKind::MAXNUMF, maxLoop.getResult(0));
    Value limit = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(127.0f));
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    Value scale = arith::DivFOp::create(b, loc, amax, limit);
    Value positive =
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, amax, zero);
    Value inverse = arith::SelectOp::create(
        b, loc, positive, arith::DivFOp::create(b, loc, limit, amax), zero);
    Value inverseRun = broadcast(b, inverse, kInputRun);

    auto quantLoop = scf::ForOp::create(
        b, loc, index(b, 0), index(b, runs), index(b, 1),
        ValueRange{tensors[0], splatConstant(b, vec(kInputRun, i32),
                                             b.getI32IntegerAttr(0))},
        [&](OpBuilder &lb, Location, Value r, ValueRange carried) {
          Value k0 = runStart(lb, r);
          Value x = toF32(lb, read(lb, input, {m, k0}, kInputRun, inBounds));
          Value rounded = math::RoundEvenOp::create(
              lb, loc, arith::MulFOp::create(lb, loc, x, inverseRun));
          Value q32 =
              arith::FPToSIOp::create(lb, loc, vec(kInputRun, i32), rounded);
          Value q8 = arith::TruncIOp::create(
              lb, loc, vec(kInputRun, lb.getI8Type()), q32);
          Value codes = writeInputCodes(lb, carried[0], m, k0, q8);
          Value sum = arith::AddIOp::create(lb, loc, carried[1], q32);
          scf::YieldOp::create(lb, loc, ValueRange{codes, sum});
        });
    Value sum = arith::SIToFPOp::create(
        b, loc, f32, reduceAdd(b, quantLoop.getResult(1)));
    Value scales =
        tensor::InsertOp::create(b, loc, scale, tensors[1], ValueRange{m, group});
    Value scaledSums = tensor::InsertOp::create(
        b, loc, arith::MulFOp::create(b, loc, scale, sum), tensors[2],
        ValueRange{m, group});
    return {quantLoop.getResult(0), scales, scaledSums};
  }

  /// Builds xCodes, xScales and xScaledSums for every row of the input.
  void quantizeInput(OpBuilder &b, Value m) {
    auto inputType = cast<RankedTensorType>(input.getType());
    int64_t rows = inputType.getDimSize(0);
    SmallVector<Value> dynamic;
    if (inputType.isDynamicDim(0))
      dynamic.push_back(m);
    auto zeroFilled = [&](int64_t cols, Type element) {
      Value empty = tensor::EmptyOp::create(
          b, loc, ArrayRef<int64_t>{rows, cols}, element, dynamic);
      Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
      return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
    };
    SmallVector<Value> init = {
        zeroFilled(layout.numChunks * layout.chunkElements, b.getI8Type()),
        zeroFilled(layout.paddedGroups, b.getF32Type()),
        tensor::EmptyOp::create(b, loc,
                                ArrayRef<int64_t>{rows, layout.numGroups},
                                b.getF32Type(), dynamic)};
    auto rowLoop = scf::ForOp::create(
        b, loc, index(b, 0), m, index(b, 1), init,
        [&](OpBuilder &lb, Location, Value row, ValueRange tensors) {
          auto groupLoop = scf::ForOp::create(
              lb, loc, index(lb, 0), index(lb, layout.numGroups), index(lb, 1),
              tensors,
              [&](OpBuilder &gb, Location, Value group, ValueRange carried) {
                scf::YieldOp::create(gb, loc,
                                     quantizeGroup(gb, row, group, carried));
              });
          scf::YieldOp::create(lb, loc, groupLoop.getResults());
        });
    xCodes = rowLoop.getResult(0);
    xScales = rowLoop.getResult(1);
    xScaledSums = rowLoop.getResult(2);
  }

  //===--------------------------------------------------------------===//
  // Weights
  //===--------------------------------------------------------------===//

  /// The 64 codes of `bytes` (8 * bits bytes, codes straddling bytes) in
  /// element order: code i is bits i * bits .. of the byte pair at
  /// i * bits / 8.
  Value straddlingCodes(OpBuilder &b, Value bytes) const {
    if (instructions == Int8DotInstructions::Vbmi)
      return straddlingCodesByMultishift(b, bytes);
    SmallVector<int64_t> low, high;
    SmallVector<int16_t> shifts;
    for (int64_t i = 0; i < kChunkBytes; ++i) {
      int64_t byte = i * layout.bits / 8;
      low.push_back(byte);
      high.push_back(std::min(byte + 1, layout.chunkBytes - 1));
      shifts.push_back(int16_t(i * layout.bits % 8));
    }
    auto words = vec(kChunkBytes, b.getI16Type());
    Value lo = arith::ExtUIOp::create(
        b, loc, words, vector::ShuffleOp::create(b, loc, bytes, bytes, low));
    Value hi = arith::ExtUIOp::create(
        b, loc, words, vector::ShuffleOp::create(b, loc, bytes, bytes, high));
    Value word = arith::OrIOp::create(
        b, loc, lo,
        arith::ShLIOp::create(b, loc, hi,
                              splatConstant(b, words, b.getI16IntegerAttr(8))));
    Value shift = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(words, ArrayRef<int16_t>(shifts)));
    Value code = arith::AndIOp::create(
        b, loc, arith::ShRUIOp::create(b, loc, word, shift),
        splatConstant(b, words,
                      b.getI16IntegerAttr(int16_t((1 << layout.bits) - 1))));
    return arith::TruncIOp::create(b, loc, vec(kChunkBytes, b.getI8Type()),
                                   code);
  }

  /// straddlingCodes in three instructions: eight codes of `bits` bits are
  /// `bits` whole bytes, so a byte permute (vpermb) gives each 64-bit lane
  /// the bytes of its eight codes, vpmultishiftqb copies to byte t of the
  /// lane the 8 bits from bit t * bits of that lane, and a mask keeps the
  /// code (the general form spends two permutes, two 16-bit shifts per
  /// half, masks and a narrowing).
  Value straddlingCodesByMultishift(OpBuilder &b, Value bytes) const {
    SmallVector<int64_t> gather;
    SmallVector<int8_t> offsets;
    for (int64_t lane = 0; lane < kChunkBytes / 8; ++lane)
      for (int64_t t = 0; t < 8; ++t) {
        // Bytes past a lane's `bits` are never selected whole: repeat the
        // lane's first (any in-range byte would do).
        gather.push_back(lane * layout.bits + (t < layout.bits ? t : 0));
        offsets.push_back(int8_t(t * layout.bits));
      }
    auto type = vec(kChunkBytes, b.getI8Type());
    Value lanes = vector::ShuffleOp::create(b, loc, bytes, bytes, gather);
    Value control = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, ArrayRef<int8_t>(offsets)));
    Value shifted = IntrinsicOp::create(
        b, loc, type, "llvm.x86.avx512.pmultishift.qb.512",
        ValueRange{control, lanes});
    Value mask = splatConstant(
        b, type, b.getI8IntegerAttr(int8_t((1 << layout.bits) - 1)));
    return arith::AndIOp::create(b, loc, shifted, mask);
  }

  /// The byte offset of chunk `chunk` of weight row `row` in codesBuffer.
  Value chunkOffset(OpBuilder &b, Value row, Value chunk) const {
    // One op per statement: the order of evaluation of call arguments is
    // unspecified, and the IR must not depend on the host compiler.
    int64_t rowBytes =
        cast<RankedTensorType>(components[0].getType()).getDimSize(1);
    Value rowStart = mulIndex(b, row, rowBytes);
    Value chunkStart = mulIndex(b, chunk, layout.chunkBytes);
    return arith::AddIOp::create(b, loc, rowStart, chunkStart);
  }

  /// The chunkBytes bytes of full chunk `chunk` of weight row `row` in the
  /// first lanes of a register of the next power of two bytes (the rest
  /// zero), by a masked load from codesBuffer: masked-off lanes are not
  /// read, so the load stays within the chunk.
  Value loadShortChunk(OpBuilder &b, Value row, Value chunk) const {
    int64_t lanes = int64_t(llvm::PowerOf2Ceil(layout.chunkBytes));
    Value offset = chunkOffset(b, row, chunk);
    Value mask = vector::ConstantMaskOp::create(
        b, loc, VectorType::get({lanes}, b.getI1Type()),
        ArrayRef<int64_t>{layout.chunkBytes});
    auto type = vec(lanes, b.getI8Type());
    Value zero = splatConstant(b, type, b.getI8IntegerAttr(0));
    return vector::MaskedLoadOp::create(b, loc, type, codesBuffer,
                                        ValueRange{offset}, mask, zero);
  }

  /// Prefetches the code byte shape.prefetchBytes after the start of chunk
  /// `chunk` of weight row `row`, in row-major order. The row's part of the
  /// address is clamped, not the chunk's: min(row start + prefetchBytes,
  /// start of the last row) + chunk start stays in the buffer (a prefetch
  /// past it would be harmless on x86, but is not a valid memref access),
  /// and only the row's part varies between rows, so the chunk loop's
  /// prefetch is one instruction. Clamping each chunk's address took a
  /// compare and a conditional move per cache line: 16 of the 56
  /// instructions of int4 g128's four-chunk loop. codesBuffer is the codes
  /// as one dimension: with rows and columns the address cost a division.
  void prefetchCodes(OpBuilder &b, Value row, Value chunk) const {
    int64_t rowBytes =
        cast<RankedTensorType>(components[0].getType()).getDimSize(1);
    Value rowStart = mulIndex(b, row, rowBytes);
    Value wanted = addIndex(b, rowStart, shape.prefetchBytes);
    Value lastRowStart = index(b, (n - 1) * rowBytes);
    Value aheadRow = arith::MinUIOp::create(b, loc, wanted, lastRowStart);
    Value chunkStart = mulIndex(b, chunk, layout.chunkBytes);
    Value ahead = arith::AddIOp::create(b, loc, aheadRow, chunkStart);
    // Locality 0 (non-temporal): each byte is read once per call.
    memref::PrefetchOp::create(b, loc, codesBuffer, ValueRange{ahead},
                               /*isWrite=*/false, /*localityHint=*/0,
                               /*isDataCache=*/true);
  }

  /// Prefetches every cache line of row `row` + ahead of the [n, columns]
  /// `buffer` (one dimension, as codesBuffer), where `ahead` is the rows of
  /// codes shape.prefetchBytes spans, rounded up, and the row is clamped to
  /// the last. The scales and zero points of a row are read before its
  /// first chunk, and the hardware prefetcher does not keep up with streams
  /// that advance a few bytes per 2 KiB row: in the 7B-shaped model's
  /// output head (K = 4096, int4 g128) the loads that missed them drew 20%
  /// of the kernel's profile samples outside its chunk loop; with this
  /// prefetch, 12%, as in quant-bench's kernel alone.
  void prefetchRowAhead(OpBuilder &b, Value buffer, Value row) const {
    int64_t rowBytes =
        cast<RankedTensorType>(components[0].getType()).getDimSize(1);
    auto type = cast<MemRefType>(buffer.getType());
    int64_t columns = type.getDimSize(0) / n;
    int64_t elementBytes = std::max<int64_t>(
        1, type.getElementTypeBitWidth() / 8);
    int64_t ahead = (shape.prefetchBytes + rowBytes - 1) / rowBytes;
    Value wanted = addIndex(b, row, ahead);
    Value aheadRow = arith::MinUIOp::create(b, loc, wanted, index(b, n - 1));
    Value rowStart = mulIndex(b, aheadRow, columns);
    // One prefetch per line's worth of elements from the row's start, plus
    // its last element when the row may end on a line past those: rows
    // start wherever the element size allows (a row of two f32 at byte 60
    // of a line spans two).
    int64_t perLine = std::max<int64_t>(1, kChunkBytes / elementBytes);
    SmallVector<int64_t> columnsToFetch;
    for (int64_t c = 0; c < columns; c += perLine)
      columnsToFetch.push_back(c);
    int64_t latestEnd = kChunkBytes - elementBytes + columns * elementBytes;
    if ((latestEnd - 1) / kChunkBytes >= int64_t(columnsToFetch.size()))
      columnsToFetch.push_back(columns - 1);
    for (int64_t c : columnsToFetch) {
      Value at = addIndex(b, rowStart, c);
      memref::PrefetchOp::create(b, loc, buffer, ValueRange{at},
                                 /*isWrite=*/false, /*localityHint=*/0,
                                 /*isDataCache=*/true);
    }
  }

  /// The unsigned values of the codes in chunk `chunk` of weight row `row`,
  /// one vector<64xi8> per part.
  SmallVector<Value> weightParts(OpBuilder &b, Value row, Value chunk,
                                 bool inBounds, bool prefetch) const {
    Value bytes =
        inBounds && shortChunks()
            ? loadShortChunk(b, row, chunk)
            : read(b, components[0],
                   {row, mulIndex(b, chunk, layout.chunkBytes)},
                   layout.chunkBytes, inBounds);
    if (shape.prefetchBytes > 0 && prefetch)
      prefetchCodes(b, row, chunk);
    auto type = vec(kChunkBytes, b.getI8Type());
    if (8 % layout.bits != 0) {
      Value codes = straddlingCodes(b, bytes);
      if (!form.codeValues.empty())
        codes = lookUpCodes(b, codes);
      return {codes};
    }
    SmallVector<Value> parts;
    for (int64_t p = 0; p < layout.per; ++p) {
      Value part = bytes;
      if (p > 0)
        part = arith::ShRUIOp::create(
            b, loc, part,
            splatConstant(b, type, b.getI8IntegerAttr(int8_t(p * layout.bits))));
      if (layout.bits < 8 && p + 1 < layout.per)
        part = arith::AndIOp::create(
            b, loc, part,
            splatConstant(b, type,
                          b.getI8IntegerAttr(int8_t((1 << layout.bits) - 1))));
      if (!form.codeValues.empty())
        part = lookUpCodes(b, part);
      parts.push_back(part);
    }
    return parts;
  }

  /// isum[r * cols + j] + the byte dot products of chunk `chunk` for every
  /// (row, weight row) pair of the tile; `prefetch`: whether the chunk's
  /// loads prefetch (when codes are prefetched at all).
  SmallVector<Value> chunkDots(OpBuilder &b, const MatmulTile &t, Value chunk,
                               bool inBounds, ValueRange isum,
                               bool prefetch = true) const {
    SmallVector<SmallVector<Value>> weights;
    for (int64_t j = 0; j < t.cols; ++j)
      weights.push_back(weightParts(b, addIndex(b, t.n0, j), chunk, inBounds,
                                    prefetch));
    Value chunkStart = mulIndex(b, chunk, layout.chunkElements);
    SmallVector<Value> next(isum);
    for (int64_t r = 0; r < t.rows; ++r) {
      Value m = addIndex(b, t.m0, r);
      for (int64_t p = 0; p < layout.per; ++p) {
        Value q = readRun(b, loc, xCodes,
                          {m, addIndex(b, chunkStart, p * kChunkBytes)},
                          kChunkBytes);
        for (int64_t j = 0; j < t.cols; ++j) {
          Value &acc = next[r * t.cols + j];
          acc = dotBytes(b, acc, weights[j][p], q);
        }
      }
    }
    return next;
  }

  /// The dot products of chunks [first, first + count) (the last one past
  /// the full chunks read with padding), starting from zero.
  SmallVector<Value> groupDots(OpBuilder &b, const MatmulTile &t, Value first,
                               int64_t count, bool withTail) const {
    SmallVector<Value> isum(t.rows * t.cols, zeroI32(b));
    int64_t full = withTail ? count - 1 : count;
    if (full <= 4) {
      // One prefetch per cache line of codes the chunks start in: chunks
      // of codes that straddle bytes are 8 * bits bytes, and a prefetch for
      // each (2.7 per line of 3-bit codes) costs more than it brings.
      for (int64_t c = 0; c < full; ++c) {
        bool newLine = c == 0 || c * layout.chunkBytes / kChunkBytes !=
                                     (c - 1) * layout.chunkBytes / kChunkBytes;
        isum = chunkDots(b, t, addIndex(b, first, c), true, isum, newLine);
      }
    } else {
      auto loop = scf::ForOp::create(
          b, loc, first, addIndex(b, first, full), index(b, 1), isum,
          [&](OpBuilder &lb, Location, Value chunk, ValueRange acc) {
            scf::YieldOp::create(lb, loc,
                                 chunkDots(lb, t, chunk, true, acc));
          });
      isum = SmallVector<Value>(loop.getResults());
    }
    if (withTail)
      isum = chunkDots(b, t, addIndex(b, first, full), false, isum);
    return isum;
  }

  /// acc + isum * x scale * weight scale, lane by lane, for every pair.
  SmallVector<Value> applyScales(OpBuilder &b, const MatmulTile &t,
                                 ValueRange isum, ValueRange xScale,
                                 ValueRange wScale, ValueRange acc) const {
    SmallVector<Value> next(acc);
    auto f32Lanes = vec(kLanes, b.getF32Type());
    for (int64_t r = 0; r < t.rows; ++r)
      for (int64_t j = 0; j < t.cols; ++j) {
        int64_t o = r * t.cols + j;
        Value sum = arith::SIToFPOp::create(b, loc, f32Lanes, isum[o]);
        Value scaled = arith::MulFOp::create(b, loc, sum, xScale[r]);
        next[o] = vector::FMAOp::create(b, loc, scaled, wScale[j], acc[o]);
      }
    return next;
  }

  /// The weight scale of (row, group) as f32.
  Value weightScale(OpBuilder &b, Value row, Value group) const {
    return toF32(b, tensor::ExtractOp::create(
                        b, loc, components[form.scaleComponent],
                        ValueRange{scaleRow(b, row), group}));
  }

  /// Groups of at least a chunk: the chunks of a group accumulate in i32,
  /// then one scale per group and pair.
  SmallVector<Value> wholeGroupTile(OpBuilder &b, const MatmulTile &t) const {
    SmallVector<Value> acc(t.rows * t.cols, zeroF32(b));
    auto groupStep = [&](OpBuilder &gb, Value group, ValueRange accIn) {
      int64_t count = layout.singleGroup()
                          ? layout.numChunks
                          : layout.groupSize / layout.chunkElements;
      bool withTail = layout.singleGroup() &&
                      layout.numChunks > layout.fullChunks;
      Value first = mulIndex(gb, group, count);
      SmallVector<Value> isum = groupDots(gb, t, first, count, withTail);
      SmallVector<Value> xScale, wScale;
      for (int64_t r = 0; r < t.rows; ++r)
        xScale.push_back(broadcast(
            gb, tensor::ExtractOp::create(
                    gb, loc, xScales,
                    ValueRange{addIndex(gb, t.m0, r), group})));
      for (int64_t j = 0; j < t.cols; ++j)
        wScale.push_back(
            broadcast(gb, weightScale(gb, addIndex(gb, t.n0, j), group)));
      return applyScales(gb, t, isum, xScale, wScale, accIn);
    };
    if (layout.singleGroup())
      return groupStep(b, index(b, 0), acc);
    // `unroll` groups per iteration (independent loads in flight), then the
    // remaining groups one at a time.
    int64_t unroll = std::max<int64_t>(1, std::min(shape.unroll,
                                                   layout.numGroups));
    auto groupLoop = [&](int64_t lo, int64_t hi, int64_t step,
                         ValueRange accIn) {
      auto loop = scf::ForOp::create(
          b, loc, index(b, lo), index(b, hi), index(b, step), accIn,
          [&](OpBuilder &lb, Location, Value group, ValueRange carried) {
            SmallVector<Value> next(carried);
            for (int64_t u = 0; u < step; ++u)
              next = groupStep(lb, addIndex(lb, group, u), next);
            scf::YieldOp::create(lb, loc, next);
          });
      return SmallVector<Value>(loop.getResults());
    };
    int64_t unrolledEnd = layout.numGroups / unroll * unroll;
    acc = groupLoop(0, unrolledEnd, unroll, acc);
    if (unrolledEnd < layout.numGroups)
      acc = groupLoop(unrolledEnd, layout.numGroups, 1, acc);
    return acc;
  }

  /// Groups smaller than a chunk: each chunk's i32 lanes are scaled by
  /// their own groups' scales. Full chunks go kLanes / groupsPerChunk at a
  /// time, so that one vector of kLanes groups serves them all: x scale
  /// times weight scale once per vector and pair (not per chunk), then one
  /// shuffle per chunk to give each lane its group's product. Per 64 bytes
  /// of E2M1 g32 codes that is a conversion, a shuffle and an FMA, where
  /// scaling each chunk from its own four scales took two loads, two
  /// shuffles, a multiply and an FMA.
  SmallVector<Value> laneGroupTile(OpBuilder &b, const MatmulTile &t) const {
    int64_t gpc = layout.groupsPerChunk;
    // int8KernelLimitation: a group holds whole lanes, so gpc <= kLanes.
    assert(gpc <= kLanes && "a scale group splits an i32 lane");
    int64_t chunksPerStep = kLanes / gpc;
    SmallVector<Value> acc(t.rows * t.cols, zeroF32(b));
    int64_t steps = layout.fullChunks / chunksPerStep;
    if (steps > 0) {
      auto loop = scf::ForOp::create(
          b, loc, index(b, 0), index(b, steps), index(b, 1), acc,
          [&](OpBuilder &lb, Location, Value step, ValueRange accIn) {
            Value first = mulIndex(lb, step, chunksPerStep);
            scf::YieldOp::create(
                lb, loc, chunkRunStep(lb, t, first, chunksPerStep, true,
                                      accIn));
          });
      acc = SmallVector<Value>(loop.getResults());
    }
    // The full chunks left over as one shorter run, then the partial chunk.
    int64_t leftover = layout.fullChunks - steps * chunksPerStep;
    if (leftover > 0)
      acc = chunkRunStep(b, t, index(b, steps * chunksPerStep), leftover,
                         true, acc);
    if (layout.numChunks > layout.fullChunks)
      acc = chunkRunStep(b, t, index(b, layout.fullChunks), 1, false, acc);
    return acc;
  }

  /// acc + the dot products of chunks [first, first + count), each i32
  /// lane times the x scale and weight scale of its group; `inBounds`:
  /// whether the chunks are full (else the one chunk past them).
  SmallVector<Value> chunkRunStep(OpBuilder &b, const MatmulTile &t,
                                  Value first, int64_t count, bool inBounds,
                                  ValueRange accIn) const {
    int64_t gpc = layout.groupsPerChunk;
    int64_t groups = count * gpc;
    Value firstGroup = mulIndex(b, first, gpc);
    // xScales rows are padded to whole chunks of groups: always in bounds.
    SmallVector<Value> xScale, wScale;
    for (int64_t r = 0; r < t.rows; ++r)
      xScale.push_back(readRun(b, loc, xScales,
                               {addIndex(b, t.m0, r), firstGroup}, groups));
    for (int64_t j = 0; j < t.cols; ++j) {
      Value row = scaleRow(b, addIndex(b, t.n0, j));
      Value scales = read(b, components[form.scaleComponent],
                          {row, firstGroup}, groups, inBounds);
      wScale.push_back(toF32(b, scales));
    }
    SmallVector<Value> scale;
    for (int64_t r = 0; r < t.rows; ++r)
      for (int64_t j = 0; j < t.cols; ++j)
        scale.push_back(arith::MulFOp::create(b, loc, xScale[r], wScale[j]));
    // The run's products are summed apart from the carried accumulators
    // and added to them once: a chain of `count` FMAs through the
    // accumulators would make every iteration wait on the previous one's.
    SmallVector<Value> partial(t.rows * t.cols);
    auto f32Lanes = vec(kLanes, b.getF32Type());
    for (int64_t c = 0; c < count; ++c) {
      SmallVector<Value> isum(t.rows * t.cols, zeroI32(b));
      isum = chunkDots(b, t, addIndex(b, first, c), inBounds, isum);
      for (auto [o, sum] : llvm::enumerate(isum)) {
        Value lanes = spreadGroups(b, scale[o], c * gpc);
        Value f = arith::SIToFPOp::create(b, loc, f32Lanes, sum);
        partial[o] =
            c == 0 ? arith::MulFOp::create(b, loc, f, lanes).getResult()
                   : vector::FMAOp::create(b, loc, f, lanes, partial[o])
                         .getResult();
      }
    }
    SmallVector<Value> acc;
    for (auto [a, p] : llvm::zip(accIn, partial))
      acc.push_back(arith::AddFOp::create(b, loc, a, p));
    return acc;
  }

  /// sum_g scale * zero * x scale * sum(q) for each pair of the tile.
  SmallVector<Value> zeroPointTerms(OpBuilder &b, const MatmulTile &t) const {
    int64_t runs = (layout.numGroups + kInputRun - 1) / kInputRun;
    bool inBounds = layout.numGroups % kInputRun == 0;
    auto f32Run = vec(kInputRun, b.getF32Type());
    SmallVector<Value> init(t.rows * t.cols, zeroF32(b, kInputRun));
    auto loop = scf::ForOp::create(
        b, loc, index(b, 0), index(b, runs), index(b, 1), init,
        [&](OpBuilder &lb, Location, Value run, ValueRange acc) {
          Value g0 = mulIndex(lb, run, kInputRun);
          SmallVector<Value> weightTerms;
          for (int64_t j = 0; j < t.cols; ++j) {
            Value row = scaleRow(lb, addIndex(lb, t.n0, j));
            Value scale = toF32(lb, read(lb, components[form.scaleComponent],
                                         {row, g0}, kInputRun, inBounds));
            Value zero;
            if (form.zeroComponent) {
              Value z = read(lb, components[*form.zeroComponent], {row, g0},
                             kInputRun, inBounds);
              zero = arith::UIToFPOp::create(lb, loc, f32Run, z);
            } else {
              zero = splatConstant(lb, f32Run,
                                   lb.getF32FloatAttr(float(form.zero)));
            }
            weightTerms.push_back(arith::MulFOp::create(lb, loc, scale, zero));
          }
          SmallVector<Value> next(acc);
          for (int64_t r = 0; r < t.rows; ++r) {
            Value sums = read(lb, xScaledSums, {addIndex(lb, t.m0, r), g0},
                              kInputRun, inBounds);
            for (int64_t j = 0; j < t.cols; ++j) {
              Value &a = next[r * t.cols + j];
              a = vector::FMAOp::create(lb, loc, weightTerms[j], sums, a);
            }
          }
          scf::YieldOp::create(lb, loc, next);
        });
    SmallVector<Value> terms;
    for (Value v : loop.getResults())
      terms.push_back(reduceAdd(b, v));
    return terms;
  }

  SmallVector<Value> dotTile(OpBuilder &b, const MatmulTile &t) const {
    for (Value buffer : {scalesBuffer, zerosBuffer})
      if (buffer)
        for (int64_t j = 0; j < t.cols; ++j)
          prefetchRowAhead(b, buffer, addIndex(b, t.n0, j));
    SmallVector<Value> acc =
        layout.lanesPerGroup() ? laneGroupTile(b, t) : wholeGroupTile(b, t);
    SmallVector<Value> zeroTerms = zeroPointTerms(b, t);
    Value multiplier =
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(form.multiplier));
    SmallVector<Value> sums;
    for (auto [a, zeroTerm] : llvm::zip(acc, zeroTerms)) {
      Value sum = arith::SubFOp::create(b, loc, reduceAdd(b, a), zeroTerm);
      if (form.multiplier != 1.0f)
        sum = arith::MulFOp::create(b, loc, sum, multiplier);
      sums.push_back(sum);
    }
    return sums;
  }
};

} // namespace

Value mlir::qnt::buildInt8Matmul(OpBuilder &b, Location loc, Value input,
                                 ValueRange components,
                                 const IntegerWeightForm &form, int64_t n,
                                 int64_t k, const VectorMatmulShape &shape,
                                 Int8DotInstructions instructions) {
  assert(int8KernelLimitation(form, k).empty() && "unsupported int8 kernel");
  Int8MatmulBuilder builder{loc,   input, components,   form, n,  k,
                            Int8Layout(form, k), shape, instructions,
                            {},    {},    {},     {}};
  auto inputType = cast<RankedTensorType>(input.getType());
  Value m = inputType.isDynamicDim(0)
                ? tensor::DimOp::create(b, loc, input, 0).getResult()
                : arith::ConstantIndexOp::create(b, loc, inputType.getDimSize(0))
                      .getResult();
  builder.quantizeInput(b, m);
  // Measured at 4096x14336, M = 1, medians of 3 rounds: int4 g128 24 -> 27
  // GB/s on one thread and 40 -> 59 on two with codes prefetched 4 KiB
  // ahead (two rows), int3 18 -> 20 and 35 -> 39, int8 about even. E2M1
  // g32 (codes through a table), once its groups' scales were shared by
  // runs of chunks, against no prefetch in interleaved rounds
  // (quant-bench --cpu-kernel-variants): 63-73% and 85-90% of the read
  // bound against 57-62% and 78-85% on two threads (two runs), about even
  // on one (59-71% against 58-69%).
  if (builder.shape.prefetchBytes < 0)
    builder.shape.prefetchBytes = 4096;
  auto flatBuffer = [&](Value component) -> Value {
    auto type = cast<RankedTensorType>(component.getType());
    Value buffer = bufferization::ToBufferOp::create(
        b, loc, MemRefType::get(type.getShape(), type.getElementType()),
        component, /*readOnly=*/true);
    return memref::CollapseShapeOp::create(
        b, loc, buffer, ArrayRef<ReassociationIndices>{{0, 1}});
  };
  if (builder.shape.prefetchBytes > 0 || builder.shortChunks())
    builder.codesBuffer = flatBuffer(components[0]);
  if (builder.shape.prefetchBytes > 0 && !form.perTensor) {
    builder.scalesBuffer = flatBuffer(components[form.scaleComponent]);
    if (form.zeroComponent)
      builder.zerosBuffer = flatBuffer(components[*form.zeroComponent]);
  }
  auto dot = [&](OpBuilder &nb, const MatmulTile &t) {
    return builder.dotTile(nb, t);
  };
  return buildTiledMatmul(b, loc, input, n, k, dot, /*init=*/{}, shape);
}
