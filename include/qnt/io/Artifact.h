//===- Artifact.h - The manifest of a deployable artifact --------*- C++ -*-===//
//
// An artifact (quant-compile --target, docs/Artifact.md) is a directory:
//
//   manifest.json          this file's format: versioned, every other file
//                          listed with its size and CRC-32C
//   weights.safetensors    every parameter the compiled code reads, in the
//                          element type it reads (packed codes, scales, the
//                          float norms, embedding and classifier)
//   cpu/<image>.so         the model's functions compiled ahead of time for
//                          one CPU feature level (native, portable)
//   tokenizer.bin          when the model has one
//
// Paths inside are relative to the directory, so it can be moved. The
// packager writes the manifest with writeManifest and the runtime reads it
// with parseManifest: the one definition of the format. IR-free and
// LLVM-free (the runtime links neither).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_IO_ARTIFACT_H
#define QNT_IO_ARTIFACT_H

#include "qnt/io/Llama.h"
#include "qnt/io/TensorFile.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qnt::io {

/// The manifest format this build writes and reads. A manifest of another
/// version is refused (the layout of entries or files may differ).
constexpr int64_t kArtifactFormatVersion = 1;
constexpr const char *kArtifactFormatName = "qnt-artifact";
constexpr const char *kManifestFileName = "manifest.json";
constexpr const char *kArtifactWeightsFileName = "weights.safetensors";
constexpr const char *kArtifactTokenizerFileName = "tokenizer.bin";

/// A tensor type of an entry's signature; -1 is a dynamic dimension (the
/// number of tokens of a call, or the KV cache's rows).
struct ArtifactTensorType {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  bool operator==(const ArtifactTensorType &other) const {
    return dtype == other.dtype && shape == other.shape;
  }
};

/// One compiled function: its C-interface arguments are the inputs, then
/// the parameters (bound from the weights file by name), then the results
/// as out-parameters.
struct ArtifactEntry {
  std::string name;
  std::vector<ArtifactTensorType> inputs;
  std::vector<std::pair<std::string, ArtifactTensorType>> params;
  std::vector<ArtifactTensorType> results;
};

/// A file of the artifact: path relative to the artifact's directory.
struct ArtifactFile {
  std::string path;
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

/// Native code of every entry for one CPU feature level: a shared object
/// exporting `qnt_packed_<entry>(void **descriptors)` for each entry.
struct CpuImage {
  std::string name; ///< "native", "portable"
  ArtifactFile file;
  std::string triple; ///< LLVM target triple, e.g. x86_64-pc-linux-gnu
  std::string cpu;    ///< LLVM CPU name, e.g. znver5 or x86-64
  /// CPU features the code needs (LLVM spelling: avx512f, avx512vnni, ...),
  /// checked against the running CPU before the image is chosen.
  std::vector<std::string> requiredFeatures;
  /// The code calls the OpenMP runtime (libomp) for its threaded kernels.
  bool openmp = false;
  /// How it was compiled: "f32" or "int8" activations, threads (0: all
  /// cores, 1: sequential).
  std::string activations = "f32";
  int64_t threads = 0;
};

/// The kernels of every entry for one NVIDIA chip: a cubin from ptxas.
struct CudaCubin {
  std::string chip; ///< "sm_80", "sm_90", ...
  ArtifactFile file;
};

/// The GPU part of an artifact (quant-compile --target cuda:...), from
/// qnt-gpu-model-pipeline: a host program that launches the kernels, and
/// the kernels as one cubin per chip plus PTX for later chips.
struct CudaTarget {
  /// Shared object exporting `qnt_packed_<entry>(void **descriptors)` (the
  /// CPU images' convention, with device buffers) and the module handle
  /// `qnt_cuda_module` (a CUmodule the runtime loads and stores there
  /// before the first call); it calls the mgpu* functions.
  ArtifactFile host;
  std::string hostTriple;
  std::vector<CudaCubin> cubins;
  /// PTX of the newest chip, for the driver to compile on a later one.
  std::string ptxChip;
  ArtifactFile ptx;
  /// Kernels in each image.
  int64_t kernels = 0;
};

struct ArtifactManifest {
  int64_t version = kArtifactFormatVersion;
  std::string producer; ///< tool and version
  LlamaConfig model;
  std::vector<ArtifactEntry> entries;
  ArtifactFile weights;
  std::optional<ArtifactFile> tokenizer;
  /// Best first: the runtime takes the first one the CPU can run.
  std::vector<CpuImage> cpuImages;
  std::optional<CudaTarget> cuda;
  /// Informational: per-layer encodings and bits per weight, the recipe,
  /// the calibration source (kept as given).
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json recipe = nlohmann::json::object();

  const ArtifactEntry *entry(const std::string &name) const;
};

/// True for the CPU features (LLVM's spelling) that hostCpuHasFeature can
/// check: the x86-64 feature levels (x86-64-v2, -v3, -v4) and the x86
/// vector extensions generated code uses (sse2 ... avx2, fma, f16c, bmi,
/// bmi2, avx512f/bw/dq/vl/cd, avx512vnni, avx512vbmi, avx512vbmi2,
/// avx512bf16, avx512fp16, avxvnni). An image is compiled for one level and
/// such extensions only, and records them.
bool isCheckedCpuFeature(const std::string &feature);

/// True if the running CPU has `feature` (one isCheckedCpuFeature admits).
bool hostCpuHasFeature(const std::string &feature);

/// The manifest's own checksum (field "manifest_crc32c"): CRC-32C of the
/// compact JSON of every other field, keys sorted (nlohmann::json's order).
/// A reader recomputes it from what it parsed, so any change of content (a
/// flipped bit, a hand edit) is refused while whitespace does not matter.
constexpr const char *kManifestChecksumKey = "manifest_crc32c";
uint32_t manifestChecksum(const nlohmann::json &manifest);

/// The manifest as JSON text.
std::string writeManifest(const ArtifactManifest &manifest);

/// Parses and validates a manifest: format name and version, required
/// fields and their types, a valid model configuration, relative file
/// paths without "..", known dtypes. Returns false and sets *error.
bool parseManifest(const std::string &text, ArtifactManifest &manifest,
                   std::string *error);

} // namespace qnt::io

#endif // QNT_IO_ARTIFACT_H
