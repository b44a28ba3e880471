//===- CodebookLutMatmul.cpp - Lookup-table kernel for codebooks ----------===//
//
// See CodebookLutMatmul.h. Layout of the work, for two codebooks of B <= 8
// bit codes over groups of g inputs, codes tiled R rows by G groups:
//  - Tables, once per call and activation row: T[j][c][e] = sum_t
//    x[j*g + t] * codebooks[c][e][t] for every group j, codebook c and entry
//    e (f32, t in order, fused multiply-adds), then rounded to int8 with one
//    scale per tile of G groups (127 / the largest |T| of the tile). Entries
//    past 2^B and groups past K/g are zero.
//  - A 64-byte run of tiled codes holds 32 rows' (codebook 0, codebook 1)
//    byte pairs. Two byte permutes over the 256 entries of a table (two
//    128-entry halves, picked by bit 7 of the code) give T[j][c][code] in
//    every byte; even bytes take codebook 0's table, odd bytes codebook 1's;
//    vpmaddubsw with ones adds each pair into the row's i16 lane. A tile of
//    G groups adds at most G * 254 per lane: i16 holds it for G <= 128.
//  - Each tile's i16 sums become f32 times the tile's table scale; the row
//    scale multiplies the finished sums.
//  - Loop order: group tiles outermost, so that the tables of one tile (G *
//    512 bytes) stay in L1 while the row tiles stream past in storage
//    order; the row tiles are split into contiguous parts for threads.
//
//===----------------------------------------------------------------------===//

#include "passes/lowering/CodebookLutMatmul.h"
#include "passes/lowering/VectorMatmul.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// Bytes of codes per register: 32 rows of two codes.
constexpr int64_t kCodeBytes = 64;
constexpr int64_t kRowsPerRun = kCodeBytes / 2;
/// Entries of one codebook's table (8-bit codes) and bytes of a group's
/// two tables.
constexpr int64_t kEntries = 256;
constexpr int64_t kGroupTableBytes = 2 * kEntries;
/// f32 table entries computed per vector.
constexpr int64_t kEntryRun = 16;
/// The most rows and groups of a code tile the kernel takes: four runs of
/// 32 rows keep their sums and the eight table registers in the 32 vector
/// registers; 128 groups keep the i16 sums exact.
constexpr int64_t kMaxTileRows = 4 * kRowsPerRun;
constexpr int64_t kMaxTileGroups = 128;

struct LutMatmulBuilder {
  Location loc;
  Value input;
  ValueRange components;
  CodebookEncodingAttr encoding;
  int64_t n, k;
  int64_t groupSize, groups, codebookEntries;
  int64_t tileRows, tileGroups, groupTiles, rowTiles, runsPerTile;
  /// Activation rows.
  Value rows;
  /// Software prefetch distance in bytes of codes (0: none), and the codes
  /// as a flat memref for memref.prefetch (the same buffer once
  /// bufferized).
  int64_t prefetchBytes = 0;
  Value codesBuffer;

  LutMatmulBuilder(Location loc, Value input, ValueRange components,
                   CodebookEncodingAttr encoding, int64_t n, int64_t k)
      : loc(loc), input(input), components(components), encoding(encoding),
        n(n), k(k) {
    groupSize = encoding.getGroupSize();
    groups = k / groupSize;
    codebookEntries = int64_t(1) << encoding.getCodeBits();
    tileRows = encoding.getTileRows();
    tileGroups = encoding.getTileGroups();
    groupTiles = (groups + tileGroups - 1) / tileGroups;
    rowTiles = (n + tileRows - 1) / tileRows;
    runsPerTile = tileRows / kRowsPerRun;
  }

  //===--------------------------------------------------------------===//
  // Small helpers
  //===--------------------------------------------------------------===//

  Value index(OpBuilder &b, int64_t v) const {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  Value add(OpBuilder &b, Value x, Value y) const {
    return arith::AddIOp::create(b, loc, x, y);
  }
  Value mul(OpBuilder &b, Value x, int64_t factor) const {
    if (factor == 1)
      return x;
    return arith::MulIOp::create(b, loc, x, index(b, factor));
  }
  static VectorType vec(int64_t lanes, Type element) {
    return VectorType::get({lanes}, element);
  }
  Value splat(OpBuilder &b, VectorType type, Attribute value) const {
    return arith::ConstantOp::create(b, loc,
                                     SplatElementsAttr::get(type, value));
  }
  Value broadcast(OpBuilder &b, Value scalar, int64_t lanes) const {
    return vector::BroadcastOp::create(b, loc, vec(lanes, scalar.getType()),
                                       scalar);
  }
  Value toF32(OpBuilder &b, Value v) const {
    if (v.getType().isF32())
      return v;
    return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  }
  /// A [rows, cols] tensor of `element`, uninitialized...
  Value empty(OpBuilder &b, int64_t cols, Type element) const {
    auto type = cast<RankedTensorType>(input.getType());
    SmallVector<Value> dynamic;
    if (type.isDynamicDim(0))
      dynamic.push_back(rows);
    return tensor::EmptyOp::create(
        b, loc, ArrayRef<int64_t>{type.getDimSize(0), cols}, element, dynamic);
  }
  /// ... or filled with zero.
  Value zeros(OpBuilder &b, int64_t cols, Type element) const {
    Value uninitialized = empty(b, cols, element);
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
    return linalg::FillOp::create(b, loc, zero, uninitialized).getResult(0);
  }
  /// scf.for from `lo` to `hi` carrying `init`; `body` returns the next
  /// values.
  SmallVector<Value>
  loop(OpBuilder &b, Value lo, Value hi, ValueRange init,
       llvm::function_ref<SmallVector<Value>(OpBuilder &, Value, ValueRange)>
           body) const {
    auto forOp = scf::ForOp::create(
        b, loc, lo, hi, index(b, 1), init,
        [&](OpBuilder &lb, Location, Value iv, ValueRange carried) {
          scf::YieldOp::create(lb, loc, body(lb, iv, carried));
        });
    return SmallVector<Value>(forOp.getResults());
  }

  //===--------------------------------------------------------------===//
  // Tables
  //===--------------------------------------------------------------===//

  /// The codebooks as [2, g, 256] f32: entry e of codebook c at [c, t, e],
  /// zero past 2^B, so that a run of entries is one contiguous read.
  Value transposedCodebooks(OpBuilder &b) const {
    Type f32 = b.getF32Type();
    Value codebooks = components[1];
    Value transposed = linalg::TransposeOp::create(
                           b, loc, codebooks,
                           tensor::EmptyOp::create(
                               b, loc,
                               ArrayRef<int64_t>{2, groupSize, codebookEntries},
                               f32),
                           ArrayRef<int64_t>{0, 2, 1})
                           .getResult()[0];
    if (codebookEntries == kEntries)
      return transposed;
    Value empty = tensor::EmptyOp::create(
        b, loc, ArrayRef<int64_t>{2, groupSize, kEntries}, f32);
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    Value filled = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
    SmallVector<OpFoldResult> offsets(3, b.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(2),
                                       b.getIndexAttr(groupSize),
                                       b.getIndexAttr(codebookEntries)};
    SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    return tensor::InsertSliceOp::create(b, loc, transposed, filled, offsets,
                                         sizes, strides);
  }

  /// The inputs of group `j` of activation row `row`, each broadcast.
  SmallVector<Value> groupInputs(OpBuilder &b, Value row, Value j) const {
    SmallVector<Value> xs;
    Value base = mul(b, j, groupSize);
    for (int64_t t = 0; t < groupSize; ++t) {
      Value x = tensor::ExtractOp::create(b, loc, input,
                                          ValueRange{row, add(b, base, index(b, t))});
      xs.push_back(broadcast(b, toF32(b, x), kEntryRun));
    }
    return xs;
  }

  /// T[j][c][e0 .. e0 + 16) in f32, e0 = 16 * run.
  Value tableRun(OpBuilder &b, Value codebooksT, ArrayRef<Value> xs,
                 int64_t c, Value run) const {
    Value sum = splat(b, vec(kEntryRun, b.getF32Type()),
                      b.getF32FloatAttr(0.0f));
    Value e0 = mul(b, run, kEntryRun);
    for (int64_t t = 0; t < groupSize; ++t) {
      Value entries =
          readRun(b, loc, codebooksT, {index(b, c), index(b, t), e0}, kEntryRun);
      sum = vector::FMAOp::create(b, loc, xs[t], entries, sum);
    }
    return sum;
  }

  /// The groups of tile `tile` that exist: min(G, groups - tile * G).
  Value groupsInTile(OpBuilder &b, Value tile) const {
    Value done = mul(b, tile, tileGroups);
    Value left = arith::SubIOp::create(b, loc, index(b, groups), done);
    return arith::MinSIOp::create(b, loc, left, index(b, tileGroups));
  }

  /// The int8 tables of group tile `tile` for every activation row, [rows,
  /// G * 512] (zero past the groups), and their scales, [rows, 1]. Each
  /// entry is computed once, into an f32 scratch of the row's tile, while
  /// the largest |T| is found; then rounded from the scratch.
  std::pair<Value, Value> tileTables(OpBuilder &b, Value codebooksT,
                                     Value tile) const {
    Type f32 = b.getF32Type();
    VectorType run = vec(kEntryRun, f32);
    int64_t runs = kEntries / kEntryRun;
    int64_t tileBytes = tileGroups * kGroupTableBytes;
    Value first = mul(b, tile, tileGroups);
    Value count = groupsInTile(b, tile);
    // Zero-filled only when the last tile has fewer groups (its missing
    // groups' tables must be zero); otherwise every byte is written.
    Value tables = groups % tileGroups != 0
                       ? zeros(b, tileBytes, b.getI8Type())
                       : empty(b, tileBytes, b.getI8Type());
    Value scales = empty(b, 1, f32);
    auto perRow = [&](OpBuilder &b, Value row,
                      ValueRange carried) -> SmallVector<Value> {
      Value scratch = tensor::EmptyOp::create(
          b, loc, ArrayRef<int64_t>{tileBytes}, f32);
      Value zeroRun = splat(b, run, b.getF32FloatAttr(0.0f));
      // One op per statement throughout: the order of evaluation of call
      // arguments is unspecified, and the IR must not depend on the host
      // compiler.
      auto at = [&](OpBuilder &b, Value jg, int64_t c, Value r) {
        Value group = mul(b, jg, kGroupTableBytes);
        Value entry = mul(b, r, kEntryRun);
        Value inGroup = add(b, entry, index(b, c * kEntries));
        return add(b, group, inGroup);
      };
      SmallVector<Value> computed = loop(
          b, index(b, 0), count, {scratch, zeroRun},
          [&](OpBuilder &b, Value jg, ValueRange acc) {
            SmallVector<Value> xs = groupInputs(b, row, add(b, first, jg));
            SmallVector<Value> next(acc);
            for (int64_t c = 0; c < 2; ++c)
              next = loop(b, index(b, 0), index(b, runs), next,
                          [&](OpBuilder &b, Value r, ValueRange a) {
                Value t = tableRun(b, codebooksT, xs, c, r);
                Value written =
                    vector::TransferWriteOp::create(
                        b, loc, t, a[0], ValueRange{at(b, jg, c, r)},
                        ArrayRef<bool>{true})
                        .getResult();
                Value largest = arith::MaxNumFOp::create(
                    b, loc, a[1], math::AbsFOp::create(b, loc, t));
                return SmallVector<Value>{written, largest};
              });
            return next;
          });
      Value amax = vector::ReductionOp::create(
          b, loc, vector::CombiningKind::MAXNUMF, computed[1]);
      Value limit =
          arith::ConstantOp::create(b, loc, b.getF32FloatAttr(127.0f));
      Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
      Value scale = arith::DivFOp::create(b, loc, amax, limit);
      Value positive =
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, amax, zero);
      Value inverse = broadcast(
          b,
          arith::SelectOp::create(b, loc, positive,
                                  arith::DivFOp::create(b, loc, limit, amax),
                                  zero),
          kEntryRun);
      // Runs of 16 entries of the groups there are, in storage order.
      Value end = mul(b, count, kGroupTableBytes / kEntryRun);
      Value rounded = loop(
          b, index(b, 0), end, {carried[0]},
          [&](OpBuilder &b, Value r, ValueRange t) {
            Value offset = mul(b, r, kEntryRun);
            Value entries = readRun(b, loc, computed[0], {offset}, kEntryRun);
            Value q = arith::TruncIOp::create(
                b, loc, vec(kEntryRun, b.getI8Type()),
                arith::FPToSIOp::create(
                    b, loc, vec(kEntryRun, b.getI32Type()),
                    math::RoundEvenOp::create(
                        b, loc,
                        arith::MulFOp::create(b, loc, entries, inverse))));
            return SmallVector<Value>{
                vector::TransferWriteOp::create(b, loc, q, t[0],
                                                ValueRange{row, offset},
                                                ArrayRef<bool>{true})
                    .getResult()};
          })[0];
      Value scales = tensor::InsertOp::create(b, loc, scale, carried[1],
                                              ValueRange{row, index(b, 0)});
      return {rounded, scales};
    };
    SmallVector<Value> result =
        loop(b, index(b, 0), rows, {tables, scales}, perRow);
    return {result[0], result[1]};
  }

  /// The int8 tables [rows, groupTiles * G * 512] and their scales [rows,
  /// groupTiles]: the group tiles an scf.forall when `parallel`.
  std::pair<Value, Value> buildTables(OpBuilder &b, bool parallel) const {
    Value codebooksT = transposedCodebooks(b);
    int64_t tileBytes = tileGroups * kGroupTableBytes;
    Value tables = empty(b, groupTiles * tileBytes, b.getI8Type());
    Value scales = empty(b, groupTiles, b.getF32Type());
    OpFoldResult rowCount = getAsOpFoldResult(rows);
    auto slices = [&](OpBuilder &b, Value tile) {
      SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
      SmallVector<SmallVector<OpFoldResult>> offsets = {
          {b.getIndexAttr(0), OpFoldResult(mul(b, tile, tileBytes))},
          {b.getIndexAttr(0), OpFoldResult(tile)}};
      SmallVector<SmallVector<OpFoldResult>> sizes = {
          {rowCount, b.getIndexAttr(tileBytes)}, {rowCount, b.getIndexAttr(1)}};
      return std::make_tuple(offsets, sizes, strides);
    };
    if (!parallel) {
      SmallVector<Value> result = loop(
          b, index(b, 0), index(b, groupTiles), {tables, scales},
          [&](OpBuilder &b, Value tile, ValueRange carried) {
            auto [t, s] = tileTables(b, codebooksT, tile);
            auto [offsets, sizes, strides] = slices(b, tile);
            return SmallVector<Value>{
                tensor::InsertSliceOp::create(b, loc, t, carried[0],
                                              offsets[0], sizes[0], strides),
                tensor::InsertSliceOp::create(b, loc, s, carried[1],
                                              offsets[1], sizes[1], strides)};
          });
      return {result[0], result[1]};
    }
    auto forall = scf::ForallOp::create(
        b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(groupTiles)},
        ValueRange{tables, scales}, std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forall.getTerminator());
    Value tile = forall.getInductionVar(0);
    auto [t, s] = tileTables(b, codebooksT, tile);
    auto [offsets, sizes, strides] = slices(b, tile);
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(b, loc, t,
                                          forall.getRegionIterArgs()[0],
                                          offsets[0], sizes[0], strides);
    tensor::ParallelInsertSliceOp::create(b, loc, s,
                                          forall.getRegionIterArgs()[1],
                                          offsets[1], sizes[1], strides);
    return {forall.getResult(0), forall.getResult(1)};
  }

  //===--------------------------------------------------------------===//
  // Lookups
  //===--------------------------------------------------------------===//

  /// table[idx] in every byte, for a 256-entry table in four registers.
  Value lookUp(OpBuilder &b, ArrayRef<Value> table, Value idx,
               Value highHalf) const {
    auto type = vec(kCodeBytes, b.getI8Type());
    auto permute = [&](Value lo, Value hi) {
      return IntrinsicOp::create(b, loc, type,
                                 "llvm.x86.avx512.vpermi2var.qi.512",
                                 ValueRange{lo, idx, hi})
          .getResult();
    };
    Value low = permute(table[0], table[1]);
    Value high = permute(table[2], table[3]);
    return arith::SelectOp::create(b, loc, highHalf, high, low);
  }

  /// Prefetches the code byte prefetchBytes after run `h` of the group at
  /// `runStart` in tile (groupTile, tile), in storage order, clamped to the
  /// last byte (a prefetch past the buffer is not a valid memref access).
  void prefetchCodes(OpBuilder &b, Value groupTile, Value tile,
                     Value runStart, int64_t h) const {
    int64_t tileBytes = 2 * tileGroups * tileRows;
    Value tileIndex = mul(b, groupTile, rowTiles);
    Value tileNumber = add(b, tileIndex, tile);
    Value tileStart = mul(b, tileNumber, tileBytes);
    Value start = add(b, tileStart, runStart);
    Value wanted = add(b, start, index(b, h * kCodeBytes + prefetchBytes));
    int64_t lastByte = groupTiles * rowTiles * tileBytes - 1;
    Value ahead = arith::MinUIOp::create(b, loc, wanted, index(b, lastByte));
    // Locality 0 (non-temporal): each byte is read once per call.
    memref::PrefetchOp::create(b, loc, codesBuffer, ValueRange{ahead},
                               /*isWrite=*/false, /*localityHint=*/0,
                               /*isDataCache=*/true);
  }

  /// The i16 sums of a tile of groups (row tile `tile`, group tile
  /// `groupTile`, activation row `row`): one vector<32xi16> per run of 32
  /// rows.
  SmallVector<Value> tileSums(OpBuilder &b, Value tables, Value codes,
                              Value row, Value groupTile, Value tile) const {
    auto bytes = vec(kCodeBytes, b.getI8Type());
    auto sums = vec(kRowsPerRun, b.getI16Type());
    Value ones = splat(b, bytes, b.getI8IntegerAttr(1));
    Value zeroBytes = splat(b, bytes, b.getI8IntegerAttr(0));
    SmallVector<bool> even;
    for (int64_t l = 0; l < kCodeBytes; ++l)
      even.push_back(l % 2 == 0);
    Value evenLanes = arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(vec(kCodeBytes, b.getI1Type()),
                               ArrayRef<bool>(even)));
    SmallVector<Value> init(runsPerTile,
                            splat(b, sums, b.getI16IntegerAttr(0)));
    Value firstGroup = mul(b, groupTile, tileGroups);
    return loop(b, index(b, 0), index(b, tileGroups), init,
                [&](OpBuilder &b, Value jg, ValueRange acc) {
      Value tableStart = mul(b, add(b, firstGroup, jg), kGroupTableBytes);
      SmallVector<Value> table[2];
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t q = 0; q < 4; ++q)
          table[c].push_back(readRun(
              b, loc, tables,
              {row, add(b, tableStart,
                        index(b, c * kEntries + q * kCodeBytes))},
              kCodeBytes));
      Value runStart = mul(b, jg, 2 * tileRows);
      SmallVector<Value> next(acc);
      for (int64_t h = 0; h < runsPerTile; ++h) {
        Value idx = readRun(
            b, loc, codes,
            {groupTile, tile, add(b, runStart, index(b, h * kCodeBytes))},
            kCodeBytes);
        if (codesBuffer)
          prefetchCodes(b, groupTile, tile, runStart, h);
        Value highHalf = arith::CmpIOp::create(
            b, loc, arith::CmpIPredicate::slt, idx, zeroBytes);
        Value first = lookUp(b, table[0], idx, highHalf);
        Value second = lookUp(b, table[1], idx, highHalf);
        Value pairs =
            arith::SelectOp::create(b, loc, evenLanes, first, second);
        Value rowSums =
            IntrinsicOp::create(b, loc, sums, "llvm.x86.avx512.pmaddubs.w.512",
                                ValueRange{ones, pairs})
                .getResult();
        next[h] = arith::AddIOp::create(b, loc, next[h], rowSums);
      }
      return next;
    });
  }

  //===--------------------------------------------------------------===//
  // The kernel
  //===--------------------------------------------------------------===//

  /// The f32 sums [rows, partTiles * R] of row tiles [firstTile,
  /// firstTile + partTiles) (clamped to the weight), row scales applied.
  Value partSums(OpBuilder &b, Value tables, Value tableScales, Value codes,
                 Value rowScales, Value firstTile, int64_t partTiles) const {
    Type f32 = b.getF32Type();
    auto run = vec(kRowsPerRun, f32);
    Value partEnd = add(b, firstTile, index(b, partTiles));
    Value endTile =
        arith::MinSIOp::create(b, loc, partEnd, index(b, rowTiles));
    Value acc = zeros(b, partTiles * tileRows, f32);
    auto column = [&](OpBuilder &b, Value tile, int64_t h) {
      Value inPart = arith::SubIOp::create(b, loc, tile, firstTile);
      Value start = mul(b, inPart, tileRows);
      return add(b, start, index(b, h * kRowsPerRun));
    };
    auto write = [&](OpBuilder &b, Value v, Value into, Value row, Value col) {
      return vector::TransferWriteOp::create(b, loc, v, into,
                                             ValueRange{row, col},
                                             ArrayRef<bool>{true})
          .getResult();
    };
    acc = loop(b, index(b, 0), index(b, groupTiles), {acc},
               [&](OpBuilder &b, Value groupTile, ValueRange a) {
      return loop(b, firstTile, endTile, a,
                  [&](OpBuilder &b, Value tile, ValueRange a) {
        return loop(b, index(b, 0), rows, a,
                    [&](OpBuilder &b, Value row, ValueRange a) {
          SmallVector<Value> sums =
              tileSums(b, tables, codes, row, groupTile, tile);
          Value scale = broadcast(
              b,
              tensor::ExtractOp::create(b, loc, tableScales,
                                        ValueRange{row, groupTile}),
              kRowsPerRun);
          Value next = a[0];
          for (int64_t h = 0; h < runsPerTile; ++h) {
            Value col = column(b, tile, h);
            Value wide = arith::SIToFPOp::create(
                b, loc, run,
                arith::ExtSIOp::create(
                    b, loc, vec(kRowsPerRun, b.getI32Type()), sums[h]));
            Value current = readRun(b, loc, next, {row, col}, kRowsPerRun);
            next = write(b, vector::FMAOp::create(b, loc, wide, scale, current),
                         next, row, col);
          }
          return SmallVector<Value>{next};
        });
      });
    })[0];
    // Row scales; rows past N read scale 0.
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    return loop(b, firstTile, endTile, {acc},
                [&](OpBuilder &b, Value tile, ValueRange a) {
      SmallVector<Value> scales;
      Value tileStart = mul(b, tile, tileRows);
      for (int64_t h = 0; h < runsPerTile; ++h) {
        Value start = add(b, tileStart, index(b, h * kRowsPerRun));
        scales.push_back(vector::TransferReadOp::create(
            b, loc, run, rowScales, ValueRange{start}, zero,
            ArrayRef<bool>{false}));
      }
      return loop(b, index(b, 0), rows, a,
                  [&](OpBuilder &b, Value row, ValueRange a) {
        Value next = a[0];
        for (int64_t h = 0; h < runsPerTile; ++h) {
          Value col = column(b, tile, h);
          Value current = readRun(b, loc, next, {row, col}, kRowsPerRun);
          next = write(b, arith::MulFOp::create(b, loc, current, scales[h]),
                       next, row, col);
        }
        return SmallVector<Value>{next};
      });
    })[0];
  }

  Value build(OpBuilder &b, int64_t parts) {
    auto inputType = cast<RankedTensorType>(input.getType());
    rows = inputType.isDynamicDim(0)
               ? tensor::DimOp::create(b, loc, input, 0).getResult()
               : index(b, inputType.getDimSize(0));
    parts = std::max<int64_t>(1, std::min(parts, rowTiles));
    auto [tables, tableScales] = buildTables(b, parts > 1);
    // Codes [JT, NT, G, R, 2] -> [JT, NT, G * R * 2]; scales [N, 1] -> [N].
    Value codes = tensor::CollapseShapeOp::create(
        b, loc, components[0],
        ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3, 4}});
    Value rowScales = tensor::CollapseShapeOp::create(
        b, loc, components[2], ArrayRef<ReassociationIndices>{{0, 1}});
    if (prefetchBytes > 0) {
      Value flat = tensor::CollapseShapeOp::create(
          b, loc, components[0],
          ArrayRef<ReassociationIndices>{{0, 1, 2, 3, 4}});
      auto flatType = cast<RankedTensorType>(flat.getType());
      codesBuffer = bufferization::ToBufferOp::create(
          b, loc,
          MemRefType::get(flatType.getShape(), flatType.getElementType()),
          flat, /*readOnly=*/true);
    }

    int64_t partTiles = (rowTiles + parts - 1) / parts;
    int64_t partRows = partTiles * tileRows;
    Value out = empty(b, parts * partRows, b.getF32Type());
    OpFoldResult rowCount = getAsOpFoldResult(rows);
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    if (parts == 1) {
      Value sums = partSums(b, tables, tableScales, codes, rowScales,
                            index(b, 0), partTiles);
      SmallVector<OpFoldResult> offsets(2, b.getIndexAttr(0));
      SmallVector<OpFoldResult> sizes = {rowCount, b.getIndexAttr(partRows)};
      out = tensor::InsertSliceOp::create(b, loc, sums, out, offsets, sizes,
                                          strides);
    } else {
      auto forall = scf::ForallOp::create(
          b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(parts)},
          ValueRange{out}, std::nullopt);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(forall.getTerminator());
      Value part = forall.getInductionVar(0);
      Value shared = forall.getRegionIterArgs()[0];
      Value sums = partSums(b, tables, tableScales, codes, rowScales,
                            mul(b, part, partTiles), partTiles);
      SmallVector<OpFoldResult> offsets = {
          b.getIndexAttr(0), OpFoldResult(mul(b, part, partRows))};
      SmallVector<OpFoldResult> sizes = {rowCount, b.getIndexAttr(partRows)};
      b.setInsertionPointToStart(forall.getTerminator().getBody());
      tensor::ParallelInsertSliceOp::create(b, loc, sums, shared, offsets,
                                            sizes, strides);
      out = forall.getResult(0);
    }
    SmallVector<OpFoldResult> offsets(2, b.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes = {rowCount, b.getIndexAttr(n)};
    return tensor::ExtractSliceOp::create(
        b, loc, RankedTensorType::get({inputType.getDimSize(0), n}, b.getF32Type()),
        out, offsets, sizes, strides);
  }
};

} // namespace

std::string mlir::qnt::codebookLutLimitation(CodebookEncodingAttr encoding) {
  if (encoding.getNumCodebooks() != 2)
    return "lookup tables need two codebooks, got " +
           std::to_string(encoding.getNumCodebooks());
  if (encoding.getCodeBits() > 8)
    return "lookup tables need codes of at most 8 bits, got " +
           std::to_string(encoding.getCodeBits());
  int64_t rows = encoding.getTileRows(), groups = encoding.getTileGroups();
  if (rows == 0)
    return "lookup tables need tiled codes (tile_rows, tile_groups)";
  if (rows % kRowsPerRun != 0 || rows > kMaxTileRows)
    return "lookup tables need tile_rows a multiple of 32 up to 128, got " +
           std::to_string(rows);
  if (groups > kMaxTileGroups)
    return "lookup tables need tile_groups <= 128 (i16 sums), got " +
           std::to_string(groups);
  if (encoding.getScaleType() != ScaleType::f32)
    return "lookup tables need f32 row scales";
  return "";
}

Value mlir::qnt::buildCodebookLutMatmul(OpBuilder &b, Location loc,
                                        Value input, ValueRange components,
                                        CodebookEncodingAttr encoding,
                                        int64_t n, int64_t k, int64_t parts,
                                        int64_t prefetchBytes) {
  assert(codebookLutLimitation(encoding).empty() && "unsupported encoding");
  LutMatmulBuilder builder(loc, input, components, encoding, n, k);
  builder.prefetchBytes = prefetchBytes;
  return builder.build(b, parts);
}
