//===- AutodiffTest.cpp - Adjoints against finite differences -------------===//
//
// Each function is differentiated by buildAdjoint, compiled with its adjoint
// through the CPU pipeline, and the adjoint's vector-Jacobian products are
// compared with central finite differences of L = sum_i <r_i, dr_i> in
// double precision (the test functions are f64), element by element. The
// straight-through rounding and the quantized matmul have closed forms
// instead.
//
//===----------------------------------------------------------------------===//

#include "passes/autodiff/Adjoint.h"
#include "support/QntTestContext.h"
#include "support/TempDirTest.h"

#include "dialects/qnt/QntDialect.h"
#include "qnt/ParamStore.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/SyntheticModel.h"
#include "qnt/runtime/CpuJit.h"
#include "qnt/support/Random.h"


#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

using namespace mlir;
namespace rt = ::qnt::runtime;

namespace {

/// Elementwise bodies using every scalar rule.
constexpr const char *kScalars = R"mlir(
#id = affine_map<(i, j) -> (i, j)>
func.func @scalars(%x: tensor<3x4xf64>, %y: tensor<3x4xf64>) -> tensor<3x4xf64> {
  %e = tensor.empty() : tensor<3x4xf64>
  %r = linalg.generic {indexing_maps = [#id, #id, #id],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x, %y : tensor<3x4xf64>, tensor<3x4xf64>) outs(%e : tensor<3x4xf64>) {
  ^bb0(%a: f64, %b: f64, %out: f64):
    %one = arith.constant 1.0 : f64
    %two = arith.constant 2.0 : f64
    %ea = math.exp %a : f64
    %p = arith.mulf %ea, %b : f64
    %aa = arith.mulf %a, %a : f64
    %d = arith.addf %aa, %one : f64
    %q = arith.divf %p, %d : f64
    %bb = arith.mulf %b, %b : f64
    %bb1 = arith.addf %bb, %one : f64
    %s = math.sqrt %bb1 : f64
    %t = math.tanh %a : f64
    %u = arith.subf %t, %s : f64
    %mx = arith.maximumf %q, %u : f64
    %mn = arith.minimumf %mx, %a : f64
    %gt = arith.cmpf ogt, %a, %b : f64
    %nmn = arith.negf %mn : f64
    %sel = arith.select %gt, %mn, %nmn : f64
    %ab = math.absf %b : f64
    %ab1 = arith.addf %ab, %one : f64
    %pw = math.powf %ab1, %a : f64
    %absa = math.absf %a : f64
    %a2 = arith.addf %absa, %two : f64
    %lg = math.log %a2 : f64
    %sn = math.sin %b : f64
    %cs = math.cos %a : f64
    %rs = math.rsqrt %bb1 : f64
    %l1 = arith.mulf %lg, %sn : f64
    %l2 = math.fma %cs, %rs, %l1 : f64
    %s1 = arith.addf %sel, %pw : f64
    %s2 = arith.addf %s1, %l2 : f64
    linalg.yield %s2 : f64
  } -> tensor<3x4xf64>
  return %r : tensor<3x4xf64>
}
)mlir";

/// RMSNorm (a sum reduction broadcast back), softmax (maximum by compare
/// and select, and by maximumf), two matmul forms with two results, a
/// transpose, reshapes and slices, and a gather.
constexpr const char *kReductions = R"mlir(
#x2 = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
#col = affine_map<(i, j) -> (j)>
func.func @rmsnorm(%x: tensor<3x8xf64>, %w: tensor<8xf64>) -> tensor<3x8xf64> {
  %zero = arith.constant 0.0 : f64
  %e1 = tensor.empty() : tensor<3xf64>
  %z = linalg.fill ins(%zero : f64) outs(%e1 : tensor<3xf64>) -> tensor<3xf64>
  %ss = linalg.generic {indexing_maps = [#x2, #row],
                        iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<3x8xf64>) outs(%z : tensor<3xf64>) {
  ^bb0(%a: f64, %acc: f64):
    %sq = arith.mulf %a, %a : f64
    %n = arith.addf %acc, %sq : f64
    linalg.yield %n : f64
  } -> tensor<3xf64>
  %e2 = tensor.empty() : tensor<3x8xf64>
  %r = linalg.generic {indexing_maps = [#x2, #row, #col, #x2],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x, %ss, %w : tensor<3x8xf64>, tensor<3xf64>, tensor<8xf64>)
      outs(%e2 : tensor<3x8xf64>) {
  ^bb0(%a: f64, %s: f64, %g: f64, %out: f64):
    %width = arith.constant 8.0 : f64
    %eps = arith.constant 1.0e-5 : f64
    %one = arith.constant 1.0 : f64
    %mean = arith.divf %s, %width : f64
    %me = arith.addf %mean, %eps : f64
    %rt = math.sqrt %me : f64
    %inv = arith.divf %one, %rt : f64
    %sc = arith.mulf %inv, %a : f64
    %o = arith.mulf %g, %sc : f64
    linalg.yield %o : f64
  } -> tensor<3x8xf64>
  return %r : tensor<3x8xf64>
}

func.func @softmax(%x: tensor<3x6xf64>) -> (tensor<3x6xf64>, tensor<3xf64>) {
  %ninf = arith.constant 0xFFF0000000000000 : f64
  %zero = arith.constant 0.0 : f64
  %e1 = tensor.empty() : tensor<3xf64>
  %init = linalg.fill ins(%ninf : f64) outs(%e1 : tensor<3xf64>) -> tensor<3xf64>
  %mx = linalg.generic {indexing_maps = [#x2, #row],
                        iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<3x6xf64>) outs(%init : tensor<3xf64>) {
  ^bb0(%a: f64, %acc: f64):
    %gt = arith.cmpf ogt, %a, %acc : f64
    %m = arith.select %gt, %a, %acc : f64
    linalg.yield %m : f64
  } -> tensor<3xf64>
  %mx2 = linalg.generic {indexing_maps = [#x2, #row],
                         iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<3x6xf64>) outs(%init : tensor<3xf64>) {
  ^bb0(%a: f64, %acc: f64):
    %m = arith.maximumf %acc, %a : f64
    linalg.yield %m : f64
  } -> tensor<3xf64>
  %e2 = tensor.empty() : tensor<3x6xf64>
  %ex = linalg.generic {indexing_maps = [#x2, #row, #x2],
                        iterator_types = ["parallel", "parallel"]}
      ins(%x, %mx : tensor<3x6xf64>, tensor<3xf64>) outs(%e2 : tensor<3x6xf64>) {
  ^bb0(%a: f64, %m: f64, %out: f64):
    %d = arith.subf %a, %m : f64
    %v = math.exp %d : f64
    linalg.yield %v : f64
  } -> tensor<3x6xf64>
  %z = linalg.fill ins(%zero : f64) outs(%e1 : tensor<3xf64>) -> tensor<3xf64>
  %sum = linalg.generic {indexing_maps = [#x2, #row],
                         iterator_types = ["parallel", "reduction"]}
      ins(%ex : tensor<3x6xf64>) outs(%z : tensor<3xf64>) {
  ^bb0(%a: f64, %acc: f64):
    %n = arith.addf %acc, %a : f64
    linalg.yield %n : f64
  } -> tensor<3xf64>
  %p = linalg.generic {indexing_maps = [#x2, #row, #x2],
                       iterator_types = ["parallel", "parallel"]}
      ins(%ex, %sum : tensor<3x6xf64>, tensor<3xf64>) outs(%e2 : tensor<3x6xf64>) {
  ^bb0(%a: f64, %s: f64, %out: f64):
    %v = arith.divf %a, %s : f64
    linalg.yield %v : f64
  } -> tensor<3x6xf64>
  return %p, %mx2 : tensor<3x6xf64>, tensor<3xf64>
}

func.func @matmuls(%x: tensor<3x4xf64>, %w: tensor<5x4xf64>, %v: tensor<4x2xf64>)
    -> (tensor<3x5xf64>, tensor<3x2xf64>, tensor<4x3xf64>) {
  %zero = arith.constant 0.0 : f64
  %e1 = tensor.empty() : tensor<3x5xf64>
  %z1 = linalg.fill ins(%zero : f64) outs(%e1 : tensor<3x5xf64>) -> tensor<3x5xf64>
  %y1 = linalg.matmul
      indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                       affine_map<(m, n, k) -> (n, k)>,
                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf64>, tensor<5x4xf64>) outs(%z1 : tensor<3x5xf64>) -> tensor<3x5xf64>
  %e2 = tensor.empty() : tensor<3x2xf64>
  %z2 = linalg.fill ins(%zero : f64) outs(%e2 : tensor<3x2xf64>) -> tensor<3x2xf64>
  %y2 = linalg.matmul ins(%x, %v : tensor<3x4xf64>, tensor<4x2xf64>)
      outs(%z2 : tensor<3x2xf64>) -> tensor<3x2xf64>
  %e3 = tensor.empty() : tensor<4x3xf64>
  %t = linalg.transpose ins(%x : tensor<3x4xf64>) outs(%e3 : tensor<4x3xf64>) permutation = [1, 0]
  return %y1, %y2, %t : tensor<3x5xf64>, tensor<3x2xf64>, tensor<4x3xf64>
}

func.func @shapes(%x: tensor<2x6xf64>, %y: tensor<3x4xf64>) -> (tensor<3x4xf64>, tensor<3x2xf64>) {
  %x3 = tensor.expand_shape %x [[0], [1, 2]] output_shape [2, 2, 3] : tensor<2x6xf64> into tensor<2x2x3xf64>
  %e = tensor.empty() : tensor<3x2x2xf64>
  %t = linalg.transpose ins(%x3 : tensor<2x2x3xf64>) outs(%e : tensor<3x2x2xf64>) permutation = [2, 0, 1]
  %c = tensor.collapse_shape %t [[0], [1, 2]] : tensor<3x2x2xf64> into tensor<3x4xf64>
  %s = tensor.extract_slice %c[0, 1] [3, 2] [1, 1] : tensor<3x4xf64> to tensor<3x2xf64>
  %i = tensor.insert_slice %s into %y[0, 2] [3, 2] [1, 1] : tensor<3x2xf64> into tensor<3x4xf64>
  %ca = tensor.cast %s : tensor<3x2xf64> to tensor<?x2xf64>
  %cb = tensor.cast %ca : tensor<?x2xf64> to tensor<3x2xf64>
  return %i, %cb : tensor<3x4xf64>, tensor<3x2xf64>
}

// A generic without loops reading an element (a gather in a rank-0
// iteration space) times a scalar operand; a fill of a differentiated
// scalar.
func.func @pick(%x: tensor<4xf64>, %a: tensor<f64>) -> tensor<f64> {
  %s = tensor.extract %a[] : tensor<f64>
  %e = tensor.empty() : tensor<f64>
  %r = linalg.generic {indexing_maps = [affine_map<() -> ()>, affine_map<() -> ()>],
                       iterator_types = []}
      ins(%s : f64) outs(%e : tensor<f64>) {
  ^bb0(%in: f64, %o: f64):
    %c2 = arith.constant 2 : index
    %v = tensor.extract %x[%c2] : tensor<4xf64>
    %m = arith.mulf %v, %in : f64
    linalg.yield %m : f64
  } -> tensor<f64>
  return %r : tensor<f64>
}

func.func @fill(%a: tensor<f64>) -> tensor<3xf64> {
  %s = tensor.extract %a[] : tensor<f64>
  %e = tensor.empty() : tensor<3xf64>
  %f = linalg.fill ins(%s : f64) outs(%e : tensor<3xf64>) -> tensor<3xf64>
  return %f : tensor<3xf64>
}

// RoPE's form: the rotation partner read with tensor.extract (a gather).
func.func @gather(%x: tensor<2x4xf64>) -> tensor<2x4xf64> {
  %e = tensor.empty() : tensor<2x4xf64>
  %r = linalg.generic {indexing_maps = [#x2], iterator_types = ["parallel", "parallel"]}
      outs(%e : tensor<2x4xf64>) {
  ^bb0(%o: f64):
    %t = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %odd = arith.remui %j, %c2 : index
    %c0 = arith.constant 0 : index
    %first = arith.cmpi eq, %odd, %c0 : index
    %up = arith.addi %j, %c1 : index
    %down = arith.subi %j, %c1 : index
    %partner = arith.select %first, %up, %down : index
    %ji = arith.index_cast %j : index to i64
    %jf = arith.sitofp %ji : i64 to f64
    %ti = arith.index_cast %t : index to i64
    %tf = arith.sitofp %ti : i64 to f64
    %angle = arith.addf %jf, %tf : f64
    %cos = math.cos %angle : f64
    %sin = math.sin %angle : f64
    %self = tensor.extract %x[%t, %j] : tensor<2x4xf64>
    %other = tensor.extract %x[%t, %partner] : tensor<2x4xf64>
    %a = arith.mulf %self, %cos : f64
    %b = arith.mulf %other, %sin : f64
    %nb = arith.negf %b : f64
    %sb = arith.select %first, %nb, %b : f64
    %y = arith.addf %a, %sb : f64
    linalg.yield %y : f64
  } -> tensor<2x4xf64>
  return %r : tensor<2x4xf64>
}
)mlir";

/// Causal attention as the importer writes it: scores reduced over the
/// head dimension, the mask applied in place (the output operand read as
/// the input), softmax, and the value product.
constexpr const char *kAttention = R"mlir(
#q = affine_map<(t, d, s) -> (t, d)>
#k = affine_map<(t, d, s) -> (s, d)>
#sc = affine_map<(t, d, s) -> (t, s)>
#x2 = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
#p = affine_map<(t, s, d) -> (t, s)>
#v = affine_map<(t, s, d) -> (s, d)>
#o = affine_map<(t, s, d) -> (t, d)>
func.func @attention(%q: tensor<3x4xf64>, %k: tensor<3x4xf64>, %v: tensor<3x4xf64>) -> tensor<3x4xf64> {
  %zero = arith.constant 0.0 : f64
  %ninf = arith.constant 0xFFF0000000000000 : f64
  %e = tensor.empty() : tensor<3x3xf64>
  %z = linalg.fill ins(%zero : f64) outs(%e : tensor<3x3xf64>) -> tensor<3x3xf64>
  %s0 = linalg.generic {indexing_maps = [#q, #k, #sc],
                        iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%q, %k : tensor<3x4xf64>, tensor<3x4xf64>) outs(%z : tensor<3x3xf64>) {
  ^bb0(%a: f64, %b: f64, %acc: f64):
    %m = arith.mulf %a, %b : f64
    %n = arith.addf %acc, %m : f64
    linalg.yield %n : f64
  } -> tensor<3x3xf64>
  %s1 = linalg.generic {indexing_maps = [#x2], iterator_types = ["parallel", "parallel"]}
      outs(%s0 : tensor<3x3xf64>) {
  ^bb0(%a: f64):
    %t = linalg.index 0 : index
    %s = linalg.index 1 : index
    %future = arith.cmpi ugt, %s, %t : index
    %half = arith.constant 0.5 : f64
    %scaled = arith.mulf %a, %half : f64
    %r = arith.select %future, %ninf, %scaled : f64
    linalg.yield %r : f64
  } -> tensor<3x3xf64>
  %e1 = tensor.empty() : tensor<3xf64>
  %init = linalg.fill ins(%ninf : f64) outs(%e1 : tensor<3xf64>) -> tensor<3xf64>
  %mx = linalg.generic {indexing_maps = [#x2, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s1 : tensor<3x3xf64>) outs(%init : tensor<3xf64>) {
  ^bb0(%a: f64, %acc: f64):
    %gt = arith.cmpf ogt, %a, %acc : f64
    %m = arith.select %gt, %a, %acc : f64
    linalg.yield %m : f64
  } -> tensor<3xf64>
  %ex = linalg.generic {indexing_maps = [#x2, #row, #x2], iterator_types = ["parallel", "parallel"]}
      ins(%s1, %mx : tensor<3x3xf64>, tensor<3xf64>) outs(%e : tensor<3x3xf64>) {
  ^bb0(%a: f64, %m: f64, %out: f64):
    %d = arith.subf %a, %m : f64
    %r = math.exp %d : f64
    linalg.yield %r : f64
  } -> tensor<3x3xf64>
  %z1 = linalg.fill ins(%zero : f64) outs(%e1 : tensor<3xf64>) -> tensor<3xf64>
  %sum = linalg.generic {indexing_maps = [#x2, #row], iterator_types = ["parallel", "reduction"]}
      ins(%ex : tensor<3x3xf64>) outs(%z1 : tensor<3xf64>) {
  ^bb0(%a: f64, %acc: f64):
    %n = arith.addf %acc, %a : f64
    linalg.yield %n : f64
  } -> tensor<3xf64>
  %pr = linalg.generic {indexing_maps = [#x2, #row, #x2], iterator_types = ["parallel", "parallel"]}
      ins(%ex, %sum : tensor<3x3xf64>, tensor<3xf64>) outs(%e : tensor<3x3xf64>) {
  ^bb0(%a: f64, %s: f64, %out: f64):
    %r = arith.divf %a, %s : f64
    linalg.yield %r : f64
  } -> tensor<3x3xf64>
  %eo = tensor.empty() : tensor<3x4xf64>
  %zo = linalg.fill ins(%zero : f64) outs(%eo : tensor<3x4xf64>) -> tensor<3x4xf64>
  %out = linalg.generic {indexing_maps = [#p, #v, #o],
                         iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%pr, %v : tensor<3x3xf64>, tensor<3x4xf64>) outs(%zo : tensor<3x4xf64>) {
  ^bb0(%a: f64, %b: f64, %acc: f64):
    %m = arith.mulf %a, %b : f64
    %n = arith.addf %acc, %m : f64
    linalg.yield %n : f64
  } -> tensor<3x4xf64>
  return %out : tensor<3x4xf64>
}
)mlir";

/// Symmetric 3-bit fake quantization with a learnable scale: rounding is
/// straight-through, the clamp is not.
constexpr const char *kFakeQuant = R"mlir(
#x2 = affine_map<(i, j) -> (i, j)>
#s = affine_map<(i, j) -> ()>
func.func @fake_quant(%x: tensor<4x5xf64>, %s: tensor<f64>) -> tensor<4x5xf64> {
  %e = tensor.empty() : tensor<4x5xf64>
  %r = linalg.generic {indexing_maps = [#x2, #s, #x2], iterator_types = ["parallel", "parallel"]}
      ins(%x, %s : tensor<4x5xf64>, tensor<f64>) outs(%e : tensor<4x5xf64>) {
  ^bb0(%a: f64, %scale: f64, %out: f64):
    %lo = arith.constant -4.0 : f64
    %hi = arith.constant 3.0 : f64
    %d = arith.divf %a, %scale : f64
    %q = math.roundeven %d : f64
    %c1 = arith.maximumf %q, %lo : f64
    %c2 = arith.minimumf %c1, %hi : f64
    %y = arith.mulf %c2, %scale : f64
    linalg.yield %y : f64
  } -> tensor<4x5xf64>
  return %r : tensor<4x5xf64>
}
)mlir";

/// A quantized matmul: the activation's gradient is dy times the
/// dequantized weight.
constexpr const char *kQntMatmul = R"mlir(
func.func @linear(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %codes = arith.constant dense<[[1, -2, 3, 4], [-5, 6, 7, -8], [9, 10, -11, 12]]> : tensor<3x4xi8>
  %scales = arith.constant dense<[[0.5], [0.25], [2.0]]> : tensor<3x1xf32>
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x4xf32>, tensor<3x4xi8>, tensor<3x1xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}
)mlir";

/// qnt ops differentiated through their reference lowering: a learnable
/// static activation scale (LSQ-style), smoothing factors, a low-rank
/// correction, and the float scales of a quantized weight.
constexpr const char *kQntOps = R"mlir(
func.func @fq(%x: tensor<4x5xf32>, %s: tensor<f32>) -> tensor<4x5xf32> {
  %y = qnt.fake_quant %x scale(%s : tensor<f32>) {bits = 3, granularity = #qnt<act_granularity per_tensor>} : tensor<4x5xf32>
  return %y : tensor<4x5xf32>
}
func.func @smooth(%x: tensor<3x4xf32>, %f: tensor<4xf32>) -> tensor<3x4xf32> {
  %y = qnt.smooth %x, %f : tensor<3x4xf32>, tensor<4xf32>
  return %y : tensor<3x4xf32>
}
func.func @lowrank(%acc: tensor<2x3xf32>, %x: tensor<2x4xf32>, %u: tensor<3x2xf32>, %v: tensor<4x2xf32>) -> tensor<2x3xf32> {
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x3xf32>, tensor<2x4xf32>, tensor<3x2xf32>, tensor<4x2xf32>
  return %y : tensor<2x3xf32>
}
func.func @scales(%x: tensor<2x4xf32>, %scales: tensor<3x1xf32>) -> tensor<2x3xf32> {
  %codes = arith.constant dense<[[1, -2, 3, 4], [-5, 6, 7, -8], [9, 10, -11, 12]]> : tensor<3x4xi8>
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x4xf32>, tensor<3x4xi8>, tensor<3x1xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}
)mlir";

class AutodiffTest : public ::qnt::testing::TempDirTest,
                     protected ::qnt::testing::QntTestContext {
protected:
  AutodiffTest() : TempDirTest("qnt-autodiff") {}

  /// Parses `source`, builds `<f>_adjoint` for every function `f` with
  /// respect to all of its arguments, and compiles both.
  std::unique_ptr<rt::CompiledModule> compile(const char *source) {
    module = parseSourceString<ModuleOp>(source, &ctx);
    if (!module)
      return nullptr;
    std::vector<std::string> entries;
    SmallVector<func::FuncOp> funcs(module->getOps<func::FuncOp>());
    for (func::FuncOp func : funcs) {
      SmallVector<unsigned> wrt;
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        wrt.push_back(i);
      std::string name = func.getSymName().str() + "_adjoint";
      if (failed(mlir::qnt::buildAdjoint(func, wrt, name)))
        return nullptr;
      entries.push_back(func.getSymName().str());
      entries.push_back(name);
    }
    auto compiled = rt::CompiledModule::compile(*module, entries);
    if (failed(compiled))
      return nullptr;
    if (failed((*compiled)->bindParams(mlir::qnt::ParamStore(),
                                       module->getLoc())))
      return nullptr;
    return std::move(*compiled);
  }

  static std::vector<double> random(uint64_t seed, int64_t n) {
    ::qnt::Xoshiro256 rng(seed);
    std::vector<double> v(static_cast<size_t>(n));
    for (double &x : v)
      x = 2 * rng.uniform() - 1;
    return v;
  }

  /// An owned copy of `values` as a tensor of `type` (f64, or i64 for
  /// positions).
  static rt::HostTensor copy(RankedTensorType type,
                             const std::vector<double> &values) {
    rt::HostTensor tensor(type);
    for (size_t e = 0; e < values.size(); ++e) {
      if (type.getElementType().isInteger(64))
        static_cast<int64_t *>(tensor.data())[e] = int64_t(values[e]);
      else
        static_cast<double *>(tensor.data())[e] = values[e];
    }
    return tensor;
  }

  /// One function to check: concrete argument and result types, argument
  /// values, and the arguments differentiated (in the adjoint's order).
  struct Problem {
    std::string function;
    std::vector<RankedTensorType> inputs, results;
    std::vector<std::vector<double>> args;
    std::vector<unsigned> wrt;
  };

  /// A problem with seeded random arguments for a function of static types,
  /// differentiated with respect to every argument.
  Problem staticProblem(rt::CompiledModule &m, StringRef f, uint64_t seed,
                        double scale) {
    const rt::EntrySignature *sig = m.signature(f);
    EXPECT_TRUE(sig);
    Problem p{f.str(), sig->inputs, sig->results, {}, {}};
    for (auto [i, type] : llvm::enumerate(sig->inputs)) {
      p.args.push_back(random(seed++, type.getNumElements()));
      for (double &x : p.args.back())
        x *= scale;
      p.wrt.push_back(i);
    }
    return p;
  }

  /// sum_i <f(args)_i, cotangents_i>.
  double pairing(rt::CompiledModule &m, const Problem &p,
                 const std::vector<std::vector<double>> &args,
                 const std::vector<std::vector<double>> &cotangents) {
    std::vector<rt::HostTensor> inputs, results;
    // Copies: compiled code may write into its argument buffers.
    for (size_t i = 0; i < args.size(); ++i)
      inputs.push_back(copy(p.inputs[i], args[i]));
    EXPECT_TRUE(succeeded(
        m.call(p.function, inputs, results, module->getLoc(), p.results)));
    double total = 0;
    for (size_t r = 0; r < results.size(); ++r)
      for (int64_t e = 0; e < results[r].numElements(); ++e)
        total += static_cast<const double *>(results[r].data())[e] *
                 cotangents[r][e];
    return total;
  }

  /// Checks the adjoint of `p.function` against central differences, on
  /// every element of arguments of up to 256 elements and on about 24
  /// spread elements of larger ones (weights). Returns how many elements
  /// were checked and how many had a nonzero gradient.
  std::pair<int, int> expectAdjointMatchesDifferences(rt::CompiledModule &m,
                                                      Problem p,
                                                      uint64_t seed) {
    std::vector<std::vector<double>> cotangents;
    for (RankedTensorType type : p.results)
      cotangents.push_back(random(seed++, type.getNumElements()));
    std::vector<rt::HostTensor> inputs, gradients;
    for (size_t i = 0; i < p.args.size(); ++i)
      inputs.push_back(copy(p.inputs[i], p.args[i]));
    for (size_t r = 0; r < cotangents.size(); ++r)
      inputs.push_back(copy(p.results[r], cotangents[r]));
    std::vector<RankedTensorType> gradientTypes;
    for (unsigned a : p.wrt)
      gradientTypes.push_back(p.inputs[a]);
    if (failed(m.call(p.function + "_adjoint", inputs, gradients,
                      module->getLoc(), gradientTypes)) ||
        gradients.size() != p.wrt.size()) {
      ADD_FAILURE() << "cannot call " << p.function << "_adjoint";
      return {0, 0};
    }
    int checked = 0, nonzero = 0;
    const double h = 1e-6;
    std::vector<std::vector<double>> args = p.args;
    for (auto [g, a] : llvm::enumerate(p.wrt)) {
      int64_t size = int64_t(args[a].size());
      int64_t stride = size <= 256 ? 1 : size / 24;
      for (int64_t e = 0; e < size; e += stride) {
        double saved = args[a][e];
        args[a][e] = saved + h;
        double up = pairing(m, p, args, cotangents);
        args[a][e] = saved - h;
        double down = pairing(m, p, args, cotangents);
        args[a][e] = saved;
        double numeric = (up - down) / (2 * h);
        double analytic = static_cast<const double *>(gradients[g].data())[e];
        EXPECT_NEAR(analytic, numeric, 1e-6 * (1 + std::abs(numeric)))
            << p.function << ": argument " << a << " element " << e;
        ++checked;
        nonzero += analytic != 0;
      }
    }
    return {checked, nonzero};
  }

  void expectAdjointMatchesDifferences(rt::CompiledModule &m, StringRef f,
                                       uint64_t seed, double scale = 1.0) {
    expectAdjointMatchesDifferences(m, staticProblem(m, f, seed, scale),
                                    seed + 100);
  }

  OwningOpRef<ModuleOp> module;
};

TEST_F(AutodiffTest, ScalarRules) {
  auto m = compile(kScalars);
  ASSERT_TRUE(m);
  expectAdjointMatchesDifferences(*m, "scalars", 1);
}

TEST_F(AutodiffTest, ReductionsMatmulsAndShapes) {
  auto m = compile(kReductions);
  ASSERT_TRUE(m);
  for (const char *f :
       {"rmsnorm", "softmax", "matmuls", "shapes", "gather", "pick", "fill"})
    expectAdjointMatchesDifferences(*m, f, 10);
}

TEST_F(AutodiffTest, CausalAttention) {
  auto m = compile(kAttention);
  ASSERT_TRUE(m);
  expectAdjointMatchesDifferences(*m, "attention", 20, 2.0);
}

/// The tiny synthetic model as the importer writes it, its parameters bound
/// as arguments, then rewritten in f64 (every f32 type and the f32 -inf of
/// the attention mask), so that finite differences are exact enough to
/// check the whole block and head.
TEST_F(AutodiffTest, ImportedLlamaBlockAndHead) {
  namespace io = ::qnt::io;
  io::SyntheticModelOptions options;
  ASSERT_TRUE(io::syntheticPreset("tiny", &options.config));
  const io::LlamaConfig &c = options.config;
  std::string error, path = pathOf("tiny.bin");
  ASSERT_TRUE(io::writeSyntheticLlama2c(path, options, 0, io::DType::F32,
                                        &error))
      << error;
  OwningOpRef<ModuleOp> imported =
      mlir::qnt::loadModel(&ctx, path, "qnt-bind-params");
  ASSERT_TRUE(imported);
  auto store = mlir::qnt::ParamStore::open(*imported);
  ASSERT_TRUE(succeeded(store));
  // Arguments: random activations and caches, the checkpoint's weights.
  auto problemFor = [&](StringRef name, int64_t rows, int64_t cacheRows,
                        uint64_t seed) {
    auto func = imported->lookupSymbol<func::FuncOp>(name);
    Problem p;
    p.function = name.str();
    auto f64 = Float64Type::get(&ctx);
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      auto type = cast<RankedTensorType>(func.getArgument(i).getType());
      SmallVector<int64_t> shape(type.getShape());
      if (!shape.empty() && ShapedType::isDynamic(shape[0]))
        shape[0] = i == 0 ? rows : cacheRows;
      Type element = type.getElementType().isF32() ? Type(f64)
                                                   : type.getElementType();
      p.inputs.push_back(RankedTensorType::get(shape, element));
      if (auto param =
              func.getArgAttrOfType<StringAttr>(i, mlir::qnt::kParamArgAttrName)) {
        auto values = store->readAsF32(func.getLoc(), param.getValue(), type);
        EXPECT_TRUE(succeeded(values));
        p.args.emplace_back(values->begin(), values->end());
      } else if (type.getElementType().isInteger(64)) {
        p.args.push_back({1.0}); // pos: one cached row before this call
        continue;
      } else {
        p.args.push_back(random(seed++, p.inputs.back().getNumElements()));
      }
      p.wrt.push_back(i);
    }
    for (Type result : func.getResultTypes()) {
      auto type = cast<RankedTensorType>(result);
      SmallVector<int64_t> shape(type.getShape());
      shape[0] = rows;
      p.results.push_back(RankedTensorType::get(shape, f64));
    }
    return p;
  };
  Problem block = problemFor("block0", 2, 4, 40);
  Problem head = problemFor("head", 2, 0, 50);
  // The caches' shape, the positions and the weights all took part.
  ASSERT_EQ(block.inputs.size(), 4u + 9u);
  EXPECT_EQ(block.inputs[2].getShape(), ArrayRef<int64_t>({4, c.kvDim()}));
  EXPECT_EQ(block.wrt.size(), 12u);
  EXPECT_EQ(head.wrt.size(), head.inputs.size());

  std::string text;
  llvm::raw_string_ostream os(text);
  imported->print(os);
  auto replaceAll = [&](StringRef from, StringRef to) {
    for (size_t at = text.find(from.str()); at != std::string::npos;
         at = text.find(from.str(), at + to.size()))
      text.replace(at, from.size(), to.str());
  };
  replaceAll("f32", "f64");
  replaceAll("0xFF800000", "0xFFF0000000000000");
  module = parseSourceString<ModuleOp>(text, &ctx);
  ASSERT_TRUE(module);
  // Weights are passed like the other arguments, not bound from files.
  for (auto func : module->getOps<func::FuncOp>())
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      func.removeArgAttr(i, mlir::qnt::kParamArgAttrName);
  std::vector<std::string> entries;
  for (Problem *p : {&block, &head}) {
    auto func = module->lookupSymbol<func::FuncOp>(p->function);
    ASSERT_TRUE(succeeded(mlir::qnt::buildAdjoint(
        func, SmallVector<unsigned>(p->wrt.begin(), p->wrt.end()),
        p->function + "_adjoint")));
    entries.push_back(p->function);
    entries.push_back(p->function + "_adjoint");
  }
  auto compiled = rt::CompiledModule::compile(*module, entries);
  ASSERT_TRUE(succeeded(compiled));
  ASSERT_TRUE(succeeded(
      (*compiled)->bindParams(mlir::qnt::ParamStore(), module->getLoc())));
  // x and both caches whole, about 24 elements of each weight. Only the
  // cache rows at positions >= pos (1) have no gradient: rows 1 and 2 are
  // overwritten by this call's keys and values, row 3 is not read.
  auto [blockChecked, blockNonzero] =
      expectAdjointMatchesDifferences(**compiled, block, 60);
  EXPECT_GE(blockChecked, 2 * c.dim + 2 * 4 * c.kvDim() + 9 * 24);
  EXPECT_EQ(blockChecked - blockNonzero, 2 * 3 * c.kvDim());
  auto [headChecked, headNonzero] =
      expectAdjointMatchesDifferences(**compiled, head, 70);
  EXPECT_GE(headChecked, 2 * c.dim + 2 * 24);
  EXPECT_GE(headNonzero, headChecked - 8);
}

TEST_F(AutodiffTest, TiedMaximaShareTheCotangent) {
  auto m = compile(R"mlir(
func.func @rowmax(%x: tensor<2x4xf64>) -> tensor<2xf64> {
  %ninf = arith.constant 0xFFF0000000000000 : f64
  %e = tensor.empty() : tensor<2xf64>
  %init = linalg.fill ins(%ninf : f64) outs(%e : tensor<2xf64>) -> tensor<2xf64>
  %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<2x4xf64>) outs(%init : tensor<2xf64>) {
  ^bb0(%a: f64, %acc: f64):
    %v = arith.maximumf %acc, %a : f64
    linalg.yield %v : f64
  } -> tensor<2xf64>
  return %r : tensor<2xf64>
}
)mlir");
  ASSERT_TRUE(m);
  // As torch's amax: k tied maxima get 1/k of the cotangent each.
  std::vector<double> x = {1, 3, 3, 2, 5, -1, 5, 5}, dy = {1, 3};
  auto type = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, Float64Type::get(&ctx));
  };
  std::vector<rt::HostTensor> gradients;
  ASSERT_TRUE(succeeded(m->call(
      "rowmax_adjoint",
      {rt::HostTensor(type({2, 4}), x.data()), rt::HostTensor(type({2}), dy.data())},
      gradients, module->getLoc())));
  std::vector<double> expected = {0, 0.5, 0.5, 0, 1, 0, 1, 1};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_DOUBLE_EQ(static_cast<const double *>(gradients[0].data())[i],
                     expected[i])
        << i;
}

TEST_F(AutodiffTest, RoundingIsStraightThroughAndClampingIsNot) {
  auto m = compile(kFakeQuant);
  ASSERT_TRUE(m);
  // x/s spread over the grid and beyond both ends of [-4, 3].
  std::vector<double> x = random(30, 20), s = {0.25}, dy = random(31, 20);
  for (double &v : x)
    v *= 1.6;
  auto type = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, Float64Type::get(&ctx));
  };
  std::vector<rt::HostTensor> inputs = {
      rt::HostTensor(type({4, 5}), x.data()), rt::HostTensor(type({}), s.data()),
      rt::HostTensor(type({4, 5}), dy.data())};
  std::vector<rt::HostTensor> gradients;
  ASSERT_TRUE(succeeded(
      m->call("fake_quant_adjoint", inputs, gradients, module->getLoc())));
  const double *dx = static_cast<const double *>(gradients[0].data());
  double ds = static_cast<const double *>(gradients[1].data())[0];
  // y = s clamp(round(x / s)): inside the clamp dy/dx = 1 (STE) and
  // dy/ds = round(x/s) - x/s; outside, dy/dx = 0 and dy/ds = the bound.
  double expectedDs = 0;
  int inside = 0, outside = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double r = std::nearbyint(x[i] / s[0]);
    bool clamped = r < -4 || r > 3;
    (clamped ? outside : inside) += 1;
    EXPECT_DOUBLE_EQ(dx[i], clamped ? 0.0 : dy[i]) << i;
    expectedDs += dy[i] * (clamped ? std::clamp(r, -4.0, 3.0) : r - x[i] / s[0]);
  }
  EXPECT_NEAR(ds, expectedDs, 1e-12);
  EXPECT_GT(inside, 3);
  EXPECT_GT(outside, 3);
}

TEST_F(AutodiffTest, QntOpsThroughTheirReferenceLowering) {
  auto m = compile(kQntOps);
  ASSERT_TRUE(m);
  auto type = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, Float32Type::get(&ctx));
  };
  auto call = [&](StringRef f, std::vector<std::pair<std::vector<int64_t>,
                                                     std::vector<float> *>>
                                   args) {
    std::vector<rt::HostTensor> inputs, results;
    for (auto &[shape, data] : args)
      inputs.emplace_back(type(shape), data->data());
    EXPECT_TRUE(succeeded(m->call(f, inputs, results, module->getLoc())));
    return results;
  };
  auto near = [](double a, double b) {
    return std::abs(a - b) <= 1e-5 * (1 + std::abs(b));
  };
  {
    // y = s clamp(round(x / s), -4, 3) with a learnable s (LSQ).
    std::vector<float> x(20), s = {0.25f}, dy(20);
    for (int i = 0; i < 20; ++i) {
      x[i] = 0.11f * float(i - 10) + 0.013f;
      dy[i] = 0.5f - 0.07f * float(i);
    }
    auto g = call("fq_adjoint", {{{4, 5}, &x}, {{}, &s}, {{4, 5}, &dy}});
    double ds = 0;
    for (int i = 0; i < 20; ++i) {
      double r = std::nearbyint(double(x[i]) / s[0]);
      bool clamped = r < -4 || r > 3;
      EXPECT_FLOAT_EQ(g[0].f32()[i], clamped ? 0.0f : dy[i]) << i;
      ds += dy[i] * (clamped ? std::clamp(r, -4.0, 3.0) : r - x[i] / s[0]);
    }
    EXPECT_TRUE(near(g[1].f32()[0], ds)) << g[1].f32()[0] << " vs " << ds;
  }
  {
    // y = x / f: dx = dy / f, df = -sum_t dy x / f^2.
    std::vector<float> x(12), f = {0.5f, 2.0f, -1.5f, 4.0f}, dy(12);
    for (int i = 0; i < 12; ++i) {
      x[i] = 0.3f * float(i) - 1.0f;
      dy[i] = 1.0f - 0.15f * float(i);
    }
    auto g = call("smooth_adjoint", {{{3, 4}, &x}, {{4}, &f}, {{3, 4}, &dy}});
    for (int k = 0; k < 4; ++k) {
      double df = 0;
      for (int t = 0; t < 3; ++t) {
        EXPECT_TRUE(near(g[0].f32()[t * 4 + k], dy[t * 4 + k] / f[k]));
        df -= dy[t * 4 + k] * x[t * 4 + k] / (double(f[k]) * f[k]);
      }
      EXPECT_TRUE(near(g[1].f32()[k], df)) << k;
    }
  }
  {
    // y = acc + (x V) U^T: dacc = g, dx = g U V^T, dU = g^T (x V),
    // dV = x^T (g U).
    std::vector<float> acc(6, 0.5f), x(8), u(6), v(8), dy(6);
    for (int i = 0; i < 8; ++i) {
      x[i] = 0.2f * float(i) - 0.7f;
      v[i] = 0.1f * float(7 - i);
    }
    for (int i = 0; i < 6; ++i) {
      u[i] = 0.3f - 0.1f * float(i);
      dy[i] = 0.25f * float(i) - 0.6f;
    }
    auto g = call("lowrank_adjoint", {{{2, 3}, &acc}, {{2, 4}, &x},
                                      {{3, 2}, &u}, {{4, 2}, &v}, {{2, 3}, &dy}});
    auto at = [](const std::vector<float> &a, int cols, int r, int c) {
      return double(a[r * cols + c]);
    };
    for (int i = 0; i < 6; ++i)
      EXPECT_FLOAT_EQ(g[0].f32()[i], dy[i]);
    for (int m = 0; m < 2; ++m)
      for (int k = 0; k < 4; ++k) {
        double e = 0;
        for (int n = 0; n < 3; ++n)
          for (int r = 0; r < 2; ++r)
            e += at(dy, 3, m, n) * at(u, 2, n, r) * at(v, 2, k, r);
        EXPECT_TRUE(near(g[1].f32()[m * 4 + k], e)) << m << "," << k;
      }
    for (int n = 0; n < 3; ++n)
      for (int r = 0; r < 2; ++r) {
        double e = 0;
        for (int m = 0; m < 2; ++m)
          for (int k = 0; k < 4; ++k)
            e += at(dy, 3, m, n) * at(x, 4, m, k) * at(v, 2, k, r);
        EXPECT_TRUE(near(g[2].f32()[n * 2 + r], e)) << n << "," << r;
      }
    for (int k = 0; k < 4; ++k)
      for (int r = 0; r < 2; ++r) {
        double e = 0;
        for (int m = 0; m < 2; ++m)
          for (int n = 0; n < 3; ++n)
            e += at(x, 4, m, k) * at(dy, 3, m, n) * at(u, 2, n, r);
        EXPECT_TRUE(near(g[3].f32()[k * 2 + r], e)) << k << "," << r;
      }
  }
  {
    // y[i, n] = s[n] sum_k x[i, k] c[n, k]: ds[n] = sum_i dy[i, n] y[i, n] / s[n].
    std::vector<float> x = {1, 2, 3, 4, -1, 0.5f, 2, -3};
    std::vector<float> s = {0.5f, 0.25f, 2.0f}, dy = {1, -1, 0.5f, 2, 0.25f, -3};
    auto y = call("scales", {{{2, 4}, &x}, {{3, 1}, &s}});
    auto g = call("scales_adjoint", {{{2, 4}, &x}, {{3, 1}, &s}, {{2, 3}, &dy}});
    for (int n = 0; n < 3; ++n) {
      double e = 0;
      for (int i = 0; i < 2; ++i)
        e += dy[i * 3 + n] * y[0].f32()[i * 3 + n] / s[n];
      EXPECT_TRUE(near(g[1].f32()[n], e)) << n << ": " << g[1].f32()[n]
                                          << " vs " << e;
      EXPECT_NE(e, 0.0);
    }
  }
}

TEST_F(AutodiffTest, QuantizedMatmulUsesTheDequantizedWeight) {
  auto m = compile(kQntMatmul);
  ASSERT_TRUE(m);
  auto type = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, Float32Type::get(&ctx));
  };
  // The weight as the fused forward kernel applies it: y = x W^T on the
  // unit rows x = e_k gives W[:, k].
  float w[3][4];
  for (int k = 0; k < 4; ++k) {
    std::vector<float> unit(8, 0.0f);
    unit[k] = 1;
    std::vector<rt::HostTensor> results;
    ASSERT_TRUE(succeeded(m->call("linear",
                                  {rt::HostTensor(type({2, 4}), unit.data())},
                                  results, module->getLoc())));
    for (int n = 0; n < 3; ++n)
      w[n][k] = results[0].f32()[n];
  }
  EXPECT_NE(w[2][3], 0.0f);
  std::vector<float> x = {1, 2, 3, 4, -1, 0.5f, 2, -3};
  std::vector<float> dy = {1, -1, 0.5f, 2, 0.25f, -3};
  std::vector<rt::HostTensor> inputs = {rt::HostTensor(type({2, 4}), x.data()),
                                        rt::HostTensor(type({2, 3}), dy.data())};
  std::vector<rt::HostTensor> gradients;
  ASSERT_TRUE(succeeded(
      m->call("linear_adjoint", inputs, gradients, module->getLoc())));
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      float expected = 0;
      for (int n = 0; n < 3; ++n)
        expected += dy[i * 3 + n] * w[n][k];
      EXPECT_FLOAT_EQ(gradients[0].f32()[i * 4 + k], expected) << i << "," << k;
    }
}

} // namespace
