//===- NumericsInternal.h - Helpers shared by lib/numerics ------*- C++ -*-===//
//
// Private to lib/numerics: scale-group indexing, little-endian component
// (de)serialization, format checks and the salient channel split, shared by
// the layout, quantization and dequantization sources.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_LIB_NUMERICS_NUMERICSINTERNAL_H
#define QNT_LIB_NUMERICS_NUMERICSINTERNAL_H

#include "qnt/numerics/Encoding.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace qnt::numerics::detail {

/// Throws std::invalid_argument(msg). Every user-facing error of the library
/// goes through here so that they all have the same type.
[[noreturn]] void fail(const std::string &msg);

/// "per-tensor", "per-channel" or "g<groupSize>".
std::string granularityName(Granularity g, int64_t groupSize);

/// Empty when the granularity/group size pair is valid for `cols` inputs.
std::string verifyGranularity(Granularity g, int64_t groupSize, int64_t cols);

/// Empty when ExMy with `special` is a supported minifloat format.
std::string verifyMinifloatFormat(int exponentBits, int mantissaBits,
                                  MinifloatSpecial special);

/// "[4, 1]".
std::string shapeString(const std::vector<int64_t> &shape);

/// The scale groups of a W[rows][cols] matrix: a [groupRows, groupCols]
/// array, row-major, as stored in "scales"/"zeros"/"offsets". Per group,
/// groupCols = ceil(cols / groupSize): when the group size does not divide
/// cols, the last group of each row is shorter (ragged).
class ScaleGroups {
public:
  ScaleGroups(Granularity g, int64_t groupSize, int64_t rows, int64_t cols);
  int64_t groupRows() const { return groupRows_; }
  int64_t groupCols() const { return groupCols_; }
  int64_t count() const { return groupRows_ * groupCols_; }
  std::vector<int64_t> shape() const { return {groupRows_, groupCols_}; }
  /// Flat index of the group that holds element W[n][k].
  int64_t of(int64_t n, int64_t k) const {
    switch (granularity_) {
    case Granularity::PerTensor:
      return 0;
    case Granularity::PerChannel:
      return n;
    case Granularity::PerGroup:
      break;
    }
    return n * groupCols_ + k / groupSize_;
  }

private:
  Granularity granularity_;
  int64_t groupSize_;
  int64_t groupRows_ = 1, groupCols_ = 1;
};

// Little-endian (de)serialization of component payloads. Written byte by
// byte so that the stored bytes do not depend on the host's endianness.
std::vector<uint8_t> f32Bytes(const std::vector<float> &values);
std::vector<float> bytesF32(const std::vector<uint8_t> &bytes);
/// Scales in `storage` (f32, or f16 bits of values already representable).
std::vector<uint8_t> scaleBytes(const std::vector<float> &values,
                                ScaleStorage storage);
/// The f32 values of a float component (F32 or F16).
std::vector<float> floatValues(const Component &component);
std::vector<uint8_t> u32Bytes(const std::vector<uint32_t> &values);
std::vector<uint32_t> bytesU32(const std::vector<uint8_t> &bytes);
std::vector<uint8_t> u16Bytes(const std::vector<uint32_t> &values);
std::vector<uint32_t> bytesU16(const std::vector<uint8_t> &bytes);

/// A component with the given layout and payload (sizes must agree).
Component makeComponent(ComponentLayout layout, std::vector<uint8_t> bytes);

/// Prepends `prefix` to the names of `components` and appends them to `out`.
void appendPrefixed(std::vector<Component> &out,
                    const std::vector<Component> &components,
                    const std::string &prefix);

/// Input channels of each part of a salient split: salient[c] (rest[c]) is
/// the input channel k stored as salient (rest) column c.
struct ChannelSplit {
  std::vector<int64_t> salient, rest;
};

/// Decodes a salient channel_map of `cols` entries with `numSalient` salient
/// channels; throws unless it is a bijection onto [0, S) and [0, K - S).
ChannelSplit splitChannels(const int32_t *channelMap, int64_t cols,
                           int64_t numSalient);

/// W[rows][cols] restricted to the given input channels, in that order.
std::vector<float> gatherColumns(const float *w, int64_t rows, int64_t cols,
                                 const std::vector<int64_t> &channels);

/// Throws when `spec` is not valid for a W[rows][cols] matrix.
void requireValidSpec(const EncodingSpec &spec, int64_t rows, int64_t cols);

/// The index of the word of `words` [count][g] nearest to `x` [g] in
/// squared distance (double); ties keep the lower index. The codebook
/// encoder's assignment and AQLM's k-means.
template <typename Word>
int64_t nearestWord(const double *x, const Word *words, int64_t count,
                    int64_t g) {
  int64_t best = 0;
  double bestDistance = std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < count; ++c) {
    double distance = 0.0;
    for (int64_t t = 0; t < g; ++t) {
      double d = x[t] - double(words[c * g + t]);
      distance += d * d;
    }
    if (distance < bestDistance) {
      bestDistance = distance;
      best = c;
    }
  }
  return best;
}

/// The codes [numBooks] of one group `x` [g] under the codebooks `books`
/// [numBooks][numCodes][g]: the nearest word of each codebook in turn, on
/// what the earlier ones left; `x` ends as that residual. The codebook
/// encoder's assignment and AQLM's under fixed codebooks.
inline void nearestResidualCodes(double *x, const float *books,
                                 int64_t numCodes, int64_t g,
                                 int64_t numBooks, uint32_t *codes) {
  for (int64_t book = 0; book < numBooks; ++book) {
    const float *words = books + book * numCodes * g;
    int64_t best = nearestWord(x, words, numCodes, g);
    codes[book] = static_cast<uint32_t>(best);
    for (int64_t t = 0; t < g; ++t)
      x[t] -= words[best * g + t];
  }
}

/// One group of a codebook weight: out[t] = scale * sum_m
/// books[m][groupCodes[m]][t] (float, books summed in order), as
/// dequantization and AQLM's reconstruction compute it.
inline void decodeCodebookGroup(const float *books, int64_t numCodes,
                                int64_t g, int64_t numBooks,
                                const uint32_t *groupCodes, float scale,
                                float *out) {
  for (int64_t t = 0; t < g; ++t) {
    float acc = 0.0f;
    for (int64_t book = 0; book < numBooks; ++book)
      acc += books[(book * numCodes + groupCodes[book]) * g + t];
    out[t] = scale * acc;
  }
}

} // namespace qnt::numerics::detail

#endif // QNT_LIB_NUMERICS_NUMERICSINTERNAL_H
