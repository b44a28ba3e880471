// qnt-approximate-math turns the chosen f32 math ops (default: exp) into
// arith polynomials, scalar and vector alike, and leaves every other op alone.
// RUN: quant-opt %s -split-input-file --qnt-approximate-math | FileCheck %s --check-prefix=EXP
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(qnt-approximate-math{ops=exp,tanh,log,sin,cos,erf,atan,cbrt})" | FileCheck %s --check-prefix=MANY
// RUN: not quant-opt %s -split-input-file --pass-pipeline="builtin.module(qnt-approximate-math{ops=powf})" 2>&1 | FileCheck %s --check-prefix=BAD

// EXP-LABEL: func.func @exp
// EXP-NOT: math.exp
// The exponent bits are assembled from the rounded integer part.
// EXP: arith.shli {{.*}} : vector<16xi32>
// EXP: arith.bitcast {{.*}} : vector<16xi32> to vector<16xf32>
// EXP: arith.shli {{.*}} : i32
// EXP: arith.bitcast {{.*}} : i32 to f32
// EXP-NOT: math.exp
// EXP: return
func.func @exp(%v: vector<16xf32>, %x: f32) -> (vector<16xf32>, f32) {
  %0 = math.exp %v : vector<16xf32>
  %1 = math.exp %x : f32
  return %0, %1 : vector<16xf32>, f32
}

// -----

// Only the named ops change: by default tanh stays a call.
// EXP-LABEL: func.func @others
// EXP: math.tanh
// EXP: math.log
// EXP: math.sin
// EXP: math.cos
// EXP: math.erf
// EXP: math.atan
// EXP: math.cbrt
// EXP: math.powf
// MANY-LABEL: func.func @others
// MANY-NOT: math.tanh
// MANY-NOT: math.log
// MANY-NOT: math.sin
// MANY-NOT: math.cos
// MANY-NOT: math.erf
// MANY-NOT: math.atan
// MANY-NOT: math.cbrt
// MANY: math.powf
// MANY-NOT: math.
// MANY: return
func.func @others(%x: f32) -> (f32, f32, f32, f32, f32, f32, f32, f32) {
  %0 = math.tanh %x : f32
  %1 = math.log %x : f32
  %2 = math.sin %x : f32
  %3 = math.cos %x : f32
  %4 = math.erf %x : f32
  %5 = math.atan %x : f32
  %6 = math.cbrt %x : f32
  %7 = math.powf %x, %x : f32
  return %0, %1, %2, %3, %4, %5, %6, %7 : f32, f32, f32, f32, f32, f32, f32, f32
}

// BAD: error: qnt-approximate-math: no polynomial approximation of math.powf; known: acos, asin, atan, atan2, cbrt, cos, erf, erfc, exp, expm1, log, log1p, log2, sin, tanh
