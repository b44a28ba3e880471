// Round trip of every qnt encoding and op: parse, print, re-parse, check; the
// second RUN line goes through the generic op form.
// RUN: quant-opt %s | quant-opt | FileCheck %s
// RUN: quant-opt %s --mlir-print-op-generic | quant-opt | FileCheck %s

// All weights below are 4x64 (N = 4 output channels, K = 64 inputs).

// Half-precision scales: the scales component is f16.
// CHECK-LABEL: func.func @uniform_half_scales
// CHECK: qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32, scale_type = f16>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x32xi8>, tensor<4x2xf16>, tensor<4x2xi8>) -> tensor<4x64xf32>
// CHECK: qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 32, scale_type = f16>(%{{.*}}, %{{.*}}) : (tensor<4x32xi8>, tensor<4x2xf16>) -> tensor<4x64xf32>
func.func @uniform_half_scales(%codes: tensor<4x32xi8>, %scales: tensor<4x2xf16>, %zeros: tensor<4x2xi8>) -> (tensor<4x64xf32>, tensor<4x64xf32>) {
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32, scale_type = f16>(%codes, %scales, %zeros) : (tensor<4x32xi8>, tensor<4x2xf16>, tensor<4x2xi8>) -> tensor<4x64xf32>
  %m = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 32, scale_type = f16>(%codes, %scales) : (tensor<4x32xi8>, tensor<4x2xf16>) -> tensor<4x64xf32>
  return %w, %m : tensor<4x64xf32>, tensor<4x64xf32>
}

// Uniform int4, asymmetric, per channel: codes [4, 32] i8, scales and zeros [4, 1].
// CHECK-LABEL: func.func @uniform_int4_asym_channel
// CHECK: qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x32xi8>, tensor<4x1xf32>, tensor<4x1xi8>) -> tensor<4x64xf32>
func.func @uniform_int4_asym_channel(%codes: tensor<4x32xi8>, %scales: tensor<4x1xf32>, %zeros: tensor<4x1xi8>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_channel>(%codes, %scales, %zeros) : (tensor<4x32xi8>, tensor<4x1xf32>, tensor<4x1xi8>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Uniform int8 with every parameter defaulted (symmetric, per channel): no zeros.
// CHECK-LABEL: func.func @uniform_int8_defaults
// CHECK: qnt.dequant #qnt.uniform<bits = 8>(%{{.*}}, %{{.*}}) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
func.func @uniform_int8_defaults(%codes: tensor<4x64xi8>, %scales: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Uniform int3, symmetric, per tensor: 64 * 3 bits = 24 bytes per row, scales [1, 1].
// CHECK-LABEL: func.func @uniform_int3_sym_tensor
// CHECK: qnt.dequant #qnt.uniform<bits = 3, granularity = per_tensor>(%{{.*}}, %{{.*}}) : (tensor<4x24xi8>, tensor<1x1xf32>) -> tensor<4x64xf32>
func.func @uniform_int3_sym_tensor(%codes: tensor<4x24xi8>, %scales: tensor<1x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 3, mode = symmetric, granularity = per_tensor>(%codes, %scales) : (tensor<4x24xi8>, tensor<1x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Uniform int2, asymmetric, per group of 32: scales and zeros [4, 2], in f16.
// CHECK-LABEL: func.func @uniform_int2_asym_group
// CHECK: qnt.dequant #qnt.uniform<bits = 2, mode = asymmetric, granularity = per_group, group_size = 32>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x16xi8>, tensor<4x2xf32>, tensor<4x2xi8>) -> tensor<4x64xf16>
func.func @uniform_int2_asym_group(%codes: tensor<4x16xi8>, %scales: tensor<4x2xf32>, %zeros: tensor<4x2xi8>) -> tensor<4x64xf16> {
  %w = qnt.dequant #qnt.uniform<bits = 2, mode = asymmetric, granularity = per_group, group_size = 32>(%codes, %scales, %zeros) : (tensor<4x16xi8>, tensor<4x2xf32>, tensor<4x2xi8>) -> tensor<4x64xf16>
  return %w : tensor<4x64xf16>
}

// Minifloat E2M1 (4 bits), per group of 32, into bf16.
// CHECK-LABEL: func.func @minifloat_e2m1_group
// CHECK: qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 32>(%{{.*}}, %{{.*}}) : (tensor<4x32xi8>, tensor<4x2xf32>) -> tensor<4x64xbf16>
func.func @minifloat_e2m1_group(%codes: tensor<4x32xi8>, %scales: tensor<4x2xf32>) -> tensor<4x64xbf16> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 32>(%codes, %scales) : (tensor<4x32xi8>, tensor<4x2xf32>) -> tensor<4x64xbf16>
  return %w : tensor<4x64xbf16>
}

// Minifloat E3M2 (6 bits, 48 bytes per row), finite given explicitly, per channel.
// CHECK-LABEL: func.func @minifloat_e3m2_channel
// CHECK: qnt.dequant #qnt.minifloat<exponent_bits = 3, mantissa_bits = 2>(%{{.*}}, %{{.*}}) : (tensor<4x48xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
func.func @minifloat_e3m2_channel(%codes: tensor<4x48xi8>, %scales: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 3, mantissa_bits = 2, special = finite, granularity = per_channel>(%codes, %scales) : (tensor<4x48xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Minifloat E2M3 (6 bits), per tensor.
// CHECK-LABEL: func.func @minifloat_e2m3_tensor
// CHECK: qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 3, granularity = per_tensor>(%{{.*}}, %{{.*}}) : (tensor<4x48xi8>, tensor<1x1xf32>) -> tensor<4x64xf32>
func.func @minifloat_e2m3_tensor(%codes: tensor<4x48xi8>, %scales: tensor<1x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 3, granularity = per_tensor>(%codes, %scales) : (tensor<4x48xi8>, tensor<1x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// OCP E4M3 (8 bits, one byte per weight), per channel.
// CHECK-LABEL: func.func @minifloat_e4m3_ocp
// CHECK: qnt.dequant #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp>(%{{.*}}, %{{.*}}) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
func.func @minifloat_e4m3_ocp(%codes: tensor<4x64xi8>, %scales: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp>(%codes, %scales) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// OCP E5M2, per group of 16: scales [4, 4].
// CHECK-LABEL: func.func @minifloat_e5m2_ocp
// CHECK: qnt.dequant #qnt.minifloat<exponent_bits = 5, mantissa_bits = 2, special = ocp, granularity = per_group, group_size = 16>(%{{.*}}, %{{.*}}) : (tensor<4x64xi8>, tensor<4x4xf32>) -> tensor<4x64xf32>
func.func @minifloat_e5m2_ocp(%codes: tensor<4x64xi8>, %scales: tensor<4x4xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 5, mantissa_bits = 2, special = ocp, granularity = per_group, group_size = 16>(%codes, %scales) : (tensor<4x64xi8>, tensor<4x4xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// AQLM 2x8 g8 with codes in tiles of 32 rows by 2 groups: [ceil(J/2),
// ceil(N/32), 2, 32, 2] for N = 40, J = 5.
// CHECK-LABEL: func.func @codebook_tiled
// CHECK: qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8, tile_rows = 32, tile_groups = 2>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<3x2x2x32x2xi8>, tensor<2x256x8xf32>, tensor<40x1xf32>) -> tensor<40x40xf32>
func.func @codebook_tiled(%codes: tensor<3x2x2x32x2xi8>, %codebooks: tensor<2x256x8xf32>, %scales: tensor<40x1xf32>) -> tensor<40x40xf32> {
  %w = qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8, tile_rows = 32, tile_groups = 2>(%codes, %codebooks, %scales) : (tensor<3x2x2x32x2xi8>, tensor<2x256x8xf32>, tensor<40x1xf32>) -> tensor<40x40xf32>
  return %w : tensor<40x40xf32>
}

// AQLM 1x16 g8: i16 codes [N, K/8, 1], one codebook of 2^16 codewords of 8.
// CHECK-LABEL: func.func @codebook_1x16
// CHECK: qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 16, group_size = 8>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x8x1xi16>, tensor<1x65536x8xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
func.func @codebook_1x16(%codes: tensor<4x8x1xi16>, %codebooks: tensor<1x65536x8xf32>, %scales: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 16, group_size = 8>(%codes, %codebooks, %scales) : (tensor<4x8x1xi16>, tensor<1x65536x8xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// AQLM 2x8 g8: i8 codes [N, K/8, 2], two codebooks of 256 codewords.
// CHECK-LABEL: func.func @codebook_2x8
// CHECK: qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x8x2xi8>, tensor<2x256x8xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
func.func @codebook_2x8(%codes: tensor<4x8x2xi8>, %codebooks: tensor<2x256x8xf32>, %scales: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8>(%codes, %codebooks, %scales) : (tensor<4x8x2xi8>, tensor<2x256x8xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Half-precision row scales: the scales component is f16.
// CHECK-LABEL: func.func @codebook_f16_scales
// CHECK: qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 8, group_size = 4, scale_type = f16>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x16x1xi8>, tensor<1x256x4xf32>, tensor<4x1xf16>) -> tensor<4x64xf32>
func.func @codebook_f16_scales(%codes: tensor<4x16x1xi8>, %codebooks: tensor<1x256x4xf32>, %scales: tensor<4x1xf16>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 8, group_size = 4, scale_type = f16>(%codes, %codebooks, %scales) : (tensor<4x16x1xi8>, tensor<1x256x4xf32>, tensor<4x1xf16>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Binary without offsets (symmetric, the default), per channel: signs [4, 8].
// CHECK-LABEL: func.func @binary_symmetric
// CHECK: qnt.dequant #qnt.binary<>(%{{.*}}, %{{.*}}) : (tensor<4x8xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
func.func @binary_symmetric(%signs: tensor<4x8xi8>, %scales: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.binary<mode = symmetric>(%signs, %scales) : (tensor<4x8xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Binary with offsets (asymmetric), per group of 32: scales and offsets [4, 2].
// CHECK-LABEL: func.func @binary_asymmetric_group
// CHECK: qnt.dequant #qnt.binary<mode = asymmetric, granularity = per_group, group_size = 32>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x8xi8>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x64xf32>
func.func @binary_asymmetric_group(%signs: tensor<4x8xi8>, %scales: tensor<4x2xf32>, %offsets: tensor<4x2xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.binary<mode = asymmetric, granularity = per_group, group_size = 32>(%signs, %scales, %offsets) : (tensor<4x8xi8>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// Three bit-planes per group of 32: planes [3, 4, 2] i32, plane scales [3, 4, 2].
// CHECK-LABEL: func.func @bitplanes_group
// CHECK: qnt.dequant #qnt.bitplanes<planes = 3, granularity = per_group, group_size = 32>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<3x4x2xi32>, tensor<3x4x2xf32>, tensor<4x2xf32>) -> tensor<4x64xf32>
func.func @bitplanes_group(%planes: tensor<3x4x2xi32>, %plane_scales: tensor<3x4x2xf32>, %offsets: tensor<4x2xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.bitplanes<planes = 3, granularity = per_group, group_size = 32>(%planes, %plane_scales, %offsets) : (tensor<3x4x2xi32>, tensor<3x4x2xf32>, tensor<4x2xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// One bit-plane per tensor, K = 40 not a multiple of 32: two words per row.
// CHECK-LABEL: func.func @bitplanes_tensor
// CHECK: qnt.dequant #qnt.bitplanes<planes = 1, granularity = per_tensor>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<1x4x2xi32>, tensor<1x1x1xf32>, tensor<1x1xf32>) -> tensor<4x40xf32>
func.func @bitplanes_tensor(%planes: tensor<1x4x2xi32>, %plane_scales: tensor<1x1x1xf32>, %offsets: tensor<1x1xf32>) -> tensor<4x40xf32> {
  %w = qnt.dequant #qnt.bitplanes<planes = 1, granularity = per_tensor>(%planes, %plane_scales, %offsets) : (tensor<1x4x2xi32>, tensor<1x1x1xf32>, tensor<1x1xf32>) -> tensor<4x40xf32>
  return %w : tensor<4x40xf32>
}

// Salient split (PTQ1.61): 16 int4 asym salient columns, 48 binary+offset rest
// columns; the channel map, then the salient part's and the rest part's components.
// CHECK-LABEL: func.func @salient_uniform_binary
// CHECK: qnt.dequant #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 4, mode = asymmetric>, rest = #qnt.binary<mode = asymmetric>>(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (tensor<64xi32>, tensor<4x8xi8>, tensor<4x1xf32>, tensor<4x1xi8>, tensor<4x6xi8>, tensor<4x1xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
func.func @salient_uniform_binary(%map: tensor<64xi32>, %codes: tensor<4x8xi8>, %scales: tensor<4x1xf32>, %zeros: tensor<4x1xi8>, %signs: tensor<4x6xi8>, %alpha: tensor<4x1xf32>, %mu: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %w = qnt.dequant #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 4, mode = asymmetric>, rest = #qnt.binary<mode = asymmetric>>(%map, %codes, %scales, %zeros, %signs, %alpha, %mu) : (tensor<64xi32>, tensor<4x8xi8>, tensor<4x1xf32>, tensor<4x1xi8>, tensor<4x6xi8>, tensor<4x1xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// An encoding given through an attribute alias.
#int4_g32 = #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>
// CHECK-LABEL: func.func @alias
// CHECK: qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<4x32xi8>, tensor<4x2xf32>, tensor<4x2xi8>) -> tensor<4x64xf32>
func.func @alias(%codes: tensor<4x32xi8>, %scales: tensor<4x2xf32>, %zeros: tensor<4x2xi8>) -> tensor<4x64xf32> {
  %w = qnt.dequant #int4_g32(%codes, %scales, %zeros) : (tensor<4x32xi8>, tensor<4x2xf32>, tensor<4x2xi8>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// qnt.param with a name that needs quoting and an attribute dictionary.
// CHECK-LABEL: func.func @param
// CHECK: %[[W:.*]] = qnt.param "layers.0.attention.wq" : tensor<64x64xf32>
// CHECK: %[[B:.*]] = qnt.param "layers.0 \22bias\22" {note = 1 : i64} : tensor<64xbf16>
// CHECK: return %[[W]], %[[B]]
func.func @param() -> (tensor<64x64xf32>, tensor<64xbf16>) {
  %w = qnt.param "layers.0.attention.wq" : tensor<64x64xf32>
  %b = qnt.param "layers.0 \22bias\22" {note = 1} : tensor<64xbf16>
  return %w, %b : tensor<64x64xf32>, tensor<64xbf16>
}

// qnt.observe with one and with all three statistics, on a rank-3 activation.
// CHECK-LABEL: func.func @observe
// CHECK-SAME: (%[[X:.*]]: tensor<2x16x64xf32>)
// CHECK: %[[A:.*]] = qnt.observe %[[X]] as "layers.0.wq" stats ["absmax"] : tensor<2x16x64xf32>
// CHECK: %[[B:.*]] = qnt.observe %[[A]] as "layers.0.wo" stats ["absmax", "mean_abs", "hessian"] : tensor<2x16x64xf32>
// CHECK: return %[[B]]
func.func @observe(%x: tensor<2x16x64xf32>) -> tensor<2x16x64xf32> {
  %a = qnt.observe %x as "layers.0.wq" stats ["absmax"] : tensor<2x16x64xf32>
  %b = qnt.observe %a as "layers.0.wo" stats ["absmax", "mean_abs", "hessian"] : tensor<2x16x64xf32>
  return %b : tensor<2x16x64xf32>
}

// qnt.smooth divides the last dimension by a vector of factors.
// CHECK-LABEL: func.func @smooth
// CHECK-SAME: (%[[X:.*]]: tensor<16x64xf16>, %[[S:.*]]: tensor<64xf16>)
// CHECK: qnt.smooth %[[X]], %[[S]] : tensor<16x64xf16>, tensor<64xf16>
func.func @smooth(%x: tensor<16x64xf16>, %s: tensor<64xf16>) -> tensor<16x64xf16> {
  %y = qnt.smooth %x, %s : tensor<16x64xf16>, tensor<64xf16>
  return %y : tensor<16x64xf16>
}

// qnt.matmul: x [2, 64] times the transpose of a 4x64 int4 per-group weight.
// CHECK-LABEL: func.func @matmul
// CHECK-SAME: (%[[X:[^:]*]]: tensor<2x64xf32>, %[[CODES:[^:]*]]: tensor<4x32xi8>, %[[SCALES:[^:]*]]: tensor<4x2xf32>, %[[ZEROS:[^:]*]]: tensor<4x2xi8>)
// CHECK: qnt.matmul %[[X]], #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%[[CODES]], %[[SCALES]], %[[ZEROS]]) : (tensor<2x64xf32>, tensor<4x32xi8>, tensor<4x2xf32>, tensor<4x2xi8>) -> tensor<2x4xf32>
func.func @matmul(%x: tensor<2x64xf32>, %codes: tensor<4x32xi8>, %scales: tensor<4x2xf32>, %zeros: tensor<4x2xi8>) -> tensor<2x4xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%codes, %scales, %zeros) : (tensor<2x64xf32>, tensor<4x32xi8>, tensor<4x2xf32>, tensor<4x2xi8>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// qnt.matmul in f16 with a salient weight.
// CHECK-LABEL: func.func @matmul_salient_f16
// CHECK: qnt.matmul %{{.*}}, #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (tensor<3x64xf16>, tensor<64xi32>, tensor<4x16xi8>, tensor<4x1xf32>, tensor<4x6xi8>, tensor<4x1xf32>) -> tensor<3x4xf16>
func.func @matmul_salient_f16(%x: tensor<3x64xf16>, %map: tensor<64xi32>, %codes: tensor<4x16xi8>, %scales: tensor<4x1xf32>, %signs: tensor<4x6xi8>, %alpha: tensor<4x1xf32>) -> tensor<3x4xf16> {
  %y = qnt.matmul %x, #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%map, %codes, %scales, %signs, %alpha) : (tensor<3x64xf16>, tensor<64xi32>, tensor<4x16xi8>, tensor<4x1xf32>, tensor<4x6xi8>, tensor<4x1xf32>) -> tensor<3x4xf16>
  return %y : tensor<3x4xf16>
}

// qnt.lowrank_add: acc [2, 4] + (x [2, 64] v [64, 8]) u [4, 8]^T.
// CHECK-LABEL: func.func @lowrank_add
// CHECK-SAME: (%[[ACC:[^:]*]]: tensor<2x4xf32>, %[[X:[^:]*]]: tensor<2x64xf32>, %[[U:[^:]*]]: tensor<4x8xf32>, %[[V:[^:]*]]: tensor<64x8xf32>)
// CHECK: qnt.lowrank_add %[[ACC]], %[[X]], %[[U]], %[[V]] : tensor<2x4xf32>, tensor<2x64xf32>, tensor<4x8xf32>, tensor<64x8xf32>
func.func @lowrank_add(%acc: tensor<2x4xf32>, %x: tensor<2x64xf32>, %u: tensor<4x8xf32>, %v: tensor<64x8xf32>) -> tensor<2x4xf32> {
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<2x64xf32>, tensor<4x8xf32>, tensor<64x8xf32>
  return %y : tensor<2x4xf32>
}

// The #qnt<act_granularity ...> enum attribute prints in the generic dialect
// attribute form (the op description's #qnt.act_granularity<per_token> does
// not parse).
// qnt.fake_quant: per token without scale, per tensor with a static scale,
// with noise only, with both scale and noise, and per token with noise and
// a clip ratio.
// CHECK-LABEL: func.func @fake_quant
// CHECK-SAME: (%[[X:[^:]*]]: tensor<16x64xf32>, %[[S:[^:]*]]: tensor<1xf32>, %[[N:[^:]*]]: tensor<64xf32>)
// CHECK: %[[A:.*]] = qnt.fake_quant %[[X]] {bits = 8 : i64, granularity = #qnt<act_granularity per_token>} : tensor<16x64xf32>
// CHECK: %[[B:.*]] = qnt.fake_quant %[[A]] scale(%[[S]] : tensor<1xf32>) {bits = 4 : i64, granularity = #qnt<act_granularity per_tensor>} : tensor<16x64xf32>
// CHECK: %[[C:.*]] = qnt.fake_quant %[[B]] noise(%[[N]] : tensor<64xf32>) {bits = 16 : i64, granularity = #qnt<act_granularity per_tensor>} : tensor<16x64xf32>
// CHECK: %[[D:.*]] = qnt.fake_quant %[[C]] scale(%[[S]] : tensor<1xf32>) noise(%[[N]] : tensor<64xf32>) {bits = 2 : i64, granularity = #qnt<act_granularity per_tensor>} : tensor<16x64xf32>
// CHECK: %[[E:.*]] = qnt.fake_quant %[[D]] noise(%[[N]] : tensor<64xf32>) clip(%[[S]] : tensor<1xf32>) {bits = 4 : i64, granularity = #qnt<act_granularity per_token>} : tensor<16x64xf32>
// CHECK: return %[[E]]
func.func @fake_quant(%x: tensor<16x64xf32>, %s: tensor<1xf32>, %n: tensor<64xf32>) -> tensor<16x64xf32> {
  %a = qnt.fake_quant %x {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<16x64xf32>
  %b = qnt.fake_quant %a scale(%s : tensor<1xf32>) {bits = 4, granularity = #qnt<act_granularity per_tensor>} : tensor<16x64xf32>
  %c = qnt.fake_quant %b noise(%n : tensor<64xf32>) {bits = 16, granularity = #qnt<act_granularity per_tensor>} : tensor<16x64xf32>
  %d = qnt.fake_quant %c scale(%s : tensor<1xf32>) noise(%n : tensor<64xf32>) {bits = 2, granularity = #qnt<act_granularity per_tensor>} : tensor<16x64xf32>
  %e = qnt.fake_quant %d noise(%n : tensor<64xf32>) clip(%s : tensor<1xf32>) {bits = 4, granularity = #qnt<act_granularity per_token>} : tensor<16x64xf32>
  return %e : tensor<16x64xf32>
}

// A dequant result is an ordinary tensor: it can feed a plain linalg.matmul.
// CHECK-LABEL: func.func @dequant_then_matmul
// CHECK: %[[W:.*]] = qnt.dequant #qnt.uniform<bits = 8>
// CHECK: linalg.matmul
// CHECK-SAME: ins(%{{.*}}, %[[W]] : tensor<2x4xf32>, tensor<4x64xf32>)
func.func @dequant_then_matmul(%x: tensor<2x4xf32>, %codes: tensor<4x64xi8>, %scales: tensor<4x1xf32>, %acc: tensor<2x64xf32>) -> tensor<2x64xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  %y = linalg.matmul ins(%x, %w : tensor<2x4xf32>, tensor<4x64xf32>) outs(%acc : tensor<2x64xf32>) -> tensor<2x64xf32>
  return %y : tensor<2x64xf32>
}

// The module attribute listing parameter files survives the round trip.
// CHECK-LABEL: module @with_files attributes {qnt.param_files = ["a.safetensors", "b.safetensors"]}
// CHECK: func.func @read
// CHECK: qnt.param "w" : tensor<4x64xf32>
module @with_files attributes {qnt.param_files = ["a.safetensors", "b.safetensors"]} {
  func.func @read() -> tensor<4x64xf32> {
    %w = qnt.param "w" : tensor<4x64xf32>
    return %w : tensor<4x64xf32>
  }
}

// qnt.intrinsic: a pure call of a target instruction on vectors.
// CHECK-LABEL: func.func @intrinsic
// CHECK: qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %{{.*}}, %{{.*}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
func.func @intrinsic(%acc: vector<16xi32>, %u: vector<64xi8>, %s: vector<64xi8>) -> vector<16xi32> {
  %r = qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%acc, %u, %s) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
  return %r : vector<16xi32>
}
