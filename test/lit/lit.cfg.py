# -*- Python -*-
# lit configuration of the quant-mlir IR and tool tests.
import os

import lit.formats

config.name = "QUANT-MLIR"
config.test_format = lit.formats.ShTest(True)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.qnt_obj_root, "test", "lit")
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py.in"]

# quant-mlir tools first, then FileCheck/not/split-file from LLVM 22.
config.environment["PATH"] = os.pathsep.join(
    [config.qnt_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")]
)
config.substitutions.append(("%qnt_src_root", config.qnt_src_root))
config.substitutions.append(("%qnt_obj_root", config.qnt_obj_root))
config.substitutions.append(("%python", "python3"))

# Tests using ../shared (real model and data) need the folder beside the checkout.
shared = os.path.join(os.path.dirname(config.qnt_src_root), "shared")
if os.path.isdir(shared):
    config.available_features.add("shared-data")
    config.substitutions.append(("%shared", shared))

# GPU code generation: kernels are serialized with the CUDA toolkit's ptxas
# (found at configure time). lit strips the environment, so CUDA_HOME is
# passed on explicitly for gpu-module-to-binary.
toolkit = config.qnt_cuda_toolkit
if toolkit and os.path.isfile(os.path.join(toolkit, "bin", "ptxas")):
    config.available_features.add("ptxas")
    config.environment["CUDA_HOME"] = toolkit

# A CUDA driver and device node: GPU tests run instead of their skip paths.
if os.path.exists("/dev/nvidiactl"):
    config.available_features.add("cuda-driver")

# Sanitizer builds (scripts/sanitize.sh): the runtime options travel into the
# tests, which lit would otherwise strip.
for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "ASAN_SYMBOLIZER_PATH"):
    if name in os.environ:
        config.environment[name] = os.environ[name]
