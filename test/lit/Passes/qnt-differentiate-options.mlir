// Option errors of qnt-differentiate: the function must exist and the
// arguments in wrt must be float tensors of it.
// RUN: not quant-opt %s --qnt-differentiate=function=missing 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not quant-opt %s --qnt-differentiate 2>&1 | FileCheck %s --check-prefix=NONE
// RUN: not quant-opt %s --qnt-differentiate="function=f wrt=1" 2>&1 | FileCheck %s --check-prefix=INT
// RUN: not quant-opt %s --qnt-differentiate="function=f wrt=2" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not quant-opt %s --qnt-differentiate="function=f wrt=0,0" 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: quant-opt %s --qnt-differentiate="function=f wrt=0 adjoint-name=grad" | FileCheck %s --check-prefix=NAMED

// MISSING: error: qnt-differentiate: no function 'missing' in the module
// NONE: error: qnt-differentiate: the option 'function' is required
// INT: qnt-differentiate-options.mlir:[[@LINE+5]]:{{[0-9]+}}: error: argument #1 of 'f' has type 'tensor<i64>', which is not differentiable (a float tensor is required)
// RANGE: error: 'func.func' op has no argument #2 (it has 2)
// TWICE: error: 'func.func' op is differentiated twice with respect to argument #0
// NAMED: func.func @grad(%{{.*}}: tensor<4xf32>, %{{.*}}: tensor<i64>, %{{.*}}: tensor<4xf32>) -> tensor<4xf32>
// NAMED-NEXT: return %{{.*}} : tensor<4xf32>
func.func @f(%x: tensor<4xf32>, %n: tensor<i64>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
