//===- QntOps.td - qnt operations --------------------------*- tablegen -*-===//
//
// Operations of the qnt dialect. Umbrella file: includes the dialect, the
// encoding interface and the encodings.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_OPS_TD
#define QNT_OPS_TD

include "dialects/qnt/QntBase.td"
include "dialects/qnt/QntInterfaces.td"
include "dialects/qnt/QntAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Qnt_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;

//===----------------------------------------------------------------------===//
// qnt.param
//===----------------------------------------------------------------------===//

def Qnt_ParamOp : Qnt_Op<"param", [Pure]> {
  let summary = "a tensor stored outside the IR, by name";
  let description = [{
    Refers to tensor `name` of the parameter files listed in the module's
    `qnt.param_files` attribute (safetensors files, searched in order), so
    that a model's weights never sit in IR text. The result type must match
    the stored tensor's shape; the element type must match its dtype, or be
    `f32` for a stored `F16`/`BF16` tensor (widened when read).

    ```mlir
    module attributes {qnt.param_files = ["model.safetensors"]} {
      %w = qnt.param "layers.0.attention.wq" : tensor<4096x4096xf32>
    }
    ```
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// qnt.observe
//===----------------------------------------------------------------------===//

def Qnt_ObserveOp : Qnt_Op<"observe", [AllTypesMatch<["input", "result"]>]> {
  let summary = "records calibration statistics of an activation";
  let description = [{
    Returns `input` unchanged and, when the calibration driver runs the
    program, records the statistics listed in `stats` for the activation
    under `name`. Statistics are taken per input channel (the last
    dimension) over all other dimensions:

    | stat       | shape  | value                                  |
    |------------|--------|----------------------------------------|
    | `absmax`   | `[K]`  | `max_t abs(x[t, k])`                   |
    | `mean_abs` | `[K]`  | `mean_t abs(x[t, k])`                  |
    | `hessian`  | `[K,K]`| `sum_t x[t, :]^T x[t, :]` (fp32 or better) |

    The op has effects (it is never folded away); passes that are not
    calibrating leave it in place.

    ```mlir
    %x1 = qnt.observe %x as "layers.0.wq" stats ["absmax", "hessian"]
        : tensor<16x4096xf32>
    ```
  }];
  let arguments = (ins Qnt_FloatTensor:$input, StrAttr:$name,
                       StrArrayAttr:$stats);
  let results = (outs Qnt_FloatTensor:$result);
  let assemblyFormat =
      "$input `as` $name `stats` $stats attr-dict `:` type($input)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// qnt.smooth
//===----------------------------------------------------------------------===//

def Qnt_SmoothOp : Qnt_Op<"smooth", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "divides activations by a per-channel smoothing vector";
  let description = [{
    `result[..., k] = input[..., k] / factors[k]`: the activation side of
    SmoothQuant/AWQ-style equivalent transformations. The weight side
    multiplies the consumer's input columns by the same factors, so the
    product is unchanged while the activation outliers move into the weight.

    ```mlir
    %y = qnt.smooth %x, %s : tensor<16x4096xf32>, tensor<4096xf32>
    ```
  }];
  let arguments = (ins Qnt_FloatTensor:$input, Qnt_FloatTensor:$factors);
  let results = (outs Qnt_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $factors attr-dict `:` type($input) `,` type($factors)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// qnt.dequant and qnt.matmul
//===----------------------------------------------------------------------===//

def Qnt_DequantOp : Qnt_Op<"dequant", [Pure]> {
  let summary = "materializes a float weight from its storage components";
  let description = [{
    Computes `W[N][K]` (the result) from the storage components of
    `encoding`; the number, order and types of `components` are those the
    encoding lists for an `N x K` weight (see each encoding's description).
    `qnt-fuse-dequant-matmul` folds a dequant feeding a matmul into
    `qnt.matmul`, so that no backend materializes the float weight.

    ```mlir
    %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales)
        : (tensor<256x512xi8>, tensor<256x1xf32>) -> tensor<256x512xf32>
    ```
  }];
  let arguments = (ins Qnt_EncodingAttrInterface:$encoding,
                       Variadic<AnyRankedTensor>:$components);
  let results = (outs Qnt_FloatTensor:$result);
  let assemblyFormat = [{
    $encoding `(` $components `)` attr-dict `:`
    functional-type($components, $result)
  }];
  let hasVerifier = 1;
}

def Qnt_MatmulOp : Qnt_Op<"matmul", [Pure]> {
  let summary = "activation times the transpose of a quantized weight";
  let description = [{
    `result[m, n] = sum_k input[m, k] * W[n, k]` where `W[N][K]` is the
    weight stored in `components` by `encoding`, accumulated in f32 and
    rounded once to the result element type. `K` is the input's last
    dimension and `N` the result's. This is the op every backend lowers to a
    fused kernel: the dequantized weight exists only in registers.

    ```mlir
    %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%codes, %scales)
        : (tensor<4x512xf32>, tensor<256x512xi8>, tensor<256x1xf32>)
          -> tensor<4x256xf32>
    ```
  }];
  let arguments = (ins Qnt_FloatTensor:$input,
                       Qnt_EncodingAttrInterface:$encoding,
                       Variadic<AnyRankedTensor>:$components);
  let results = (outs Qnt_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $encoding `(` $components `)` attr-dict `:`
    functional-type(operands, $result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The logical weight shape [N, K].
    ::llvm::SmallVector<int64_t, 2> getWeightShape();
  }];
}

//===----------------------------------------------------------------------===//
// qnt.intrinsic
//===----------------------------------------------------------------------===//

def Qnt_IntrinsicOp : Qnt_Op<"intrinsic", [Pure]> {
  let summary = "a target instruction without side effects, on vectors";
  let description = [{
    Calls the LLVM intrinsic `name` (an instruction of the target CPU that
    reads and writes nothing but its operands and result, such as x86's
    `llvm.x86.avx512.vpdpbusd.512`). Kernels use it where no vector-dialect
    op expresses the instruction. Unlike `llvm.call_intrinsic`, which may
    have any side effect, it is pure, so bufferization and the
    canonicalizations treat it like arithmetic; `qnt-lower-intrinsics`
    turns it into `llvm.call_intrinsic` once the code is on memrefs.

    ```mlir
    %acc1 = qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%acc, %u, %s)
        : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
    ```
  }];
  let arguments = (ins StrAttr:$name, Variadic<AnyVectorOfAnyRank>:$args);
  let results = (outs AnyVectorOfAnyRank:$result);
  let assemblyFormat = [{
    $name `(` $args `)` attr-dict `:` functional-type($args, $result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// qnt.lowrank_add
//===----------------------------------------------------------------------===//

def Qnt_LowRankAddOp : Qnt_Op<"lowrank_add",
    [Pure, AllTypesMatch<["acc", "result"]>]> {
  let summary = "adds a low-rank correction (LoRC): acc + (input V) U^T";
  let description = [{
    ZeroQuant-V2's low-rank compensation of the weight error
    `E = W - dequant(W) ~ U V^T`: `result = acc + (input * V) * U^T` with
    `input: [M, K]`, `acc: [M, N]`, `u: [N, r]`, `v: [K, r]`. `u` and `v`
    may themselves come from `qnt.dequant`. The row count `M` (tokens) may
    be dynamic, as in an imported model; `K`, `N`, `r` and the factors are
    static.

    ```mlir
    %y1 = qnt.lowrank_add %y, %x, %u, %v
        : tensor<4x256xf32>, tensor<4x512xf32>, tensor<256x8xf32>, tensor<512x8xf32>
    ```
  }];
  let arguments = (ins Qnt_FloatTensor:$acc, Qnt_FloatTensor:$input,
                       Qnt_FloatTensor:$u, Qnt_FloatTensor:$v);
  let results = (outs Qnt_FloatTensor:$result);
  let assemblyFormat = [{
    $acc `,` $input `,` $u `,` $v attr-dict `:` type($acc) `,` type($input)
    `,` type($u) `,` type($v)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// qnt.fake_quant
//===----------------------------------------------------------------------===//

def Qnt_FakeQuantOp : Qnt_Op<"fake_quant",
    [Pure, AttrSizedOperandSegments, AllTypesMatch<["input", "result"]>]> {
  let summary = "symmetric integer fake-quantization of an activation";
  let description = [{
    `result = s * clamp(round_half_even((input + noise) / s), -2^(b-1),
    2^(b-1) - 1)` with `b = bits`. The scale `s` is the given `scale`
    (static, per tensor) or, without one, `absmax / (2^(b-1) - 1)` computed
    at run time per tensor or per token (per row of the last dimension).
    The optional `noise` (`[K]`) is NoisyQuant's fixed uniform noise, added
    before quantization; the consumer's bias absorbs `noise * W^T`.
    The optional `clip` (one value, only with run-time scales) multiplies
    the run-time scale: `s = clip * absmax / (2^(b-1) - 1)`, so that
    `clip < 1` clips the largest values of each tensor or token. It is the
    learned step size of PD-Quant (qnt-pdquant) for per-token scales.

    ```mlir
    %xq = qnt.fake_quant %x {bits = 8, granularity = #qnt<act_granularity per_token>}
        : tensor<16x4096xf32>
    ```
  }];
  let arguments = (ins Qnt_FloatTensor:$input,
                       Optional<TensorOf<[F32]>>:$scale,
                       Optional<Qnt_FloatTensor>:$noise,
                       Optional<TensorOf<[F32]>>:$clip,
                       ConfinedAttr<I64Attr, [IntMinValue<2>, IntMaxValue<16>]>:$bits,
                       Qnt_ActivationGranularityAttr:$granularity);
  let results = (outs Qnt_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`scale` `(` $scale^ `:` type($scale) `)`)?
    (`noise` `(` $noise^ `:` type($noise) `)`)?
    (`clip` `(` $clip^ `:` type($clip) `)`)? attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
}

#endif // QNT_OPS_TD
