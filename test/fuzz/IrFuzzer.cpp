//===- IrFuzzer.cpp - Fuzz the qnt dialect's parser, verifier and printer -===//
//
// Parse, verify, print, re-parse: every input that parses and verifies must
// print to text that parses and verifies again and prints identically (the
// custom assembly of every qnt attribute and op round-trips). The input may
// be anything, so the attribute verifiers are also what keeps absurd
// parameters (sizes that overflow, counts that do not fit) out.
//
//===----------------------------------------------------------------------===//
#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

/// Parses and verifies `text` in a fresh context; on success returns the
/// printed module (custom form), else nothing.
std::optional<std::string> parseVerifyPrint(std::string_view text,
                                            std::string *diagnostics) {
  mlir::DialectRegistry registry;
  // The qnt dialect, what it depends on, and func. Not linalg: its
  // upstream parsers crash on malformed input (linalg.transpose with a
  // missing permutation dereferences a null attribute in LLVM 22.1), which
  // this target cannot fix and would stop at.
  registry.insert<mlir::qnt::QntDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect,
                  mlir::scf::SCFDialect>();
  mlir::MLIRContext context(registry,
                            mlir::MLIRContext::Threading::DISABLED);
  llvm::raw_string_ostream diagStream(*diagnostics);
  mlir::ScopedDiagnosticHandler handler(
      &context, [&](mlir::Diagnostic &diag) {
        diagStream << diag << "\n";
        return mlir::success();
      });
  mlir::ParserConfig config(&context);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(
          llvm::StringRef(text.data(), text.size()), config);
  if (!module || mlir::failed(mlir::verify(*module)))
    return std::nullopt;
  std::string printed;
  llvm::raw_string_ostream out(printed);
  module->print(out);
  return printed;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Large inputs only slow the search down; the grammar is in small ones.
  if (size > 16384)
    return 0;
  // MLIR's lexer relies on the null terminator every MemoryBuffer a tool
  // reads has; a fuzz input has none, so it is copied into a string.
  std::string text(reinterpret_cast<const char *>(data), size);
  std::string diagnostics;
  std::optional<std::string> printed = parseVerifyPrint(text, &diagnostics);
  if (!printed)
    return 0;
  std::string again;
  std::optional<std::string> reprinted = parseVerifyPrint(*printed, &again);
  if (!reprinted || *reprinted != *printed) {
    fprintf(stderr,
            "round-trip failed\n--- printed:\n%s\n--- reprinted:\n%s\n--- "
            "diagnostics:\n%s\n",
            printed->c_str(), reprinted ? reprinted->c_str() : "(none)",
            again.c_str());
    abort();
  }
  return 0;
}
