//===- ArtifactModel.cpp - Load and run a compiled artifact ---------------===//
//
// See ArtifactModel.h. An entry is called through the image's
// `qnt_packed_<entry>(void **)`: one pointer per argument, each to the
// C-interface memref descriptor {allocated, aligned, offset, sizes[rank],
// strides[rank]} of a contiguous buffer (inputs, parameters, results).
//
//===----------------------------------------------------------------------===//

#include "ArtifactModel.h"
#include "qnt/io/Checksum.h"
#include "qnt/support/CompiledCode.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

extern "C" void memrefCopy(int64_t elementSize, void *source,
                           void *destination);

using namespace qnt;
using namespace qnt::rt;

//===----------------------------------------------------------------------===//
// Buffer
//===----------------------------------------------------------------------===//

static int64_t countElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// Bytes of a buffer of `shape`, or -1 when a dimension is negative or the
/// size overflows (a manifest may state any shape).
static int64_t bufferBytes(io::DType dtype, const std::vector<int64_t> &shape) {
  int64_t bytes = io::dtypeSize(dtype);
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes))
      return -1;
  return bytes;
}

Buffer::Buffer(io::DType dtype, std::vector<int64_t> shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  int64_t checked = bufferBytes(dtype_, shape_);
  // Unallocatable sizes leave data() null, which every caller checks.
  if (checked < 0 || uint64_t(checked) > (uint64_t(1) << 46))
    return;
  size_t bytes = size_t(checked);
  // Rounded up to the alignment, as aligned_alloc requires; never 0 bytes.
  size_t padded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  void *memory = std::aligned_alloc(64, padded);
  if (memory)
    std::memset(memory, 0, padded);
  storage_ = std::shared_ptr<void>(memory, std::free);
  data_ = memory;
}

Buffer::Buffer(io::DType dtype, std::vector<int64_t> shape, const void *data)
    : dtype_(dtype), shape_(std::move(shape)), data_(data) {}

int64_t Buffer::numElements() const { return countElements(shape_); }

//===----------------------------------------------------------------------===//
// Opening
//===----------------------------------------------------------------------===//

static std::string joinPath(const std::string &dir, const std::string &file) {
  return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
}

static std::string shapeText(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? "," : "") + (shape[i] < 0 ? std::string("?")
                                           : std::to_string(shape[i]));
  return text + "]";
}

static std::string typeText(io::DType dtype, const std::vector<int64_t> &shape) {
  return std::string(io::dtypeName(dtype)) + shapeText(shape);
}

Model::~Model() {
  if (library_)
    ::dlclose(library_);
}

bool Model::checkFile(const io::ArtifactFile &file, bool checksum,
                      std::string *error) const {
  std::string path = joinPath(dir_, file.path);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    *error = path + ": " + std::strerror(errno) +
             " (listed in the artifact's manifest)";
    return false;
  }
  if (!S_ISREG(info.st_mode)) {
    *error = path + " is not a regular file (listed in the artifact's "
                    "manifest)";
    return false;
  }
  if (uint64_t(info.st_size) != file.bytes) {
    *error = path + " has " + std::to_string(info.st_size) +
             " bytes, the manifest says " + std::to_string(file.bytes) +
             ": the artifact is truncated or was modified";
    return false;
  }
  if (!checksum)
    return true;
  uint32_t crc;
  uint64_t bytes;
  if (!io::fileCrc32c(path, crc, bytes, error))
    return false;
  if (crc != file.crc32c) {
    *error = path + " has CRC-32C " + io::crc32cHex(crc) +
             ", the manifest says " + io::crc32cHex(file.crc32c) +
             ": the artifact is corrupted or was modified";
    return false;
  }
  return true;
}

/// The architecture this runtime was built for, as LLVM triples spell it.
static std::string hostArchitecture() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

/// Why this machine cannot run `image`, or "" when it can.
static std::string whyNotRunnable(const io::CpuImage &image) {
  std::string arch = image.triple.substr(0, image.triple.find('-'));
  if (arch != hostArchitecture())
    return "compiled for " + image.triple + ", this machine is " +
           hostArchitecture();
  std::string missing;
  for (const std::string &feature : image.requiredFeatures)
    if (!io::hostCpuHasFeature(feature))
      missing += (missing.empty() ? "" : ", ") + feature;
  if (!missing.empty())
    return "needs " + missing + ", which this CPU lacks";
  return "";
}

const io::CpuImage *Model::chooseImage(const OpenOptions &options,
                                       std::string *error) const {
  std::string reasons;
  for (const io::CpuImage &image : manifest_.cpuImages) {
    if (!options.image.empty() && image.name != options.image)
      continue;
    std::string why = whyNotRunnable(image);
    if (why.empty())
      return &image;
    reasons += "; '" + image.name + "' (" + image.cpu + ") " + why;
  }
  if (!options.image.empty() && reasons.empty()) {
    std::string names;
    for (const io::CpuImage &image : manifest_.cpuImages)
      names += (names.empty() ? "" : ", ") + image.name;
    *error = dir_ + ": no CPU image '" + options.image + "' (it has: " +
             (names.empty() ? "none" : names) + ")";
  } else if (manifest_.cpuImages.empty() && manifest_.cuda) {
    std::string chips;
    for (const io::CudaCubin &cubin : manifest_.cuda->cubins)
      chips += (chips.empty() ? "" : ",") + cubin.chip;
    *error = dir_ + ": compiled for cuda:" + chips +
             " only, and this runtime executes CPU images only (GPU "
             "sessions are not implemented yet); compile with --target "
             "cpu,cuda:" + chips + " to include CPU images";
  } else {
    *error = dir_ + ": no CPU image of this artifact runs on this machine" +
             (reasons.empty() ? std::string(": it has none") : reasons);
  }
  return nullptr;
}

/// Makes this library's exported symbols (memrefCopy) visible to the images
/// it loads, also when the library was itself loaded with RTLD_LOCAL.
static void exportRuntimeSymbols() {
  Dl_info info;
  if (::dladdr(reinterpret_cast<void *>(&memrefCopy), &info) &&
      info.dli_fname)
    ::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
}

/// Loads LLVM's OpenMP runtime globally (the images' threaded kernels call
/// it). Returns null when it cannot be found.
static void *loadOpenMP(std::string *error) {
  void *omp = nullptr;
  for (const char *name : {QNT_OPENMP_RUNTIME, "libomp.so.5", "libomp.so"})
    if ((omp = ::dlopen(name, RTLD_NOW | RTLD_GLOBAL)))
      break;
  if (!omp) {
    *error = std::string("the CPU image runs threaded kernels on LLVM's "
                         "OpenMP runtime, which cannot be loaded: ") +
             ::dlerror() + " (install libomp5, or compile with "
                           "--cpu-threads=1)";
    return nullptr;
  }
  return omp;
}

bool Model::loadImage(const OpenOptions &options, std::string *error) {
  image_ = chooseImage(options, error);
  if (!image_ || !checkFile(image_->file, options.verifyChecksums, error))
    return false;
  exportRuntimeSymbols();
  if (image_->openmp) {
    void *omp = loadOpenMP(error);
    if (!omp)
      return false;
    if (options.threads > 0) {
      threads_ = options.threads;
      setThreads_ = reinterpret_cast<void (*)(int)>(
          ::dlsym(omp, "omp_set_num_threads"));
    }
  }
  std::string path = joinPath(dir_, image_->file.path);
  // Not relative to the working directory: dlopen searches the library path
  // for names without a slash.
  if (path.find('/') == std::string::npos)
    path = "./" + path;
  library_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library_) {
    *error = std::string("cannot load the CPU image: ") + ::dlerror();
    return false;
  }
  for (const io::ArtifactEntry &entry : manifest_.entries) {
    std::string symbol = "qnt_packed_" + entry.name;
    void *function = ::dlsym(library_, symbol.c_str());
    if (!function) {
      *error = path + " has no function " + symbol + " for entry '" +
               entry.name + "'";
      return false;
    }
    functions_.push_back(reinterpret_cast<PackedEntry>(function));
  }
  return true;
}

bool Model::bindParams(std::string *error) {
  for (const io::ArtifactEntry &entry : manifest_.entries) {
    std::vector<Buffer> bound;
    for (const auto &[name, type] : entry.params) {
      const io::TensorInfo *info = weights_->find(name);
      if (!info) {
        *error = weights_->path() + ": no tensor '" + name +
                 "' (a parameter of '" + entry.name + "')";
        return false;
      }
      if (info->dtype != type.dtype || info->shape != type.shape) {
        *error = weights_->path() + ": tensor '" + name + "' is " +
                 typeText(info->dtype, info->shape) + ", entry '" +
                 entry.name + "' reads it as " +
                 typeText(type.dtype, type.shape);
        return false;
      }
      const uint8_t *data = weights_->data(*info);
      Buffer view(type.dtype, type.shape, data);
      // The code may load whole elements: misaligned ones are copied.
      if (reinterpret_cast<uintptr_t>(data) % io::dtypeSize(type.dtype)) {
        Buffer copy(type.dtype, type.shape);
        std::memcpy(copy.data(), data, copy.numBytes());
        view = copy;
      }
      bound.push_back(view);
    }
    params_.push_back(std::move(bound));
  }
  return true;
}

/// In a shape pattern: any size, static or dynamic.
constexpr int64_t kAnySize = -2;

/// True if `type` is f32 of `shape`, where -1 in `shape` must be dynamic
/// (the token dimension, which the runtime sizes) and kAnySize matches any
/// size. A token dimension stated static would have the runtime copy rows
/// a buffer does not have.
static bool isF32Shaped(const io::ArtifactTensorType &type,
                        const std::vector<int64_t> &shape) {
  if (type.dtype != io::DType::F32 || type.shape.size() != shape.size())
    return false;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != kAnySize && type.shape[i] != shape[i])
      return false;
  return true;
}

bool Model::checkModelSignatures(std::string *error) const {
  const io::LlamaConfig &c = config();
  auto bad = [&](const std::string &entry, const std::string &what) {
    *error = dir_ + ": entry '" + entry +
             "' does not have the signature of a model: " + what;
    return false;
  };
  const io::ArtifactEntry *embed = manifest_.entry("embed");
  if (!embed)
    return bad("embed", "missing");
  if (embed->inputs.size() != 1 || embed->inputs[0].dtype != io::DType::I32 ||
      embed->inputs[0].shape != std::vector<int64_t>{-1} ||
      embed->results.empty() || !isF32Shaped(embed->results[0], {-1, c.dim}))
    return bad("embed", "expected (i32[?]) -> (f32[?," +
                            std::to_string(c.dim) + "], ...)");
  for (int64_t layer = 0; layer < c.nLayers; ++layer) {
    std::string name = "block" + std::to_string(layer);
    const io::ArtifactEntry *block = manifest_.entry(name);
    if (!block)
      return bad(name, "missing");
    if (block->inputs.size() != 4 || block->results.size() < 3 ||
        !isF32Shaped(block->inputs[0], {-1, c.dim}) ||
        block->inputs[1].dtype != io::DType::I64 ||
        !block->inputs[1].shape.empty() ||
        !isF32Shaped(block->inputs[2], {kAnySize, c.kvDim()}) ||
        !(block->inputs[3] == block->inputs[2]) ||
        !isF32Shaped(block->results[0], {-1, c.dim}) ||
        !isF32Shaped(block->results[1], {-1, c.kvDim()}) ||
        !isF32Shaped(block->results[2], {-1, c.kvDim()}))
      return bad(name, "expected (x, pos, kcache, vcache) -> (x, k, v, ...) "
                       "with dim " + std::to_string(c.dim) + " and kv dim " +
                           std::to_string(c.kvDim()));
    int64_t cacheRows = block->inputs[2].shape[0];
    if (cacheRows != -1 && cacheRows != c.maxSeqLen)
      return bad(name, "its KV caches have " + std::to_string(cacheRows) +
                           " rows, not max_seq_len");
  }
  const io::ArtifactEntry *head = manifest_.entry("head");
  if (!head)
    return bad("head", "missing");
  if (head->inputs.size() != 1 || !isF32Shaped(head->inputs[0], {-1, c.dim}) ||
      head->results.empty() ||
      !isF32Shaped(head->results[0], {-1, c.vocabSize}))
    return bad("head", "expected (f32[?," + std::to_string(c.dim) +
                           "]) -> (f32[?," + std::to_string(c.vocabSize) +
                           "], ...)");
  // Extra results are allocated by the runtime: their types must be
  // buffers it can size.
  for (const io::ArtifactEntry &entry : manifest_.entries)
    for (const io::ArtifactTensorType &type : entry.results)
      for (int64_t d : type.shape)
        if (d < -1)
          return bad(entry.name, "a result has a negative dimension");
  return true;
}

std::unique_ptr<Model> Model::open(const std::string &path,
                                   const OpenOptions &options,
                                   std::string *error) {
  keepFreedMemory();
  std::unique_ptr<Model> model(new Model);
  model->dir_ = path;
  if (options.device != "cpu") {
    *error = "device '" + options.device +
             "': this runtime executes artifacts on the CPU only (device "
             "\"cpu\")";
    return nullptr;
  }
  std::string manifestPath = joinPath(path, io::kManifestFileName);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    *error = path + ": " + std::strerror(errno);
    return nullptr;
  }
  // A manifest is kilobytes; anything else (a FIFO that would block, a
  // huge file) is not one.
  constexpr off_t kMaxManifestBytes = off_t(64) << 20;
  std::ifstream in;
  if (::stat(manifestPath.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
      info.st_size <= kMaxManifestBytes)
    in.open(manifestPath, std::ios::binary);
  if (!in) {
    *error = manifestPath + ": cannot be read as a manifest (is " + path +
             " an artifact written by quant-compile --target?)";
    return nullptr;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string problem;
  if (!io::parseManifest(text.str(), model->manifest_, &problem)) {
    *error = manifestPath + ": " + problem;
    return nullptr;
  }
  const io::ArtifactManifest &m = model->manifest_;
  if (!model->checkModelSignatures(error) ||
      !model->checkFile(m.weights, options.verifyChecksums, error))
    return nullptr;
  std::string weightsPath = joinPath(path, m.weights.path);
  model->weights_ = io::SafetensorsFile::open(weightsPath, error);
  if (!model->weights_)
    return nullptr;
  if (m.tokenizer) {
    if (!model->checkFile(*m.tokenizer, options.verifyChecksums, error))
      return nullptr;
    model->tokenizer_ = io::Tokenizer::open(joinPath(path, m.tokenizer->path),
                                            m.model.vocabSize, error);
    if (!model->tokenizer_)
      return nullptr;
  }
  if (!model->bindParams(error) || !model->loadImage(options, error))
    return nullptr;
  return model;
}

//===----------------------------------------------------------------------===//
// Calls
//===----------------------------------------------------------------------===//

int64_t Model::entryIndex(const std::string &name) const {
  for (size_t i = 0; i < manifest_.entries.size(); ++i)
    if (manifest_.entries[i].name == name)
      return int64_t(i);
  return -1;
}

namespace {
/// The C-interface descriptor of a contiguous buffer.
struct Descriptor {
  std::vector<int64_t> words;
  explicit Descriptor(const Buffer &b)
      : words(contiguousDescriptor(b.data(), b.shape().data(),
                                   b.shape().size())) {}
};
} // namespace

static bool matches(const io::ArtifactTensorType &expected, const Buffer &b) {
  if (expected.dtype != b.dtype() || expected.shape.size() != b.shape().size())
    return false;
  for (size_t i = 0; i < expected.shape.size(); ++i)
    if (expected.shape[i] != -1 && expected.shape[i] != b.shape()[i])
      return false;
  return true;
}

bool Model::call(size_t index, const std::vector<Buffer> &inputs,
                 std::vector<Buffer> &results, int64_t rows,
                 std::string *error) {
  const io::ArtifactEntry &entry = manifest_.entries[index];
  if (inputs.size() != entry.inputs.size()) {
    *error = "'" + entry.name + "' takes " +
             std::to_string(entry.inputs.size()) + " inputs, got " +
             std::to_string(inputs.size());
    return false;
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!matches(entry.inputs[i], inputs[i])) {
      *error = "input #" + std::to_string(i) + " of '" + entry.name +
               "' must be " +
               typeText(entry.inputs[i].dtype, entry.inputs[i].shape) +
               ", got " + typeText(inputs[i].dtype(), inputs[i].shape());
      return false;
    }
  results.clear();
  for (const io::ArtifactTensorType &type : entry.results) {
    std::vector<int64_t> shape = type.shape;
    for (int64_t &d : shape)
      if (d == -1)
        d = rows;
    results.emplace_back(type.dtype, shape);
    if (!results.back().data()) {
      *error = "cannot allocate the results of '" + entry.name + "'";
      return false;
    }
  }
  std::vector<Descriptor> descriptors;
  descriptors.reserve(inputs.size() + params_[index].size() + results.size());
  for (const Buffer &b : inputs)
    descriptors.emplace_back(b);
  for (const Buffer &b : params_[index])
    descriptors.emplace_back(b);
  for (const Buffer &b : results)
    descriptors.emplace_back(b);
  std::vector<void *> pointers;
  for (Descriptor &d : descriptors)
    pointers.push_back(d.words.data());
  // The OpenMP thread count is per calling thread: set where the call runs.
  if (setThreads_)
    setThreads_(threads_);
  functions_[index](pointers.data());
  return true;
}

//===----------------------------------------------------------------------===//
// Session
//===----------------------------------------------------------------------===//

std::unique_ptr<Session> Session::create(Model &model, int64_t context,
                                         std::string *error) {
  const io::LlamaConfig &c = model.config();
  std::unique_ptr<Session> session(new Session(model));
  session->embed_ = model.entryIndex("embed");
  session->head_ = model.entryIndex("head");
  for (int64_t layer = 0; layer < c.nLayers; ++layer)
    session->blocks_.push_back(
        model.entryIndex("block" + std::to_string(layer)));
  int64_t staticRows =
      model.manifest().entries[session->blocks_[0]].inputs[2].shape[0];
  if (context == 0)
    context = c.maxSeqLen;
  if (context < 0 || context > c.maxSeqLen ||
      (staticRows != -1 && context != staticRows)) {
    *error = "a session's context must be in [1, " +
             std::to_string(c.maxSeqLen) + "], the model's max_seq_len" +
             (staticRows != -1 ? " (exactly, for its static KV caches)" : "") +
             "; got " + std::to_string(context);
    return nullptr;
  }
  session->context_ = context;
  for (int64_t layer = 0; layer < c.nLayers; ++layer) {
    session->keyCaches_.emplace_back(io::DType::F32,
                                     std::vector<int64_t>{context, c.kvDim()});
    session->valueCaches_.emplace_back(
        io::DType::F32, std::vector<int64_t>{context, c.kvDim()});
    if (!session->keyCaches_.back().data() ||
        !session->valueCaches_.back().data()) {
      *error = "cannot allocate a KV cache of " + std::to_string(context) +
               " positions";
      return nullptr;
    }
  }
  return session;
}

bool Session::prefill(const int32_t *tokens, int64_t count,
                      std::string *error) {
  const io::LlamaConfig &c = model_.config();
  if (count <= 0) {
    *error = "no tokens to run";
    return false;
  }
  if (count > context_ - position_) {
    *error = "tokens at positions [" + std::to_string(position_) + ", " +
             std::to_string(position_ + count) +
             ") exceed the session's context of " + std::to_string(context_);
    return false;
  }
  Buffer ids(io::DType::I32, {count});
  Buffer position(io::DType::I64, {});
  if (!ids.data() || !position.data()) {
    *error = "cannot allocate the inputs of " + std::to_string(count) +
             " tokens";
    return false;
  }
  for (int64_t i = 0; i < count; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocabSize) {
      *error = "token id " + std::to_string(tokens[i]) + " at index " +
               std::to_string(i) + " is outside the vocabulary [0, " +
               std::to_string(c.vocabSize) + ")";
      return false;
    }
    static_cast<int32_t *>(ids.data())[i] = tokens[i];
  }
  std::vector<Buffer> results;
  if (!model_.call(embed_, {ids}, results, count, error))
    return false;
  Buffer x = results[0];
  *static_cast<int64_t *>(position.data()) = position_;
  int64_t kvBytes = c.kvDim() * int64_t(sizeof(float));
  for (size_t layer = 0; layer < blocks_.size(); ++layer) {
    if (!model_.call(blocks_[layer],
                     {x, position, keyCaches_[layer], valueCaches_[layer]},
                     results, count, error))
      return false;
    // The new keys and values go into the cache (bufferization may already
    // have written them there in place; copying is correct either way).
    std::memcpy(keyCaches_[layer].f32() + position_ * c.kvDim(),
                results[1].data(), count * kvBytes);
    std::memcpy(valueCaches_[layer].f32() + position_ * c.kvDim(),
                results[2].data(), count * kvBytes);
    x = results[0];
  }
  if (!model_.call(head_, {x}, results, count, error))
    return false;
  logits_ = results[0];
  position_ += count;
  return true;
}
