//===- QntDialect.cpp - qnt dialect registration ----------------*- C++ -*-===//
//
// Registers the qnt ops and attributes.
//
//===----------------------------------------------------------------------===//

#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::qnt;

#include "dialects/qnt/QntDialect.cpp.inc"
#include "dialects/qnt/QntEnums.cpp.inc"
#include "dialects/qnt/QntInterfaces.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/qnt/QntAttrs.cpp.inc"

void QntDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/qnt/QntAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/qnt/QntOps.cpp.inc"
      >();
}
