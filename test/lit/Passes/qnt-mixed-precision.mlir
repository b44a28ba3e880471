// qnt-mixed-precision chooses one grid per layer under a bits budget and
// records it on the matmul; the next weight method follows it.
//
// Two 2x4 layers share an input; the first one's Hessian is 100x larger
// (H = 1600, 100, 100, 6.25 against the identity), so its rounding noise
// costs more. Per channel with K = 4, a row's f32 scale and 8-bit zero add
// 10 bits per weight: 2, 4 and 8 bits cost 12, 14 and 18 bits per weight.
// A budget of 15 over the 16 weights (240 bits) allows 8 + 2 (240), 2 + 8
// or 4 + 4 (224): the noise model gives the 8 bits to the first layer.
// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "layers.linear0=1600,0,0,0,0,100,0,0,0,0,100,0,0,0,0,6.25;layers.linear1=1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1"
// RUN: quant-opt %s --qnt-mixed-precision="stats=%t/s.safetensors budget=15 bits-options=2,4,8 group-options=0 noise-model=trace" | FileCheck %s --check-prefix=PLAN
// RUN: quant-opt %s --pass-pipeline="builtin.module(qnt-mixed-precision{stats=%t/s.safetensors budget=15 bits-options=2,4,8 group-options=0 report=%t/plan.json}, qnt-rtn{granularity=per-channel})" | FileCheck %s --check-prefix=RTN
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t/plan.json
// A budget between: 4 + 4 bits (224) is the only choice within 14.5.
// RUN: quant-opt %s --qnt-mixed-precision="stats=%t/s.safetensors budget=14.5 bits-options=2,4,8 group-options=0" | FileCheck %s --check-prefix=EVEN
// RUN: not quant-opt %s --qnt-mixed-precision="stats=%t/s.safetensors budget=11 bits-options=2,4,8 group-options=0" 2>&1 | FileCheck %s --check-prefix=LOW
// RUN: not quant-opt %s --qnt-mixed-precision="stats=%t/s.safetensors bits-options=9" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not quant-opt %s --qnt-mixed-precision="stats=%t/s.safetensors budget=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not quant-opt %s --qnt-mixed-precision="budget=4" 2>&1 | FileCheck %s --check-prefix=NOSTATS

// PLAN-LABEL: func.func @layers
// PLAN: linalg.matmul {{.*}}qnt.layer_settings = "bits=8:granularity=per-channel"
// PLAN: linalg.matmul {{.*}}qnt.layer_settings = "bits=2:granularity=per-channel"
// RTN-LABEL: func.func @layers
// RTN-NOT: qnt.layer_settings
// RTN: qnt.dequant #qnt.uniform<bits = 8, mode = asymmetric>
// RTN: qnt.dequant #qnt.uniform<bits = 2, mode = asymmetric>
// RTN-NOT: qnt.layer_settings
// REPORT: "bits_per_weight": 18.0
// REPORT: "encoding": "int8 asym per-channel"
// REPORT: "method": "mixed-precision"
// REPORT: "bits_per_weight": 12.0
// REPORT: "encoding": "int2 asym per-channel"
// EVEN: qnt.layer_settings = "bits=4:granularity=per-channel"
// EVEN: qnt.layer_settings = "bits=4:granularity=per-channel"
// LOW: error: qnt-mixed-precision: the budget of 176 bits is below the cheapest choice (192 bits)
// BITS: error: qnt-mixed-precision: bits-options must be in [2, 8], got 9
// ZERO: error: qnt-mixed-precision: budget must be positive, got 0
// NOSTATS: error: qnt-mixed-precision: no statistics for layer 'layers.linear0'; give stats=<file> from quant-calibrate
func.func @layers(%x: tensor<3x4xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %wq = arith.constant dense<[[0.1, 2.0, -1.5, 3.0], [-0.2, 1.0, 2.5, -3.0]]> : tensor<2x4xf32>
  %wk = arith.constant dense<[[0.05, -1.0, 0.5, 2.0], [0.3, 1.5, -2.5, 1.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %yq = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wq : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %yk = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wk : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %yq, %yk : tensor<3x2xf32>, tensor<3x2xf32>
}
