// Every encoding gets GPU kernels from the one dequantization hook: each
// function below is lowered by qnt-gpu-pipeline, its kernels go through
// LLVM's NVPTX backend and are assembled by ptxas for sm_80 and sm_90 (one
// cubin each). Shapes are deliberately not multiples of the tiles (N = 40,
// K = 96 or 100) and M is dynamic, so every GEMV variant and the GEMM are
// built for every encoding.
// REQUIRES: ptxas

// RUN: quant-opt %s --qnt-gpu-pipeline="chips=sm_80,sm_90" | FileCheck %s --check-prefix=BIN
// RUN: quant-opt %s --qnt-gpu-pipeline="chips=sm_90 format=isa" -o %t.ptx.mlir
// RUN: grep -o '[.]entry matmul[0-9]*_gemv_r[0-9]*' %t.ptx.mlir | wc -l | FileCheck %s --check-prefix=GEMV
// RUN: grep -o '[.]entry matmul[0-9]*_gemm_[a-z]*' %t.ptx.mlir | FileCheck %s --check-prefix=GEMM
// RUN: FileCheck %s --check-prefix=PTX < %t.ptx.mlir

// BIN-NOT: qnt.matmul
// BIN: llvm.func @int4_g32(
// BIN: gpu.launch_func  @qnt_kernels::@matmul0_gemv_r1
// BIN: gpu.binary @qnt_kernels
// BIN-SAME: chip = "sm_80"
// BIN-SAME: bin = "\7FELF
// BIN-SAME: chip = "sm_90"
// BIN-SAME: bin = "\7FELF

// Eleven matmuls, each with five GEMV row variants (R = 1, 2, 4, 8, 16)...
// GEMV: 55
// ... and one GEMM kernel each; f16 and bf16 activations multiply on tensor cores,
// f32 ones with FMAs.
// GEMM:      matmul0_gemm_mma
// GEMM-NEXT: matmul1_gemm_mma
// GEMM-NEXT: matmul2_gemm_fma
// GEMM-NEXT: matmul3_gemm_mma
// GEMM-NEXT: matmul4_gemm_mma
// GEMM-NEXT: matmul5_gemm_mma
// GEMM-NEXT: matmul6_gemm_mma
// GEMM-NEXT: matmul7_gemm_fma
// GEMM-NEXT: matmul8_gemm_mma
// GEMM-NEXT: matmul9_gemm_mma
// GEMM-NEXT: matmul10_gemm_mma
// GEMM-NOT: gemm
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-DAG: shfl.sync.bfly.b32

func.func @int4_g32(%x: tensor<?x96xf16>, %c: tensor<40x48xi8>, %s: tensor<40x3xf32>, %z: tensor<40x3xi8>) -> tensor<?x40xf16> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%c, %s, %z) : (tensor<?x96xf16>, tensor<40x48xi8>, tensor<40x3xf32>, tensor<40x3xi8>) -> tensor<?x40xf16>
  return %y : tensor<?x40xf16>
}

func.func @int3_channel(%x: tensor<?x100xbf16>, %c: tensor<40x38xi8>, %s: tensor<40x1xf32>) -> tensor<?x40xbf16> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 3>(%c, %s) : (tensor<?x100xbf16>, tensor<40x38xi8>, tensor<40x1xf32>) -> tensor<?x40xbf16>
  return %y : tensor<?x40xbf16>
}

func.func @int8_tensor(%x: tensor<?x100xf32>, %c: tensor<40x100xi8>, %s: tensor<1x1xf32>) -> tensor<?x40xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 8, granularity = per_tensor>(%c, %s) : (tensor<?x100xf32>, tensor<40x100xi8>, tensor<1x1xf32>) -> tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}

func.func @e2m1_g32(%x: tensor<?x96xf16>, %c: tensor<40x48xi8>, %s: tensor<40x3xf32>) -> tensor<?x40xf16> {
  %y = qnt.matmul %x, #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 32>(%c, %s) : (tensor<?x96xf16>, tensor<40x48xi8>, tensor<40x3xf32>) -> tensor<?x40xf16>
  return %y : tensor<?x40xf16>
}

func.func @e4m3_ocp(%x: tensor<?x100xbf16>, %c: tensor<40x100xi8>, %s: tensor<40x1xf32>) -> tensor<?x40xbf16> {
  %y = qnt.matmul %x, #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp>(%c, %s) : (tensor<?x100xbf16>, tensor<40x100xi8>, tensor<40x1xf32>) -> tensor<?x40xbf16>
  return %y : tensor<?x40xbf16>
}

func.func @e3m2(%x: tensor<?x100xf16>, %c: tensor<40x75xi8>, %s: tensor<40x1xf32>) -> tensor<?x40xf16> {
  %y = qnt.matmul %x, #qnt.minifloat<exponent_bits = 3, mantissa_bits = 2>(%c, %s) : (tensor<?x100xf16>, tensor<40x75xi8>, tensor<40x1xf32>) -> tensor<?x40xf16>
  return %y : tensor<?x40xf16>
}

func.func @aqlm_2x8(%x: tensor<?x96xf16>, %c: tensor<40x12x2xi8>, %b: tensor<2x256x8xf32>, %s: tensor<40x1xf32>) -> tensor<?x40xf16> {
  %y = qnt.matmul %x, #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8>(%c, %b, %s) : (tensor<?x96xf16>, tensor<40x12x2xi8>, tensor<2x256x8xf32>, tensor<40x1xf32>) -> tensor<?x40xf16>
  return %y : tensor<?x40xf16>
}

// (with half-precision row scales)
func.func @aqlm_1x16(%x: tensor<?x96xf32>, %c: tensor<40x12x1xi16>, %b: tensor<1x65536x8xf32>, %s: tensor<40x1xf16>) -> tensor<?x40xf32> {
  %y = qnt.matmul %x, #qnt.codebook<num_codebooks = 1, code_bits = 16, group_size = 8, scale_type = f16>(%c, %b, %s) : (tensor<?x96xf32>, tensor<40x12x1xi16>, tensor<1x65536x8xf32>, tensor<40x1xf16>) -> tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}

func.func @binary(%x: tensor<?x100xf16>, %g: tensor<40x13xi8>, %a: tensor<40x1xf32>, %m: tensor<40x1xf32>) -> tensor<?x40xf16> {
  %y = qnt.matmul %x, #qnt.binary<mode = asymmetric>(%g, %a, %m) : (tensor<?x100xf16>, tensor<40x13xi8>, tensor<40x1xf32>, tensor<40x1xf32>) -> tensor<?x40xf16>
  return %y : tensor<?x40xf16>
}

func.func @bitplanes_w3(%x: tensor<?x96xbf16>, %p: tensor<3x40x3xi32>, %s: tensor<3x40x3xf32>, %o: tensor<40x3xf32>) -> tensor<?x40xbf16> {
  %y = qnt.matmul %x, #qnt.bitplanes<planes = 3, granularity = per_group, group_size = 32>(%p, %s, %o) : (tensor<?x96xbf16>, tensor<3x40x3xi32>, tensor<3x40x3xf32>, tensor<40x3xf32>) -> tensor<?x40xbf16>
  return %y : tensor<?x40xbf16>
}

func.func @ptq161(%x: tensor<?x100xf16>, %map: tensor<100xi32>, %c: tensor<40x8xi8>, %s: tensor<40x1xf32>, %g: tensor<40x12xi8>, %a: tensor<40x1xf32>, %m: tensor<40x1xf32>) -> tensor<?x40xf16> {
  %y = qnt.matmul %x, #qnt.salient<num_salient = 8, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<mode = asymmetric>>(%map, %c, %s, %g, %a, %m) : (tensor<?x100xf16>, tensor<100xi32>, tensor<40x8xi8>, tensor<40x1xf32>, tensor<40x12xi8>, tensor<40x1xf32>, tensor<40x1xf32>) -> tensor<?x40xf16>
  return %y : tensor<?x40xf16>
}
