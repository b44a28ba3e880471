//===- quant-opt.cpp - The quant-mlir optimizer driver ----------*- C++ -*-===//
//
// mlir-opt with the qnt dialect and passes: `quant-opt --qnt-rtn ...`.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/io/OutputFiles.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  qnt::registerAllDialects(registry);
  qnt::registerAllPasses();
  // MlirOptMain opens -o before running passes and removes it on failure;
  // files the passes wrote (parameters, reports) are removed here.
  int status = mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "quant-mlir optimizer: qnt dialect and PTQ passes\n",
      registry));
  if (status != 0)
    ::qnt::io::removeCreatedFiles();
  return status;
}
