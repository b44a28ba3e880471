//===- QntInterfaces.td - The encoding attribute interface -*- tablegen -*-===//
//
// One interface that every weight encoding implements and every backend
// uses. See docs/HowTo/AddEncoding.md for adding an encoding.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_INTERFACES_TD
#define QNT_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Qnt_EncodingAttrInterface : AttrInterface<"EncodingAttrInterface"> {
  let cppNamespace = "::mlir::qnt";
  let description = [{
    A weight encoding: how a matrix `W[N][K]` is stored in a list of plain
    tensors (its storage components) and how one element is dequantized.

    An encoding describes itself as a host spec (`toSpec`); the component
    list, the bits-per-weight figure and the shape checks all derive from
    that spec through `lib/numerics`, so the IR and the host code cannot
    disagree about a layout. The one per-encoding piece of code generation
    is `emitDequantElement`, which every lowering calls:

    ```
    value = encoding.emitDequantElement(builder, loc, load, row, col, N, K)
    ```

    where `load(builder, loc, i, indices)` returns element `indices` of
    component `i` (a `tensor.extract` in the linalg reference, a
    `memref.load` in loops, a `memref.load` in GPU kernels).

    Vector kernels call `emitDequantVector` for a run of consecutive
    elements of one row. Its default builds the vector lane by lane from
    `emitDequantElement`, so every encoding works in vector kernels; the
    encodings whose runs can be read with wide loads (uniform, minifloat,
    binary; codebooks, one word load per group) override it with the same
    arithmetic on vectors, and tests check every override against the
    scalar hook bit for bit.
  }];

  let methods = [
    InterfaceMethod<[{
        Returns the IR-free description of this encoding, used for host
        quantization, packing and layout queries.
      }],
      "::qnt::numerics::EncodingSpec", "toSpec">,
    InterfaceMethod<[{
        Emits IR computing the dequantized f32 value of element (`row`,
        `col`) of a `numRows` x `numCols` weight. `row` and `col` are
        `index` values; components are read only through `load`.
      }],
      "::mlir::Value", "emitDequantElement",
      (ins "::mlir::OpBuilder &":$builder, "::mlir::Location":$loc,
           "::mlir::qnt::ComponentLoader":$load, "::mlir::Value":$row,
           "::mlir::Value":$col, "int64_t":$numRows, "int64_t":$numCols)>,
    InterfaceMethod<[{
        Emits IR computing elements (`row`, `col` .. `col + width - 1`) of
        a `numRows` x `numCols` weight as a `vector<width x f32>`, equal
        lane for lane to `emitDequantElement`. The caller guarantees that
        `col` is a multiple of `width` and that the run lies in the row.
        `loadVector(builder, loc, i, indices, count)` returns the `count`
        consecutive elements of component `i` that start at `indices` along
        its last dimension, as a vector.
      }],
      "::mlir::Value", "emitDequantVector",
      (ins "::mlir::OpBuilder &":$builder, "::mlir::Location":$loc,
           "::mlir::qnt::ComponentLoader":$load,
           "::mlir::qnt::VectorComponentLoader":$loadVector,
           "::mlir::Value":$row, "::mlir::Value":$col, "int64_t":$width,
           "int64_t":$numRows, "int64_t":$numCols),
      /*methodBody=*/"",
      /*defaultImplementation=*/[{
        return ::mlir::qnt::emitDequantVectorByElements(
            ::llvm::cast<::mlir::qnt::EncodingAttrInterface>($_attr),
            builder, loc, load, row, col, width, numRows, numCols);
      }]>,
    InterfaceMethod<[{
        Returns this encoding's weights of a `numRows` x `numCols` matrix
        as integers with a scale and zero point per group
        (`IntegerWeightForm`), equal element for element to
        `emitDequantElement`, or nothing when they are not such integers.
        Kernels with int8 activations use it.
      }],
      "std::optional<::mlir::qnt::IntegerWeightForm>", "getIntegerForm",
      (ins "int64_t":$numRows, "int64_t":$numCols),
      /*methodBody=*/"",
      /*defaultImplementation=*/[{ return std::nullopt; }]>
  ];

  let extraClassDeclaration = [{
    /// The storage component types for a weight of `shape` ([N, K]), in
    /// operand order. Requires `verifyForShape` to succeed.
    ::llvm::SmallVector<::mlir::RankedTensorType>
    getComponentTypes(::llvm::ArrayRef<int64_t> shape) const;

    /// The component names ("codes", "scales", ...) in operand order.
    ::llvm::SmallVector<std::string>
    getComponentNames(::llvm::ArrayRef<int64_t> shape) const;

    /// Bits stored per weight for a weight of `shape`, scales included.
    double getBitsPerWeight(::llvm::ArrayRef<int64_t> shape) const;

    /// Checks that this encoding can store a weight of `shape`.
    ::llvm::LogicalResult verifyForShape(
        ::llvm::ArrayRef<int64_t> shape,
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError) const;
  }];
}

#endif // QNT_INTERFACES_TD
