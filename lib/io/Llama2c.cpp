//===- Llama2c.cpp - llama2.c checkpoint files ----------------------------===//
//
// Both llama2.c layouts are a header followed by f32 arrays whose sizes
// follow from the header alone. The reader and the writer share one
// description of those arrays (forEachPiece), so that they cannot disagree
// on the order, and the reader can name the first array a short file cannot
// hold. The description is walked, never materialized: a header may claim
// billions of layers, and the reader stops at the first array the file
// cannot hold.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Llama2c.h"

#include "FileUtil.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>

namespace qnt::io {

using detail::quote;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "llama2.c files hold little-endian values that are read and "
              "written in place");

namespace {

constexpr uint32_t kMagic = 0x616b3432; // "ak42" read as little-endian.
constexpr uint64_t kLegacyHeaderSize = 7 * 4;
constexpr uint64_t kV1HeaderSize = 256;
constexpr const char *kFieldNames[7] = {"dim",        "hidden_dim", "n_layers",
                                        "n_heads",    "n_kv_heads", "vocab_size",
                                        "seq_len"};

/// One f32 array of the file: a role's tensor (of a layer), or one of the
/// legacy format's RoPE tables, which no tensor exposes.
struct Piece {
  std::optional<TensorRole> role; ///< Empty for a RoPE table.
  int64_t layer = -1;
  bool imag = false; ///< For a RoPE table: freq_cis_imag, else _real.
  uint64_t numFloats = 0;

  std::string name() const {
    if (!role)
      return imag ? "freq_cis_imag" : "freq_cis_real";
    return llama2cTensorName(*role, layer);
  }
};

/// Calls `visit` on the arrays of a file of `config` in `version`'s layout,
/// in file order, until it returns false; returns false if it did.
/// `config` must be valid (so no size overflows).
template <typename Visit>
bool forEachPiece(const LlamaConfig &config, int version, Visit &&visit) {
  auto add = [&](TensorRole role) {
    uint64_t n = 1;
    for (int64_t d : expectedShape(config, role))
      n *= static_cast<uint64_t>(d);
    if (!isPerLayer(role))
      return visit(Piece{role, -1, false, n});
    for (int64_t layer = 0; layer < config.nLayers; ++layer)
      if (!visit(Piece{role, layer, false, n}))
        return false;
    return true;
  };
  using R = TensorRole;
  if (version == 0) {
    for (R role : {R::TokEmbeddings, R::AttnNorm, R::Wq, R::Wk, R::Wv, R::Wo,
                   R::FfnNorm, R::W1, R::W2, R::W3, R::FinalNorm})
      if (!add(role))
        return false;
    const auto table = static_cast<uint64_t>(config.maxSeqLen) *
                       static_cast<uint64_t>(config.headDim() / 2);
    if (!visit(Piece{std::nullopt, -1, false, table}) ||
        !visit(Piece{std::nullopt, -1, true, table}))
      return false;
  } else {
    for (R role : {R::AttnNorm, R::FfnNorm, R::FinalNorm, R::TokEmbeddings,
                   R::Wq, R::Wk, R::Wv, R::Wo, R::W1, R::W2, R::W3})
      if (!add(role))
        return false;
  }
  if (!config.tiedEmbeddings)
    return add(R::Classifier);
  return true;
}

uint32_t readU32(const uint8_t *p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

int32_t readI32(const uint8_t *p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

std::string formatRange(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

/// llama2.c's (and Meta's) precompute_freqs_cis, in f32 as PyTorch does:
/// row t holds cos or sin of t * theta^(-2i/head_dim), i < head_dim/2.
std::vector<float> ropeTable(const LlamaConfig &config, bool imag) {
  const int64_t headDim = config.headDim();
  const int64_t half = headDim / 2;
  std::vector<float> freqs(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    freqs[static_cast<size_t>(i)] =
        1.0f / std::pow(static_cast<float>(config.ropeTheta),
                        static_cast<float>(2 * i) /
                            static_cast<float>(headDim));
  std::vector<float> table(static_cast<size_t>(config.maxSeqLen * half));
  for (int64_t t = 0; t < config.maxSeqLen; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(t) * freqs[static_cast<size_t>(i)];
      table[static_cast<size_t>(t * half + i)] =
          imag ? std::sin(angle) : std::cos(angle);
    }
  return table;
}

} // namespace

//===----------------------------------------------------------------------===//
// Llama2cFile
//===----------------------------------------------------------------------===//

std::unique_ptr<Llama2cFile> Llama2cFile::open(const std::string &path,
                                               std::string *error) {
  auto fail = [&](const std::string &message) {
    if (error)
      *error = path + ": " + message;
    return nullptr;
  };
  try {
    std::unique_ptr<Llama2cFile> file(new Llama2cFile());
    if (!file->mapFile(path, error))
      return nullptr;
    const uint64_t fileSize = file->mappingSize_;
    const uint8_t *bytes = file->mapping_;

    int version = 0;
    uint64_t headerSize = kLegacyHeaderSize;
    int64_t fields[7];
    bool shared;
    if (fileSize >= 4 && readU32(bytes) == kMagic) {
      if (fileSize < 8)
        return fail("file is " + std::to_string(fileSize) +
                    " bytes, too short to hold the llama2.c version after "
                    "its magic number");
      version = readI32(bytes + 4);
      if (version != 1)
        return fail("unsupported llama2.c version " + std::to_string(version) +
                    (version == 2 ? " (llama2.c's int8 export; only the f32 "
                                    "legacy and version 1 formats are read)"
                                  : " (only the legacy and version 1 formats "
                                    "are read)"));
      if (fileSize < kV1HeaderSize)
        return fail("file is " + std::to_string(fileSize) +
                    " bytes, shorter than the 256-byte version 1 header");
      headerSize = kV1HeaderSize;
      for (int i = 0; i < 7; ++i)
        fields[i] = readI32(bytes + 8 + 4 * i);
      const uint8_t sharedByte = bytes[8 + 7 * 4];
      if (sharedByte > 1)
        return fail("header: shared_classifier is " +
                    std::to_string(sharedByte) + ", expected 0 or 1");
      shared = sharedByte == 1;
    } else {
      if (fileSize < kLegacyHeaderSize)
        return fail("file is " + std::to_string(fileSize) +
                    " bytes, shorter than the 28-byte llama2.c header");
      for (int i = 0; i < 7; ++i)
        fields[i] = readI32(bytes + 4 * i);
      // The legacy format flags a separate classifier by negating
      // vocab_size.
      shared = fields[5] > 0;
      fields[5] = std::abs(fields[5]); // int64_t: no overflow at INT32_MIN.
    }
    for (int i = 0; i < 7; ++i)
      if (fields[i] <= 0)
        return fail(std::string("header: ") + kFieldNames[i] + " is " +
                    std::to_string(fields[i]) +
                    (i == 5 && version == 0 ? ", must be nonzero"
                                            : ", must be positive"));

    LlamaConfig &config = file->config_;
    config.dim = fields[0];
    config.hiddenDim = fields[1];
    config.nLayers = fields[2];
    config.nHeads = fields[3];
    config.nKvHeads = fields[4];
    config.vocabSize = fields[5];
    config.maxSeqLen = fields[6];
    // Fixed by the format: llama2.c's model.py uses these values.
    config.ropeTheta = 10000.0;
    config.rmsEps = 1e-5;
    config.tiedEmbeddings = shared;
    config.ropeStyle = RopeStyle::Interleaved;
    const std::string invalid = config.validate();
    if (!invalid.empty())
      return fail("header: invalid configuration: " + invalid);
    file->version_ = version;

    // Every array must fit, and nothing may follow the last one. Offsets
    // are absolute in messages; TensorInfo offsets are relative to the
    // data section, which starts after the header. validate() bounds the
    // sizes, so the sums cannot overflow.
    std::vector<TensorInfo> &tensors = file->tensors_;
    uint64_t offset = headerSize;
    std::string truncated;
    forEachPiece(config, version, [&](const Piece &piece) {
      const uint64_t end = offset + piece.numFloats * 4;
      if (end > fileSize) {
        truncated = "truncated: tensor " + quote(piece.name()) +
                    " needs bytes " + formatRange(offset, end) +
                    " but the file has " + std::to_string(fileSize) + " bytes";
        return false;
      }
      if (piece.role) {
        TensorInfo info;
        info.name = piece.name();
        info.dtype = DType::F32;
        info.shape = expectedShape(config, *piece.role);
        info.begin = offset - headerSize;
        info.end = end - headerSize;
        tensors.push_back(std::move(info));
      }
      offset = end;
      return true;
    });
    if (!truncated.empty())
      return fail(truncated);
    if (offset < fileSize)
      return fail(std::to_string(fileSize - offset) +
                  " trailing bytes after the last tensor (the header implies "
                  "a file of " +
                  std::to_string(offset) + " bytes)");
    file->dataOffset_ = headerSize;
    file->dataSize_ = fileSize - headerSize;
    file->buildIndex();
    return file;
  } catch (const std::bad_alloc &) {
    return fail("out of memory");
  } catch (const std::exception &e) {
    return fail(std::string("unexpected error: ") + e.what());
  }
}

//===----------------------------------------------------------------------===//
// writeLlama2c
//===----------------------------------------------------------------------===//

bool writeLlama2c(const std::string &path, const LlamaConfig &config,
                  int version, const TensorSource &source, std::string *error) {
  auto fail = [&](const std::string &message) {
    if (error)
      *error = path + ": " + message;
    return false;
  };
  try {
    if (version != 0 && version != 1)
      return fail("unsupported llama2.c version " + std::to_string(version) +
                  " (only 0 = legacy and 1 can be written)");
    const std::string invalid = config.validate();
    if (!invalid.empty())
      return fail("invalid configuration: " + invalid);
    if (config.ropeStyle != RopeStyle::Interleaved)
      return fail("llama2.c pairs rotary dimensions interleaved; a "
                  "half-split (Hugging Face) configuration cannot be stored");
    const int64_t fields[7] = {config.dim,     config.hiddenDim,
                               config.nLayers, config.nHeads,
                               config.nKvHeads, config.vocabSize,
                               config.maxSeqLen};
    for (int i = 0; i < 7; ++i)
      if (fields[i] > std::numeric_limits<int32_t>::max())
        return fail(std::string(kFieldNames[i]) + " " +
                    std::to_string(fields[i]) +
                    " does not fit the format's int32 header field");

    std::vector<uint8_t> header(version == 0 ? kLegacyHeaderSize
                                             : kV1HeaderSize,
                                0);
    uint8_t *fieldBytes = header.data();
    if (version == 1) {
      std::memcpy(header.data(), &kMagic, 4);
      const int32_t v = 1;
      std::memcpy(header.data() + 4, &v, 4);
      fieldBytes += 8;
      header[8 + 7 * 4] = config.tiedEmbeddings ? 1 : 0;
    }
    for (int i = 0; i < 7; ++i) {
      int32_t value = static_cast<int32_t>(fields[i]);
      if (version == 0 && i == 5 && !config.tiedEmbeddings)
        value = -value; // The legacy flag for a separate classifier.
      std::memcpy(fieldBytes + 4 * i, &value, 4);
    }

    detail::AtomicFile file; // Removes the temporary on every early return.
    std::string message;
    if (!file.create(path, &message))
      return fail(message);
    int err = 0;
    if (!detail::writeAll(file.fd(), header.data(), header.size(), &err))
      return fail(file.writeError(err));
    std::string pieceError;
    forEachPiece(config, version, [&](const Piece &piece) {
      // One array in memory at a time.
      std::vector<float> values =
          piece.role ? source(*piece.role, piece.layer)
                     : ropeTable(config, piece.imag);
      if (values.size() != piece.numFloats) {
        pieceError = "the source gave " + std::to_string(values.size()) +
                     " values for tensor " + quote(piece.name()) +
                     ", expected " + std::to_string(piece.numFloats);
        return false;
      }
      if (!detail::writeAll(file.fd(), values.data(),
                            values.size() * sizeof(float), &err)) {
        pieceError = file.writeError(err);
        return false;
      }
      return true;
    });
    if (!pieceError.empty())
      return fail(pieceError);
    if (!file.commit(&message))
      return fail(message);
    return true;
  } catch (const std::bad_alloc &) {
    return fail("out of memory");
  } catch (const std::exception &e) {
    return fail(std::string("unexpected error: ") + e.what());
  }
}

} // namespace qnt::io
