//===- GpuMatmulKernels.cpp - Fused dequant-matmul GPU kernels --*- C++ -*-===//
//
// See GpuMatmulKernels.h. Index conventions below: x[m][k], W[n][k],
// out[m][n]; "lane" is the thread's index in its warp.
//
//===----------------------------------------------------------------------===//

#include "passes/lowering/GpuMatmulKernels.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::qnt;

static constexpr int64_t kWarpSize = 32;
/// Threads of a GEMM block: 2 x 2 warps (tensor cores) or 16 x 8 threads
/// (FMA path).
static constexpr int64_t kGemmThreads = 128;
/// Shared-memory row padding (elements) against bank conflicts.
static constexpr int64_t kMmaPad = 8, kSimtPad = 1;

std::string GpuMatmulOptions::verify() const {
  auto outside = [](int64_t v, int64_t lo, int64_t hi) {
    return v < lo || v > hi;
  };
  if (outside(gemvMaxRows, 1, 64))
    return "gemv-max-rows must be in [1, 64]";
  if (outside(gemvWarpsPerBlock, 1, 32))
    return "gemv-warps must be in [1, 32]";
  if (outside(gemvElementsPerLane, 8, 64) || gemvElementsPerLane % 8 != 0)
    return "gemv-elements-per-lane must be a multiple of 8 in [8, 64]";
  if (outside(gemmTileM, 32, 128) || gemmTileM % 32 != 0)
    return "gemm-tile-m must be a multiple of 32 in [32, 128]";
  if (outside(gemmTileN, 32, 128) || gemmTileN % 32 != 0)
    return "gemm-tile-n must be a multiple of 32 in [32, 128]";
  if (outside(gemmTileK, 16, 64) || gemmTileK % 16 != 0)
    return "gemm-tile-k must be a multiple of 16 in [16, 64]";
  // Static shared memory is limited to 48 KiB; the f32 (FMA) tiles are the
  // largest: (tileM + tileN) x (tileK + 1) floats.
  if ((gemmTileM + gemmTileN) * (gemmTileK + kSimtPad) * 4 > 48 * 1024)
    return "GEMM tiles need more than 48 KiB of shared memory; reduce "
           "gemm-tile-m, gemm-tile-n or gemm-tile-k";
  return "";
}

static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool GpuMatmulKernelSpec::usesTensorCores() const {
  return kind == GpuMatmulKind::Gemm &&
         (inputElementType.isF16() || inputElementType.isBF16());
}

std::array<int64_t, 3> GpuMatmulKernelSpec::blockSize() const {
  if (kind == GpuMatmulKind::Gemv)
    return {kWarpSize, options.gemvWarpsPerBlock, 1};
  return {kGemmThreads, 1, 1};
}

std::array<int64_t, 3> GpuMatmulKernelSpec::gridSize(int64_t m) const {
  if (kind == GpuMatmulKind::Gemv)
    return {ceilDiv(n, options.gemvWarpsPerBlock), ceilDiv(m, gemvRows), 1};
  return {ceilDiv(n, options.gemmTileN), ceilDiv(m, options.gemmTileM), 1};
}

int64_t GpuMatmulKernelSpec::sharedMemoryBytes() const {
  if (kind == GpuMatmulKind::Gemv)
    return 0;
  int64_t pad = usesTensorCores() ? kMmaPad : kSimtPad;
  int64_t bytes = usesTensorCores() ? 2 : 4;
  return (options.gemmTileM + options.gemmTileN) * (options.gemmTileK + pad) *
         bytes;
}

SmallVector<GpuMatmulKernelSpec>
mlir::qnt::selectGpuMatmulKernels(EncodingAttrInterface encoding, int64_t m,
                                  int64_t n, int64_t k, Type inputElementType,
                                  Type outputElementType,
                                  const GpuMatmulOptions &options) {
  GpuMatmulKernelSpec base;
  base.n = n;
  base.k = k;
  base.inputElementType = inputElementType;
  base.outputElementType = outputElementType;
  base.encoding = encoding;
  base.options = options;

  bool dynamic = ShapedType::isDynamic(m);
  GpuMatmulStrategy strategy = options.strategy;
  bool wantGemv = strategy != GpuMatmulStrategy::Gemm &&
                  (dynamic || strategy == GpuMatmulStrategy::Gemv ||
                   m <= options.gemvMaxRows);
  bool wantGemm = strategy == GpuMatmulStrategy::Gemm ||
                  (strategy == GpuMatmulStrategy::Auto &&
                   (dynamic || m > options.gemvMaxRows));

  // Row variants R = 1, 2, 4, ... capped at gemvMaxRows; a static M keeps
  // only the smallest one that holds it.
  SmallVector<GpuMatmulKernelSpec> specs;
  int64_t staticRows = dynamic ? 0 : std::min(m, options.gemvMaxRows);
  for (int64_t rows = 1; wantGemv; rows *= 2) {
    int64_t capped = std::min(rows, options.gemvMaxRows);
    if (dynamic || (staticRows <= capped && staticRows > rows / 2)) {
      GpuMatmulKernelSpec gemv = base;
      gemv.kind = GpuMatmulKind::Gemv;
      gemv.gemvRows = capped;
      specs.push_back(gemv);
    }
    if (capped == options.gemvMaxRows)
      break;
  }
  if (wantGemm) {
    GpuMatmulKernelSpec gemm = base;
    gemm.kind = GpuMatmulKind::Gemm;
    specs.push_back(gemm);
  }
  return specs;
}

const GpuMatmulKernelSpec &
mlir::qnt::pickGpuMatmulKernel(ArrayRef<GpuMatmulKernelSpec> specs,
                               int64_t m) {
  // The smallest GEMV holding m, else the GEMM, else the widest GEMV
  // (which covers any m in chunks of its rows).
  for (const GpuMatmulKernelSpec &spec : specs)
    if (spec.kind == GpuMatmulKind::Gemv && m <= spec.gemvRows)
      return spec;
  return specs.back();
}

SmallVector<RankedTensorType>
mlir::qnt::gpuMatmulComponentTypes(MLIRContext *context,
                                   EncodingAttrInterface encoding, int64_t n,
                                   int64_t k) {
  if (!encoding)
    return {RankedTensorType::get({n, k}, Float16Type::get(context))};
  return encoding.getComponentTypes({n, k});
}

SmallVector<Type>
mlir::qnt::gpuMatmulArgumentTypes(const GpuMatmulKernelSpec &spec) {
  SmallVector<Type> types;
  types.push_back(MemRefType::get({ShapedType::kDynamic, spec.k},
                                  spec.inputElementType));
  for (RankedTensorType component :
       gpuMatmulComponentTypes(spec.inputElementType.getContext(),
                               spec.encoding, spec.n, spec.k))
    types.push_back(
        MemRefType::get(component.getShape(), component.getElementType()));
  types.push_back(MemRefType::get({ShapedType::kDynamic, spec.n},
                                  spec.outputElementType));
  return types;
}

namespace {

/// Scalar helpers over one builder and location.
struct KernelBuilder {
  OpBuilder &b;
  Location loc;

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
  }
  Value zero(Type type) {
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, 0.0));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return arith::DivUIOp::create(b, loc, x, y); }
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, loc, x, y); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }
  Value both(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value fma(Value x, Value y, Value acc) {
    return math::FmaOp::create(b, loc, x, y, acc);
  }
  Value threadId(gpu::Dimension d) {
    return gpu::ThreadIdOp::create(b, loc, d);
  }
  Value blockId(gpu::Dimension d) { return gpu::BlockIdOp::create(b, loc, d); }
  /// Converts a float scalar to `type`.
  Value convert(Value v, Type type) {
    unsigned from = cast<FloatType>(v.getType()).getWidth();
    unsigned to = cast<FloatType>(type).getWidth();
    if (v.getType() == type)
      return v;
    if (from < to)
      return arith::ExtFOp::create(b, loc, type, v);
    if (from > to)
      return arith::TruncFOp::create(b, loc, type, v);
    // f16 <-> bf16: through f32.
    return arith::TruncFOp::create(
        b, loc, type, arith::ExtFOp::create(b, loc, b.getF32Type(), v));
  }
  Value load(Value memref, ValueRange indices) {
    return memref::LoadOp::create(b, loc, memref, indices);
  }
  void store(Value v, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, loc, v, memref, indices);
  }
  /// `cond ? then() : zero(type)`, evaluating then() only when cond holds
  /// (it may read out of bounds otherwise).
  Value guarded(Value cond, Type type,
                function_ref<Value(KernelBuilder &)> then) {
    auto ifOp = scf::IfOp::create(
        b, loc, cond,
        [&](OpBuilder &nb, Location nloc) {
          KernelBuilder kb{nb, nloc};
          scf::YieldOp::create(nb, nloc, then(kb));
        },
        [&](OpBuilder &nb, Location nloc) {
          KernelBuilder kb{nb, nloc};
          scf::YieldOp::create(nb, nloc, kb.zero(type));
        });
    return ifOp.getResult(0);
  }
  /// Runs `body` only when `cond` holds.
  void when(Value cond, function_ref<void(KernelBuilder &)> body) {
    scf::IfOp::create(b, loc, cond, [&](OpBuilder &nb, Location nloc) {
      KernelBuilder kb{nb, nloc};
      body(kb);
      scf::YieldOp::create(nb, nloc);
    });
  }
  /// scf.for from `lb` to `ub` by `step` carrying `inits`; `body` returns
  /// the next values.
  SmallVector<Value>
  loop(Value lb, Value ub, Value step, ValueRange inits,
       function_ref<SmallVector<Value>(KernelBuilder &, Value, ValueRange)>
           body) {
    auto forOp = scf::ForOp::create(
        b, loc, lb, ub, step, inits,
        [&](OpBuilder &nb, Location nloc, Value iv, ValueRange args) {
          KernelBuilder kb{nb, nloc};
          scf::YieldOp::create(nb, nloc, body(kb, iv, args));
        });
    return SmallVector<Value>(forOp.getResults());
  }
};

/// The dequantized f32 value of W[n][k], read from component memrefs.
Value dequantWeight(KernelBuilder &kb, const GpuMatmulKernelSpec &spec,
                    ValueRange components, Value n, Value k) {
  if (!spec.encoding)
    return kb.convert(kb.load(components.front(), {n, k}),
                      kb.b.getF32Type());
  SmallVector<Value> captured(components);
  auto loader = [captured](OpBuilder &b, Location loc, unsigned i,
                           ValueRange indices) -> Value {
    return memref::LoadOp::create(b, loc, captured[i], indices);
  };
  return spec.encoding.emitDequantElement(kb.b, kb.loc, loader, n, k, spec.n,
                                          spec.k);
}

//===----------------------------------------------------------------------===//
// GEMV
//===----------------------------------------------------------------------===//

/// One warp per output column n. Each lane dequantizes runs of E
/// consecutive inputs (so a warp reads 32 * E * bits / 8 contiguous bytes
/// of the packed row per step) and multiplies them with R activation rows;
/// rows past M are clamped to M - 1 and their results dropped.
void buildGemvBody(KernelBuilder &kb, const GpuMatmulKernelSpec &spec,
                   Value x, ValueRange components, Value out) {
  Type f32 = kb.b.getF32Type();
  int64_t rowsInFlight = spec.gemvRows;
  int64_t perLane = spec.options.gemvElementsPerLane;
  int64_t chunk = kWarpSize * perLane;

  Value lane = kb.threadId(gpu::Dimension::x);
  Value n = kb.add(kb.mul(kb.blockId(gpu::Dimension::x),
                          kb.index(spec.options.gemvWarpsPerBlock)),
                   kb.threadId(gpu::Dimension::y));
  Value m = memref::DimOp::create(kb.b, kb.loc, x, 0);
  Value rowBase =
      kb.mul(kb.blockId(gpu::Dimension::y), kb.index(rowsInFlight));
  Value lastRow = kb.sub(m, kb.index(1));

  kb.when(kb.lt(n, kb.index(spec.n)), [&](KernelBuilder &kb) {
    SmallVector<Value> rows;
    for (int64_t r = 0; r < rowsInFlight; ++r)
      rows.push_back(arith::MinUIOp::create(
          kb.b, kb.loc, kb.add(rowBase, kb.index(r)), lastRow));

    auto accumulate = [&](KernelBuilder &kb, Value k, ValueRange accs) {
      Value w = dequantWeight(kb, spec, components, n, k);
      SmallVector<Value> next;
      for (int64_t r = 0; r < rowsInFlight; ++r)
        next.push_back(
            kb.fma(kb.convert(kb.load(x, {rows[r], k}), f32), w, accs[r]));
      return next;
    };

    SmallVector<Value> accs(rowsInFlight, kb.zero(f32));
    int64_t fullChunks = spec.k / chunk;
    if (fullChunks > 0) {
      accs = kb.loop(
          kb.index(0), kb.index(fullChunks), kb.index(1), accs,
          [&](KernelBuilder &kb, Value j, ValueRange carried) {
            Value start = kb.add(kb.mul(j, kb.index(chunk)),
                                 kb.mul(lane, kb.index(perLane)));
            SmallVector<Value> values(carried);
            for (int64_t e = 0; e < perLane; ++e)
              values = accumulate(kb, kb.add(start, kb.index(e)), values);
            return values;
          });
    }
    int64_t tailStart = fullChunks * chunk;
    if (tailStart < spec.k) {
      accs = kb.loop(kb.add(kb.index(tailStart), lane), kb.index(spec.k),
                     kb.index(kWarpSize), accs,
                     [&](KernelBuilder &kb, Value k, ValueRange carried) {
                       return accumulate(kb, k, carried);
                     });
    }

    // Butterfly reduction: every lane ends with the warp's sum.
    for (Value &acc : accs) {
      for (int64_t offset = kWarpSize / 2; offset > 0; offset /= 2) {
        auto shuffle =
            gpu::ShuffleOp::create(kb.b, kb.loc, acc, kb.i32(offset),
                                   kb.i32(kWarpSize), gpu::ShuffleMode::XOR);
        acc = arith::AddFOp::create(kb.b, kb.loc, acc,
                                    shuffle.getShuffleResult());
      }
    }
    kb.when(kb.lt(lane, kb.index(1)), [&](KernelBuilder &kb) {
      for (int64_t r = 0; r < rowsInFlight; ++r) {
        Value row = kb.add(rowBase, kb.index(r));
        kb.when(kb.lt(row, m), [&](KernelBuilder &kb) {
          kb.store(kb.convert(accs[r], spec.outputElementType), out,
                   {row, n});
        });
      }
    });
  });
}

//===----------------------------------------------------------------------===//
// GEMM
//===----------------------------------------------------------------------===//

/// Shared-memory tile layout of the GEMM: rows of `tileK + pad` elements.
struct GemmTiles {
  int64_t tileM, tileN, tileK, pad;
  Value aTile, bTile; // [tileM][tileK + pad], [tileN][tileK + pad]
};

/// Stages x[mBlock.., kBase..] and the dequantized W[nBlock.., kBase..]
/// into shared memory (zeros outside the matrices), one element per thread
/// per step with consecutive threads on consecutive k, so that the packed
/// codes of a W row are read contiguously.
void stageTiles(KernelBuilder &kb, const GpuMatmulKernelSpec &spec,
                const GemmTiles &tiles, Value tid, Value m, Value mBlock,
                Value nBlock, Value kBase, Value x, ValueRange components) {
  Type staged = cast<MemRefType>(tiles.aTile.getType()).getElementType();
  auto stage = [&](int64_t tileRows, Value rowBlock, Value limit,
                   Value tile, bool weights) {
    int64_t steps = tileRows * tiles.tileK / kGemmThreads;
    kb.loop(kb.index(0), kb.index(steps), kb.index(1), {},
            [&](KernelBuilder &kb, Value step, ValueRange) {
              Value flat = kb.add(kb.mul(step, kb.index(kGemmThreads)), tid);
              Value i = kb.div(flat, kb.index(tiles.tileK));
              Value j = kb.rem(flat, kb.index(tiles.tileK));
              Value row = kb.add(rowBlock, i), col = kb.add(kBase, j);
              Value inside = kb.both(kb.lt(row, limit),
                                     kb.lt(col, kb.index(spec.k)));
              Value v = kb.guarded(inside, staged, [&](KernelBuilder &kb) {
                Value value =
                    weights ? dequantWeight(kb, spec, components, row, col)
                            : kb.load(x, {row, col});
                return kb.convert(value, staged);
              });
              kb.store(v, tile, {i, j});
              return SmallVector<Value>{};
            });
  };
  stage(tiles.tileM, mBlock, m, tiles.aTile, /*weights=*/false);
  stage(tiles.tileN, nBlock, kb.index(spec.n), tiles.bTile, /*weights=*/true);
}

/// Packs two 16-bit elements into the operand register mma.sync expects:
/// an f16x2 vector for f16, an i32 for bf16.
Value packPair(KernelBuilder &kb, Value lo, Value hi) {
  auto pair = VectorType::get({2}, lo.getType());
  Value vec = vector::FromElementsOp::create(kb.b, kb.loc, pair,
                                             ValueRange{lo, hi});
  if (lo.getType().isF16())
    return vec;
  return LLVM::BitcastOp::create(kb.b, kb.loc, kb.b.getI32Type(), vec);
}

/// Tensor-core inner product of the staged tiles with mma.sync m16n8k16.
/// 2 x 2 warps; a warp owns a (tileM/2) x (tileN/2) output block made of
/// 16 x 8 mma tiles. Fragment layouts follow the PTX ISA's m16n8k16 tables:
/// with g = lane / 4 and t = lane % 4, A registers hold rows {g, g + 8} x
/// columns {2t, 2t + 1} (+8), B registers hold k = {2t, 2t + 1} (+8) of
/// column g, and C element i sits at row g + 8 * (i / 2), column
/// 2t + i % 2.
SmallVector<Value> mmaTile(KernelBuilder &kb, const GemmTiles &tiles,
                           Value warpRow, Value warpCol, Value lane,
                           ValueRange accs) {
  int64_t tilesM = tiles.tileM / 2 / 16, tilesN = tiles.tileN / 2 / 8;
  Value g = kb.div(lane, kb.index(4));
  Value t2 = kb.mul(kb.rem(lane, kb.index(4)), kb.index(2));
  Type f32 = kb.b.getF32Type();
  auto resultType = LLVM::LLVMStructType::getLiteral(
      kb.b.getContext(), SmallVector<Type>(4, f32));
  bool isF16 = cast<MemRefType>(tiles.aTile.getType())
                   .getElementType()
                   .isF16();
  NVVM::MMATypes ptxType = isF16 ? NVVM::MMATypes::f16 : NVVM::MMATypes::bf16;

  SmallVector<Value> next(accs);
  for (int64_t kk = 0; kk < tiles.tileK; kk += 16) {
    auto pairAt = [&](Value tile, Value row, Value col) {
      Value c1 = kb.add(col, kb.index(1));
      return packPair(kb, kb.load(tile, {row, col}), kb.load(tile, {row, c1}));
    };
    Value col0 = kb.add(kb.index(kk), t2);
    Value col8 = kb.add(col0, kb.index(8));
    SmallVector<SmallVector<Value, 4>> aRegs, bRegs;
    for (int64_t mi = 0; mi < tilesM; ++mi) {
      Value r0 = kb.add(kb.add(warpRow, kb.index(mi * 16)), g);
      Value r8 = kb.add(r0, kb.index(8));
      aRegs.push_back({pairAt(tiles.aTile, r0, col0),
                       pairAt(tiles.aTile, r8, col0),
                       pairAt(tiles.aTile, r0, col8),
                       pairAt(tiles.aTile, r8, col8)});
    }
    for (int64_t ni = 0; ni < tilesN; ++ni) {
      Value n = kb.add(kb.add(warpCol, kb.index(ni * 8)), g);
      bRegs.push_back(
          {pairAt(tiles.bTile, n, col0), pairAt(tiles.bTile, n, col8)});
    }
    for (int64_t mi = 0; mi < tilesM; ++mi) {
      for (int64_t ni = 0; ni < tilesN; ++ni) {
        int64_t base = (mi * tilesN + ni) * 4;
        ValueRange c = ValueRange(next).slice(base, 4);
        auto mma = NVVM::MmaOp::create(
            kb.b, kb.loc, resultType, aRegs[mi], bRegs[ni], c, {16, 8, 16},
            std::nullopt, std::nullopt,
            std::array<NVVM::MMATypes, 2>{ptxType, ptxType},
            std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                           NVVM::MMALayout::col});
        for (int64_t i = 0; i < 4; ++i)
          next[base + i] = LLVM::ExtractValueOp::create(kb.b, kb.loc, mma,
                                                        ArrayRef<int64_t>{i});
      }
    }
  }
  return next;
}

/// FMA inner product of the staged f32 tiles: 16 x 8 threads, each owning a
/// (tileM/16) x (tileN/8) block of outputs.
SmallVector<Value> simtTile(KernelBuilder &kb, const GemmTiles &tiles,
                            Value threadRow, Value threadCol,
                            ValueRange accs) {
  int64_t perM = tiles.tileM / 16, perN = tiles.tileN / 8;
  return kb.loop(
      kb.index(0), kb.index(tiles.tileK), kb.index(1), accs,
      [&](KernelBuilder &kb, Value kk, ValueRange carried) {
        SmallVector<Value> a, w, next(carried);
        for (int64_t i = 0; i < perM; ++i)
          a.push_back(kb.load(tiles.aTile,
                              {kb.add(threadRow, kb.index(i)), kk}));
        for (int64_t j = 0; j < perN; ++j)
          w.push_back(kb.load(tiles.bTile,
                              {kb.add(threadCol, kb.index(j)), kk}));
        for (int64_t i = 0; i < perM; ++i)
          for (int64_t j = 0; j < perN; ++j)
            next[i * perN + j] = kb.fma(a[i], w[j], next[i * perN + j]);
        return next;
      });
}

void buildGemmBody(KernelBuilder &kb, const GpuMatmulKernelSpec &spec,
                   GemmTiles tiles, Value x, ValueRange components,
                   Value out) {
  Type f32 = kb.b.getF32Type();
  bool tensorCores = spec.usesTensorCores();
  Value tid = kb.threadId(gpu::Dimension::x);
  Value m = memref::DimOp::create(kb.b, kb.loc, x, 0);
  Value mBlock =
      kb.mul(kb.blockId(gpu::Dimension::y), kb.index(tiles.tileM));
  Value nBlock =
      kb.mul(kb.blockId(gpu::Dimension::x), kb.index(tiles.tileN));

  // Where this thread's outputs sit inside the block tile, and how many.
  Value lane = kb.rem(tid, kb.index(kWarpSize));
  Value warp = kb.div(tid, kb.index(kWarpSize));
  Value ownRow, ownCol;
  int64_t numAccs;
  if (tensorCores) {
    ownRow = kb.mul(kb.div(warp, kb.index(2)), kb.index(tiles.tileM / 2));
    ownCol = kb.mul(kb.rem(warp, kb.index(2)), kb.index(tiles.tileN / 2));
    numAccs = (tiles.tileM / 32) * (tiles.tileN / 16) * 4;
  } else {
    ownRow = kb.mul(kb.div(tid, kb.index(8)), kb.index(tiles.tileM / 16));
    ownCol = kb.mul(kb.rem(tid, kb.index(8)), kb.index(tiles.tileN / 8));
    numAccs = (tiles.tileM / 16) * (tiles.tileN / 8);
  }

  SmallVector<Value> accs(numAccs, kb.zero(f32));
  int64_t kTiles = ceilDiv(spec.k, tiles.tileK);
  accs = kb.loop(
      kb.index(0), kb.index(kTiles), kb.index(1), accs,
      [&](KernelBuilder &kb, Value kt, ValueRange carried) {
        Value kBase = kb.mul(kt, kb.index(tiles.tileK));
        stageTiles(kb, spec, tiles, tid, m, mBlock, nBlock, kBase, x,
                   components);
        gpu::BarrierOp::create(kb.b, kb.loc);
        SmallVector<Value> next =
            tensorCores ? mmaTile(kb, tiles, ownRow, ownCol, lane, carried)
                        : simtTile(kb, tiles, ownRow, ownCol, carried);
        // The next iteration overwrites the tiles.
        gpu::BarrierOp::create(kb.b, kb.loc);
        return next;
      });

  // Write back, dropping rows and columns outside the matrix.
  auto storeAt = [&](Value row, Value col, Value acc) {
    kb.when(kb.both(kb.lt(row, m), kb.lt(col, kb.index(spec.n))),
            [&](KernelBuilder &kb) {
              kb.store(kb.convert(acc, spec.outputElementType), out,
                       {row, col});
            });
  };
  if (tensorCores) {
    Value g = kb.div(lane, kb.index(4));
    Value t2 = kb.mul(kb.rem(lane, kb.index(4)), kb.index(2));
    int64_t tilesN = tiles.tileN / 16;
    for (int64_t mi = 0; mi < tiles.tileM / 32; ++mi)
      for (int64_t ni = 0; ni < tilesN; ++ni)
        for (int64_t i = 0; i < 4; ++i) {
          Value row = kb.add(
              kb.add(mBlock, ownRow),
              kb.add(g, kb.index(mi * 16 + (i / 2) * 8)));
          Value col = kb.add(kb.add(nBlock, ownCol),
                             kb.add(t2, kb.index(ni * 8 + i % 2)));
          storeAt(row, col, accs[(mi * tilesN + ni) * 4 + i]);
        }
  } else {
    int64_t perM = tiles.tileM / 16, perN = tiles.tileN / 8;
    for (int64_t i = 0; i < perM; ++i)
      for (int64_t j = 0; j < perN; ++j)
        storeAt(kb.add(kb.add(mBlock, ownRow), kb.index(i)),
                kb.add(kb.add(nBlock, ownCol), kb.index(j)),
                accs[i * perN + j]);
  }
}

} // namespace

gpu::GPUFuncOp mlir::qnt::buildGpuMatmulKernel(OpBuilder &builder,
                                               gpu::GPUModuleOp module,
                                               StringRef name,
                                               const GpuMatmulKernelSpec &spec) {
  MLIRContext *ctx = builder.getContext();
  Location loc = module.getLoc();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(module.getBody());

  SmallVector<Type> argTypes = gpuMatmulArgumentTypes(spec);
  SmallVector<Type> workgroup;
  GemmTiles tiles{spec.options.gemmTileM, spec.options.gemmTileN,
                  spec.options.gemmTileK,
                  spec.usesTensorCores() ? kMmaPad : kSimtPad, {}, {}};
  if (spec.kind == GpuMatmulKind::Gemm) {
    Type staged = spec.usesTensorCores() ? spec.inputElementType
                                         : Type(Float32Type::get(ctx));
    auto shared = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    for (int64_t rows : {tiles.tileM, tiles.tileN})
      workgroup.push_back(MemRefType::get({rows, tiles.tileK + tiles.pad},
                                          staged, AffineMap(), shared));
  }
  auto func = gpu::GPUFuncOp::create(
      builder, loc, name, FunctionType::get(ctx, argTypes, {}), workgroup,
      TypeRange{});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                builder.getUnitAttr());
  std::array<int64_t, 3> block = spec.blockSize();
  func.setKnownBlockSizeAttr(builder.getDenseI32ArrayAttr(
      {int32_t(block[0]), int32_t(block[1]), int32_t(block[2])}));

  Block &entry = func.getBody().front();
  builder.setInsertionPointToStart(&entry);
  KernelBuilder kb{builder, loc};
  Value x = entry.getArgument(0);
  ValueRange components =
      entry.getArguments().slice(1, argTypes.size() - 2);
  Value out = entry.getArgument(argTypes.size() - 1);
  if (spec.kind == GpuMatmulKind::Gemv) {
    buildGemvBody(kb, spec, x, components, out);
  } else {
    tiles.aTile = func.getWorkgroupAttributions()[0];
    tiles.bTile = func.getWorkgroupAttributions()[1];
    buildGemmBody(kb, spec, tiles, x, components, out);
  }
  gpu::ReturnOp::create(builder, loc);
  return func;
}
