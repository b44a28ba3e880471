//===- OutputFiles.h - Output destinations and failed-run cleanup -*- C++ -*-===//
//
// The tools promise that a failed run leaves no file behind
// (docs/Reliability.md). Outputs are checked before any work starts
// (checkOutputPath), every file the library's writers create is recorded as
// it is committed, and a tool whose run fails removes the recorded files
// (removeCreatedFiles). Files that existed before the run were replaced
// atomically and are not removed.
//
//===----------------------------------------------------------------------===//
#ifndef QNT_IO_OUTPUTFILES_H
#define QNT_IO_OUTPUTFILES_H

#include <string>

namespace qnt::io {

/// Empty if `path` can be written as an output ("-", an existing writable
/// file or device, or a new name in an existing writable directory), else a
/// message starting with the path ("out/x.mlir: cannot create: directory
/// 'out' does not exist").
std::string checkOutputPath(const std::string &path);

/// Records a file this run created (the writers call it; thread-safe).
void recordCreatedFile(const std::string &path);
/// Removes every recorded file that is still a regular file, and forgets
/// them. Tools call it when their run fails.
void removeCreatedFiles();

} // namespace qnt::io

#endif // QNT_IO_OUTPUTFILES_H
