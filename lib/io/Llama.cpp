//===- Llama.cpp - LLaMA-family model configuration and tensors -----------===//
//
// The configuration checks, tensor names and shapes of the LLaMA
// architecture, and the opening of a checkpoint in either layout. Opening
// resolves and checks every tensor up front, so that a consumer that gets a
// LlamaCheckpoint never meets a missing or misshapen weight halfway through
// a long job.
//
// Exceptions are used only inside this file (nlohmann-json throws, and
// allocation may fail); LlamaCheckpoint::open catches them and reports an
// error through its return value.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Llama.h"

#include "FileUtil.h"
#include "qnt/io/Llama2c.h"
#include "qnt/io/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qnt::io {

using detail::errnoText;
using detail::quote;

namespace {

constexpr int64_t kNumGlobalRoles = std::size(kGlobalRoles);
constexpr int64_t kNumLayerRoles = std::size(kLayerRoles);

/// Position of a per-layer role among kLayerRoles (AttnNorm..W3 are
/// consecutive enumerators).
int64_t layerRoleIndex(TensorRole role) {
  return static_cast<int64_t>(role) - static_cast<int64_t>(TensorRole::AttnNorm);
}

int64_t globalRoleIndex(TensorRole role) {
  switch (role) {
  case TensorRole::TokEmbeddings:
    return 0;
  case TensorRole::FinalNorm:
    return 1;
  default:
    return 2;
  }
}

/// "64x32" ("scalar" for no dimensions), as in shape mismatch messages.
std::string formatDims(const std::vector<int64_t> &shape) {
  if (shape.empty())
    return "a scalar";
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      out += 'x';
    out += std::to_string(shape[i]);
  }
  return out;
}

std::string joinPath(const std::string &dir, const std::string &name) {
  if (dir.empty())
    return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string baseName(const std::string &path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// Reads a whole (small) file; on failure sets *message.
bool readWholeFile(const std::string &path, std::string *text,
                   std::string *message) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *message = "cannot open: " + errnoText(errno);
    return false;
  }
  text->clear();
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      const int err = errno;
      ::close(fd);
      *message = "cannot read: " + errnoText(err);
      return false;
    }
    if (n == 0)
      break;
    text->append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

/// Parses `text` as JSON; on failure sets *message.
bool parseJson(const std::string &text, nlohmann::json *out,
               std::string *message) {
  try {
    *out = nlohmann::json::parse(text);
    return true;
  } catch (const nlohmann::json::exception &e) {
    // Drop the "[json.exception.parse_error.101] " prefix.
    std::string what = e.what();
    const size_t pos = what.find("] ");
    if (what.rfind("[json.exception.", 0) == 0 && pos != std::string::npos)
      what.erase(0, pos + 2);
    *message = "not valid JSON: " + what;
    return false;
  }
}

/// A JSON value for a message, shortened.
std::string shortDump(const nlohmann::json &value) {
  std::string s = value.dump();
  if (s.size() > 80)
    s = s.substr(0, 77) + "...";
  return s;
}

bool isFileEntry(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

//===----------------------------------------------------------------------===//
// config.json
//===----------------------------------------------------------------------===//

/// Reads the LLaMA hyper-parameters of a Hugging Face config.json. Messages
/// are not prefixed with the path.
class HfConfigReader {
public:
  explicit HfConfigReader(const nlohmann::json &root) : root_(root) {}

  bool read(LlamaConfig *config, std::string *message) {
    if (!root_.is_object())
      return fail("the top level is not an object", message);
    std::string modelType;
    if (!getString("model_type", &modelType, message))
      return false;
    if (modelType != "llama" && modelType != "mistral")
      return fail("unsupported model_type " + quote(modelType) +
                      " (expected 'llama' or 'mistral')",
                  message);
    if (has("rope_scaling"))
      return fail("unsupported rope_scaling " + shortDump(at("rope_scaling")) +
                      " (only unscaled RoPE is supported)",
                  message);
    if (has("hidden_act")) {
      if (!at("hidden_act").is_string() || at("hidden_act") != "silu")
        return fail("unsupported hidden_act " + shortDump(at("hidden_act")) +
                        " (expected \"silu\")",
                    message);
    }
    // Biased projections would be extra tensors this model ignores.
    for (const char *key : {"attention_bias", "mlp_bias"})
      if (has(key) && at(key) != false)
        return fail(std::string("unsupported ") + key + " " +
                        shortDump(at(key)) + " (expected false)",
                    message);

    LlamaConfig c;
    if (!getPositive("hidden_size", &c.dim, message) ||
        !getPositive("intermediate_size", &c.hiddenDim, message) ||
        !getPositive("num_hidden_layers", &c.nLayers, message) ||
        !getPositive("num_attention_heads", &c.nHeads, message) ||
        !getPositive("vocab_size", &c.vocabSize, message) ||
        !getPositive("max_position_embeddings", &c.maxSeqLen, message))
      return false;
    c.nKvHeads = c.nHeads;
    if (has("num_key_value_heads") &&
        !getPositive("num_key_value_heads", &c.nKvHeads, message))
      return false;
    if (has("head_dim")) {
      int64_t headDim = 0;
      if (!getPositive("head_dim", &headDim, message))
        return false;
      if (c.dim % c.nHeads != 0 || headDim != c.dim / c.nHeads)
        return fail("head_dim " + std::to_string(headDim) +
                        " differs from hidden_size / num_attention_heads (" +
                        std::to_string(c.dim) + " / " +
                        std::to_string(c.nHeads) +
                        "); only head_dim = hidden_size / "
                        "num_attention_heads is supported",
                    message);
    }
    c.rmsEps = 1e-6;
    c.ropeTheta = 10000.0;
    if ((has("rms_norm_eps") && !getNumber("rms_norm_eps", &c.rmsEps, message)) ||
        (has("rope_theta") && !getNumber("rope_theta", &c.ropeTheta, message)))
      return false;
    c.tiedEmbeddings = false;
    if (has("tie_word_embeddings")) {
      if (!at("tie_word_embeddings").is_boolean())
        return fail("'tie_word_embeddings' must be a boolean, got " +
                        shortDump(at("tie_word_embeddings")),
                    message);
      c.tiedEmbeddings = at("tie_word_embeddings").get<bool>();
    }
    // Mistral's sliding window only differs from full causal attention on
    // sequences longer than the window: limit the context to it instead.
    if (has("sliding_window")) {
      int64_t window = 0;
      if (!getPositive("sliding_window", &window, message))
        return false;
      c.maxSeqLen = std::min(c.maxSeqLen, window);
    }
    c.ropeStyle = RopeStyle::HalfSplit;
    const std::string invalid = c.validate();
    if (!invalid.empty())
      return fail("invalid configuration: " + invalid, message);
    *config = c;
    return true;
  }

private:
  static bool fail(std::string text, std::string *message) {
    *message = std::move(text);
    return false;
  }
  /// Present and not null (HF writes null for "unset").
  bool has(const char *key) const {
    auto it = root_.find(key);
    return it != root_.end() && !it->is_null();
  }
  const nlohmann::json &at(const char *key) const { return root_.at(key); }

  bool getString(const char *key, std::string *out, std::string *message) {
    if (!has(key))
      return fail(std::string("missing required key '") + key + "'", message);
    if (!at(key).is_string())
      return fail(std::string("'") + key + "' must be a string, got " +
                      shortDump(at(key)),
                  message);
    *out = at(key).get<std::string>();
    return true;
  }

  bool getPositive(const char *key, int64_t *out, std::string *message) {
    if (!has(key))
      return fail(std::string("missing required key '") + key + "'", message);
    const nlohmann::json &v = at(key);
    const bool fits =
        v.is_number_integer() &&
        (!v.is_number_unsigned() ||
         v.get<uint64_t>() <=
             static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
    if (!fits || v.get<int64_t>() <= 0)
      return fail(std::string("'") + key +
                      "' must be a positive integer, got " + shortDump(v),
                  message);
    *out = v.get<int64_t>();
    return true;
  }

  bool getNumber(const char *key, double *out, std::string *message) {
    const nlohmann::json &v = at(key);
    if (!v.is_number())
      return fail(std::string("'") + key + "' must be a number, got " +
                      shortDump(v),
                  message);
    *out = v.get<double>();
    return true;
  }

  const nlohmann::json &root_;
};

bool isFloatDType(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

} // namespace

//===----------------------------------------------------------------------===//
// LlamaConfig
//===----------------------------------------------------------------------===//

std::string LlamaConfig::validate() const {
  const std::pair<const char *, int64_t> sizes[] = {
      {"dim", dim},           {"hidden_dim", hiddenDim},
      {"n_layers", nLayers},  {"n_heads", nHeads},
      {"n_kv_heads", nKvHeads}, {"vocab_size", vocabSize},
      {"max_seq_len", maxSeqLen}};
  for (const auto &[name, value] : sizes)
    if (value <= 0)
      return std::string(name) + " is " + std::to_string(value) +
             ", must be positive";
  if (dim % nHeads != 0)
    return "dim " + std::to_string(dim) + " is not divisible by n_heads " +
           std::to_string(nHeads);
  if (nKvHeads > nHeads || nHeads % nKvHeads != 0)
    return "n_heads " + std::to_string(nHeads) +
           " is not a multiple of n_kv_heads " + std::to_string(nKvHeads);
  if (headDim() % 2 != 0)
    return "head dimension " + std::to_string(headDim()) +
           " (dim / n_heads) is odd; rotary embeddings need pairs";
  if (!(rmsEps > 0) || !std::isfinite(rmsEps))
    return "rms_eps " + std::to_string(rmsEps) +
           " must be positive and finite";
  if (!(ropeTheta > 0) || !std::isfinite(ropeTheta))
    return "rope_theta " + std::to_string(ropeTheta) +
           " must be positive and finite";
  // Byte sizes of up to 8-byte elements must stay representable.
  const int64_t params = numParameters();
  if (params < 0 || params > std::numeric_limits<int64_t>::max() / 8)
    return "the parameter count overflows";
  int64_t ropeTable;
  if (__builtin_mul_overflow(maxSeqLen, headDim(), &ropeTable) ||
      ropeTable > std::numeric_limits<int64_t>::max() / 8)
    return "max_seq_len " + std::to_string(maxSeqLen) + " is too large";
  return "";
}

int64_t LlamaConfig::numParameters() const {
  bool overflow = false;
  auto mul = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    overflow |= __builtin_mul_overflow(a, b, &r);
    return r;
  };
  auto add = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    overflow |= __builtin_add_overflow(a, b, &r);
    return r;
  };
  const int64_t qDim = mul(nHeads, headDim());
  int64_t perLayer = mul(2, dim);               // Two RMSNorm gains.
  perLayer = add(perLayer, mul(qDim, dim));     // wq
  perLayer = add(perLayer, mul(mul(2, kvDim()), dim)); // wk, wv
  perLayer = add(perLayer, mul(dim, qDim));     // wo
  perLayer = add(perLayer, mul(mul(3, hiddenDim), dim)); // w1, w2, w3
  const int64_t embedding = mul(vocabSize, dim);
  int64_t total = add(embedding, mul(nLayers, perLayer));
  total = add(total, dim);                      // Final norm.
  if (!tiedEmbeddings)
    total = add(total, embedding);
  return overflow ? -1 : total;
}

//===----------------------------------------------------------------------===//
// Roles and names
//===----------------------------------------------------------------------===//

bool isPerLayer(TensorRole role) {
  return role != TensorRole::TokEmbeddings && role != TensorRole::FinalNorm &&
         role != TensorRole::Classifier;
}

const char *roleName(TensorRole role) {
  switch (role) {
  case TensorRole::TokEmbeddings:
    return "tok_embeddings";
  case TensorRole::AttnNorm:
    return "attn_norm";
  case TensorRole::Wq:
    return "wq";
  case TensorRole::Wk:
    return "wk";
  case TensorRole::Wv:
    return "wv";
  case TensorRole::Wo:
    return "wo";
  case TensorRole::FfnNorm:
    return "ffn_norm";
  case TensorRole::W1:
    return "w1";
  case TensorRole::W2:
    return "w2";
  case TensorRole::W3:
    return "w3";
  case TensorRole::FinalNorm:
    return "final_norm";
  case TensorRole::Classifier:
    return "classifier";
  }
  return "?";
}

std::vector<int64_t> expectedShape(const LlamaConfig &config, TensorRole role) {
  const int64_t qDim = config.nHeads * config.headDim();
  switch (role) {
  case TensorRole::TokEmbeddings:
  case TensorRole::Classifier:
    return {config.vocabSize, config.dim};
  case TensorRole::AttnNorm:
  case TensorRole::FfnNorm:
  case TensorRole::FinalNorm:
    return {config.dim};
  case TensorRole::Wq:
    return {qDim, config.dim};
  case TensorRole::Wk:
  case TensorRole::Wv:
    return {config.kvDim(), config.dim};
  case TensorRole::Wo:
    return {config.dim, qDim};
  case TensorRole::W1:
  case TensorRole::W3:
    return {config.hiddenDim, config.dim};
  case TensorRole::W2:
    return {config.dim, config.hiddenDim};
  }
  return {};
}

const char *formatName(CheckpointFormat format) {
  switch (format) {
  case CheckpointFormat::Llama2cLegacy:
    return "llama2.c (legacy)";
  case CheckpointFormat::Llama2cV1:
    return "llama2.c (version 1)";
  case CheckpointFormat::HuggingFace:
    return "Hugging Face safetensors";
  }
  return "?";
}

std::string hfTensorName(TensorRole role, int64_t layer) {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  switch (role) {
  case TensorRole::TokEmbeddings:
    return "model.embed_tokens.weight";
  case TensorRole::AttnNorm:
    return prefix + "input_layernorm.weight";
  case TensorRole::Wq:
    return prefix + "self_attn.q_proj.weight";
  case TensorRole::Wk:
    return prefix + "self_attn.k_proj.weight";
  case TensorRole::Wv:
    return prefix + "self_attn.v_proj.weight";
  case TensorRole::Wo:
    return prefix + "self_attn.o_proj.weight";
  case TensorRole::FfnNorm:
    return prefix + "post_attention_layernorm.weight";
  case TensorRole::W1:
    return prefix + "mlp.gate_proj.weight";
  case TensorRole::W2:
    return prefix + "mlp.down_proj.weight";
  case TensorRole::W3:
    return prefix + "mlp.up_proj.weight";
  case TensorRole::FinalNorm:
    return "model.norm.weight";
  case TensorRole::Classifier:
    return "lm_head.weight";
  }
  return "";
}

std::string llama2cTensorName(TensorRole role, int64_t layer) {
  const std::string prefix = "layers." + std::to_string(layer) + ".";
  switch (role) {
  case TensorRole::TokEmbeddings:
    return "tok_embeddings.weight";
  case TensorRole::AttnNorm:
    return prefix + "attention_norm.weight";
  case TensorRole::Wq:
    return prefix + "attention.wq.weight";
  case TensorRole::Wk:
    return prefix + "attention.wk.weight";
  case TensorRole::Wv:
    return prefix + "attention.wv.weight";
  case TensorRole::Wo:
    return prefix + "attention.wo.weight";
  case TensorRole::FfnNorm:
    return prefix + "ffn_norm.weight";
  case TensorRole::W1:
    return prefix + "feed_forward.w1.weight";
  case TensorRole::W2:
    return prefix + "feed_forward.w2.weight";
  case TensorRole::W3:
    return prefix + "feed_forward.w3.weight";
  case TensorRole::FinalNorm:
    return "norm.weight";
  case TensorRole::Classifier:
    return "output.weight";
  }
  return "";
}

//===----------------------------------------------------------------------===//
// LlamaCheckpoint
//===----------------------------------------------------------------------===//

int64_t LlamaCheckpoint::slot(TensorRole role, int64_t layer) const {
  if (!isPerLayer(role))
    return globalRoleIndex(role);
  if (layer < 0 || layer >= config_.nLayers)
    return -1;
  return kNumGlobalRoles + layer * kNumLayerRoles + layerRoleIndex(role);
}

std::pair<const TensorFile *, const TensorInfo *>
LlamaCheckpoint::lookup(TensorRole role, int64_t layer) const {
  const int64_t s = slot(role, layer);
  if (s < 0 || static_cast<size_t>(s) >= locations_.size())
    return {nullptr, nullptr};
  return locations_[static_cast<size_t>(s)];
}

std::string LlamaCheckpoint::tensorName(TensorRole role, int64_t layer) const {
  if (const TensorInfo *info = lookup(role, layer).second)
    return info->name;
  if (role == TensorRole::Classifier && config_.tiedEmbeddings)
    role = TensorRole::TokEmbeddings;
  return format_ == CheckpointFormat::HuggingFace
             ? hfTensorName(role, layer)
             : llama2cTensorName(role, layer);
}

namespace {

/// Tensors a Hugging Face LLaMA checkpoint may hold that the model does not
/// use: RoPE frequency buffers that older transformers versions saved, and
/// the stored copy of a tied classifier.
bool isIgnorableHfTensor(const std::string &name, const LlamaConfig &config) {
  const std::string invFreq = ".rotary_emb.inv_freq";
  if (name.size() >= invFreq.size() &&
      name.compare(name.size() - invFreq.size(), invFreq.size(), invFreq) == 0)
    return true;
  return config.tiedEmbeddings && name == "lm_head.weight";
}

/// The layer of a "model.layers.<n>." tensor name, or -1.
int64_t hfLayerOf(const std::string &name) {
  const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0)
    return -1;
  int64_t layer = 0;
  size_t i = prefix.size();
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i])))
    return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]));
       ++i)
    if (__builtin_mul_overflow(layer, 10, &layer) ||
        __builtin_add_overflow(layer, name[i] - '0', &layer))
      return std::numeric_limits<int64_t>::max();
  return layer;
}

} // namespace

/// A message naming the first tensor of `ckpt`'s Hugging Face files that no
/// role resolved to (and that is not one a checkpoint may carry unused), or
/// "" when every tensor is accounted for. A checkpoint whose config.json
/// states fewer layers than its files hold must not load as the smaller
/// model.
static std::string findUnaccountedTensor(const LlamaCheckpoint &ckpt) {
  const LlamaConfig &config = ckpt.config();
  std::set<std::pair<const TensorFile *, const TensorInfo *>> used;
  for (TensorRole role : kGlobalRoles)
    used.insert(ckpt.lookup(role));
  for (int64_t layer = 0; layer < config.nLayers; ++layer)
    for (TensorRole role : kLayerRoles)
      used.insert(ckpt.lookup(role, layer));
  for (const std::unique_ptr<TensorFile> &file : ckpt.files())
    for (const TensorInfo &info : file->tensors()) {
      if (used.count({file.get(), &info}) ||
          isIgnorableHfTensor(info.name, config))
        continue;
      const int64_t layer = hfLayerOf(info.name);
      if (layer >= config.nLayers)
        return file->path() + ": tensor " + quote(info.name) +
               " belongs to a layer past the " +
               std::to_string(config.nLayers) +
               " that config.json states (num_hidden_layers); the "
               "checkpoint and its config disagree";
      return file->path() + ": tensor " + quote(info.name) +
             " is not part of the LLaMA model config.json describes (the "
             "model would load without it)";
    }
  return "";
}

namespace {

/// Where the tensors of a Hugging Face directory are, by name.
struct HfTensorIndex {
  std::string indexPath; ///< Empty for a single model.safetensors.
  /// tensor name -> shard file (only with an index).
  std::map<std::string, std::string> weightMap;
  /// shard file name -> opened file.
  std::map<std::string, const TensorFile *> shards;
};

} // namespace

std::unique_ptr<LlamaCheckpoint>
LlamaCheckpoint::open(const std::string &path, std::string *error) {
  auto fail = [&](const std::string &message) {
    if (error)
      *error = message;
    return nullptr;
  };
  try {
    std::unique_ptr<LlamaCheckpoint> ckpt(new LlamaCheckpoint());
    struct stat st;
    const bool isDir = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);

    // Each role's tensor, found by `locate` below, in slot order.
    auto resolveAll = [&](auto locate) -> bool {
      const LlamaConfig &config = ckpt->config_;
      // Filled in slot order as the tensors are found, never sized from the
      // configuration up front: a config may claim 10^9 layers, and the
      // first missing tensor ends the search.
      ckpt->locations_.clear();
      auto resolve = [&](TensorRole role, int64_t layer) {
        Location loc;
        if (role == TensorRole::Classifier && config.tiedEmbeddings)
          loc = ckpt->lookup(TensorRole::TokEmbeddings);
        else if (!locate(role, layer, &loc))
          return false;
        assert(ckpt->slot(role, layer) == int64_t(ckpt->locations_.size()));
        ckpt->locations_.push_back(loc);
        return true;
      };
      for (TensorRole role : kGlobalRoles)
        if (!resolve(role, -1))
          return false;
      for (int64_t layer = 0; layer < config.nLayers; ++layer)
        for (TensorRole role : kLayerRoles)
          if (!resolve(role, layer))
            return false;
      return true;
    };

    // Any file of a Hugging Face directory (config.json, a shard, the index)
    // names that directory; everything else is a llama2.c checkpoint.
    auto endsWith = [](const std::string &s, const std::string &suffix) {
      return s.size() >= suffix.size() &&
             s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    const bool isHfFile = baseName(path) == "config.json" ||
                          endsWith(path, ".safetensors") ||
                          endsWith(path, ".safetensors.index.json");
    if (!isDir && !isHfFile) {
      // A llama2.c checkpoint: its reader has checked every tensor already.
      std::unique_ptr<Llama2cFile> file = Llama2cFile::open(path, error);
      if (!file)
        return nullptr;
      ckpt->config_ = file->config();
      ckpt->format_ = file->version() == 0 ? CheckpointFormat::Llama2cLegacy
                                           : CheckpointFormat::Llama2cV1;
      const TensorFile *tf = file.get();
      ckpt->files_.push_back(std::move(file));
      std::string message;
      const bool ok = resolveAll([&](TensorRole role, int64_t layer,
                                     Location *loc) {
        const std::string name = llama2cTensorName(role, layer);
        const TensorInfo *info = tf->find(name);
        if (!info) {
          message = tf->path() + ": internal error: no tensor " + quote(name);
          return false;
        }
        *loc = {tf, info};
        return true;
      });
      if (!ok)
        return fail(message);
      return ckpt;
    }

    // A Hugging Face model directory.
    const std::string dir = isDir ? path : detail::parentDirectory(path);
    const std::string configPath = joinPath(dir, "config.json");
    std::string text, message;
    nlohmann::json root;
    if (!readWholeFile(configPath, &text, &message) ||
        !parseJson(text, &root, &message))
      return fail(configPath + ": " + message);
    HfConfigReader reader(root);
    if (!reader.read(&ckpt->config_, &message))
      return fail(configPath + ": " + message);
    ckpt->format_ = CheckpointFormat::HuggingFace;

    HfTensorIndex index;
    const std::string indexPath =
        joinPath(dir, "model.safetensors.index.json");
    const std::string singlePath = joinPath(dir, "model.safetensors");
    if (isFileEntry(indexPath)) {
      index.indexPath = indexPath;
      auto indexFail = [&](const std::string &m) {
        return fail(indexPath + ": " + m);
      };
      nlohmann::json indexJson;
      if (!readWholeFile(indexPath, &text, &message) ||
          !parseJson(text, &indexJson, &message))
        return indexFail(message);
      if (!indexJson.is_object() || !indexJson.contains("weight_map") ||
          !indexJson["weight_map"].is_object())
        return indexFail("'weight_map' is missing or not an object");
      // shard -> first tensor it holds, for messages.
      std::map<std::string, std::string> shardExample;
      for (const auto &[name, shard] : indexJson["weight_map"].items()) {
        if (!shard.is_string())
          return indexFail("weight_map value for " + quote(name) +
                           " is not a string");
        const std::string file = shard.get<std::string>();
        if (file.empty() || file[0] == '/' || file == ".." ||
            file.rfind("../", 0) == 0 ||
            file.find("/../") != std::string::npos)
          return indexFail("shard " + quote(file) + " (holding " +
                           quote(name) + ") is not inside the model directory");
        index.weightMap.emplace(name, file);
        shardExample.emplace(file, name);
      }
      for (const auto &[shard, example] : shardExample) {
        std::unique_ptr<SafetensorsFile> file =
            SafetensorsFile::open(joinPath(dir, shard), &message);
        if (!file)
          return indexFail("shard " + quote(shard) + " (holding " +
                           quote(example) + ") cannot be opened: " + message);
        index.shards.emplace(shard, file.get());
        ckpt->files_.push_back(std::move(file));
      }
    } else if (isFileEntry(singlePath)) {
      std::unique_ptr<SafetensorsFile> file =
          SafetensorsFile::open(singlePath, error);
      if (!file)
        return nullptr;
      ckpt->files_.push_back(std::move(file));
    } else {
      return fail(dir + ": neither model.safetensors.index.json nor "
                        "model.safetensors found");
    }

    const LlamaConfig &config = ckpt->config_;
    const bool ok = resolveAll([&](TensorRole role, int64_t layer,
                                   Location *loc) {
      const std::string name = hfTensorName(role, layer);
      const char *hint = role == TensorRole::Classifier
                             ? " (tie_word_embeddings is false)"
                             : "";
      const TensorFile *file = nullptr;
      if (!index.indexPath.empty()) {
        auto it = index.weightMap.find(name);
        if (it == index.weightMap.end()) {
          message = index.indexPath + ": no tensor " + quote(name) +
                    " in weight_map" + hint;
          return false;
        }
        file = index.shards.at(it->second);
        if (!file->find(name)) {
          message = file->path() + ": no tensor " + quote(name) +
                    " (model.safetensors.index.json maps it to this file)";
          return false;
        }
      } else {
        file = ckpt->files_.front().get();
        if (!file->find(name)) {
          message = file->path() + ": no tensor " + quote(name) + hint;
          return false;
        }
      }
      const TensorInfo *info = file->find(name);
      if (!isFloatDType(info->dtype)) {
        message = file->path() + ": tensor " + quote(name) + " has dtype " +
                  dtypeName(info->dtype) + ", expected F32, F16 or BF16";
        return false;
      }
      const std::vector<int64_t> want = expectedShape(config, role);
      if (info->shape != want) {
        message = file->path() + ": tensor " + quote(name) + " is " +
                  formatDims(info->shape) + " but config.json implies " +
                  formatDims(want);
        return false;
      }
      *loc = {file, info};
      return true;
    });
    if (!ok)
      return fail(message);
    message = findUnaccountedTensor(*ckpt);
    if (!message.empty())
      return fail(message);
    return ckpt;
  } catch (const std::bad_alloc &) {
    return fail(path + ": out of memory");
  } catch (const std::exception &e) {
    return fail(path + ": unexpected error: " + e.what());
  }
}

} // namespace qnt::io
