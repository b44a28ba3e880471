// Layers that share codebooks must have the same codebook configuration:
// the second layer's override is refused on its weight, before anything is
// quantized.

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "pair.linear0=1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1;pair.linear1=1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1"
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors codebooks=1 code-bits=3 in-group-size=4 share-codebooks=model overrides=linear1:in-group-size=2" -verify-diagnostics -o /dev/null
// Per kind, layers without a decoder block's name share with no other.
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors codebooks=1 code-bits=3 in-group-size=4 share-codebooks=kind overrides=linear1:in-group-size=2" -o /dev/null
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors share-codebooks=layer" 2>&1 | FileCheck %s --check-prefix=CHOICE
// CHOICE: for the --share-codebooks option: Cannot find option named 'layer'!

func.func @pair(%x: tensor<3x8xf32>) -> tensor<3x2xf32> {
  %w0 = arith.constant dense<1.0> : tensor<2x8xf32>
  // expected-error@+1 {{qnt-aqlm: layer 'pair.linear1' (aqlm 1x3 g2) cannot share codebooks with 'pair.linear0' (aqlm 1x3 g4): layers that share codebooks need the same codebooks, code-bits and in-group-size}}
  %w1 = arith.constant dense<2.0> : tensor<2x8xf32>
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
