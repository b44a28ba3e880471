//===- OptionRange.h - Range checks of numeric command-line options -*- C++ -*-===//
//
// Every numeric option of the tools states its range in its description and
// is checked against it after parsing, so that `--iterations -1` is an error
// with a message rather than a silently odd run.
//
//===----------------------------------------------------------------------===//
#ifndef QNT_SUPPORT_OPTIONRANGE_H
#define QNT_SUPPORT_OPTIONRANGE_H

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <type_traits>

namespace qnt {

/// True if `option`'s value lies in [lo, hi] (NaN never does); otherwise
/// prints "<tool>: --<name> must be in [lo, hi], got <value>" and returns
/// false.
template <typename T, typename U>
bool checkOptionRange(llvm::StringRef tool, const llvm::cl::opt<T> &option,
                      U lo, U hi) {
  const T value = option.getValue();
  if (value >= T(lo) && value <= T(hi))
    return true;
  llvm::errs() << tool << ": --" << option.ArgStr << " must be in [";
  if constexpr (std::is_floating_point_v<T>)
    llvm::errs() << llvm::format("%g, %g], got %g", double(lo), double(hi),
                                 double(value));
  else
    llvm::errs() << lo << ", " << hi << "], got " << value;
  llvm::errs() << "\n";
  return false;
}

} // namespace qnt

#endif // QNT_SUPPORT_OPTIONRANGE_H
