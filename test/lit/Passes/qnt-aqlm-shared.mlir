// qnt-aqlm with share-codebooks=model: the two layers' groups, each row
// divided by its RMS, are [3 0 0 0] and [0 4 0 0] times sqrt(8)/5 and zero
// groups, so the shared codebook of 8 words (k-means over all 8 groups of
// both layers) holds them and the least-squares row scales represent both
// weights exactly. The weights are constants, so each layer gets its own
// constant of the shared codebook and is charged all of it: the 4 one-byte
// codes, 2 f32 scales and the 8x4 f32 codebook (32 + 64 + 1024 bits over 16
// weights, 70.0). Weights read through qnt.param store it once and share
// its bits (test/lit/Tools/compile-aqlm.test).

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "shared.linear0=1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1;shared.linear1=1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1"
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors codebooks=1 code-bits=3 in-group-size=4 share-codebooks=model report=%t/report.json" | FileCheck %s
// RUN: %python -c "import json, sys; r = json.load(open(sys.argv[1]))['layers']; print([(l['encoding'], l['bits_per_weight'], l['relative_error']) for l in r])" %t/report.json | FileCheck %s --check-prefix=REPORT
// Without sharing, each layer has its own codebook, at the same cost.
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors codebooks=1 code-bits=3 in-group-size=4 report=%t/own.json" -o /dev/null
// RUN: %python -c "import json, sys; r = json.load(open(sys.argv[1]))['layers']; print([l['bits_per_weight'] for l in r])" %t/own.json | FileCheck %s --check-prefix=OWN

// CHECK-LABEL: func.func @shared
// CHECK-COUNT-2: qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 3, group_size = 4>
// REPORT: [('aqlm 1x3 g4', 70.0, 0.0), ('aqlm 1x3 g4', 70.0, 0.0)]
// OWN: [70.0, 70.0]
func.func @shared(%x: tensor<3x8xf32>) -> tensor<3x2xf32> {
  %w0 = arith.constant dense<[[3.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32>
  %w1 = arith.constant dense<[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.5, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0]]> : tensor<2x8xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y0 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w0 : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y1 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w1 : tensor<3x8xf32>, tensor<2x8xf32>) outs(%y0 : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y1 : tensor<3x2xf32>
}
