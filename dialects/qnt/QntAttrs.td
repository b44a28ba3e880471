//===- QntAttrs.td - qnt weight encodings ------------------*- tablegen -*-===//
//
// The weight encodings. Each is a parameter record plus a verifier for the
// shape-independent rules; layouts and shape rules come from lib/numerics
// through EncodingAttrInterface.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_ATTRS_TD
#define QNT_ATTRS_TD

include "dialects/qnt/QntBase.td"
include "dialects/qnt/QntInterfaces.td"

// `overrides` lists the interface methods with a default implementation
// that the encoding implements itself (emitDequantVector).
class Qnt_EncodingAttr<string name, string attrMnemonic,
                       list<string> overrides = []>
    : Qnt_Attr<name, attrMnemonic,
               [DeclareAttrInterfaceMethods<Qnt_EncodingAttrInterface,
                                            overrides>]> {
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Qnt_GranularityParameter : DefaultValuedParameter<
    "::mlir::qnt::Granularity", "::mlir::qnt::Granularity::per_channel",
    "scale granularity">;
def Qnt_GroupSizeParameter : DefaultValuedParameter<"int64_t", "0",
    "inputs per scale group (per_group only)">;
def Qnt_ZeroPointModeParameter : DefaultValuedParameter<
    "::mlir::qnt::ZeroPointMode", "::mlir::qnt::ZeroPointMode::symmetric",
    "whether a zero point or offset is stored">;

def Qnt_ScaleTypeParameter : DefaultValuedParameter<
    "::mlir::qnt::ScaleType", "::mlir::qnt::ScaleType::f32",
    "element type of the scales">;

def Qnt_UniformEncodingAttr
    : Qnt_EncodingAttr<"UniformEncoding", "uniform",
                       ["emitDequantVector", "getIntegerForm"]> {
  let summary = "uniform integer weights, 2..8 bits";
  let description = [{
    `value = scale * (u - zero)` with `u` an unsigned `bits`-bit code.
    Symmetric encodings store no zero point: their zero is `2^(bits-1)`, so
    `u - zero` spans `[-2^(bits-1), 2^(bits-1) - 1]`. Asymmetric encodings
    store one zero point per scale.

    Components: `codes` (`i8`, `[N, ceil(K*bits/8)]`, an LSB-first bitstream
    per row), `scales` (`f32`, or `f16` with `scale_type = f16`: the scales
    are rounded to half precision before the codes are chosen, as
    llama.cpp's formats store them), and for asymmetric encodings `zeros`
    (`i8` holding the unsigned zero point). Scales and zeros have shape
    `[1, 1]` per tensor, `[N, 1]` per channel and `[N, K/group_size]` per
    group.

    ```mlir
    #int4_g128 = #qnt.uniform<bits = 4, mode = asymmetric,
                              granularity = per_group, group_size = 128>
    #int8_channel = #qnt.uniform<bits = 8>
    #int4_g32_half = #qnt.uniform<bits = 4, mode = asymmetric,
                                  granularity = per_group, group_size = 32,
                                  scale_type = f16>
    ```
  }];
  let parameters = (ins
    "int64_t":$bits,
    Qnt_ZeroPointModeParameter:$mode,
    Qnt_GranularityParameter:$granularity,
    Qnt_GroupSizeParameter:$group_size,
    Qnt_ScaleTypeParameter:$scale_type
  );
}

def Qnt_MinifloatEncodingAttr
    : Qnt_EncodingAttr<"MinifloatEncoding", "minifloat",
                       ["emitDequantVector", "getIntegerForm"]> {
  let summary = "minifloat ExMy weights with per-group scales";
  let description = [{
    A sign bit, `exponent_bits` exponent bits with bias `2^(E-1) - 1` and
    subnormals, and `mantissa_bits` mantissa bits: `value = scale *
    decode(code)`. `special = finite` makes every code a finite number (the
    MX-style E2M1, E2M3, E3M2); `special = ocp` follows the OCP 8-bit rules
    (E4M3: only S.1111.111 is NaN, max 448; E5M2: the top exponent is
    Inf/NaN, max 57344).

    Components: `codes` (`i8`, `[N, ceil(K*(1+E+M)/8)]` bitstream) and
    `scales` (`f32` or, with `scale_type = f16`, `f16`; shaped by
    `granularity` as for `#qnt.uniform`).

    ```mlir
    #e2m1_g32 = #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1,
                               granularity = per_group, group_size = 32>
    #e4m3 = #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp>
    ```
  }];
  let parameters = (ins
    "int64_t":$exponent_bits,
    "int64_t":$mantissa_bits,
    DefaultValuedParameter<"::mlir::qnt::MinifloatSpecial",
        "::mlir::qnt::MinifloatSpecial::finite", "special values">:$special,
    Qnt_GranularityParameter:$granularity,
    Qnt_GroupSizeParameter:$group_size,
    Qnt_ScaleTypeParameter:$scale_type
  );
}

def Qnt_CodebookEncodingAttr
    : Qnt_EncodingAttr<"CodebookEncoding", "codebook", ["emitDequantVector"]> {
  let summary = "additive codebooks (AQLM)";
  let description = [{
    For output row `n` and input group `j` of `group_size` inputs:
    `W[n, j*g + t] = scale[n] * sum_m codebooks[m][codes[n][j][m]][t]`.
    AQLM's 1x16 is `num_codebooks = 1, code_bits = 16`, its 2x8 is
    `num_codebooks = 2, code_bits = 8`, both with `group_size = 8`.

    Components: `codes` (`[N, K/g, M]`, `i8` for `code_bits <= 8` else
    `i16`, unsigned), `codebooks` (`f32`, `[M, 2^B, g]`), `scales` (`f32`,
    or `f16` with `scale_type = f16`; `[N, 1]`).

    With `tile_rows = R, tile_groups = G` the codes are stored in tiles of
    R rows by G groups instead, shape `[ceil(K/g/G), ceil(N/R), G, R, M]`:
    the tiles of group range 0 (all rows), then of range 1, ...; inside a
    tile group by group, each group's R rows of M codes in a row; codes past
    N or K/g are padding. This is the layout the CPU lookup-table kernel
    streams in order (`docs/CpuKernels.md`).

    ```mlir
    #aqlm_2x8 = #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8>
    #aqlm_2x8_lut = #qnt.codebook<num_codebooks = 2, code_bits = 8,
                                  group_size = 8, tile_rows = 128,
                                  tile_groups = 16>
    ```
  }];
  let parameters = (ins
    "int64_t":$num_codebooks,
    "int64_t":$code_bits,
    "int64_t":$group_size,
    DefaultValuedParameter<"int64_t", "0",
        "rows per tile of codes (0: row-major codes)">:$tile_rows,
    DefaultValuedParameter<"int64_t", "0",
        "groups per tile of codes (0: row-major codes)">:$tile_groups,
    Qnt_ScaleTypeParameter:$scale_type
  );
}

def Qnt_BinaryEncodingAttr
    : Qnt_EncodingAttr<"BinaryEncoding", "binary", ["emitDequantVector"]> {
  let summary = "one bit per weight with block scales and offsets";
  let description = [{
    `value = alpha * (2 * bit - 1) + mu`: sign bits with a scale `alpha`
    and, when `mode = asymmetric`, an offset `mu` per scale group (PTQ1.61's
    binarized non-salient channels, after folding the row rescaling).

    Components: `signs` (`i8`, `[N, ceil(K/8)]` bitstream), `scales`
    (`f32`), and for asymmetric encodings `offsets` (`f32`).

    ```mlir
    #bin = #qnt.binary<mode = asymmetric>
    ```
  }];
  let parameters = (ins
    Qnt_ZeroPointModeParameter:$mode,
    Qnt_GranularityParameter:$granularity,
    Qnt_GroupSizeParameter:$group_size
  );
}

def Qnt_BitPlaneEncodingAttr
    : Qnt_EncodingAttr<"BitPlaneEncoding", "bitplanes"> {
  let summary = "binary bit-planes with per-plane scales (ABQ-LLM)";
  let description = [{
    `value = sum_p plane_scales[p] * bit_p + offset`. With plane scales
    `scale * 2^p` and offset `-scale * zero` this is an ordinary uniform
    integer split into planes, as ABQ-LLM's bit-plane kernels store it; free
    plane scales also express residual binarization and 2^b+1-level grids.

    Components: `planes` (`i32`, `[P, N, ceil(K/32)]`, input `k` at bit
    `k % 32` of word `k / 32`), `plane_scales` (`f32`, `[P, Gn, Gk]`),
    `offsets` (`f32`, `[Gn, Gk]`).

    ```mlir
    #w3 = #qnt.bitplanes<planes = 3, granularity = per_group, group_size = 64>
    ```
  }];
  let parameters = (ins
    "int64_t":$planes,
    Qnt_GranularityParameter:$granularity,
    Qnt_GroupSizeParameter:$group_size
  );
}

def Qnt_SalientEncodingAttr : Qnt_EncodingAttr<"SalientEncoding", "salient"> {
  let summary = "salient input channels in one encoding, the rest in another";
  let description = [{
    A structured mask over input channels (PTQ1.61): `num_salient` input
    channels are stored with `salient` as a `[N, num_salient]` matrix, the
    others with `rest` as a `[N, K - num_salient]` matrix.

    Components: `channel_map` (`i32`, `[K]`: `c >= 0` means input `k` is
    salient column `c`, `-1 - c` means it is rest column `c`), then the
    salient part's components, then the rest part's.

    ```mlir
    #ptq161 = #qnt.salient<num_salient = 32,
        salient = #qnt.uniform<bits = 4, mode = asymmetric>,
        rest = #qnt.binary<mode = asymmetric>>
    ```
  }];
  let parameters = (ins
    "int64_t":$num_salient,
    "::mlir::qnt::EncodingAttrInterface":$salient,
    "::mlir::qnt::EncodingAttrInterface":$rest
  );
}

#endif // QNT_ATTRS_TD
