// qnt-aqlm on a constant weight with a Hessian from a statistics file. The
// rows' groups of 4 are [3 0 0 0], [0 4 0 0] (row norm 5) and two zero
// groups (a zero row keeps scale 1): three distinct vectors for four words,
// so k-means places a word on each and the weight is represented exactly
// (the report's error on the inputs is 0). Bits per weight: 4 codes of
// one byte, 16 f32 codebook values and 2 f32 scales over 16 weights, 38.

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "exact.linear0=1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1"
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors codebooks=1 code-bits=2 in-group-size=4 report=%t/report.json" | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t/report.json
// A per-layer override of the configuration: 2 codebooks of 1-bit codes on
// groups of 2 (the codes component is [N, K/g, M]).
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors overrides=exact:codebooks=2:code-bits=1:in-group-size=2" | FileCheck %s --check-prefix=OVERRIDE
// Half-precision row scales, pass-wide or per layer (5 and 1 are exact in
// f16).
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors codebooks=1 code-bits=2 in-group-size=4 scale-type=f16" | FileCheck %s --check-prefix=HALF
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors codebooks=1 code-bits=2 in-group-size=4 overrides=exact:scale-type=f16" | FileCheck %s --check-prefix=HALF
// HALF: %[[SCALES:.*]] = arith.constant dense<{{\[}}[5.000000e+00], [1.000000e+00]]> : tensor<2x1xf16>
// HALF: qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 2, group_size = 4, scale_type = f16>(%{{.*}}, %{{.*}}, %[[SCALES]])

// CHECK-LABEL: func.func @exact
// CHECK-DAG: %[[CODES:.*]] = arith.constant dense<{{.*}}> : tensor<2x2x1xi8>
// CHECK-DAG: %[[BOOKS:.*]] = arith.constant dense<{{.*}}6.000000e-01{{.*}}8.000000e-01{{.*}}> : tensor<1x4x4xf32>
// CHECK-DAG: %[[SCALES:.*]] = arith.constant dense<{{\[}}[5.000000e+00], [1.000000e+00]]> : tensor<2x1xf32>
// CHECK: %[[W:.*]] = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 2, group_size = 4>(%[[CODES]], %[[BOOKS]], %[[SCALES]])
// CHECK: linalg.matmul {{.*}} ins(%{{.*}}, %[[W]] :
// REPORT: "bits_per_weight": 38.0
// REPORT: "encoding": "aqlm 1x2 g4"
// REPORT: "method": "aqlm"
// REPORT: "relative_error": 0.0
// OVERRIDE: qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 1, group_size = 2>({{.*}}) : (tensor<2x4x2xi8>, tensor<2x2x2xf32>, tensor<2x1xf32>)
func.func @exact(%x: tensor<3x8xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[3.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
