//===- Minifloat.cpp - ExMy minifloat codec -------------------------------===//
//
// Every supported format has at most 2^7 non-negative codes, so the codec
// works from a table of the non-negative finite values. For every format
// those are exactly the codes 0 .. n-1 (the OCP NaN/Inf codes sit at the top
// of the code range) and they increase with the code, which makes encoding a
// binary search with exact midpoints.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"

#include "NumericsInternal.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace qnt::numerics {

namespace {

/// Value of the sign-less code `magnitude` by the ExMy formula (no specials).
float formulaMagnitude(uint32_t magnitude, int e, int m) {
  const int bias = (1 << (e - 1)) - 1;
  const uint32_t exponent = magnitude >> m;
  const uint32_t mantissa = magnitude & ((1u << m) - 1);
  const float fraction = std::ldexp(static_cast<float>(mantissa), -m);
  if (exponent == 0)
    return std::ldexp(fraction, 1 - bias);
  return std::ldexp(1.0f + fraction, static_cast<int>(exponent) - bias);
}

struct MinifloatTable {
  int e = 0, m = 0;
  MinifloatSpecial special = MinifloatSpecial::Finite;
  /// positive[c] = value of non-negative finite code c, increasing in c.
  std::vector<float> positive;
};

MinifloatTable buildTable(int e, int m, MinifloatSpecial special) {
  MinifloatTable t{e, m, special, {}};
  uint32_t numMagnitudes = 1u << (e + m);
  uint32_t numFinite = numMagnitudes;
  if (special == MinifloatSpecial::Ocp)
    // E4M3: S.1111.111 is NaN. E5M2: the whole all-ones exponent is Inf/NaN.
    numFinite = e == 4 ? numMagnitudes - 1 : numMagnitudes - (1u << m);
  for (uint32_t c = 0; c < numFinite; ++c)
    t.positive.push_back(formulaMagnitude(c, e, m));
  return t;
}

/// The table of `spec`'s format; throws for unsupported formats.
const MinifloatTable &tableFor(const MinifloatSpec &spec) {
  // Cheap range check first: this runs once per encoded element.
  const int e = spec.exponentBits, m = spec.mantissaBits;
  const int special = static_cast<int>(spec.special);
  if (e < 1 || e > 5 || m < 0 || m > 5 || special < 0 || special > 1 ||
      e + m > 7 || e + m < 2 ||
      (spec.special == MinifloatSpecial::Ocp && !(e == 4 && m == 3) &&
       !(e == 5 && m == 2)))
    detail::fail(detail::verifyMinifloatFormat(e, m, spec.special));
  // Indexed [E - 1][M][special]; unsupported slots stay empty. Built once
  // (thread-safe static initialization).
  using Tables = std::array<std::array<std::array<MinifloatTable, 2>, 6>, 5>;
  static const Tables tables = [] {
    Tables all;
    for (int e = 1; e <= 5; ++e)
      for (int m = 0; m <= 5; ++m)
        for (MinifloatSpecial s :
             {MinifloatSpecial::Finite, MinifloatSpecial::Ocp})
          if (detail::verifyMinifloatFormat(e, m, s).empty())
            all[e - 1][m][static_cast<int>(s)] = buildTable(e, m, s);
    return all;
  }();
  return tables[e - 1][m][special];
}

} // namespace

int minifloatBits(const MinifloatSpec &spec) {
  return 1 + spec.exponentBits + spec.mantissaBits;
}

float decodeMinifloat(uint32_t code, const MinifloatSpec &spec) {
  const MinifloatTable &t = tableFor(spec);
  const int magnitudeBits = t.e + t.m;
  const uint32_t magnitude = code & ((1u << magnitudeBits) - 1);
  const bool negative = (code >> magnitudeBits) & 1;
  float value;
  if (magnitude < t.positive.size())
    value = t.positive[magnitude];
  else if (t.e == 5 && (magnitude & ((1u << t.m) - 1)) == 0)
    value = std::numeric_limits<float>::infinity(); // OCP E5M2 Inf
  else
    return std::numeric_limits<float>::quiet_NaN();
  return negative ? -value : value;
}

float minifloatMax(const MinifloatSpec &spec) {
  return tableFor(spec).positive.back();
}

const std::vector<float> &minifloatValues(const MinifloatSpec &spec) {
  return tableFor(spec).positive;
}

uint32_t encodeMinifloat(float x, const MinifloatSpec &spec) {
  const MinifloatTable &t = tableFor(spec);
  if (std::isnan(x))
    return 0;
  // Sign-magnitude: round |x| and keep x's sign (so tiny negatives give -0).
  const uint32_t sign = std::signbit(x) ? 1u << (t.e + t.m) : 0u;
  const float a = std::fabs(x);
  const std::vector<float> &v = t.positive;
  // First value > a; saturate at the top (this also covers +Inf).
  auto above = std::upper_bound(v.begin(), v.end(), a);
  if (above == v.end())
    return sign | static_cast<uint32_t>(v.size() - 1);
  // v[0] = 0 <= a, so above > begin: a lies in [v[lo], v[lo + 1]).
  const uint32_t lo = static_cast<uint32_t>(above - v.begin() - 1);
  // Midpoints of two minifloats need one more significand bit than the
  // format, so they are exact in double and the comparison is exact.
  const double mid = (static_cast<double>(v[lo]) + v[lo + 1]) / 2.0;
  uint32_t magnitude;
  if (a < mid)
    magnitude = lo;
  else if (a > mid)
    magnitude = lo + 1;
  else
    // Neighbouring codes differ in the code LSB, which is the mantissa LSB
    // (the exponent LSB for M = 0): ties go to the even code.
    magnitude = (lo % 2 == 0) ? lo : lo + 1;
  return sign | magnitude;
}

} // namespace qnt::numerics
