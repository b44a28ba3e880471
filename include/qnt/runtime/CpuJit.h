//===- CpuJit.h - Compile and call qnt functions on the CPU -----*- C++ -*-===//
//
// The CPU executor: lowers a module with the qnt CPU pipeline, JIT-compiles
// it with MLIR's ExecutionEngine and calls one function through its C
// interface with host buffers. Weights stay where they are: qnt.param
// arguments are bound to (aligned) views of memory-mapped files.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_CPUJIT_H
#define QNT_RUNTIME_CPUJIT_H

#include "qnt/ParamStore.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringMap.h"

#include <memory>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
} // namespace mlir

namespace qnt::runtime {

/// How the CPU pipeline compiles a module (qnt-cpu-pipeline's options).
struct CpuCompileOptions {
  /// 0: large kernels on every core; 1: the calling thread only.
  int64_t threads = 0;
  /// int8 activations in the quantized matmuls that support them.
  bool int8Activations = false;
  /// More qnt-lower-matmul-cpu options ("col-tile=2"), for tuning.
  std::string matmulOptions;
  /// Where bound parameters live: false, viewed in place in the mapped
  /// files (no copy, shared with the page cache); true, copied into one
  /// anonymous arena advised for transparent huge pages (MADV_HUGEPAGE,
  /// 2 MiB aligned, each tensor at a 64-byte boundary): fewer TLB misses
  /// while the kernels stream the weights, at the cost of a copy at load
  /// time and the memory it takes.
  bool hugePageWeights = false;
  /// Run the non-matmul ops through the loop nests of the whole-model GPU
  /// pipeline, sequentially (qnt-cpu-pipeline gpu-loop-mapping).
  bool gpuLoopMapping = false;
};

/// True for the element types host buffers are made for (i1, i8, i16, i32,
/// i64, f16, bf16, f32, f64): those whose size in a buffer is their byte
/// width. Compiling a function with any other argument or result element
/// type is refused with an error at the function.
bool isSupportedElementType(mlir::Type type);

/// This machine's physical memory in bytes: the bound host allocations
/// (results, KV caches) are checked against before they are made.
int64_t physicalMemoryBytes();

/// A dense row-major host tensor. Either owns its bytes or borrows them
/// (parameters viewed in place in a mapped file).
class HostTensor {
public:
  HostTensor() = default;
  /// An owned, zero-initialized tensor.
  HostTensor(mlir::RankedTensorType type);
  /// A borrowed view; `data` must outlive the tensor and be aligned to the
  /// element size.
  HostTensor(mlir::RankedTensorType type, const void *data);

  /// An owned copy of the bytes (copying a HostTensor shares them).
  HostTensor deepCopy() const;

  mlir::RankedTensorType getType() const { return type; }
  int64_t numElements() const { return type.getNumElements(); }
  int64_t numBytes() const;
  void *data() const { return const_cast<void *>(view); }
  float *f32() const { return static_cast<float *>(data()); }

private:
  mlir::RankedTensorType type;
  std::shared_ptr<std::vector<uint64_t>> storage; // 8-byte aligned
  const void *view = nullptr;
};

/// What an entry function expects, recorded before lowering. Tensor types
/// may have dynamic dimensions (e.g. the number of tokens of a step).
struct EntrySignature {
  std::string name;
  /// Arguments that are not parameters, in order.
  std::vector<mlir::RankedTensorType> inputs;
  /// Parameters bound by qnt-bind-params, in argument order.
  std::vector<std::pair<std::string, mlir::RankedTensorType>> params;
  std::vector<mlir::RankedTensorType> results;

  bool operator==(const EntrySignature &other) const {
    return name == other.name && inputs == other.inputs &&
           params == other.params && results == other.results;
  }
  bool operator!=(const EntrySignature &other) const {
    return !(*this == other);
  }
};

/// A module lowered by lowerForCpu: LLVM dialect, ready to translate.
struct LoweredCpuModule {
  /// The entries, in the order they were asked for.
  std::vector<EntrySignature> signatures;
  /// Some kernel runs on OpenMP threads (the code calls libomp).
  bool usesOpenMP = false;
};

/// Makes `entries` (empty: every public function with a body) public with
/// a C interface, binds the parameters (qnt-bind-params) and reads each
/// entry's signature; the parameter names are then dropped from the
/// arguments. The first step of every lowering of a model for execution
/// (CPU and GPU).
mlir::FailureOr<std::vector<EntrySignature>>
bindEntries(mlir::ModuleOp module, llvm::ArrayRef<std::string> entries);

/// Lowers `module` in place through qnt-bind-params and qnt-cpu-pipeline
/// with `options`, exposing `entries` (empty: every public function with a
/// body) through their C interface (`_mlir_ciface_<name>`). The JIT
/// (CompiledModule) and the ahead-of-time packager share it, so that an
/// artifact runs the code the JIT runs. Diagnostics go to the module's
/// context.
mlir::FailureOr<LoweredCpuModule>
lowerForCpu(mlir::ModuleOp module, llvm::ArrayRef<std::string> entries,
            const CpuCompileOptions &options);

/// A module whose public functions are JIT-compiled together; every entry
/// is callable through its C interface with host tensors.
class CompiledModule {
public:
  ~CompiledModule();

  /// Lowers `module` (tensors with qnt ops) through qnt-bind-params and
  /// qnt-cpu-pipeline and JIT-compiles it. `entries` lists the functions to
  /// expose; empty means every public function with a body. Diagnostics go
  /// to the module's context.
  static mlir::FailureOr<std::unique_ptr<CompiledModule>>
  compile(mlir::ModuleOp module, llvm::ArrayRef<std::string> entries = {},
          const CpuCompileOptions &options = {});

  /// The signature of `entry`, or null if it was not compiled.
  const EntrySignature *signature(llvm::StringRef entry) const;
  const std::vector<EntrySignature> &signatures() const { return sigs; }

  /// Binds every parameter of every entry from `store`, viewing mapped bytes
  /// in place and copying only where they are misaligned or need widening
  /// to f32; or, compiled with CpuCompileOptions::hugePageWeights, copying
  /// all of them into one huge-page arena. A parameter used by several
  /// entries is bound once.
  mlir::LogicalResult bindParams(const mlir::qnt::ParamStore &store,
                                 mlir::Location loc);

  /// Bytes of the huge-page arena the parameters were copied into (0 when
  /// they are viewed in place).
  int64_t paramArenaBytes() const { return arenaBytes; }

  /// Replaces the tensor bound to parameter `name` (same type) for later
  /// calls: candidate weights are evaluated by the compiled code itself.
  mlir::LogicalResult rebindParam(llvm::StringRef name, HostTensor tensor,
                                  mlir::Location loc);

  /// Calls `entry`. Results are allocated here with `resultTypes` if given
  /// (required when a result type has dynamic dimensions), else with the
  /// signature's static result types. Inputs must match the signature, a
  /// dynamic dimension matching any size.
  mlir::LogicalResult call(llvm::StringRef entry,
                           llvm::ArrayRef<HostTensor> inputs,
                           std::vector<HostTensor> &results,
                           mlir::Location loc,
                           llvm::ArrayRef<mlir::RankedTensorType> resultTypes = {});

private:
  CompiledModule() = default;
  std::vector<EntrySignature> sigs;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  bool hugePageWeights = false;
  /// The arena bound parameters are copied into with hugePageWeights.
  std::shared_ptr<void> paramArena;
  int64_t arenaBytes = 0;
  /// Bound parameters by name.
  llvm::StringMap<HostTensor> boundParams;

  /// Moves every bound parameter into a new paramArena.
  mlir::LogicalResult moveParamsToHugePages(mlir::Location loc);
};

/// Ends the idle worker threads of the OpenMP runtime that threaded kernels
/// run on (omp_pause_resource_all(omp_pause_hard)), which otherwise spin
/// for the runtime's block time (200 ms by default) after each parallel
/// region. A measurement that needs the cores to itself (the read bound
/// between rounds of a threaded kernel) calls this first; the next parallel
/// region starts the threads again (its first call is slower). Returns
/// false when the OpenMP runtime cannot be loaded or the pause failed.
bool pauseIdleThreads();

/// One compiled entry function (a CompiledModule with one entry).
class CompiledFunction {
public:
  ~CompiledFunction();
  CompiledFunction(CompiledFunction &&);

  /// Compiles `entry`, or the only public function if empty; static shapes.
  /// `options` as for CompiledModule::compile.
  static mlir::FailureOr<CompiledFunction>
  compile(mlir::ModuleOp module, llvm::StringRef entry,
          const CpuCompileOptions &options = {});

  const EntrySignature &signature() const { return *sig; }

  mlir::LogicalResult bindParams(const mlir::qnt::ParamStore &store,
                                 mlir::Location loc) {
    return module->bindParams(store, loc);
  }

  /// Calls the function; `results` are allocated here.
  mlir::LogicalResult call(const std::vector<HostTensor> &inputs,
                           std::vector<HostTensor> &results,
                           mlir::Location loc) {
    return module->call(sig->name, inputs, results, loc);
  }

private:
  CompiledFunction() = default;
  std::unique_ptr<CompiledModule> module;
  const EntrySignature *sig = nullptr;
};

} // namespace qnt::runtime

#endif // QNT_RUNTIME_CPUJIT_H
