// qnt-rtn on weights read through qnt.param: the quantized components go to a
// new safetensors file named by output=, as tensors "<param>.<component>", and
// are read back by new qnt.param ops; the module lists the new file after the
// input file, and the input file is left unchanged.
//
// The weight file is written by the Python lines marked PY below (the
// safetensors format: 8-byte little-endian header length, JSON header, data);
// the lines marked DUMP print every tensor of a safetensors file as
// "name dtype shape hex-bytes" (f32 tensors also as a list of numbers).

// RUN: rm -f %t.w.safetensors %t.q.safetensors
// RUN: sed -n 's|^// PY: \{0,1\}||p' %s | %python - %t.w.safetensors
// RUN: cp %t.w.safetensors %t.w.orig
// RUN: sed "s|@WEIGHTS@|%t.w.safetensors|" %s \
// RUN:   | quant-opt --qnt-rtn="bits=4 granularity=per-channel output=%t.q.safetensors" \
// RUN:   | FileCheck %s
// RUN: cmp %t.w.safetensors %t.w.orig
// RUN: test -f %t.q.safetensors
// RUN: sed -n 's|^// DUMP: \{0,1\}||p' %s | %python - %t.q.safetensors | FileCheck %s --check-prefix=FILE

// PY: import json, struct, sys
// PY: rows = [[-1, 0, 0.125, 0.375, 0.625, 2.75, -0.5, 1], [0, 1, 2, 3, 4, 5, 6, 7.5]]
// PY: nk = [v for r in rows for v in r]
// PY: kn = [rows[n][k] for k in range(8) for n in range(2)]
// PY: tensors = [("layers.0.wq", "F32", [2, 8], struct.pack("<16f", *nk)),
// PY:            ("layers.0.wo", "F32", [8, 2], struct.pack("<16f", *kn)),
// PY:            ("layers.1.wq", "F16", [2, 8], struct.pack("<16e", *nk))]
// PY: header, data = {}, b""
// PY: for name, dtype, shape, payload in tensors:
// PY:     header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
// PY:     data += payload
// PY: text = json.dumps(header).encode()
// PY: open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + data)

// DUMP: import json, struct, sys
// DUMP: blob = open(sys.argv[1], "rb").read()
// DUMP: n = struct.unpack("<Q", blob[:8])[0]
// DUMP: header = json.loads(blob[8:8 + n])
// DUMP: print("metadata", header.pop("__metadata__", None))
// DUMP: for name in sorted(header):
// DUMP:     t = header[name]
// DUMP:     b, e = t["data_offsets"]
// DUMP:     payload = blob[8 + n + b:8 + n + e]
// DUMP:     line = "%s %s %s %s" % (name, t["dtype"], t["shape"], payload.hex(" "))
// DUMP:     if t["dtype"] == "F32":
// DUMP:         line += " %s" % list(struct.unpack("<%df" % (len(payload) // 4), payload))
// DUMP:     print(line)

// The transpose-B weight, rows as in qnt-rtn.mlir @int4_asym_channel.
// CHECK: module attributes {qnt.param_files = ["{{.*}}.w.safetensors", "{{.*}}.q.safetensors"]}
// CHECK-LABEL: func.func @layer
// CHECK-SAME: (%[[X:[^:]*]]: tensor<3x8xf32>, %[[ACC:[^:]*]]: tensor<3x2xf32>)
// CHECK-NOT: qnt.param "layers.0.wq" :
// CHECK-DAG: %[[CODES:.*]] = qnt.param "layers.0.wq.codes" : tensor<2x4xi8>
// CHECK-DAG: %[[SCALE:.*]] = qnt.param "layers.0.wq.scales" : tensor<2x1xf32>
// CHECK-DAG: %[[ZERO_POINT:.*]] = qnt.param "layers.0.wq.zeros" : tensor<2x1xi8>
// CHECK: %[[WQ:.*]] = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%[[CODES]], %[[SCALE]], %[[ZERO_POINT]]) : (tensor<2x4xi8>, tensor<2x1xf32>, tensor<2x1xi8>) -> tensor<2x8xf32>
// CHECK: %[[Y0:.*]] = linalg.matmul indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}] ins(%[[X]], %[[WQ]] : tensor<3x8xf32>, tensor<2x8xf32>)

// The plain [K, N] weight: the same matrix, stored transposed.
// CHECK-DAG: %[[CODES_O:.*]] = qnt.param "layers.0.wo.codes" : tensor<2x4xi8>
// CHECK-DAG: %[[SCALE_O:.*]] = qnt.param "layers.0.wo.scales" : tensor<2x1xf32>
// CHECK-DAG: %[[ZERO_POINT_O:.*]] = qnt.param "layers.0.wo.zeros" : tensor<2x1xi8>
// CHECK: %[[WO_NK:.*]] = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%[[CODES_O]], %[[SCALE_O]], %[[ZERO_POINT_O]]) : (tensor<2x4xi8>, tensor<2x1xf32>, tensor<2x1xi8>) -> tensor<2x8xf32>
// CHECK: %[[WO:.*]] = linalg.transpose ins(%[[WO_NK]] : tensor<2x8xf32>) outs(%{{.*}} : tensor<8x2xf32>) permutation = [1, 0]
// CHECK: %[[Y1:.*]] = linalg.matmul ins(%[[X]], %[[WO]] : tensor<3x8xf32>, tensor<8x2xf32>)

// The F16 weight, widened to f32 when read.
// CHECK-DAG: %[[CODES_1:.*]] = qnt.param "layers.1.wq.codes" : tensor<2x4xi8>
// CHECK-DAG: %[[SCALE_1:.*]] = qnt.param "layers.1.wq.scales" : tensor<2x1xf32>
// CHECK-DAG: %[[ZERO_POINT_1:.*]] = qnt.param "layers.1.wq.zeros" : tensor<2x1xi8>
// CHECK: qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%[[CODES_1]], %[[SCALE_1]], %[[ZERO_POINT_1]])
// CHECK-NOT: qnt.param "layers.{{[01]}}.w{{[qo]}}" :
// CHECK: return

// The new file: three components per weight, the same bytes for all three
// weights (codes 0x40 0x64 0xF6 0x82 | 0x20 0x64 0xA8 0xFC, scales 0.25 and
// 0.5, zero points 4 and 0).
// FILE: metadata {'producer': 'quant-mlir qnt-rtn'}
// FILE-NEXT: layers.0.wo.codes I8 [2, 4] 40 64 f6 82 20 64 a8 fc
// FILE-NEXT: layers.0.wo.scales F32 [2, 1] 00 00 80 3e 00 00 00 3f [0.25, 0.5]
// FILE-NEXT: layers.0.wo.zeros I8 [2, 1] 04 00
// FILE-NEXT: layers.0.wq.codes I8 [2, 4] 40 64 f6 82 20 64 a8 fc
// FILE-NEXT: layers.0.wq.scales F32 [2, 1] 00 00 80 3e 00 00 00 3f [0.25, 0.5]
// FILE-NEXT: layers.0.wq.zeros I8 [2, 1] 04 00
// FILE-NEXT: layers.1.wq.codes I8 [2, 4] 40 64 f6 82 20 64 a8 fc
// FILE-NEXT: layers.1.wq.scales F32 [2, 1] 00 00 80 3e 00 00 00 3f [0.25, 0.5]
// FILE-NEXT: layers.1.wq.zeros I8 [2, 1] 04 00
// FILE-NOT: {{.}}

module attributes {qnt.param_files = ["@WEIGHTS@"]} {
  func.func @layer(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
    %wq = qnt.param "layers.0.wq" : tensor<2x8xf32>
    %y0 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                         affine_map<(m, n, k) -> (n, k)>,
                                         affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %wq : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    %wo = qnt.param "layers.0.wo" : tensor<8x2xf32>
    %y1 = linalg.matmul ins(%x, %wo : tensor<3x8xf32>, tensor<8x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    %w1 = qnt.param "layers.1.wq" : tensor<2x8xf32>
    %y2 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                         affine_map<(m, n, k) -> (n, k)>,
                                         affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w1 : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    return %y1, %y2 : tensor<3x2xf32>, tensor<3x2xf32>
  }
}
