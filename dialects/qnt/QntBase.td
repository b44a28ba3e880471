//===- QntBase.td - qnt dialect definition -----------------*- tablegen -*-===//
//
// The qnt dialect states how the weights and activations of a network are
// quantized. Encodings are attributes behind one interface
// (QntInterfaces.td); ops (QntOps.td) reference external weights, observe
// activations for calibration, smooth channels, dequantize and multiply.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_BASE_TD
#define QNT_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Qnt_Dialect : Dialect {
  let name = "qnt";
  let cppNamespace = "::mlir::qnt";
  let summary = "Post-training quantization of weights and activations";
  let description = [{
    The `qnt` dialect describes *how* a tensor is quantized, independently of
    the algorithm that chose the numbers. A weight matrix `W[N][K]` (N output
    channels, K input channels, K contiguous) is stored as a few plain tensors,
    its *storage components* (packed codes, scales, zero points, codebooks,
    masks, bit-planes), and an *encoding attribute* says how to turn them back
    into real numbers.

    Every encoding implements `EncodingAttrInterface`. The interface lists the
    components an encoding needs for a given weight shape, reports the bits
    stored per weight, and emits the IR that dequantizes one element. All
    lowerings (the linalg reference, the CPU loops, the GPU kernels to come) go
    through that one hook, so a new encoding gets fused kernels on every
    target without kernel code of its own.

    The component layouts are shared with the host numerics in
    `lib/numerics` and documented bit by bit in `docs/PackedLayouts.md`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

class Qnt_Op<string mnemonic, list<Trait> traits = []>
    : Op<Qnt_Dialect, mnemonic, traits>;

class Qnt_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Qnt_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Qnt_Granularity : I32EnumAttr<"Granularity",
    "how many scales a weight matrix has", [
      I32EnumAttrCase<"per_tensor", 0>,
      I32EnumAttrCase<"per_channel", 1>,
      I32EnumAttrCase<"per_group", 2>
    ]> {
  let cppNamespace = "::mlir::qnt";
  let genSpecializedAttr = 0;
}

def Qnt_ZeroPointMode : I32EnumAttr<"ZeroPointMode",
    "whether an encoding stores a zero point or offset", [
      I32EnumAttrCase<"symmetric", 0>,
      I32EnumAttrCase<"asymmetric", 1>
    ]> {
  let cppNamespace = "::mlir::qnt";
  let genSpecializedAttr = 0;
}

def Qnt_MinifloatSpecial : I32EnumAttr<"MinifloatSpecial",
    "special values of a minifloat format", [
      I32EnumAttrCase<"finite", 0>,
      I32EnumAttrCase<"ocp", 1>
    ]> {
  let cppNamespace = "::mlir::qnt";
  let genSpecializedAttr = 0;
}

def Qnt_ScaleType : I32EnumAttr<"ScaleType",
    "how an encoding stores its scales", [
      I32EnumAttrCase<"f32", 0>,
      I32EnumAttrCase<"f16", 1>
    ]> {
  let cppNamespace = "::mlir::qnt";
  let genSpecializedAttr = 0;
}

def Qnt_ActivationGranularity : I32EnumAttr<"ActivationGranularity",
    "how activation scales are shared", [
      I32EnumAttrCase<"per_tensor", 0>,
      I32EnumAttrCase<"per_token", 1>
    ]> {
  let cppNamespace = "::mlir::qnt";
  let genSpecializedAttr = 0;
}

def Qnt_ActivationGranularityAttr
    : EnumAttr<Qnt_Dialect, Qnt_ActivationGranularity, "act_granularity">;

#endif // QNT_BASE_TD
