//===- SalientChannels.h - Decoding a salient channel map -------*- C++ -*-===//
//
// `#qnt.salient`'s channel_map names, for each input column k, its column
// in one of the two parts: map[k] >= 0 is column map[k] of the salient part,
// map[k] < 0 column -1 - map[k] of the rest part. The dequantization hook
// and qnt-lower-matmul-cpu's column split both decode it with this.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_DIALECTS_QNT_SALIENTCHANNELS_H
#define QNT_DIALECTS_QNT_SALIENTCHANNELS_H

#include "mlir/IR/Builders.h"

namespace mlir::qnt {

/// One decoded channel_map entry.
struct SalientChannel {
  Value isSalient;  ///< i1
  Value partColumn; ///< index, in [0, the part's columns)
};

/// Decodes the i32 `entry` of a map over `numCols` columns with
/// `numSalient` salient ones. The column is clamped to its part's last
/// (unsigned minimum), so that a map that lies cannot make generated code
/// read or write past the part: the host decoder refuses such maps
/// (numerics::splitChannels), but compiled code reads them unchecked.
SalientChannel decodeSalientChannel(OpBuilder &b, Location loc, Value entry,
                                    int64_t numSalient, int64_t numCols);

} // namespace mlir::qnt

#endif // QNT_DIALECTS_QNT_SALIENTCHANNELS_H
