// qnt-aqlm's errors: located on the weight (statistics) or the matmul (a
// configuration the layer cannot take), and nothing is written on failure.

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "exact.linear0=1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,1"

// RUN: not quant-opt %s --qnt-aqlm 2>&1 | FileCheck %s --check-prefix=NO-STATS
// NO-STATS: [[@LINE+19]]:8: error: qnt-aqlm: no statistics for layer 'exact.linear0'; give stats=<file> from quant-calibrate
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors in-group-size=3" -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=GROUP
// RUN: not test -e %t/out.mlir
// GROUP: [[@LINE+21]]:8: error: 'linalg.matmul' op qnt-aqlm cannot quantize 'exact.linear0': AQLM: group size 3 does not divide 8 input channels
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors code-bits=17" 2>&1 | FileCheck %s --check-prefix=BITS
// BITS: error: 'linalg.matmul' op qnt-aqlm cannot quantize 'exact.linear0': AQLM: codebook code bits must be in 1..16, got 17
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors overrides=exact:beams=2" 2>&1 | FileCheck %s --check-prefix=OPTION
// OPTION: unknown AQLM option 'beams' (codebooks, code-bits, in-group-size, beam-size)
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors beam-size=0" 2>&1 | FileCheck %s --check-prefix=BEAM
// BEAM: error: qnt-aqlm: beam-size must be >= 1
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors finetune-epochs=-1" 2>&1 | FileCheck %s --check-prefix=FT-EPOCHS
// FT-EPOCHS: error: qnt-aqlm: finetune-epochs must be >= 0, finetune-lr > 0 and finetune-batch-sequences >= 1
// Fine-tuning needs the block stream that only quant-compile --recipe runs.
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors in-group-size=4 finetune-epochs=1" 2>&1 | FileCheck %s --check-prefix=FT-BLOCKS
// FT-BLOCKS: error: 'linalg.matmul' op qnt-aqlm cannot quantize 'exact.linear0': finetune-epochs trains each transformer block on calibration data; run it block by block with quant-compile --recipe
// The group-size error, located on the matmul, under -verify-diagnostics.
// RUN: quant-opt %s --qnt-aqlm="stats=%t/s.safetensors in-group-size=3" -verify-diagnostics -o /dev/null

func.func @exact(%x: tensor<3x8xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[3.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  // expected-error@+1 {{'linalg.matmul' op qnt-aqlm cannot quantize 'exact.linear0': AQLM: group size 3 does not divide 8 input channels}}
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// The norm gains are trained without activation quantization (the model
// would quantize the smoothed input).
// RUN: not quant-opt %s --qnt-aqlm="stats=%t/s.safetensors in-group-size=4 finetune-epochs=1 act-bits=8" 2>&1 | FileCheck %s --check-prefix=FT-ACT
// FT-ACT: error: qnt-aqlm: the norm gains are fine-tuned without activation quantization (the model quantizes the smoothed input); set finetune-norm-gains=false with act-bits
