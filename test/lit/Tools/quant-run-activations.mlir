// The activation-side ops, executed: qnt.fake_quant (per token, per tensor,
// static scale, noise, rank 3), qnt.smooth and qnt.lowrank_add on constants,
// through qnt-cpu-pipeline and quant-run. Expected values by hand:
// fake_quant is s * clamp(roundeven((x + noise) / s), -2^(b-1), 2^(b-1) - 1)
// with s = absmax / (2^(b-1) - 1), or 1 for an all-zero row/tensor.
// RUN: rm -rf %t && mkdir -p %t
// RUN: quant-run %s --output %t/out.safetensors | FileCheck %s --check-prefix=RAN
// RAN: ran @activations: 0 inputs, 0 parameters, 7 results
// RUN: sed -n 's|^// DUMP: \{0,1\}||p' %s | %python - %t/out.safetensors | FileCheck %s

// DUMP: import json, struct, sys
// DUMP: blob = open(sys.argv[1], "rb").read()
// DUMP: n = struct.unpack("<Q", blob[:8])[0]
// DUMP: header = json.loads(blob[8:8 + n])
// DUMP: header.pop("__metadata__", None)
// DUMP: for i in range(len(header)):
// DUMP:     t = header["result%d" % i]
// DUMP:     b, e = t["data_offsets"]
// DUMP:     values = struct.unpack("<%df" % ((e - b) // 4), blob[8 + n + b:8 + n + e])
// DUMP:     print("result%d" % i, t["shape"], list(values))

// 2 bits per token (q in [-2, 1]): row [1, -2, 3, 0.5] has s = 3, q = 0 -1 1 0
// (1/3, -2/3, 1, 1/6 rounded); row [-4, 2, 1, 3] has s = 4, q = -1 0 0 1
// (0.5 ties to 0); the zero row stays zero.
// CHECK: result0 [3, 4] [0.0, -3.0, 3.0, 0.0, -4.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]
// Static scale 0.5, 4 bits (q in [-8, 7]): 10 -> 7, -10 -> -8, 4, -9 -> -8.
// CHECK-NEXT: result1 [2, 2] [3.5, -4.0, 2.0, -4.0]
// 8 bits per tensor, absmax 127 so s = 1: plain round half to even.
// CHECK-NEXT: result2 [2, 4] [127.0, 0.0, 2.0, -2.0, 2.0, -1.0, 0.0, 3.0]
// Noise [0.25, 0.25, 0, 0.5] added first, s = 1: 0.5 1 1.5 -0.5 -> 0 1 2 -0.
// CHECK-NEXT: result3 [1, 4] [0.0, 1.0, 2.0, -0.0]
// smooth: [[2, 4], [6, 8]] / [2, 0.5].
// CHECK-NEXT: result4 [2, 2] [1.0, 8.0, 3.0, 16.0]
// lowrank_add: [1, 1] + ([1, 2, 3] [1, 0, 2]^T) [1, 0.5] = [1, 1] + 7 [1, 0.5].
// CHECK-NEXT: result5 [1, 2] [8.0, 4.5]
// 2 bits per token on a rank-3 activation: one scale per (batch, token) row.
// CHECK-NEXT: result6 [2, 3, 2] [1.0, -1.0, 0.5, 0.0, 0.0, 0.0, -3.0, 0.0, 8.0, 0.0, 1.0, -0.0]

func.func @activations() -> (tensor<3x4xf32>, tensor<2x2xf32>, tensor<2x4xf32>, tensor<1x4xf32>, tensor<2x2xf32>, tensor<1x2xf32>, tensor<2x3x2xf32>) {
  %x = arith.constant dense<[[1.0, -2.0, 3.0, 0.5], [-4.0, 2.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0]]> : tensor<3x4xf32>
  %r0 = qnt.fake_quant %x {bits = 2, granularity = #qnt<act_granularity per_token>} : tensor<3x4xf32>

  %xs = arith.constant dense<[[5.0, -5.0], [2.0, -4.5]]> : tensor<2x2xf32>
  %s = arith.constant dense<0.5> : tensor<1xf32>
  %r1 = qnt.fake_quant %xs scale(%s : tensor<1xf32>) {bits = 4, granularity = #qnt<act_granularity per_tensor>} : tensor<2x2xf32>

  %xt = arith.constant dense<[[127.0, 0.5, 1.5, -2.5], [2.4, -0.6, 0.0, 3.0]]> : tensor<2x4xf32>
  %r2 = qnt.fake_quant %xt {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<2x4xf32>

  %xn = arith.constant dense<[[0.25, 0.75, 1.5, -1.0]]> : tensor<1x4xf32>
  %n = arith.constant dense<[0.25, 0.25, 0.0, 0.5]> : tensor<4xf32>
  %one = arith.constant dense<1.0> : tensor<1xf32>
  %r3 = qnt.fake_quant %xn scale(%one : tensor<1xf32>) noise(%n : tensor<4xf32>) {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<1x4xf32>

  %xm = arith.constant dense<[[2.0, 4.0], [6.0, 8.0]]> : tensor<2x2xf32>
  %f = arith.constant dense<[2.0, 0.5]> : tensor<2xf32>
  %r4 = qnt.smooth %xm, %f : tensor<2x2xf32>, tensor<2xf32>

  %acc = arith.constant dense<[[1.0, 1.0]]> : tensor<1x2xf32>
  %xl = arith.constant dense<[[1.0, 2.0, 3.0]]> : tensor<1x3xf32>
  %u = arith.constant dense<[[1.0], [0.5]]> : tensor<2x1xf32>
  %v = arith.constant dense<[[1.0], [0.0], [2.0]]> : tensor<3x1xf32>
  %r5 = qnt.lowrank_add %acc, %xl, %u, %v : tensor<1x2xf32>, tensor<1x3xf32>, tensor<2x1xf32>, tensor<3x1xf32>

  %x3 = arith.constant dense<[[[1.0, -1.0], [0.5, 0.25], [0.0, 0.0]], [[-3.0, 1.0], [8.0, 2.0], [1.0, -0.5]]]> : tensor<2x3x2xf32>
  %r6 = qnt.fake_quant %x3 {bits = 2, granularity = #qnt<act_granularity per_token>} : tensor<2x3x2xf32>

  return %r0, %r1, %r2, %r3, %r4, %r5, %r6 : tensor<3x4xf32>, tensor<2x2xf32>, tensor<2x4xf32>, tensor<1x4xf32>, tensor<2x2xf32>, tensor<1x2xf32>, tensor<2x3x2xf32>
}
