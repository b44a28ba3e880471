// One case per verifier message of the qnt encodings (QntAttrs.cpp), of the
// shape rules of lib/numerics (verifySpec) reachable from IR, and of the qnt
// ops (QntOps.cpp and ODS constraints).
// RUN: quant-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// Encoding attributes: shape-independent rules, checked when parsed.
//===----------------------------------------------------------------------===//

// Uniform bits above 8.
// expected-error@+1 {{uniform encoding needs 2..8 bits, got 9}}
#bad = #qnt.uniform<bits = 9>

// -----

// Uniform bits below 2, inline in an op.
func.func @uniform_one_bit(%c: tensor<4x8xi8>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{uniform encoding needs 2..8 bits, got 1}}
  %w = qnt.dequant #qnt.uniform<bits = 1>(%c, %s) : (tensor<4x8xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// Uniform without the required bits parameter.
// expected-error@+1 {{struct is missing required parameter: bits}}
#bad = #qnt.uniform<mode = asymmetric>

// -----

// An unknown granularity keyword.
// expected-error@+2 {{expected one of [per_tensor, per_channel, per_group] for how many scales a weight matrix has, got: per_row}}
// expected-error@+1 {{failed to parse Qnt_UniformEncodingAttr parameter 'granularity'}}
#bad = #qnt.uniform<bits = 4, granularity = per_row>

// -----

// per_group without a group size.
// expected-error@+1 {{per_group granularity needs a positive group_size, got 0}}
#bad = #qnt.uniform<bits = 4, granularity = per_group>

// -----

// A negative group size.
// expected-error@+1 {{per_group granularity needs a positive group_size, got -32}}
#bad = #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = -32>

// -----

// A group size with per-channel granularity (the default).
// expected-error@+1 {{group_size 32 is only valid with per_group granularity, not per_channel}}
#bad = #qnt.binary<group_size = 32>

// -----

// A group size with per-tensor granularity.
// expected-error@+1 {{group_size 64 is only valid with per_group granularity, not per_tensor}}
#bad = #qnt.bitplanes<planes = 2, granularity = per_tensor, group_size = 64>

// -----

// Minifloat without exponent bits.
// expected-error@+1 {{minifloat needs 1..5 exponent bits, got 0}}
#bad = #qnt.minifloat<exponent_bits = 0, mantissa_bits = 3>

// -----

// Minifloat with too many exponent bits.
// expected-error@+1 {{minifloat needs 1..5 exponent bits, got 6}}
#bad = #qnt.minifloat<exponent_bits = 6, mantissa_bits = 1>

// -----

// E4M4 takes 9 bits.
// expected-error@+1 {{minifloat E4M4 must have 3..8 bits including the sign}}
#bad = #qnt.minifloat<exponent_bits = 4, mantissa_bits = 4>

// -----

// E1M0 takes only 2 bits.
// expected-error@+1 {{minifloat E1M0 must have 3..8 bits including the sign}}
#bad = #qnt.minifloat<exponent_bits = 1, mantissa_bits = 0>

// -----

// A negative mantissa width.
// expected-error@+1 {{minifloat E3M-1 must have 3..8 bits including the sign}}
#bad = #qnt.minifloat<exponent_bits = 3, mantissa_bits = -1>

// -----

// OCP special values on E2M1.
// expected-error@+1 {{ocp special values are defined for E4M3 and E5M2 only, not E2M1}}
#bad = #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, special = ocp>

// -----

// OCP special values on E5M1 (a 7-bit format).
// expected-error@+1 {{ocp special values are defined for E4M3 and E5M2 only, not E5M1}}
#bad = #qnt.minifloat<exponent_bits = 5, mantissa_bits = 1, special = ocp>

// -----

// No codebooks.
// expected-error@+1 {{codebook encoding needs 1..64 codebooks, got 0}}
#bad = #qnt.codebook<num_codebooks = 0, code_bits = 8, group_size = 8>

// -----

// Codes wider than 16 bits.
// expected-error@+1 {{code_bits must be in 1..16, got 17}}
#bad = #qnt.codebook<num_codebooks = 1, code_bits = 17, group_size = 8>

// -----

// Zero-bit codes.
// expected-error@+1 {{code_bits must be in 1..16, got 0}}
#bad = #qnt.codebook<num_codebooks = 1, code_bits = 0, group_size = 8>

// -----

// A codebook group size of zero.
// expected-error@+1 {{codebook group_size must be positive, got 0}}
#bad = #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 0>

// -----

// Tiles of codes need both rows and groups.
// expected-error@+1 {{codebook tile_rows and tile_groups must both be positive (or both 0 for row-major codes), got 128 and 0}}
#bad = #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8, tile_rows = 128>

// -----

// Nine bit-planes.
// expected-error@+1 {{bitplanes needs 1..8 planes, got 9}}
#bad = #qnt.bitplanes<planes = 9>

// -----

// No bit-planes.
// expected-error@+1 {{bitplanes needs 1..8 planes, got 0}}
#bad = #qnt.bitplanes<planes = 0>

// -----

// No salient channels.
// expected-error@+1 {{num_salient must be positive, got 0}}
#bad = #qnt.salient<num_salient = 0, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>

// -----

// A salient encoding nested in the salient part.
// expected-error@+1 {{salient encodings do not nest}}
#bad = #qnt.salient<num_salient = 4, salient = #qnt.salient<num_salient = 2, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>, rest = #qnt.binary<>>

// -----

// A salient encoding nested in the rest part.
// expected-error@+1 {{salient encodings do not nest}}
#bad = #qnt.salient<num_salient = 4, salient = #qnt.uniform<bits = 8>, rest = #qnt.salient<num_salient = 2, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>>

// -----

// A salient part that is not an encoding.
// expected-error@+2 {{invalid kind of attribute specified}}
// expected-error@+1 {{failed to parse Qnt_SalientEncodingAttr parameter 'salient'}}
#bad = #qnt.salient<num_salient = 4, salient = 3 : i64, rest = #qnt.binary<>>

// -----

//===----------------------------------------------------------------------===//
// Encodings against the weight shape (lib/numerics verifySpec).
//===----------------------------------------------------------------------===//

// Ragged groups: a group size of 64 that does not divide K = 100 leaves a
// short last group, so the scales have ceil(100 / 64) = 2 columns, not 1.
func.func @ragged_group_scales(%c: tensor<4x50xi8>, %s: tensor<4x1xf32>, %z: tensor<4x2xi8>) -> tensor<4x100xf32> {
  // expected-error@+1 {{'qnt.dequant' op component #1 ('scales') of a 4x100 weight must be 'tensor<4x2xf32>', got 'tensor<4x1xf32>'}}
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 64>(%c, %s, %z) : (tensor<4x50xi8>, tensor<4x1xf32>, tensor<4x2xi8>) -> tensor<4x100xf32>
  return %w : tensor<4x100xf32>
}

// -----

// The same rule through qnt.matmul, whose K is the input's last dimension:
// K = 96 with groups of 64 has 2 scale columns (64 + 32).
func.func @matmul_ragged_group_scales(%x: tensor<2x96xf32>, %c: tensor<4x48xi8>, %s: tensor<4x1xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.matmul' op component #1 ('scales') of a 4x96 weight must be 'tensor<4x2xf32>', got 'tensor<4x1xf32>'}}
  %y = qnt.matmul %x, #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 64>(%c, %s) : (tensor<2x96xf32>, tensor<4x48xi8>, tensor<4x1xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// A codebook group size of 8 does not divide K = 60.
func.func @codebook_group_not_dividing(%c: tensor<4x7x1xi8>, %b: tensor<1x256x8xf32>, %s: tensor<4x1xf32>) -> tensor<4x60xf32> {
  // expected-error@+1 {{'qnt.dequant' op group size 8 does not divide 60 input channels}}
  %w = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 8, group_size = 8>(%c, %b, %s) : (tensor<4x7x1xi8>, tensor<1x256x8xf32>, tensor<4x1xf32>) -> tensor<4x60xf32>
  return %w : tensor<4x60xf32>
}

// -----

// An empty weight (no rows).
func.func @empty_weight(%c: tensor<0x64xi8>, %s: tensor<0x1xf32>) -> tensor<0x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op matrix shape 0x64 is empty: rows and cols must be positive}}
  %w = qnt.dequant #qnt.uniform<bits = 8>(%c, %s) : (tensor<0x64xi8>, tensor<0x1xf32>) -> tensor<0x64xf32>
  return %w : tensor<0x64xf32>
}

// -----

// E1M6 is 8 bits and passes the attribute verifier, but more than 5 mantissa
// bits cannot store any weight.
func.func @minifloat_mantissa_6(%c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op minifloat mantissa bits must be in 0..5, got 6}}
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 1, mantissa_bits = 6>(%c, %s) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// All 64 input channels salient: no rest column left.
func.func @salient_all(%m: tensor<64xi32>, %c: tensor<4x64xi8>, %s: tensor<4x1xf32>, %b: tensor<4x0xi8>, %a: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op salient channel count must be in 1..63 for 64 input channels, got 64}}
  %w = qnt.dequant #qnt.salient<num_salient = 64, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%m, %c, %s, %b, %a) : (tensor<64xi32>, tensor<4x64xi8>, tensor<4x1xf32>, tensor<4x0xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// More salient channels than inputs.
func.func @salient_too_many(%m: tensor<64xi32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op salient channel count must be in 1..63 for 64 input channels, got 100}}
  %w = qnt.dequant #qnt.salient<num_salient = 100, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%m) : (tensor<64xi32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// A single input channel cannot be split.
func.func @salient_one_column(%m: tensor<1xi32>) -> tensor<4x1xf32> {
  // expected-error@+1 {{'qnt.dequant' op a salient split needs at least 2 input channels, got 1}}
  %w = qnt.dequant #qnt.salient<num_salient = 1, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%m) : (tensor<1xi32>) -> tensor<4x1xf32>
  return %w : tensor<4x1xf32>
}

// -----

//===----------------------------------------------------------------------===//
// Storage components (verifyEncodedWeight).
//===----------------------------------------------------------------------===//

// An asymmetric encoding without its zero points.
func.func @missing_zeros(%c: tensor<4x32xi8>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op encoding #qnt.uniform<bits = 4, mode = asymmetric> stores a 4x64 weight in 3 components, got 2}}
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%c, %s) : (tensor<4x32xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// A symmetric encoding given zero points anyway.
func.func @extra_zeros(%c: tensor<4x64xi8>, %s: tensor<4x1xf32>, %z: tensor<4x1xi8>) -> tensor<4x64xf32> {
  // expected-error@+1 {{stores a 4x64 weight in 2 components, got 3}}
  %w = qnt.dequant #qnt.uniform<bits = 8>(%c, %s, %z) : (tensor<4x64xi8>, tensor<4x1xf32>, tensor<4x1xi8>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// Codes sized for 8 bits under a 4-bit encoding: the error names the component.
func.func @wrong_codes_shape(%c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op component #0 ('codes') of a 4x64 weight must be 'tensor<4x32xi8>', got 'tensor<4x64xi8>'}}
  %w = qnt.dequant #qnt.uniform<bits = 4>(%c, %s) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// Per-channel scales under a per-group encoding.
func.func @wrong_scales_shape(%c: tensor<4x32xi8>, %s: tensor<4x1xf32>, %z: tensor<4x2xi8>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #1 ('scales') of a 4x64 weight must be 'tensor<4x2xf32>', got 'tensor<4x1xf32>'}}
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%c, %s, %z) : (tensor<4x32xi8>, tensor<4x1xf32>, tensor<4x2xi8>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// f16 scales: scales are always f32.
func.func @wrong_scales_type(%c: tensor<4x64xi8>, %s: tensor<4x1xf16>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #1 ('scales') of a 4x64 weight must be 'tensor<4x1xf32>', got 'tensor<4x1xf16>'}}
  %w = qnt.dequant #qnt.uniform<bits = 8>(%c, %s) : (tensor<4x64xi8>, tensor<4x1xf16>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// A codebook encoding with f32 row scales given f16 ones.
func.func @wrong_codebook_scales_type(%c: tensor<4x16x1xi8>, %b: tensor<1x256x4xf32>, %s: tensor<4x1xf16>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #2 ('scales') of a 4x64 weight must be 'tensor<4x1xf32>', got 'tensor<4x1xf16>'}}
  %w = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 8, group_size = 4>(%c, %b, %s) : (tensor<4x16x1xi8>, tensor<1x256x4xf32>, tensor<4x1xf16>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// i32 zero points: zero points are i8.
func.func @wrong_zeros_type(%c: tensor<4x32xi8>, %s: tensor<4x1xf32>, %z: tensor<4x1xi32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #2 ('zeros') of a 4x64 weight must be 'tensor<4x1xi8>', got 'tensor<4x1xi32>'}}
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%c, %s, %z) : (tensor<4x32xi8>, tensor<4x1xf32>, tensor<4x1xi32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// 16-bit codebook codes stored as i8.
func.func @codebook_code_type(%c: tensor<4x8x1xi8>, %b: tensor<1x65536x8xf32>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #0 ('codes') of a 4x64 weight must be 'tensor<4x8x1xi16>', got 'tensor<4x8x1xi8>'}}
  %w = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 16, group_size = 8>(%c, %b, %s) : (tensor<4x8x1xi8>, tensor<1x65536x8xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// A codebook table of the wrong size.
func.func @codebook_table_shape(%c: tensor<4x8x2xi8>, %b: tensor<2x16x8xf32>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #1 ('codebooks') of a 4x64 weight must be 'tensor<2x256x8xf32>', got 'tensor<2x16x8xf32>'}}
  %w = qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8>(%c, %b, %s) : (tensor<4x8x2xi8>, tensor<2x16x8xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// Binary offsets stored as i8.
func.func @binary_offsets_type(%b: tensor<4x8xi8>, %s: tensor<4x1xf32>, %o: tensor<4x1xi8>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #2 ('offsets') of a 4x64 weight must be 'tensor<4x1xf32>', got 'tensor<4x1xi8>'}}
  %w = qnt.dequant #qnt.binary<mode = asymmetric>(%b, %s, %o) : (tensor<4x8xi8>, tensor<4x1xf32>, tensor<4x1xi8>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// Bit-planes packed as bytes instead of 32-bit words.
func.func @bitplanes_words(%p: tensor<2x4x8xi8>, %ps: tensor<2x4x1xf32>, %o: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #0 ('planes') of a 4x64 weight must be 'tensor<2x4x2xi32>', got 'tensor<2x4x8xi8>'}}
  %w = qnt.dequant #qnt.bitplanes<planes = 2>(%p, %ps, %o) : (tensor<2x4x8xi8>, tensor<2x4x1xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// A salient part component is named with its part prefix.
func.func @salient_component_name(%m: tensor<64xi32>, %c: tensor<4x64xi8>, %s: tensor<4x1xf32>, %b: tensor<4x6xi8>, %a: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #1 ('salient.codes') of a 4x64 weight must be 'tensor<4x16xi8>', got 'tensor<4x64xi8>'}}
  %w = qnt.dequant #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%m, %c, %s, %b, %a) : (tensor<64xi32>, tensor<4x64xi8>, tensor<4x1xf32>, tensor<4x6xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// A rest part component is named with its part prefix.
func.func @rest_component_name(%m: tensor<64xi32>, %c: tensor<4x16xi8>, %s: tensor<4x1xf32>, %b: tensor<4x8xi8>, %a: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #3 ('rest.signs') of a 4x64 weight must be 'tensor<4x6xi8>', got 'tensor<4x8xi8>'}}
  %w = qnt.dequant #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%m, %c, %s, %b, %a) : (tensor<64xi32>, tensor<4x16xi8>, tensor<4x1xf32>, tensor<4x8xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

// A channel map of i8 entries.
func.func @channel_map_type(%m: tensor<64xi8>, %c: tensor<4x16xi8>, %s: tensor<4x1xf32>, %b: tensor<4x6xi8>, %a: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{component #0 ('channel_map') of a 4x64 weight must be 'tensor<64xi32>', got 'tensor<64xi8>'}}
  %w = qnt.dequant #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<>>(%m, %c, %s, %b, %a) : (tensor<64xi8>, tensor<4x16xi8>, tensor<4x1xf32>, tensor<4x6xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

//===----------------------------------------------------------------------===//
// qnt.dequant
//===----------------------------------------------------------------------===//

// A rank-3 result.
func.func @dequant_rank3(%c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<2x4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op result must be a static 2-D [N, K] weight, got 'tensor<2x4x64xf32>'}}
  %w = qnt.dequant #qnt.uniform<bits = 8>(%c, %s) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<2x4x64xf32>
  return %w : tensor<2x4x64xf32>
}

// -----

// A dynamic result.
func.func @dequant_dynamic(%c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<?x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op result must be a static 2-D [N, K] weight, got 'tensor<?x64xf32>'}}
  %w = qnt.dequant #qnt.uniform<bits = 8>(%c, %s) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<?x64xf32>
  return %w : tensor<?x64xf32>
}

// -----

// An integer result (ODS: f32, f16 or bf16 tensors only).
func.func @dequant_int_result(%c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<4x64xi32> {
  // expected-error@+1 {{'qnt.dequant' op result #0 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<4x64xi32>'}}
  %w = qnt.dequant #qnt.uniform<bits = 8>(%c, %s) : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xi32>
  return %w : tensor<4x64xi32>
}

// -----

// An attribute that is not an encoding.
func.func @dequant_not_encoding(%c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op attribute 'encoding' failed to satisfy constraint}}
  %w = "qnt.dequant"(%c, %s) {encoding = 8 : i64} : (tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

//===----------------------------------------------------------------------===//
// qnt.matmul
//===----------------------------------------------------------------------===//

// The input has 2 rows, the result 3.
func.func @matmul_rows(%x: tensor<2x64xf32>, %c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<3x4xf32> {
  // expected-error@+1 {{'qnt.matmul' op input has 2 rows but the result has 3}}
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<2x64xf32>, tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// An f16 input with an f32 result.
func.func @matmul_element_types(%x: tensor<2x64xf16>, %c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.matmul' op input element type 'f16' differs from the result's 'f32'}}
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<2x64xf16>, tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// A rank-3 input.
func.func @matmul_rank3(%x: tensor<1x2x64xf32>, %c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.matmul' op input and result must be 2-D tensors with a static last dimension, got 'tensor<1x2x64xf32>' and 'tensor<2x4xf32>'}}
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<1x2x64xf32>, tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// A dynamic channel dimension (rows may be dynamic, K may not).
func.func @matmul_dynamic(%x: tensor<2x?xf32>, %c: tensor<4x64xi8>, %s: tensor<4x1xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.matmul' op input and result must be 2-D tensors with a static last dimension, got 'tensor<2x?xf32>' and 'tensor<2x4xf32>'}}
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<2x?xf32>, tensor<4x64xi8>, tensor<4x1xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// The weight shape is [N, K] = [result columns, input columns] = [4, 64]:
// codes sized for a 64x4 weight are rejected.
func.func @matmul_weight_shape(%x: tensor<2x64xf32>, %c: tensor<64x4xi8>, %s: tensor<64x1xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.matmul' op component #0 ('codes') of a 4x64 weight must be 'tensor<4x64xi8>', got 'tensor<64x4xi8>'}}
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<2x64xf32>, tensor<64x4xi8>, tensor<64x1xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// Wrong component count through qnt.matmul.
func.func @matmul_component_count(%x: tensor<2x64xf32>, %c: tensor<4x8x2xi8>, %b: tensor<2x256x8xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.matmul' op encoding #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8> stores a 4x64 weight in 3 components, got 2}}
  %y = qnt.matmul %x, #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8>(%c, %b) : (tensor<2x64xf32>, tensor<4x8x2xi8>, tensor<2x256x8xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

//===----------------------------------------------------------------------===//
// qnt.param
//===----------------------------------------------------------------------===//

// An empty parameter name.
func.func @param_empty_name() -> tensor<4x4xf32> {
  // expected-error@+1 {{'qnt.param' op needs a non-empty parameter name}}
  %w = qnt.param "" : tensor<4x4xf32>
  return %w : tensor<4x4xf32>
}

// -----

// A dynamic parameter shape.
func.func @param_dynamic() -> tensor<?x4xf32> {
  // expected-error@+1 {{'qnt.param' op result must have a static shape, got 'tensor<?x4xf32>'}}
  %w = qnt.param "w" : tensor<?x4xf32>
  return %w : tensor<?x4xf32>
}

// -----

//===----------------------------------------------------------------------===//
// qnt.observe
//===----------------------------------------------------------------------===//

// An empty activation name.
func.func @observe_empty_name(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.observe' op needs a non-empty activation name}}
  %y = qnt.observe %x as "" stats ["absmax"] : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// No statistics.
func.func @observe_no_stats(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.observe' op needs at least one statistic}}
  %y = qnt.observe %x as "x" stats [] : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// An unknown statistic.
func.func @observe_unknown_stat(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.observe' op unknown statistic 'max'; expected absmax, mean_abs or hessian}}
  %y = qnt.observe %x as "x" stats ["absmax", "max"] : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A statistic listed twice.
func.func @observe_duplicate_stat(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.observe' op statistic 'hessian' is listed twice}}
  %y = qnt.observe %x as "x" stats ["hessian", "absmax", "hessian"] : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A dynamic channel dimension.
func.func @observe_dynamic_channels(%x: tensor<4x?xf32>) -> tensor<4x?xf32> {
  // expected-error@+1 {{'qnt.observe' op input needs a static channel (last) dimension}}
  %y = qnt.observe %x as "x" stats ["absmax"] : tensor<4x?xf32>
  return %y : tensor<4x?xf32>
}

// -----

// A 0-d input has no channel dimension.
func.func @observe_scalar(%x: tensor<f32>) -> tensor<f32> {
  // expected-error@+1 {{'qnt.observe' op input needs a static channel (last) dimension}}
  %y = qnt.observe %x as "x" stats ["absmax"] : tensor<f32>
  return %y : tensor<f32>
}

// -----

//===----------------------------------------------------------------------===//
// qnt.smooth
//===----------------------------------------------------------------------===//

// One factor too many.
func.func @smooth_factors_size(%x: tensor<4x8xf32>, %s: tensor<9xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.smooth' op factors must be a vector with one entry per input channel (8), got 'tensor<9xf32>'}}
  %y = qnt.smooth %x, %s : tensor<4x8xf32>, tensor<9xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Factors given as a matrix.
func.func @smooth_factors_rank(%x: tensor<4x8xf32>, %s: tensor<1x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.smooth' op factors must be a vector with one entry per input channel (8), got 'tensor<1x8xf32>'}}
  %y = qnt.smooth %x, %s : tensor<4x8xf32>, tensor<1x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// f16 factors for an f32 activation.
func.func @smooth_factors_type(%x: tensor<4x8xf32>, %s: tensor<8xf16>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.smooth' op factors element type 'f16' differs from the input's 'f32'}}
  %y = qnt.smooth %x, %s : tensor<4x8xf32>, tensor<8xf16>
  return %y : tensor<4x8xf32>
}

// -----

// A 0-d input.
func.func @smooth_scalar(%x: tensor<f32>, %s: tensor<1xf32>) -> tensor<f32> {
  // expected-error@+1 {{'qnt.smooth' op input must have at least one dimension}}
  %y = qnt.smooth %x, %s : tensor<f32>, tensor<1xf32>
  return %y : tensor<f32>
}

// -----

//===----------------------------------------------------------------------===//
// qnt.lowrank_add
//===----------------------------------------------------------------------===//

// A rank-1 operand.
func.func @lowrank_rank(%acc: tensor<2x4xf32>, %x: tensor<2x64xf32>, %u: tensor<4xf32>, %v: tensor<64x8xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op u and v must be static 2-D tensors, got 'tensor<4xf32>'}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<2x64xf32>, tensor<4xf32>, tensor<64x8xf32>
  return %y : tensor<2x4xf32>
}

// -----

// Mixed element types.
func.func @lowrank_types(%acc: tensor<2x4xf32>, %x: tensor<2x64xf32>, %u: tensor<4x8xf16>, %v: tensor<64x8xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op operands must share one element type, got 'f32' and 'f16'}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<2x64xf32>, tensor<4x8xf16>, tensor<64x8xf32>
  return %y : tensor<2x4xf32>
}

// -----

// Dynamic rows must agree: a dynamic accumulator with a static input.
func.func @lowrank_dynamic_rows(%acc: tensor<?x4xf32>, %x: tensor<3x64xf32>, %u: tensor<4x8xf32>, %v: tensor<64x8xf32>) -> tensor<?x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op input has 3 rows, acc has ?}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<?x4xf32>, tensor<3x64xf32>, tensor<4x8xf32>, tensor<64x8xf32>
  return %y : tensor<?x4xf32>
}

// -----

// The factors are weights: static.
func.func @lowrank_dynamic_factor(%acc: tensor<?x4xf32>, %x: tensor<?x64xf32>, %u: tensor<?x8xf32>, %v: tensor<64x8xf32>) -> tensor<?x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op u and v must be static 2-D tensors, got 'tensor<?x8xf32>'}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<?x4xf32>, tensor<?x64xf32>, tensor<?x8xf32>, tensor<64x8xf32>
  return %y : tensor<?x4xf32>
}

// -----

// A dynamic last dimension of an activation.
func.func @lowrank_dynamic_k(%acc: tensor<2x4xf32>, %x: tensor<2x?xf32>, %u: tensor<4x8xf32>, %v: tensor<64x8xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op acc and input must be 2-D tensors with a static last dimension, got 'tensor<2x?xf32>'}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<2x?xf32>, tensor<4x8xf32>, tensor<64x8xf32>
  return %y : tensor<2x4xf32>
}

// -----

// The input has 3 rows, the accumulator 2.
func.func @lowrank_input_rows(%acc: tensor<2x4xf32>, %x: tensor<3x64xf32>, %u: tensor<4x8xf32>, %v: tensor<64x8xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op input has 3 rows, acc has 2}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<3x64xf32>, tensor<4x8xf32>, tensor<64x8xf32>
  return %y : tensor<2x4xf32>
}

// -----

// u with 5 rows for N = 4.
func.func @lowrank_u_rows(%acc: tensor<2x4xf32>, %x: tensor<2x64xf32>, %u: tensor<5x8xf32>, %v: tensor<64x8xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op u must be [N, r] with N = 4, got 'tensor<5x8xf32>'}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<2x64xf32>, tensor<5x8xf32>, tensor<64x8xf32>
  return %y : tensor<2x4xf32>
}

// -----

// v with rank 4 while u has rank 8.
func.func @lowrank_v_rank(%acc: tensor<2x4xf32>, %x: tensor<2x64xf32>, %u: tensor<4x8xf32>, %v: tensor<64x4xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op v must be [K, r] = [64, 8], got 'tensor<64x4xf32>'}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<2x64xf32>, tensor<4x8xf32>, tensor<64x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// v with 32 rows while K = 64.
func.func @lowrank_v_rows(%acc: tensor<2x4xf32>, %x: tensor<2x64xf32>, %u: tensor<4x8xf32>, %v: tensor<32x8xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.lowrank_add' op v must be [K, r] = [64, 8], got 'tensor<32x8xf32>'}}
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<2x4xf32>, tensor<2x64xf32>, tensor<4x8xf32>, tensor<32x8xf32>
  return %y : tensor<2x4xf32>
}

// -----

//===----------------------------------------------------------------------===//
// qnt.fake_quant
//===----------------------------------------------------------------------===//

// A static scale with per-token granularity.
func.func @fake_quant_scale_per_token(%x: tensor<4x8xf32>, %s: tensor<1xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op a static scale is only valid per tensor; per_token scales are computed at run time}}
  %y = qnt.fake_quant %x scale(%s : tensor<1xf32>) {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A scale with two values.
func.func @fake_quant_scale_size(%x: tensor<4x8xf32>, %s: tensor<2xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op scale must hold exactly one value, got 'tensor<2xf32>'}}
  %y = qnt.fake_quant %x scale(%s : tensor<2xf32>) {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A clip ratio next to a static scale (it multiplies run-time scales).
func.func @fake_quant_clip_static(%x: tensor<4x8xf32>, %s: tensor<1xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op a clip ratio applies to run-time scales; it cannot be combined with a static scale}}
  %y = qnt.fake_quant %x scale(%s : tensor<1xf32>) clip(%s : tensor<1xf32>) {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A clip ratio with three values.
func.func @fake_quant_clip_size(%x: tensor<4x8xf32>, %c: tensor<3xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op clip must hold exactly one value, got 'tensor<3xf32>'}}
  %y = qnt.fake_quant %x clip(%c : tensor<3xf32>) {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A constant clip ratio that is not positive.
func.func @fake_quant_clip_zero(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %c = arith.constant dense<0.0> : tensor<1xf32>
  // expected-error@+1 {{'qnt.fake_quant' op clip must be positive, got 0}}
  %y = qnt.fake_quant %x clip(%c : tensor<1xf32>) {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A dynamic scale tensor.
func.func @fake_quant_scale_dynamic(%x: tensor<4x8xf32>, %s: tensor<?xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op scale must hold exactly one value, got 'tensor<?xf32>'}}
  %y = qnt.fake_quant %x scale(%s : tensor<?xf32>) {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// An f16 scale (ODS: scales are f32 tensors).
func.func @fake_quant_scale_f16(%x: tensor<4x8xf32>, %s: tensor<1xf16>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op operand #1 must be tensor of 32-bit float values, but got 'tensor<1xf16>'}}
  %y = qnt.fake_quant %x scale(%s : tensor<1xf16>) {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Noise of the wrong length.
func.func @fake_quant_noise_size(%x: tensor<4x8xf32>, %n: tensor<4xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op noise must be a vector of 8 'f32', got 'tensor<4xf32>'}}
  %y = qnt.fake_quant %x noise(%n : tensor<4xf32>) {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Noise of another element type.
func.func @fake_quant_noise_type(%x: tensor<4x8xf32>, %n: tensor<8xbf16>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op noise must be a vector of 8 'f32', got 'tensor<8xbf16>'}}
  %y = qnt.fake_quant %x noise(%n : tensor<8xbf16>) {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Dynamic channels (dynamic tokens are fine).
func.func @fake_quant_dynamic(%x: tensor<8x?xf32>) -> tensor<8x?xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op input must have a static last dimension, got 'tensor<8x?xf32>'}}
  %y = qnt.fake_quant %x {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<8x?xf32>
  return %y : tensor<8x?xf32>
}

// -----

// A 0-d input.
func.func @fake_quant_scalar(%x: tensor<f32>) -> tensor<f32> {
  // expected-error@+1 {{'qnt.fake_quant' op input must have a static last dimension, got 'tensor<f32>'}}
  %y = qnt.fake_quant %x {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<f32>
  return %y : tensor<f32>
}

// -----

// One bit (ODS: bits in 2..16).
func.func @fake_quant_one_bit(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{'qnt.fake_quant' op attribute 'bits' failed to satisfy constraint: 64-bit signless integer attribute whose minimum value is 2 whose maximum value is 16}}
  %y = qnt.fake_quant %x {bits = 1, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Seventeen bits.
func.func @fake_quant_17_bits(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{attribute 'bits' failed to satisfy constraint: 64-bit signless integer attribute whose minimum value is 2 whose maximum value is 16}}
  %y = qnt.fake_quant %x {bits = 17, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// An unknown activation granularity.
func.func @fake_quant_granularity(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+2 {{expected ::mlir::qnt::ActivationGranularity to be one of: per_tensor, per_token}}
  // expected-error@+1 {{failed to parse Qnt_ActivationGranularityAttr parameter 'value'}}
  %y = qnt.fake_quant %x {bits = 8, granularity = #qnt<act_granularity per_channel>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// The result type must match the input type.
func.func @fake_quant_result_type(%x: tensor<4x8xf32>) -> tensor<4x8xf16> {
  // expected-error@+1 {{'qnt.fake_quant' op failed to verify that all of {input, result} have same type}}
  %y = "qnt.fake_quant"(%x) <{bits = 8 : i64, granularity = #qnt<act_granularity per_tensor>, operandSegmentSizes = array<i32: 1, 0, 0, 0>}> : (tensor<4x8xf32>) -> tensor<4x8xf16>
  return %y : tensor<4x8xf16>
}

// -----

// Codebook counts that do not fit the spec's int (2^32 + 1 verified and then
// made the emitter unroll 2^32 times) or its message (2^40).
// expected-error@+1 {{codebook encoding needs 1..64 codebooks, got 4294967297}}
#bad = #qnt.codebook<num_codebooks = 4294967297, code_bits = 8, group_size = 8>

// -----

// expected-error@+1 {{codebook encoding needs 1..64 codebooks, got 1099511627776}}
#bad = #qnt.codebook<num_codebooks = 1099511627776, code_bits = 8, group_size = 8>

// -----

// A K so large that the packed row size overflowed int64 (UBSan in the
// verifier, a wrongly sized tensor type in release builds).
func.func @huge_k(%c: tensor<4x8xi8>, %s: tensor<4x1xf32>) -> tensor<4x2305843009213693952xf32> {
  // expected-error@+1 {{'qnt.dequant' op matrix shape 4x2305843009213693952 exceeds the largest supported dimension 1099511627776}}
  %w = qnt.dequant #qnt.uniform<bits = 4>(%c, %s) : (tensor<4x8xi8>, tensor<4x1xf32>) -> tensor<4x2305843009213693952xf32>
  return %w : tensor<4x2305843009213693952xf32>
}

// -----

// Dimensions within bounds whose product does not fit: the dequantized
// matrix (2^40 x 2^40 f32) overflows 64-bit byte sizes.
func.func @huge_product(%c: tensor<4x8xi8>, %s: tensor<4x1xf32>) -> tensor<1099511627776x1099511627776xf32> {
  // expected-error@+1 {{'qnt.dequant' op the dequantized 1099511627776x1099511627776 f32 matrix overflows 64-bit byte sizes}}
  %w = qnt.dequant #qnt.uniform<bits = 4>(%c, %s) : (tensor<4x8xi8>, tensor<4x1xf32>) -> tensor<1099511627776x1099511627776xf32>
  return %w : tensor<1099511627776x1099511627776xf32>
}

// -----

// A codebook whose codebooks tensor (64 x 2^16 x g) overflows for a huge g.
func.func @huge_codebooks(%c: tensor<4x1x64xi16>, %b: tensor<1x1xf32>, %s: tensor<4x1xf32>) -> tensor<4x1099511627776xf32> {
  // expected-error@+1 {{'qnt.dequant' op storage component 'codebooks' (64x65536x1099511627776 f32) overflows 64-bit byte sizes}}
  %w = qnt.dequant #qnt.codebook<num_codebooks = 64, code_bits = 16, group_size = 1099511627776>(%c, %b, %s) : (tensor<4x1x64xi16>, tensor<1x1xf32>, tensor<4x1xf32>) -> tensor<4x1099511627776xf32>
  return %w : tensor<4x1099511627776xf32>
}

// -----

// An unknown scale type.
// expected-error@+2 {{expected one of [f32, f16] for how an encoding stores its scales, got: bf16}}
// expected-error@+1 {{failed to parse Qnt_UniformEncodingAttr parameter 'scale_type'}}
#bad = #qnt.uniform<bits = 4, scale_type = bf16>

// -----

// Half-precision scales must be given as f16.
func.func @half_scales_as_f32(%c: tensor<4x32xi8>, %s: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error@+1 {{'qnt.dequant' op component #1 ('scales') of a 4x64 weight must be 'tensor<4x1xf16>', got 'tensor<4x1xf32>'}}
  %w = qnt.dequant #qnt.uniform<bits = 4, scale_type = f16>(%c, %s) : (tensor<4x32xi8>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %w : tensor<4x64xf32>
}

// -----

func.func @unknown_intrinsic(%a: vector<16xi32>) -> vector<16xi32> {
  // expected-error@+1 {{'qnt.intrinsic' op 'llvm.x86.no.such.thing' is not an LLVM intrinsic}}
  %r = qnt.intrinsic "llvm.x86.no.such.thing"(%a) : (vector<16xi32>) -> vector<16xi32>
  return %r : vector<16xi32>
}

// -----

func.func @intrinsic_on_2d_vectors(%a: vector<4x4xi32>, %u: vector<64xi8>) -> vector<16xi32> {
  // expected-error@+1 {{'qnt.intrinsic' op operands and result must be 1-D vectors (LLVM vectors), not 'vector<4x4xi32>'}}
  %r = qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%a, %u, %u) : (vector<4x4xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
  return %r : vector<16xi32>
}
