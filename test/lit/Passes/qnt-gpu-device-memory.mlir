// qnt-gpu-merge-kernel-modules puts every kernel in the first gpu.module
// (a taken name is renamed, and its launches follow). qnt-gpu-device-memory
// takes one stream at entry, makes the buffers stream-ordered device
// allocations and the launches asynchronous on that stream, and frees
// before the return what is not returned. A buffer viewed by a result is
// returned. A host access to a device buffer is a located error.
// RUN: quant-opt %s --split-input-file --verify-diagnostics --pass-pipeline='builtin.module(qnt-gpu-merge-kernel-modules,qnt-gpu-device-memory)' | FileCheck %s

// CHECK-LABEL: gpu.module @k0
// CHECK:   gpu.func @fill(
// CHECK:   gpu.func @fill_0(
// CHECK:   gpu.func @scale(
// CHECK-NOT: gpu.module
// CHECK-LABEL: func.func @step
// CHECK-NEXT: %[[S:.*]] = gpu.wait async
// CHECK: %[[N:.*]] = arith.index_cast
// CHECK: %[[T:.*]], %{{.*}} = gpu.alloc async [%[[S]]] (%[[N]]) : memref<?xf32>
// CHECK: %[[R:.*]], %{{.*}} = gpu.alloc async [%[[S]]] (%[[N]]) : memref<?xf32>
// CHECK: gpu.launch_func async [%[[S]]] @k0::@fill blocks
// CHECK: gpu.launch_func async [%[[S]]] @k0::@fill_0 blocks {{.*}} args(%[[R]] : memref<?xf32>)
// CHECK: gpu.launch_func async [%[[S]]] @k0::@scale blocks
// CHECK: %[[E:.*]] = memref.expand_shape %[[R]]
// CHECK-NOT: gpu.dealloc async [%[[S]]] %[[R]]
// CHECK: gpu.dealloc async [%[[S]]] %[[T]] : memref<?xf32>
// CHECK-NOT: gpu.dealloc
// CHECK: return %[[E]] : memref<?x4xf32>
module attributes {gpu.container_module} {
  gpu.module @k0 {
    gpu.func @fill(%a: memref<?xf32>) kernel { gpu.return }
  }
  gpu.module @k1 {
    gpu.func @fill(%a: memref<?xf32>) kernel { gpu.return }
    gpu.func @scale(%a: memref<?xf32>, %b: memref<?xf32>) kernel { gpu.return }
  }
  func.func @step(%x: memref<?xf32>, %pos: memref<i64>) -> memref<?x4xf32> {
    %c1 = arith.constant 1 : index
    %p = memref.load %pos[] : memref<i64>
    %n = arith.index_cast %p : i64 to index
    %t = memref.alloc(%n) : memref<?xf32>
    %r = memref.alloc(%n) : memref<?xf32>
    gpu.launch_func @k0::@fill blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%t : memref<?xf32>)
    gpu.launch_func @k1::@fill blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%r : memref<?xf32>)
    gpu.launch_func @k1::@scale blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%t : memref<?xf32>, %r : memref<?xf32>)
    %e = memref.expand_shape %r [[0, 1]] output_shape [%n, 4] : memref<?xf32> into memref<?x4xf32>
    return %e : memref<?x4xf32>
  }
}

// -----

// An explicit dealloc becomes a stream-ordered one and is not repeated.
// CHECK-LABEL: func.func @freed
// CHECK: %[[S:.*]] = gpu.wait async
// CHECK: %[[B:.*]], %{{.*}} = gpu.alloc async [%[[S]]] () : memref<16xf32>
// CHECK: gpu.dealloc async [%[[S]]] %[[B]] : memref<16xf32>
// CHECK-NOT: gpu.dealloc
// CHECK: return
func.func @freed() {
  %b = memref.alloc() : memref<16xf32>
  memref.dealloc %b : memref<16xf32>
  return
}

// -----

func.func @host_read(%n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %b = memref.alloc(%n) : memref<?xf32>
  // expected-error @below {{'memref.load' would run on the host on device memory; the whole-model GPU pipeline needs it inside a kernel}}
  %v = memref.load %b[%c0] : memref<?xf32>
  return %v : f32
}

// -----

func.func @nested_alloc(%n: index, %c: i1) {
  scf.if %c {
    // expected-error @below {{this one is allocated inside a region}}
    %b = memref.alloc(%n) : memref<?xf32>
  }
  return
}
