//===- ArtifactModel.h - Load and run a compiled artifact -------*- C++ -*-===//
//
// The C++ core of libqnt_runtime (the C API in qnt/runtime.h is a thin
// shell over it): reads and checks an artifact's manifest and files, picks
// the CPU image this machine runs, loads it with dlopen, binds the
// parameters from the memory-mapped weights, and runs the model's entries
// with KV caches. No LLVM, no MLIR: the types of the entries come from the
// manifest.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_ARTIFACT_ARTIFACTMODEL_H
#define QNT_RUNTIME_ARTIFACT_ARTIFACTMODEL_H

#include "qnt/io/Artifact.h"
#include "qnt/io/Safetensors.h"
#include "qnt/io/Tokenizer.h"

#include <memory>
#include <string>
#include <vector>

namespace qnt::rt {

struct OpenOptions {
  /// Threads of the threaded kernels of an image compiled with
  /// --cpu-threads=0 (0: every core); set on the thread of each call.
  int threads = 0;
  std::string device = "cpu";
  std::string image; ///< "" for the best one this CPU runs
  bool verifyChecksums = true;
};

/// A host buffer of one entry argument: its element type, static shape and
/// bytes (owned, 64-byte aligned, or borrowed).
class Buffer {
public:
  Buffer() = default;
  /// Owned and zeroed.
  Buffer(io::DType dtype, std::vector<int64_t> shape);
  /// Borrowed.
  Buffer(io::DType dtype, std::vector<int64_t> shape, const void *data);

  io::DType dtype() const { return dtype_; }
  const std::vector<int64_t> &shape() const { return shape_; }
  int64_t numElements() const;
  int64_t numBytes() const { return numElements() * io::dtypeSize(dtype_); }
  void *data() const { return const_cast<void *>(data_); }
  float *f32() const { return static_cast<float *>(data()); }

private:
  io::DType dtype_ = io::DType::F32;
  std::vector<int64_t> shape_;
  std::shared_ptr<void> storage_;
  const void *data_ = nullptr;
};

class Model {
public:
  ~Model();
  /// Opens the artifact directory `path`. Returns null and sets *error.
  static std::unique_ptr<Model> open(const std::string &path,
                                     const OpenOptions &options,
                                     std::string *error);

  const io::ArtifactManifest &manifest() const { return manifest_; }
  const io::LlamaConfig &config() const { return manifest_.model; }
  const std::string &imageName() const { return image_->name; }
  const io::Tokenizer *tokenizer() const { return tokenizer_.get(); }

  /// Calls entry `index` of the manifest: `inputs` must match its input
  /// types (a -1 dimension matching any size); `results` are allocated
  /// here, every -1 dimension being `rows`.
  bool call(size_t index, const std::vector<Buffer> &inputs,
            std::vector<Buffer> &results, int64_t rows, std::string *error);
  /// The index of entry `name`, or -1.
  int64_t entryIndex(const std::string &name) const;

private:
  Model() = default;
  bool checkFile(const io::ArtifactFile &file, bool checksum,
                 std::string *error) const;
  const io::CpuImage *chooseImage(const OpenOptions &options,
                                  std::string *error) const;
  bool loadImage(const OpenOptions &options, std::string *error);
  bool bindParams(std::string *error);
  bool checkModelSignatures(std::string *error) const;

  std::string dir_;
  io::ArtifactManifest manifest_;
  const io::CpuImage *image_ = nullptr;
  void *library_ = nullptr;
  std::unique_ptr<io::SafetensorsFile> weights_;
  std::unique_ptr<io::Tokenizer> tokenizer_;
  /// omp_set_num_threads and the count asked for (threads > 0 with an
  /// image that calls OpenMP), applied before every call.
  void (*setThreads_)(int) = nullptr;
  int threads_ = 0;
  using PackedEntry = void (*)(void **);
  std::vector<PackedEntry> functions_;
  /// Per entry, its parameters in argument order.
  std::vector<std::vector<Buffer>> params_;
};

/// A KV cache and a position: the model's tokens so far.
class Session {
public:
  /// `context` positions (0: the model's max_seq_len).
  static std::unique_ptr<Session> create(Model &model, int64_t context,
                                         std::string *error);

  /// Runs `tokens` at the next positions; their logits replace logits().
  bool prefill(const int32_t *tokens, int64_t count, std::string *error);
  const Buffer &logits() const { return logits_; }
  int64_t position() const { return position_; }
  void reset() { position_ = 0; }

private:
  explicit Session(Model &model) : model_(model) {}
  Model &model_;
  int64_t context_ = 0;
  int64_t position_ = 0;
  std::vector<Buffer> keyCaches_, valueCaches_;
  Buffer logits_;
  int64_t embed_ = -1, head_ = -1;
  std::vector<int64_t> blocks_;
};

} // namespace qnt::rt

#endif // QNT_RUNTIME_ARTIFACT_ARTIFACTMODEL_H
