//===- Encoding.h - Host numerics for every qnt weight encoding -*- C++ -*-===//
//
// IR-free description of how a weight matrix W[N][K] (N output channels, K
// input channels, K contiguous) is stored by each qnt encoding, and the host
// routines that quantize, pack, unpack and dequantize it.
//
// The qnt dialect's encoding attributes convert themselves into the specs
// below and ask `componentLayout` for the storage they need, so the IR, the
// code generators and these host routines agree on one layout by
// construction. The layouts are documented bit by bit in
// docs/PackedLayouts.md.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_ENCODING_H
#define QNT_NUMERICS_ENCODING_H

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace qnt::numerics {

//===----------------------------------------------------------------------===//
// Specs
//===----------------------------------------------------------------------===//

/// How many scale (and zero/offset) entries a W[N][K] matrix has.
///  - PerTensor:  shape [1, 1]
///  - PerChannel: shape [N, 1]   (one per output row)
///  - PerGroup:   shape [N, ceil(K / groupSize)] (groups of consecutive
///                inputs; when groupSize does not divide K the last group of
///                every row is shorter: "ragged" groups)
enum class Granularity { PerTensor, PerChannel, PerGroup };

/// How scales are stored: f32, or rounded to IEEE half (f16) before the
/// codes are chosen, so that what is stored is what was optimized.
enum class ScaleStorage { F32, F16 };

/// `scale` as `storage` holds it (f16: rounded to nearest even, clamped to
/// the largest finite half; a positive scale stays positive).
float storedScale(float scale, ScaleStorage storage);

/// Uniform integer: value = scale * (u - zero), u in [0, 2^bits - 1].
/// Symmetric encodings store no zeros; their zero is implicitly 2^(bits-1),
/// so u - 2^(bits-1) ranges over [-2^(bits-1), 2^(bits-1) - 1].
struct UniformSpec {
  int bits = 8;            // 2..8
  bool symmetric = true;
  Granularity granularity = Granularity::PerChannel;
  int64_t groupSize = 0;   // > 0 iff granularity == PerGroup
  ScaleStorage scaleStorage = ScaleStorage::F32;
};

/// Special-value handling of a minifloat format.
///  - Finite: every code is a finite number (MX E2M1/E2M3/E3M2 style).
///  - Ocp: OCP 8-bit rules. E4M3: only S.1111.111 is NaN (max 448).
///         E5M2: the all-ones exponent is Inf/NaN (max 57344).
enum class MinifloatSpecial { Finite, Ocp };

/// Minifloat ExMy with sign: code = sign << (E+M) | exp << M | mantissa,
/// bias 2^(E-1) - 1, subnormals when exp == 0. value = scale * decode(code).
struct MinifloatSpec {
  int exponentBits = 2;    // 1..5
  int mantissaBits = 1;    // 0..5, 1 + E + M <= 8
  MinifloatSpecial special = MinifloatSpecial::Finite;
  Granularity granularity = Granularity::PerGroup;
  int64_t groupSize = 32;
  ScaleStorage scaleStorage = ScaleStorage::F32;
};

/// Additive codebooks (AQLM): for row n and input group j (groupSize inputs),
///   W[n, j*g + t] = scale[n] * sum_m codebooks[m][codes[n][j][m]][t].
/// The codes are stored row-major ([N, J, M], J = K / g) or, with tileRows
/// and tileGroups set, in tiles of tileRows rows by tileGroups groups: shape
/// [ceil(J/Gt), ceil(N/Rt), Gt, Rt, M], the tiles of one group range first
/// (as the lookup-table kernel streams them), inside a tile group by group,
/// each group's Rt rows of M codes in a row. Codes past N or J are padding.
struct CodebookSpec {
  int numCodebooks = 1;    // M, 1..kMaxCodebooks
  int codeBits = 16;       // B, 1..16
  int64_t groupSize = 8;   // g, divides K
  int64_t tileRows = 0;    // Rt; 0 with tileGroups 0: row-major codes
  int64_t tileGroups = 0;  // Gt
  ScaleStorage scaleStorage = ScaleStorage::F32; // of the row scales

  bool tiled() const { return tileRows > 0; }
  /// Whether (tileRows, tileGroups) is a layout: both 0 (row-major), or
  /// both positive and at most kMaxMatrixDim.
  static bool validTiles(int64_t tileRows, int64_t tileGroups);
  /// The shape of the codes component of an [rows, cols] matrix.
  std::vector<int64_t> codeShape(int64_t rows, int64_t cols) const;
  /// The flat position, in that component, of code m of (row n, group j).
  int64_t codeIndex(int64_t rows, int64_t cols, int64_t n, int64_t j,
                    int64_t m) const;
};

/// The most codebooks an encoding may add: far above any method's use (AQLM
/// uses up to 8), and a bound on the IR the dequantization emitters produce.
inline constexpr int64_t kMaxCodebooks = 64;
/// The largest matrix dimension any layout accepts (2^40). With it every
/// per-dimension layout size (packed bytes, groups, planes) is computed
/// without overflow; verifySpec then checks the products.
inline constexpr int64_t kMaxMatrixDim = int64_t(1) << 40;

/// Binary with block scales: value = alpha * (2 * bit - 1) + mu.
/// When `withOffset` is false there is no offsets component and mu = 0.
struct BinarySpec {
  bool withOffset = true;
  Granularity granularity = Granularity::PerChannel;
  int64_t groupSize = 0;
};

/// Bit-planes (ABQ-LLM): value = sum_p planeScales[p] * bit_p + offset.
struct BitPlaneSpec {
  int numPlanes = 2;       // 1..8
  Granularity granularity = Granularity::PerChannel;
  int64_t groupSize = 0;
};

struct SalientSpec;

/// One of the encodings above.
using EncodingSpec = std::variant<UniformSpec, MinifloatSpec, CodebookSpec,
                                  BinarySpec, BitPlaneSpec, SalientSpec>;

/// Salient-channel mask (PTQ1.61): `numSalient` input channels are encoded
/// with `salient` as a W[N][numSalient] matrix, the other K - numSalient with
/// `rest` as a W[N][K - numSalient] matrix. channel_map[k] = c >= 0 means
/// input k is salient column c; channel_map[k] = -1 - c means it is rest
/// column c. Neither part may itself be a SalientSpec.
struct SalientSpec {
  int64_t numSalient = 0;
  std::shared_ptr<const EncodingSpec> salient;
  std::shared_ptr<const EncodingSpec> rest;
};

//===----------------------------------------------------------------------===//
// Storage layout
//===----------------------------------------------------------------------===//

/// Element type of one storage component. Integer components are raw bits:
/// their interpretation (unsigned codes, packed bitstreams) is per encoding.
enum class DType { I8, I16, I32, F16, F32 };

int64_t dtypeBytes(DType t);
const char *dtypeName(DType t);

/// Name, element type and shape of one storage component.
struct ComponentLayout {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  /// Product of the dimensions; verifySpec guarantees it fits.
  int64_t numElements() const;
  int64_t numBytes() const { return numElements() * dtypeBytes(dtype); }
};

/// A storage component with its bytes (little-endian, row-major).
struct Component {
  ComponentLayout layout;
  std::vector<uint8_t> bytes;
};

/// An encoded matrix: the components in `componentLayout` order.
struct EncodedMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<Component> components;
};

/// Returns an empty string when `spec` is well formed for a W[rows][cols]
/// matrix, else a message saying what is wrong ("group size 128 does not
/// divide 100 input channels"). Well formed includes representable: both
/// dimensions at most kMaxMatrixDim, and the byte size of every storage
/// component and of the dequantized f32 matrix fitting in int64_t, so that
/// numElements()/numBytes() of a verified layout never overflow.
std::string verifySpec(const EncodingSpec &spec, int64_t rows, int64_t cols);

/// Storage components, in order, of a W[rows][cols] matrix under `spec`.
/// Requires verifySpec(spec, rows, cols) to be empty.
std::vector<ComponentLayout> componentLayout(const EncodingSpec &spec,
                                             int64_t rows, int64_t cols);

/// Total storage bits / (rows * cols).
double bitsPerWeight(const EncodingSpec &spec, int64_t rows, int64_t cols);

/// Short human-readable description, e.g. "int4 asym g128", "e2m1 g32".
std::string describe(const EncodingSpec &spec);

//===----------------------------------------------------------------------===//
// Bit packing
//===----------------------------------------------------------------------===//

/// Packs `codes` (each < 2^bits) row by row into an LSB-first bitstream:
/// element k of a row occupies stream bits [k*bits, (k+1)*bits), and stream
/// bit i is bit (i % 8) of byte i / 8. Each row starts on a byte boundary and
/// takes ceil(cols*bits/8) bytes.
std::vector<uint8_t> packBits(const std::vector<uint32_t> &codes, int64_t rows,
                              int64_t cols, int bits);
std::vector<uint32_t> unpackBits(const uint8_t *packed, int64_t rows,
                                 int64_t cols, int bits);
inline int64_t packedRowBytes(int64_t cols, int bits) {
  return (cols * bits + 7) / 8;
}

//===----------------------------------------------------------------------===//
// Minifloat codec
//===----------------------------------------------------------------------===//

int minifloatBits(const MinifloatSpec &spec);
/// Value of `code` (low minifloatBits bits). NaN codes decode to NaN.
float decodeMinifloat(uint32_t code, const MinifloatSpec &spec);
/// Largest finite value of the format.
float minifloatMax(const MinifloatSpec &spec);
/// The format's non-negative finite values, increasing: 0, the subnormals,
/// then the normals up to minifloatMax (the value of code c is entry c).
const std::vector<float> &minifloatValues(const MinifloatSpec &spec);
/// Nearest finite code to x, ties to the code with an even mantissa,
/// saturating to +-max. NaN maps to +0.
uint32_t encodeMinifloat(float x, const MinifloatSpec &spec);

//===----------------------------------------------------------------------===//
// Quantize and dequantize
//===----------------------------------------------------------------------===//

/// Rounds half to even, as torch.round and the reference implementations do.
float roundHalfEven(float x);

/// Round-to-nearest with min/max (asymmetric, range widened to include 0) or
/// absmax (symmetric) scales per scale group. Supports Uniform and Minifloat
/// specs (minifloat scale = absmax / max representable).
EncodedMatrix quantizeRTN(const EncodingSpec &spec, const float *w,
                          int64_t rows, int64_t cols);

/// Parameters that the caller fixes before rounding. Which fields are used
/// depends on the encoding (documented per field).
struct QuantParams {
  std::vector<float> scales;     // Uniform, Minifloat, Codebook ([N]),
                                 // Binary (alpha)
  std::vector<float> zeros;      // Uniform asymmetric (integers as floats)
  std::vector<float> offsets;    // Binary (mu), BitPlane
  std::vector<float> planeScales;// BitPlane [P][N][G]
  std::vector<float> codebooks;  // Codebook [M][2^B][g]
  std::vector<int32_t> channelMap; // Salient [K]
  std::shared_ptr<QuantParams> salientParams, restParams; // Salient parts
};

/// Encodes W with caller-given parameters, choosing for every element (or
/// group of elements, for codebooks) the nearest representable value:
///  - Uniform/Minifloat: round to nearest with the given scales/zeros;
///  - Binary: bit = (w >= mu);
///  - BitPlane: exhaustive search over the 2^P bit combinations;
///  - Codebook: greedy residual assignment, codebook by codebook;
///  - Salient: split columns by channelMap, encode each part.
/// Throws std::invalid_argument on parameter arrays of the wrong size.
EncodedMatrix quantizeWithParams(const EncodingSpec &spec,
                                 const QuantParams &params, const float *w,
                                 int64_t rows, int64_t cols);

/// A codebook encoding with caller-chosen codes (AQLM's beam search):
/// `codes` row-major [N][K/g][M], each below 2^B; scales [N] and codebooks
/// [M][2^B][g] from `params`. Throws std::invalid_argument on sizes or
/// codes that do not fit.
EncodedMatrix encodeWithCodes(const CodebookSpec &spec,
                              const QuantParams &params,
                              const std::vector<uint32_t> &codes,
                              int64_t rows, int64_t cols);

/// The parameters quantizeRTN rounds with (scales, and zeros of asymmetric
/// uniform encodings, one per scale group in row-major group order): the
/// initialization of methods that then learn them (FlexRound, AdaRound).
QuantParams rtnParams(const EncodingSpec &spec, const float *w, int64_t rows,
                      int64_t cols);

/// Dequantizes an encoded matrix into row-major W[rows][cols].
/// Throws std::invalid_argument if the components do not match the layout.
std::vector<float> dequantize(const EncodingSpec &spec,
                              const EncodedMatrix &encoded);

/// Random valid storage of a rows x cols weight under `spec` (tests and
/// benchmarks): random codes, signs and planes; float components uniform in
/// [-2, 2]; zero points, codebook indices and salient channel maps valid.
EncodedMatrix randomEncoded(const EncodingSpec &spec, int64_t rows,
                            int64_t cols, unsigned seed);

/// Re-expresses a uniform encoding as bit-planes with planeScales
/// scale * 2^p and offset -scale * zero (exact).
EncodedMatrix uniformToBitPlanes(const UniformSpec &uniform,
                                 const EncodedMatrix &encoded,
                                 BitPlaneSpec *planesSpecOut);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_ENCODING_H
