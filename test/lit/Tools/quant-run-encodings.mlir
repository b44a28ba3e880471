// The dequantization arithmetic of every encoding, executed: @dequant returns
// qnt.dequant of hand-packed constant components (the worked examples of
// docs/PackedLayouts.md and a few more), lowered by qnt-lower-to-linalg inside
// qnt-cpu-pipeline and run by quant-run; @fused multiplies an identity matrix
// by the same weights with qnt.matmul (the fused lowering), so its results
// are the transposed weights. Every value is exact in f32.
// RUN: rm -rf %t && mkdir -p %t
// RUN: quant-run %s --entry=dequant --output %t/dequant.safetensors | FileCheck %s --check-prefix=RAN
// RAN: ran @dequant: 0 inputs, 0 parameters, 20 results
// RUN: sed -n 's|^// DUMP: \{0,1\}||p' %s | %python - %t/dequant.safetensors | FileCheck %s
// RUN: quant-run %s --entry=fused --output %t/fused.safetensors
// RUN: sed -n 's|^// DUMP: \{0,1\}||p' %s | %python - %t/fused.safetensors | FileCheck %s --check-prefix=FUSED

// DUMP: import json, struct, sys
// DUMP: blob = open(sys.argv[1], "rb").read()
// DUMP: n = struct.unpack("<Q", blob[:8])[0]
// DUMP: header = json.loads(blob[8:8 + n])
// DUMP: header.pop("__metadata__", None)
// DUMP: for i in range(len(header)):
// DUMP:     t = header["result%d" % i]
// DUMP:     b, e = t["data_offsets"]
// DUMP:     code = {"F32": "f", "F16": "e"}[t["dtype"]]
// DUMP:     size = struct.calcsize(code)
// DUMP:     values = struct.unpack("<%d%s" % ((e - b) // size, code), blob[8 + n + b:8 + n + e])
// DUMP:     print("result%d" % i, t["dtype"], t["shape"], list(values))

// int4 asym per tensor: codes 40 64 F6 82 are u = 0 4 4 6 6 15 2 8, s 0.25, z 4.
// CHECK: result0 F32 [1, 8] [-1.0, 0.0, 0.0, 0.5, 0.5, 2.75, -0.5, 1.0]
// int3 sym per channel: codes D1 58 1F are u = 1..7, 0; value = u - 4.
// CHECK-NEXT: result1 F32 [1, 8] [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -4.0]
// int8 sym per channel: u = 255 64 128 130 | 1 128 130 160, s = 1 | 1/32.
// CHECK-NEXT: result2 F32 [2, 4] [127.0, -64.0, 0.0, 2.0, -3.96875, 0.0, 0.0625, 1.0]
// The same into f16.
// CHECK-NEXT: result3 F16 [2, 4] [127.0, -64.0, 0.0, 2.0, -3.96875, 0.0, 0.0625, 1.0]
// int4 sym per group of 4 (scales [[1, 0.25], [1, 2]]).
// CHECK-NEXT: result4 F32 [2, 8] [7.0, -4.0, 1.0, 0.0, 0.5, -1.75, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, -14.0, 14.0, 4.0, 0.0]
// E2M1 per channel: codes B7 01 = 7 0xB 1 0 = 6 -1.5 0.5 0, scale 2.
// CHECK-NEXT: result5 F32 [1, 4] [12.0, -3.0, 1.0, 0.0]
// OCP E4M3: 0x7E = 448, 0xB8 = -1, 0x30 = 0.5, 0x44 = 3, 0x7F = NaN,
// 0x01 = 2^-9 (subnormal), 0x80 = -0, 0x08 = 2^-6 (smallest normal).
// CHECK-NEXT: result6 F32 [1, 8] [448.0, -1.0, 0.5, 3.0, nan, 0.001953125, -0.0, 0.015625]
// OCP E5M2: 0x7B = 57344, 0x7C = Inf, 0xFC = -Inf, 0x7D = NaN, 0x01 = 2^-16,
// 0x3C = 1, 0xC0 = -2, 0x00 = 0.
// CHECK-NEXT: result7 F32 [1, 8] [57344.0, inf, -inf, nan, 1.52587890625e-05, 1.0, -2.0, 0.0]
// Codebooks, 2 codebooks of 4 codewords, group 2 (the documented example).
// CHECK-NEXT: result8 F32 [2, 4] [2.5, -0.5, 3.0, 3.0, 0.25, 0.25, -0.25, 0.625]
// AQLM 1x16 group 2 with codeword[c] = [c, c + 0.25]: codes 300 and 40000
// (stored as the i16 -25536, read unsigned), scales 1 and 0.5.
// CHECK-NEXT: result9 F32 [2, 4] [300.0, 300.25, 40000.0, 40000.25, 0.0, 0.125, 0.5, 0.625]
// Binary with offsets, K = 10: signs 55 01 (bits 1 0 1 0 1 0 1 0 1 0), alpha
// 0.5, mu 0.125; signs B5 02 (bits 1 0 1 0 1 1 0 1 0 1), alpha 2, mu -1.
// CHECK-NEXT: result10 F32 [2, 10] [0.625, -0.375, 0.625, -0.375, 0.625, -0.375, 0.625, -0.375, 0.625, -0.375, 1.0, -3.0, 1.0, -3.0, 1.0, 1.0, -3.0, 1.0, -3.0, 1.0]
// Bit-planes, P = 2, plane scales 1 and 2, offset -1.5, K = 35: plane 0 words
// 0x9 0x0, plane 1 words 0xA 0x2, so w[0] = -0.5, w[1] = 0.5, w[3] = 1.5,
// w[33] = 0.5 (bit 1 of word 1) and -1.5 elsewhere.
// CHECK-NEXT: result11 F32 [1, 35] [-0.5, 0.5, -1.5, 1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, 0.5, -1.5]
// Salient (documented example): channel map [-1, 0, -2, -3], salient int8
// codes FF 7C with scales 1 and 0.5, rest binary signs 05 02 with alpha 0.25.
// CHECK-NEXT: result12 F32 [2, 4] [0.25, 127.0, -0.25, 0.25, -0.25, -2.0, 0.25, -0.25]
// Binary without offsets per group of 4: signs 0F F0, alpha [[1, 2], [3, 4]].
// CHECK-NEXT: result13 F32 [2, 8] [1.0, 1.0, 1.0, 1.0, -2.0, -2.0, -2.0, -2.0, -3.0, -3.0, -3.0, -3.0, 4.0, 4.0, 4.0, 4.0]
// E3M2 (6-bit codes straddling bytes, bias 3): codes 0x0C 0x32 0x01 0x1F
// packed as 8C 1C 7C are 1, -3, 2^-4 (subnormal) and 28 (the max).
// CHECK-NEXT: result14 F32 [1, 4] [1.0, -3.0, 0.0625, 28.0]
// E2M3 (bias 1): codes 0x08 0x3F 0x01 0x14 packed as C8 1F 50 are 1, -7.5
// (the max, negated), 2^-3 (subnormal) and 3.
// CHECK-NEXT: result15 F32 [1, 4] [1.0, -7.5, 0.125, 3.0]
// int8 asym with zero point 255 (stored as the i8 -1, read unsigned):
// u = 0 127 255 254.
// CHECK-NEXT: result16 F32 [1, 4] [-255.0, -128.0, 0.0, -1.0]
// Salient with a binary+offset salient part and an int4 asym per-group rest
// part (components after the salient part's three): map [-1, 0, -2, -3, 1, -4]
// puts salient columns 2.5 and -1.5 at inputs 1 and 4, and rest codes 3 0 | 15
// 7 (scales 0.5 | 0.25, zeros 1 | 8) = 1 -0.5 | 1.75 -0.25 at inputs 0 2 3 5.
// CHECK-NEXT: result17 F32 [1, 6] [1.0, 2.5, -0.5, 1.75, -1.5, -0.25]
// Bit-planes per group of 2: plane scales [p][n][g] = 2^(4p + 2n + g), offsets
// [[0.5, 0.25], [-1, -2]]; row 0 planes 0b0101 and 0b0011, row 1 planes
// 0b1010 and 0b1100 (bit k is input k).
// CHECK-NEXT: result18 F32 [2, 4] [17.5, 16.5, 2.25, 0.25, -1.0, 3.0, 126.0, 134.0]
// Two 8-bit codebooks with codeword[m][c] = 1000 m + c: codes above 127 (200,
// 255, 128) are read unsigned: 200 + 1255 and 0 + 1128.
// CHECK-NEXT: result19 F32 [2, 2] [1455.0, 1455.0, 1128.0, 1128.0]

func.func @dequant() -> (tensor<1x8xf32>, tensor<1x8xf32>, tensor<2x4xf32>, tensor<2x4xf16>, tensor<2x8xf32>,
                         tensor<1x4xf32>, tensor<1x8xf32>, tensor<1x8xf32>, tensor<2x4xf32>, tensor<2x4xf32>,
                         tensor<2x10xf32>, tensor<1x35xf32>, tensor<2x4xf32>, tensor<2x8xf32>,
                         tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x6xf32>,
                         tensor<2x4xf32>, tensor<2x2xf32>) {
  %u4_codes = arith.constant dense<[[0x40, 0x64, 0xF6, 0x82]]> : tensor<1x4xi8>
  %u4_scales = arith.constant dense<0.25> : tensor<1x1xf32>
  %u4_zeros = arith.constant dense<4> : tensor<1x1xi8>
  %r0 = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_tensor>(%u4_codes, %u4_scales, %u4_zeros) : (tensor<1x4xi8>, tensor<1x1xf32>, tensor<1x1xi8>) -> tensor<1x8xf32>

  %u3_codes = arith.constant dense<[[0xD1, 0x58, 0x1F]]> : tensor<1x3xi8>
  %u3_scales = arith.constant dense<1.0> : tensor<1x1xf32>
  %r1 = qnt.dequant #qnt.uniform<bits = 3>(%u3_codes, %u3_scales) : (tensor<1x3xi8>, tensor<1x1xf32>) -> tensor<1x8xf32>

  %u8_codes = arith.constant dense<[[0xFF, 0x40, 0x80, 0x82], [0x01, 0x80, 0x82, 0xA0]]> : tensor<2x4xi8>
  %u8_scales = arith.constant dense<[[1.0], [0.03125]]> : tensor<2x1xf32>
  %r2 = qnt.dequant #qnt.uniform<bits = 8>(%u8_codes, %u8_scales) : (tensor<2x4xi8>, tensor<2x1xf32>) -> tensor<2x4xf32>
  %r3 = qnt.dequant #qnt.uniform<bits = 8>(%u8_codes, %u8_scales) : (tensor<2x4xi8>, tensor<2x1xf32>) -> tensor<2x4xf16>

  %g_codes = arith.constant dense<[[79, -119, 26, -119], [-120, -120, -15, -118]]> : tensor<2x4xi8>
  %g_scales = arith.constant dense<[[1.0, 0.25], [1.0, 2.0]]> : tensor<2x2xf32>
  %r4 = qnt.dequant #qnt.uniform<bits = 4, granularity = per_group, group_size = 4>(%g_codes, %g_scales) : (tensor<2x4xi8>, tensor<2x2xf32>) -> tensor<2x8xf32>

  %e2m1_codes = arith.constant dense<[[0xB7, 0x01]]> : tensor<1x2xi8>
  %e2m1_scales = arith.constant dense<2.0> : tensor<1x1xf32>
  %r5 = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1>(%e2m1_codes, %e2m1_scales) : (tensor<1x2xi8>, tensor<1x1xf32>) -> tensor<1x4xf32>

  %one = arith.constant dense<1.0> : tensor<1x1xf32>
  %e4m3_codes = arith.constant dense<[[0x7E, 0xB8, 0x30, 0x44, 0x7F, 0x01, 0x80, 0x08]]> : tensor<1x8xi8>
  %r6 = qnt.dequant #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp>(%e4m3_codes, %one) : (tensor<1x8xi8>, tensor<1x1xf32>) -> tensor<1x8xf32>
  %e5m2_codes = arith.constant dense<[[0x7B, 0x7C, 0xFC, 0x7D, 0x01, 0x3C, 0xC0, 0x00]]> : tensor<1x8xi8>
  %r7 = qnt.dequant #qnt.minifloat<exponent_bits = 5, mantissa_bits = 2, special = ocp>(%e5m2_codes, %one) : (tensor<1x8xi8>, tensor<1x1xf32>) -> tensor<1x8xf32>

  %cb_codes = arith.constant dense<[[[1, 2], [3, 0]], [[0, 0], [2, 1]]]> : tensor<2x2x2xi8>
  %cb_books = arith.constant dense<[[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                                    [[0.5, 0.5], [-0.5, 0.25], [0.25, -0.25], [0.0, 0.0]]]> : tensor<2x4x2xf32>
  %cb_scales = arith.constant dense<[[2.0], [0.5]]> : tensor<2x1xf32>
  %r8 = qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 2, group_size = 2>(%cb_codes, %cb_books, %cb_scales) : (tensor<2x2x2xi8>, tensor<2x4x2xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>

  %c16_codes = arith.constant dense<[[[300], [-25536]], [[0], [1]]]> : tensor<2x2x1xi16>
  %c16_books = tensor.generate {
  ^bb0(%m: index, %c: index, %t: index):
    %ci = arith.index_cast %c : index to i32
    %cf = arith.uitofp %ci : i32 to f32
    %ti = arith.index_cast %t : index to i32
    %tf = arith.uitofp %ti : i32 to f32
    %quarter = arith.constant 0.25 : f32
    %tq = arith.mulf %tf, %quarter : f32
    %v = arith.addf %cf, %tq : f32
    tensor.yield %v : f32
  } : tensor<1x65536x2xf32>
  %c16_scales = arith.constant dense<[[1.0], [0.5]]> : tensor<2x1xf32>
  %r9 = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 16, group_size = 2>(%c16_codes, %c16_books, %c16_scales) : (tensor<2x2x1xi16>, tensor<1x65536x2xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>

  %bin_signs = arith.constant dense<[[0x55, 0x01], [0xB5, 0x02]]> : tensor<2x2xi8>
  %bin_alpha = arith.constant dense<[[0.5], [2.0]]> : tensor<2x1xf32>
  %bin_mu = arith.constant dense<[[0.125], [-1.0]]> : tensor<2x1xf32>
  %r10 = qnt.dequant #qnt.binary<mode = asymmetric>(%bin_signs, %bin_alpha, %bin_mu) : (tensor<2x2xi8>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x10xf32>

  %bp_planes = arith.constant dense<[[[9, 0]], [[10, 2]]]> : tensor<2x1x2xi32>
  %bp_scales = arith.constant dense<[[[1.0]], [[2.0]]]> : tensor<2x1x1xf32>
  %bp_offsets = arith.constant dense<-1.5> : tensor<1x1xf32>
  %r11 = qnt.dequant #qnt.bitplanes<planes = 2, granularity = per_tensor>(%bp_planes, %bp_scales, %bp_offsets) : (tensor<2x1x2xi32>, tensor<2x1x1xf32>, tensor<1x1xf32>) -> tensor<1x35xf32>

  %sal_map = arith.constant dense<[-1, 0, -2, -3]> : tensor<4xi32>
  %sal_codes = arith.constant dense<[[0xFF], [0x7C]]> : tensor<2x1xi8>
  %sal_scales = arith.constant dense<[[1.0], [0.5]]> : tensor<2x1xf32>
  %sal_signs = arith.constant dense<[[0x05], [0x02]]> : tensor<2x1xi8>
  %sal_alpha = arith.constant dense<0.25> : tensor<1x1xf32>
  %r12 = qnt.dequant #qnt.salient<num_salient = 1, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<granularity = per_tensor>>(%sal_map, %sal_codes, %sal_scales, %sal_signs, %sal_alpha) : (tensor<4xi32>, tensor<2x1xi8>, tensor<2x1xf32>, tensor<2x1xi8>, tensor<1x1xf32>) -> tensor<2x4xf32>

  %bg_signs = arith.constant dense<[[0x0F], [0xF0]]> : tensor<2x1xi8>
  %bg_alpha = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %r13 = qnt.dequant #qnt.binary<granularity = per_group, group_size = 4>(%bg_signs, %bg_alpha) : (tensor<2x1xi8>, tensor<2x2xf32>) -> tensor<2x8xf32>

  %e3m2_codes = arith.constant dense<[[0x8C, 0x1C, 0x7C]]> : tensor<1x3xi8>
  %r14 = qnt.dequant #qnt.minifloat<exponent_bits = 3, mantissa_bits = 2>(%e3m2_codes, %one) : (tensor<1x3xi8>, tensor<1x1xf32>) -> tensor<1x4xf32>
  %e2m3_codes = arith.constant dense<[[0xC8, 0x1F, 0x50]]> : tensor<1x3xi8>
  %r15 = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 3>(%e2m3_codes, %one) : (tensor<1x3xi8>, tensor<1x1xf32>) -> tensor<1x4xf32>

  %a8_codes = arith.constant dense<[[0, 127, 255, 254]]> : tensor<1x4xi8>
  %a8_zeros = arith.constant dense<255> : tensor<1x1xi8>
  %r16 = qnt.dequant #qnt.uniform<bits = 8, mode = asymmetric>(%a8_codes, %one, %a8_zeros) : (tensor<1x4xi8>, tensor<1x1xf32>, tensor<1x1xi8>) -> tensor<1x4xf32>

  %s2_map = arith.constant dense<[-1, 0, -2, -3, 1, -4]> : tensor<6xi32>
  %s2_signs = arith.constant dense<1> : tensor<1x1xi8>
  %s2_alpha = arith.constant dense<2.0> : tensor<1x1xf32>
  %s2_mu = arith.constant dense<0.5> : tensor<1x1xf32>
  %s2_codes = arith.constant dense<[[0x03, 0x7F]]> : tensor<1x2xi8>
  %s2_scales = arith.constant dense<[[0.5, 0.25]]> : tensor<1x2xf32>
  %s2_zeros = arith.constant dense<[[1, 8]]> : tensor<1x2xi8>
  %r17 = qnt.dequant #qnt.salient<num_salient = 2, salient = #qnt.binary<mode = asymmetric>, rest = #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 2>>(%s2_map, %s2_signs, %s2_alpha, %s2_mu, %s2_codes, %s2_scales, %s2_zeros) : (tensor<6xi32>, tensor<1x1xi8>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x2xi8>, tensor<1x2xf32>, tensor<1x2xi8>) -> tensor<1x6xf32>

  %bg_planes = arith.constant dense<[[[5], [10]], [[3], [12]]]> : tensor<2x2x1xi32>
  %bg_plane_scales = arith.constant dense<[[[1.0, 2.0], [4.0, 8.0]], [[16.0, 32.0], [64.0, 128.0]]]> : tensor<2x2x2xf32>
  %bg_offsets = arith.constant dense<[[0.5, 0.25], [-1.0, -2.0]]> : tensor<2x2xf32>
  %r18 = qnt.dequant #qnt.bitplanes<planes = 2, granularity = per_group, group_size = 2>(%bg_planes, %bg_plane_scales, %bg_offsets) : (tensor<2x2x1xi32>, tensor<2x2x2xf32>, tensor<2x2xf32>) -> tensor<2x4xf32>

  %c8_codes = arith.constant dense<[[[200, 255]], [[0, 128]]]> : tensor<2x1x2xi8>
  %c8_books = tensor.generate {
  ^bb0(%m: index, %c: index, %t: index):
    %ci = arith.index_cast %c : index to i32
    %cf = arith.uitofp %ci : i32 to f32
    %mi = arith.index_cast %m : index to i32
    %mf = arith.uitofp %mi : i32 to f32
    %thousand = arith.constant 1000.0 : f32
    %mk = arith.mulf %mf, %thousand : f32
    %v = arith.addf %cf, %mk : f32
    tensor.yield %v : f32
  } : tensor<2x256x2xf32>
  %c8_scales = arith.constant dense<1.0> : tensor<2x1xf32>
  %r19 = qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 2>(%c8_codes, %c8_books, %c8_scales) : (tensor<2x1x2xi8>, tensor<2x256x2xf32>, tensor<2x1xf32>) -> tensor<2x2xf32>

  return %r0, %r1, %r2, %r3, %r4, %r5, %r6, %r7, %r8, %r9, %r10, %r11, %r12, %r13, %r14, %r15, %r16, %r17, %r18, %r19
      : tensor<1x8xf32>, tensor<1x8xf32>, tensor<2x4xf32>, tensor<2x4xf16>, tensor<2x8xf32>,
        tensor<1x4xf32>, tensor<1x8xf32>, tensor<1x8xf32>, tensor<2x4xf32>, tensor<2x4xf32>,
        tensor<2x10xf32>, tensor<1x35xf32>, tensor<2x4xf32>, tensor<2x8xf32>,
        tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x6xf32>,
        tensor<2x4xf32>, tensor<2x2xf32>
}

// The fused path (qnt-lower-matmul-fused): I [K, K] times W^T gives W^T [K, N].
// FUSED: result0 F32 [8, 2] [7.0, 0.0, -4.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5, -14.0, -1.75, 14.0, 0.25, 4.0, 0.0, 0.0]
// FUSED-NEXT: result1 F32 [4, 2] [0.25, -0.25, 127.0, -2.0, -0.25, 0.25, 0.25, -0.25]
// FUSED-NEXT: result2 F32 [4, 1] [12.0, -3.0, 1.0, 0.0]
// FUSED-NEXT: result3 F16 [4, 2] [127.0, -3.96875, -64.0, 0.0, 0.0, 0.0625, 2.0, 1.0]
func.func @fused() -> (tensor<8x2xf32>, tensor<4x2xf32>, tensor<4x1xf32>, tensor<4x2xf16>) {
  %eye8 = arith.constant dense<[[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                                [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                                [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
                                [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]]> : tensor<8x8xf32>
  %eye4 = arith.constant dense<[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]> : tensor<4x4xf32>
  %eye4h = arith.constant dense<[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]> : tensor<4x4xf16>

  %g_codes = arith.constant dense<[[79, -119, 26, -119], [-120, -120, -15, -118]]> : tensor<2x4xi8>
  %g_scales = arith.constant dense<[[1.0, 0.25], [1.0, 2.0]]> : tensor<2x2xf32>
  %y0 = qnt.matmul %eye8, #qnt.uniform<bits = 4, granularity = per_group, group_size = 4>(%g_codes, %g_scales) : (tensor<8x8xf32>, tensor<2x4xi8>, tensor<2x2xf32>) -> tensor<8x2xf32>

  %sal_map = arith.constant dense<[-1, 0, -2, -3]> : tensor<4xi32>
  %sal_codes = arith.constant dense<[[0xFF], [0x7C]]> : tensor<2x1xi8>
  %sal_scales = arith.constant dense<[[1.0], [0.5]]> : tensor<2x1xf32>
  %sal_signs = arith.constant dense<[[0x05], [0x02]]> : tensor<2x1xi8>
  %sal_alpha = arith.constant dense<0.25> : tensor<1x1xf32>
  %y1 = qnt.matmul %eye4, #qnt.salient<num_salient = 1, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<granularity = per_tensor>>(%sal_map, %sal_codes, %sal_scales, %sal_signs, %sal_alpha) : (tensor<4x4xf32>, tensor<4xi32>, tensor<2x1xi8>, tensor<2x1xf32>, tensor<2x1xi8>, tensor<1x1xf32>) -> tensor<4x2xf32>

  %e2m1_codes = arith.constant dense<[[0xB7, 0x01]]> : tensor<1x2xi8>
  %e2m1_scales = arith.constant dense<2.0> : tensor<1x1xf32>
  %y2 = qnt.matmul %eye4, #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1>(%e2m1_codes, %e2m1_scales) : (tensor<4x4xf32>, tensor<1x2xi8>, tensor<1x1xf32>) -> tensor<4x1xf32>

  %u8_codes = arith.constant dense<[[0xFF, 0x40, 0x80, 0x82], [0x01, 0x80, 0x82, 0xA0]]> : tensor<2x4xi8>
  %u8_scales = arith.constant dense<[[1.0], [0.03125]]> : tensor<2x1xf32>
  %y3 = qnt.matmul %eye4h, #qnt.uniform<bits = 8>(%u8_codes, %u8_scales) : (tensor<4x4xf16>, tensor<2x4xi8>, tensor<2x1xf32>) -> tensor<4x2xf16>

  return %y0, %y1, %y2, %y3 : tensor<8x2xf32>, tensor<4x2xf32>, tensor<4x1xf32>, tensor<4x2xf16>
}
