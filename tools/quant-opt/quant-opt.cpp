//===- quant-opt.cpp - The quant-mlir optimizer driver ----------*- C++ -*-===//
//
// mlir-opt with the qnt dialect and passes: `quant-opt --qnt-rtn ...`.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  qnt::registerAllDialects(registry);
  qnt::registerAllPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "quant-mlir optimizer: qnt dialect and PTQ passes\n",
      registry));
}
