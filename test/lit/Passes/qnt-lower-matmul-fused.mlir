// qnt-lower-matmul-fused: qnt.matmul becomes one linalg.generic over
// (m, n, k) with k the reduction, whose body dequantizes W[n, k] from the
// packed components with tensor.extract and accumulates x[m, k] * W[n, k] in
// f32. No [N, K] float weight tensor is ever built. Other qnt ops are not
// touched.
// RUN: quant-opt %s -split-input-file --qnt-lower-matmul-fused | FileCheck %s

// int4 asym per group of 128, x [4, 512], W [256, 512].
// CHECK-DAG: #[[X_MAP:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[Y_MAP:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @int4_group
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x512xf32>, %[[CODES:[^:]*]]: tensor<256x256xi8>, %[[SCALES:[^:]*]]: tensor<256x4xf32>, %[[ZEROS:[^:]*]]: tensor<256x4xi8>)
// CHECK-NOT: qnt.matmul
// CHECK-NOT: tensor<256x512xf32>
// CHECK-NOT: tensor<512x256xf32>
// CHECK: %[[EMPTY:.*]] = tensor.empty() : tensor<4x256xf32>
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[ACC:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[EMPTY]] : tensor<4x256xf32>)
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[X_MAP]], #[[Y_MAP]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]] : tensor<4x512xf32>) outs(%[[ACC]] : tensor<4x256xf32>) {
// CHECK: ^bb0(%[[XI:.*]]: f32, %[[SUM:.*]]: f32):
// CHECK: %[[N:.*]] = linalg.index 1 : index
// CHECK: %[[K:.*]] = linalg.index 2 : index
// CHECK: %[[BYTE:.*]] = tensor.extract %[[CODES]][%[[N]], %{{.*}}] : tensor<256x256xi8>
// CHECK: %[[GROUP_SIZE:.*]] = arith.constant 128 : index
// CHECK: %[[GROUP:.*]] = arith.divui %[[K]], %[[GROUP_SIZE]] : index
// CHECK: %[[ZERO_POINT:.*]] = tensor.extract %[[ZEROS]][%[[N]], %[[GROUP]]] : tensor<256x4xi8>
// CHECK: arith.subi
// CHECK: %[[SCALE:.*]] = tensor.extract %[[SCALES]][%[[N]], %[[GROUP]]] : tensor<256x4xf32>
// CHECK: %[[W:.*]] = arith.mulf %{{.*}}, %[[SCALE]] : f32
// CHECK: %[[PRODUCT:.*]] = arith.mulf %[[XI]], %[[W]] : f32
// CHECK: %[[NEXT:.*]] = arith.addf %[[SUM]], %[[PRODUCT]] : f32
// CHECK: linalg.yield %[[NEXT]] : f32
// CHECK: } -> tensor<4x256xf32>
// CHECK-NOT: tensor<256x512xf32>
// CHECK-NOT: linalg.matmul
// CHECK: return %[[Y]] : tensor<4x256xf32>
func.func @int4_group(%x: tensor<4x512xf32>, %codes: tensor<256x256xi8>, %scales: tensor<256x4xf32>, %zeros: tensor<256x4xi8>) -> tensor<4x256xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 128>(%codes, %scales, %zeros) : (tensor<4x512xf32>, tensor<256x256xi8>, tensor<256x4xf32>, tensor<256x4xi8>) -> tensor<4x256xf32>
  return %y : tensor<4x256xf32>
}

// -----

// bf16: x is widened inside the loop body, the accumulator is f32 and the
// result is rounded to bf16 once, after the reduction.
// CHECK-LABEL: func.func @int8_bf16
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x64xbf16>, %[[CODES:[^:]*]]: tensor<8x64xi8>, %[[SCALES:[^:]*]]: tensor<8x1xf32>)
// CHECK-NOT: tensor<8x64xf32>
// CHECK: %[[ACC:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<4x8xf32>)
// CHECK: %[[Y32:.*]] = linalg.generic {indexing_maps = {{.*}}, iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]] : tensor<4x64xbf16>) outs(%[[ACC]] : tensor<4x8xf32>)
// CHECK: ^bb0(%[[XI:.*]]: bf16, %[[SUM:.*]]: f32):
// CHECK: %[[N:.*]] = linalg.index 1 : index
// CHECK: %[[K:.*]] = linalg.index 2 : index
// CHECK: tensor.extract %[[CODES]][%[[N]], %[[K]]] : tensor<8x64xi8>
// CHECK: tensor.extract %[[SCALES]][%[[N]], %{{.*}}] : tensor<8x1xf32>
// CHECK: %[[W:.*]] = arith.mulf
// CHECK: %[[XF:.*]] = arith.extf %[[XI]] : bf16 to f32
// CHECK: %[[PRODUCT:.*]] = arith.mulf %[[XF]], %[[W]] : f32
// CHECK: arith.addf %[[SUM]], %[[PRODUCT]] : f32
// CHECK: } -> tensor<4x8xf32>
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = {{.*}}, iterator_types = ["parallel", "parallel"]} ins(%[[Y32]] : tensor<4x8xf32>) outs(%{{.*}} : tensor<4x8xbf16>)
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: return %[[Y]] : tensor<4x8xbf16>
func.func @int8_bf16(%x: tensor<4x64xbf16>, %codes: tensor<8x64xi8>, %scales: tensor<8x1xf32>) -> tensor<4x8xbf16> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<4x64xbf16>, tensor<8x64xi8>, tensor<8x1xf32>) -> tensor<4x8xbf16>
  return %y : tensor<4x8xbf16>
}

// -----

// A salient weight: the encoding dispatch (scf.if) sits inside the reduction
// body too.
// CHECK-LABEL: func.func @salient
// CHECK-NOT: tensor<2x8xf32>
// CHECK: linalg.generic {indexing_maps = {{.*}}, iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK: %[[N:.*]] = linalg.index 1 : index
// CHECK: %[[K:.*]] = linalg.index 2 : index
// CHECK: tensor.extract %{{.*}}[%[[K]]] : tensor<8xi32>
// CHECK: %[[W:.*]] = scf.if
// CHECK: arith.mulf %{{.*}}, %[[W]] : f32
// CHECK-NOT: tensor<2x8xf32>
func.func @salient(%x: tensor<3x8xf32>, %map: tensor<8xi32>, %codes: tensor<2x2xi8>, %scales: tensor<2x1xf32>, %signs: tensor<2x1xi8>, %alpha: tensor<1x1xf32>) -> tensor<3x2xf32> {
  %y = qnt.matmul %x, #qnt.salient<num_salient = 2, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<granularity = per_tensor>>(%map, %codes, %scales, %signs, %alpha) : (tensor<3x8xf32>, tensor<8xi32>, tensor<2x2xi8>, tensor<2x1xf32>, tensor<2x1xi8>, tensor<1x1xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Only qnt.matmul is lowered: a qnt.dequant stays.
// CHECK-LABEL: func.func @dequant_untouched
// CHECK: qnt.dequant
// CHECK-NOT: linalg.generic
func.func @dequant_untouched(%codes: tensor<8x64xi8>, %scales: tensor<8x1xf32>) -> tensor<8x64xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<8x64xi8>, tensor<8x1xf32>) -> tensor<8x64xf32>
  return %w : tensor<8x64xf32>
}
