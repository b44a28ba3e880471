//===- Int8Matmul.h - Int8-activation matmul kernels for the CPU -*- C++ -*-===//
//
// The activations=int8 kernel of qnt-lower-matmul-cpu: the activations are
// quantized to int8 on the fly (one scale per row and weight scale group),
// and each group's dot product is an exact integer sum of unsigned weight
// codes times int8 activations, four byte products per i32 lane (AVX-512
// VNNI's vpdpbusd, or the same sum spelled in portable vector ops); the
// weight scale, the activation scale and the zero point are applied once
// per group (docs/CpuKernels.md).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_LOWERING_INT8MATMUL_H
#define QNT_PASSES_LOWERING_INT8MATMUL_H

#include "dialects/qnt/QntDialect.h"
#include "passes/lowering/VectorMatmul.h"

namespace mlir::qnt {

/// How the byte dot products and code lookups are spelled.
enum class Int8DotInstructions {
  Vnni,    ///< x86 intrinsics: vpdpbusd (AVX512-VNNI), vpshufb (AVX512-BW)
  Vbmi,    ///< Vnni, and AVX512-VBMI's vpmultishiftqb for codes that
           ///< straddle bytes (three instructions per 64 codes)
  Generic, ///< widening multiplies and reductions any target can run
};

/// Whether the host CPU has the instructions Int8DotInstructions::Vnni uses.
bool hostHasVnni();

/// Whether the host CPU has AVX512-VBMI's byte permutes and shifts (and
/// AVX512-BW), which Int8DotInstructions::Vbmi and the codebook lookup-table
/// kernel use.
bool hostHasVbmi();

/// Why the int8 kernel cannot run a weight of integer form `form` with `k`
/// columns, or an empty string when it can.
std::string int8KernelLimitation(const IntegerWeightForm &form, int64_t k);

/// Emits `input * W^T` as an f32 [M, N] tensor for an [M, K] float `input`
/// and the [N, K] weight in `components` of integer form `form` (which
/// int8KernelLimitation accepts), with int8 activations: per row and scale
/// group, x is rounded to x_scale * q with |q| <= 127 and
///   y[m, n] = multiplier * sum_g scale * x_scale * (sum_k u * q - zero *
///   sum_k q).
Value buildInt8Matmul(OpBuilder &b, Location loc, Value input,
                      ValueRange components, const IntegerWeightForm &form,
                      int64_t n, int64_t k, const VectorMatmulShape &shape,
                      Int8DotInstructions instructions);

} // namespace mlir::qnt

#endif // QNT_PASSES_LOWERING_INT8MATMUL_H
