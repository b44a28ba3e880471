//===- CheckpointTest.cpp - Tests for LLaMA checkpoint I/O ----------------===//
//
// llama2.c files (written by writeLlama2c and by hand), Hugging Face model
// directories (written with SafetensorsWriter), the checks LlamaCheckpoint
// makes when opening them, the TensorFile base, and SafetensorsWriter's
// spill mode.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Llama.h"
#include "qnt/io/Llama2c.h"
#include "qnt/io/Safetensors.h"
#include "qnt/io/TensorFile.h"
#include "support/TempDirTest.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

using namespace qnt::io;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//


/// dim 16, hidden 24, 2 layers, 4 heads of 4, 2 KV heads (GQA), vocab 32,
/// context 8.
LlamaConfig tinyConfig(bool tied = true) {
  LlamaConfig c;
  c.dim = 16;
  c.hiddenDim = 24;
  c.nLayers = 2;
  c.nHeads = 4;
  c.nKvHeads = 2;
  c.vocabSize = 32;
  c.maxSeqLen = 8;
  c.tiedEmbeddings = tied;
  return c;
}

int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// Distinct, exactly representable values for every (role, layer).
std::vector<float> valuesOf(const LlamaConfig &config, TensorRole role,
                            int64_t layer) {
  const int64_t n = numel(expectedShape(config, role));
  std::vector<float> v(static_cast<size_t>(n));
  const int64_t base = static_cast<int64_t>(role) * 16 + (layer + 1);
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] =
        static_cast<float>(base) + static_cast<float>(i % 1024) / 1024.0f;
  return v;
}

TensorSource sourceOf(const LlamaConfig &config) {
  return [config](TensorRole role, int64_t layer) {
    return valuesOf(config, role, layer);
  };
}

/// Deterministic bytes of `role`'s tensor as stored in a HF file of `dtype`
/// (only their identity is checked, not their value).
std::vector<uint8_t> bytesOf(const LlamaConfig &config, TensorRole role,
                             int64_t layer, DType dtype,
                             std::vector<int64_t> shape = {}) {
  if (shape.empty())
    shape = expectedShape(config, role);
  const auto n = static_cast<size_t>(numel(shape) * dtypeSize(dtype));
  std::vector<uint8_t> out(n);
  uint32_t x = static_cast<uint32_t>(role) * 7919u +
               static_cast<uint32_t>(layer + 1) * 104729u + 1u;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<uint8_t>(x >> 24);
  }
  return out;
}

std::string le32(uint32_t v) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &v, 4);
  return out;
}

std::string floatsOf(const std::vector<float> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()), v.size() * 4);
}

/// The config.json Hugging Face writes for `config`.
json hfConfigJson(const LlamaConfig &config) {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", config.dim},
              {"intermediate_size", config.hiddenDim},
              {"num_hidden_layers", config.nLayers},
              {"num_attention_heads", config.nHeads},
              {"num_key_value_heads", config.nKvHeads},
              {"vocab_size", config.vocabSize},
              {"max_position_embeddings", config.maxSeqLen},
              {"rms_norm_eps", config.rmsEps},
              {"rope_theta", config.ropeTheta},
              {"rope_scaling", nullptr},
              {"hidden_act", "silu"},
              {"attention_bias", false},
              {"tie_word_embeddings", config.tiedEmbeddings},
              {"torch_dtype", "float32"}};
}

/// How to write (and spoil) a Hugging Face directory.
struct HfOptions {
  DType dtype = DType::F32;
  int shards = 1;
  /// Write lm_head even when tied.
  bool forceLmHead = false;
  /// Tensors left out.
  std::set<std::string> omit;
  /// Tensors written with another shape.
  std::map<std::string, std::vector<int64_t>> reshape;
  /// Tensors written with another dtype.
  std::map<std::string, DType> retype;
  /// Keys merged into config.json (a null value removes the key).
  json configPatch = json::object();
};

class CheckpointTest : public qnt::testing::TempDirTest {
protected:
  CheckpointTest() : TempDirTest("qnt-checkpoint") {}

  static void writeFile(const std::string &path, const std::string &bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
  }

  static std::string readFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::set<std::string> listDir(const std::string &dir) const {
    std::set<std::string> names;
    for (const auto &entry : fs::directory_iterator(dir))
      names.insert(entry.path().filename().string());
    return names;
  }

  /// Writes a llama2.c file with writeLlama2c; returns its path.
  std::string writeBin(const std::string &name, const LlamaConfig &config,
                       int version) {
    const std::string path = pathOf(name);
    std::string error;
    EXPECT_TRUE(writeLlama2c(path, config, version, sourceOf(config), &error))
        << error;
    return path;
  }

  /// Opens `bytes` written to a file as a llama2.c checkpoint expecting
  /// failure; returns the message without the "<path>: " prefix.
  std::string llama2cError(const std::string &bytes) {
    const std::string path = pathOf("bad.bin");
    writeFile(path, bytes);
    std::string error;
    EXPECT_EQ(Llama2cFile::open(path, &error), nullptr);
    EXPECT_EQ(error.rfind(path + ": ", 0), 0u) << error;
    return error.substr(std::min(error.size(), path.size() + 2));
  }

  /// Writes a Hugging Face directory `name` for `config`; returns its path.
  std::string writeHf(const std::string &name, const LlamaConfig &config,
                      const HfOptions &options = {}) {
    const std::string dir = pathOf(name);
    fs::create_directories(dir);
    json cfg = hfConfigJson(config);
    for (const auto &[key, value] : options.configPatch.items()) {
      if (value.is_null() && key != "rope_scaling" && key != "head_dim")
        cfg.erase(key);
      else
        cfg[key] = value;
    }
    writeFile(dir + "/config.json", cfg.dump(2));

    struct Item {
      std::string name;
      TensorRole role;
      int64_t layer;
    };
    std::vector<Item> items;
    auto addItem = [&](TensorRole role, int64_t layer) {
      if (role == TensorRole::Classifier && config.tiedEmbeddings &&
          !options.forceLmHead)
        return;
      const std::string tensor = hfTensorName(role, layer);
      if (!options.omit.count(tensor))
        items.push_back({tensor, role, layer});
    };
    addItem(TensorRole::TokEmbeddings, -1);
    for (int64_t layer = 0; layer < config.nLayers; ++layer)
      for (TensorRole role : kLayerRoles)
        addItem(role, layer);
    addItem(TensorRole::FinalNorm, -1);
    addItem(TensorRole::Classifier, -1);

    std::vector<SafetensorsWriter> writers(static_cast<size_t>(options.shards));
    json weightMap = json::object();
    std::string error;
    for (size_t i = 0; i < items.size(); ++i) {
      const Item &item = items[i];
      const size_t shard = i * writers.size() / items.size();
      std::vector<int64_t> shape = expectedShape(config, item.role);
      if (auto it = options.reshape.find(item.name);
          it != options.reshape.end())
        shape = it->second;
      DType dtype = options.dtype;
      if (auto it = options.retype.find(item.name); it != options.retype.end())
        dtype = it->second;
      const std::vector<uint8_t> bytes =
          bytesOf(config, item.role, item.layer, dtype, shape);
      EXPECT_TRUE(writers[shard].add(item.name, dtype, shape, bytes.data(),
                                     bytes.size(), &error))
          << error;
      weightMap[item.name] = shardName(shard, writers.size());
    }
    if (options.shards == 1) {
      EXPECT_TRUE(writers[0].write(dir + "/model.safetensors", &error))
          << error;
      return dir;
    }
    for (size_t s = 0; s < writers.size(); ++s)
      EXPECT_TRUE(
          writers[s].write(dir + "/" + shardName(s, writers.size()), &error))
          << error;
    json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weightMap}};
    writeFile(dir + "/model.safetensors.index.json", index.dump(2));
    return dir;
  }

  static std::string shardName(size_t shard, size_t count) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors",
                  shard + 1, count);
    return buf;
  }

  /// Opens `path` as a checkpoint expecting failure; returns the message.
  static std::string checkpointError(const std::string &path) {
    std::string error;
    EXPECT_EQ(LlamaCheckpoint::open(path, &error), nullptr);
    EXPECT_FALSE(error.empty());
    return error;
  }

};

/// Checks that every tensor of `file` (a llama2.c file of `config`) holds
/// valuesOf(config, ...).
void expectLlama2cValues(const Llama2cFile &file, const LlamaConfig &config) {
  auto check = [&](TensorRole role, int64_t layer) {
    const std::string name = llama2cTensorName(role, layer);
    const TensorInfo *info = file.find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->dtype, DType::F32) << name;
    EXPECT_EQ(info->shape, expectedShape(config, role)) << name;
    const std::vector<float> want = valuesOf(config, role, layer);
    ASSERT_EQ(info->numBytes(), want.size() * 4) << name;
    EXPECT_EQ(std::memcmp(file.data(*info), want.data(), want.size() * 4), 0)
        << name;
  };
  check(TensorRole::TokEmbeddings, -1);
  check(TensorRole::FinalNorm, -1);
  for (int64_t layer = 0; layer < config.nLayers; ++layer)
    for (TensorRole role : kLayerRoles)
      check(role, layer);
  if (!config.tiedEmbeddings)
    check(TensorRole::Classifier, -1);
  else
    EXPECT_EQ(file.find("output.weight"), nullptr);
}

/// Bytes of a llama2.c file of `config` in the legacy layout, built by hand
/// from the layout documented in llama2.c's run.c.
std::string handMadeLegacy(const LlamaConfig &config) {
  const int32_t vocab = static_cast<int32_t>(
      config.tiedEmbeddings ? config.vocabSize : -config.vocabSize);
  const int32_t header[7] = {
      int32_t(config.dim),      int32_t(config.hiddenDim),
      int32_t(config.nLayers),  int32_t(config.nHeads),
      int32_t(config.nKvHeads), vocab,
      int32_t(config.maxSeqLen)};
  std::string out(reinterpret_cast<const char *>(header), sizeof(header));
  auto stacked = [&](TensorRole role) {
    for (int64_t l = 0; l < config.nLayers; ++l)
      out += floatsOf(valuesOf(config, role, l));
  };
  out += floatsOf(valuesOf(config, TensorRole::TokEmbeddings, -1));
  for (TensorRole role : kLayerRoles)
    if (role != TensorRole::FfnNorm && role != TensorRole::W1 &&
        role != TensorRole::W2 && role != TensorRole::W3)
      stacked(role);
  stacked(TensorRole::FfnNorm);
  stacked(TensorRole::W1);
  stacked(TensorRole::W2);
  stacked(TensorRole::W3);
  out += floatsOf(valuesOf(config, TensorRole::FinalNorm, -1));
  const size_t table = size_t(config.maxSeqLen * config.headDim() / 2);
  out += floatsOf(std::vector<float>(table, 0.5f));  // freq_cis_real
  out += floatsOf(std::vector<float>(table, -0.5f)); // freq_cis_imag
  if (!config.tiedEmbeddings)
    out += floatsOf(valuesOf(config, TensorRole::Classifier, -1));
  return out;
}

/// The same in the version 1 layout.
std::string handMadeV1(const LlamaConfig &config) {
  std::string out = le32(0x616b3432) + le32(1);
  const int64_t fields[7] = {config.dim,      config.hiddenDim,
                             config.nLayers,  config.nHeads,
                             config.nKvHeads, config.vocabSize,
                             config.maxSeqLen};
  for (int64_t f : fields)
    out += le32(static_cast<uint32_t>(f));
  out += static_cast<char>(config.tiedEmbeddings ? 1 : 0);
  out.resize(256, '\0');
  auto stacked = [&](TensorRole role) {
    for (int64_t l = 0; l < config.nLayers; ++l)
      out += floatsOf(valuesOf(config, role, l));
  };
  stacked(TensorRole::AttnNorm);
  stacked(TensorRole::FfnNorm);
  out += floatsOf(valuesOf(config, TensorRole::FinalNorm, -1));
  out += floatsOf(valuesOf(config, TensorRole::TokEmbeddings, -1));
  for (TensorRole role : {TensorRole::Wq, TensorRole::Wk, TensorRole::Wv,
                          TensorRole::Wo, TensorRole::W1, TensorRole::W2,
                          TensorRole::W3})
    stacked(role);
  if (!config.tiedEmbeddings)
    out += floatsOf(valuesOf(config, TensorRole::Classifier, -1));
  return out;
}

/// Size of a llama2.c file of `config`.
uint64_t llama2cSize(const LlamaConfig &config, int version) {
  uint64_t floats = static_cast<uint64_t>(config.numParameters());
  if (version == 0)
    floats += uint64_t(config.maxSeqLen * config.headDim());
  return (version == 0 ? 28 : 256) + floats * 4;
}

//===----------------------------------------------------------------------===//
// Configuration, roles and names
//===----------------------------------------------------------------------===//

TEST(LlamaConfigTest, ValidateAcceptsAndRejects) {
  EXPECT_EQ(tinyConfig().validate(), "");
  LlamaConfig c = tinyConfig();
  c.dim = 0;
  EXPECT_EQ(c.validate(), "dim is 0, must be positive");
  c = tinyConfig();
  c.nKvHeads = -2;
  EXPECT_EQ(c.validate(), "n_kv_heads is -2, must be positive");
  c = tinyConfig();
  c.nHeads = 3;
  EXPECT_EQ(c.validate(), "dim 16 is not divisible by n_heads 3");
  c = tinyConfig();
  c.nKvHeads = 3;
  EXPECT_EQ(c.validate(), "n_heads 4 is not a multiple of n_kv_heads 3");
  c = tinyConfig();
  c.nKvHeads = 8;
  EXPECT_EQ(c.validate(), "n_heads 4 is not a multiple of n_kv_heads 8");
  c = tinyConfig();
  c.dim = 12; // head dimension 3
  EXPECT_NE(c.validate().find("head dimension 3"), std::string::npos);
  c = tinyConfig();
  c.rmsEps = 0;
  EXPECT_NE(c.validate().find("rms_eps"), std::string::npos);
  c = tinyConfig();
  c.ropeTheta = std::nan("");
  EXPECT_NE(c.validate().find("rope_theta"), std::string::npos);
  c = tinyConfig();
  c.vocabSize = int64_t(1) << 40;
  c.dim = int64_t(1) << 30;
  c.nHeads = 2;
  c.nKvHeads = 2;
  EXPECT_EQ(c.validate(), "the parameter count overflows");
  EXPECT_EQ(c.numParameters(), -1);
}

TEST(LlamaConfigTest, NumParametersAddsUpTheShapes) {
  for (bool tied : {true, false}) {
    const LlamaConfig c = tinyConfig(tied);
    int64_t sum = numel(expectedShape(c, TensorRole::TokEmbeddings)) +
                  numel(expectedShape(c, TensorRole::FinalNorm));
    if (!tied)
      sum += numel(expectedShape(c, TensorRole::Classifier));
    for (TensorRole role : kLayerRoles)
      sum += c.nLayers * numel(expectedShape(c, role));
    EXPECT_EQ(c.numParameters(), sum);
  }
  // LLaMA-2 7B: 6738415616 parameters.
  LlamaConfig c;
  c.dim = 4096;
  c.hiddenDim = 11008;
  c.nLayers = 32;
  c.nHeads = 32;
  c.nKvHeads = 32;
  c.vocabSize = 32000;
  c.maxSeqLen = 4096;
  c.tiedEmbeddings = false;
  EXPECT_EQ(c.validate(), "");
  EXPECT_EQ(c.numParameters(), 6738415616);
}

TEST(LlamaConfigTest, ShapesAndNames) {
  const LlamaConfig c = tinyConfig();
  EXPECT_EQ(c.headDim(), 4);
  EXPECT_EQ(c.kvDim(), 8);
  using V = std::vector<int64_t>;
  EXPECT_EQ(expectedShape(c, TensorRole::TokEmbeddings), (V{32, 16}));
  EXPECT_EQ(expectedShape(c, TensorRole::Classifier), (V{32, 16}));
  EXPECT_EQ(expectedShape(c, TensorRole::AttnNorm), (V{16}));
  EXPECT_EQ(expectedShape(c, TensorRole::FfnNorm), (V{16}));
  EXPECT_EQ(expectedShape(c, TensorRole::FinalNorm), (V{16}));
  EXPECT_EQ(expectedShape(c, TensorRole::Wq), (V{16, 16}));
  EXPECT_EQ(expectedShape(c, TensorRole::Wk), (V{8, 16}));
  EXPECT_EQ(expectedShape(c, TensorRole::Wv), (V{8, 16}));
  EXPECT_EQ(expectedShape(c, TensorRole::Wo), (V{16, 16}));
  EXPECT_EQ(expectedShape(c, TensorRole::W1), (V{24, 16}));
  EXPECT_EQ(expectedShape(c, TensorRole::W2), (V{16, 24}));
  EXPECT_EQ(expectedShape(c, TensorRole::W3), (V{24, 16}));

  EXPECT_EQ(hfTensorName(TensorRole::TokEmbeddings, -1),
            "model.embed_tokens.weight");
  EXPECT_EQ(hfTensorName(TensorRole::AttnNorm, 3),
            "model.layers.3.input_layernorm.weight");
  EXPECT_EQ(hfTensorName(TensorRole::Wq, 0),
            "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::Wk, 1),
            "model.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::Wv, 2),
            "model.layers.2.self_attn.v_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::Wo, 3),
            "model.layers.3.self_attn.o_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::FfnNorm, 4),
            "model.layers.4.post_attention_layernorm.weight");
  EXPECT_EQ(hfTensorName(TensorRole::W1, 5),
            "model.layers.5.mlp.gate_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::W2, 6),
            "model.layers.6.mlp.down_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::W3, 7),
            "model.layers.7.mlp.up_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::FinalNorm, -1), "model.norm.weight");
  EXPECT_EQ(hfTensorName(TensorRole::Classifier, -1), "lm_head.weight");

  EXPECT_EQ(llama2cTensorName(TensorRole::TokEmbeddings, -1),
            "tok_embeddings.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::AttnNorm, 3),
            "layers.3.attention_norm.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::Wq, 0),
            "layers.0.attention.wq.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::Wk, 1),
            "layers.1.attention.wk.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::Wv, 1),
            "layers.1.attention.wv.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::Wo, 1),
            "layers.1.attention.wo.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::FfnNorm, 2),
            "layers.2.ffn_norm.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::W1, 2),
            "layers.2.feed_forward.w1.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::W2, 2),
            "layers.2.feed_forward.w2.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::W3, 2),
            "layers.2.feed_forward.w3.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::FinalNorm, -1), "norm.weight");
  EXPECT_EQ(llama2cTensorName(TensorRole::Classifier, -1), "output.weight");

  for (TensorRole role : kGlobalRoles)
    EXPECT_FALSE(isPerLayer(role)) << roleName(role);
  for (TensorRole role : kLayerRoles)
    EXPECT_TRUE(isPerLayer(role)) << roleName(role);
  EXPECT_STREQ(roleName(TensorRole::Wq), "wq");
  EXPECT_STREQ(roleName(TensorRole::AttnNorm), "attn_norm");
  EXPECT_STRNE(formatName(CheckpointFormat::Llama2cLegacy),
               formatName(CheckpointFormat::Llama2cV1));
  EXPECT_STRNE(formatName(CheckpointFormat::HuggingFace), "?");
}

//===----------------------------------------------------------------------===//
// llama2.c: round trips
//===----------------------------------------------------------------------===//

struct Llama2cCase {
  int version;
  bool tied;
};

class Llama2cRoundTrip : public CheckpointTest,
                         public ::testing::WithParamInterface<Llama2cCase> {};

TEST_P(Llama2cRoundTrip, WriteThenOpen) {
  const int version = GetParam().version;
  const bool tied = GetParam().tied;
  const LlamaConfig config = tinyConfig(tied);
  const std::string path = writeBin("model.bin", config, version);
  EXPECT_EQ(fs::file_size(path), llama2cSize(config, version));
  EXPECT_EQ(listDir(dir_), std::set<std::string>{"model.bin"});

  std::string error;
  std::unique_ptr<Llama2cFile> file = Llama2cFile::open(path, &error);
  ASSERT_NE(file, nullptr) << error;
  EXPECT_EQ(file->version(), version);
  EXPECT_EQ(file->path(), path);
  const LlamaConfig &c = file->config();
  EXPECT_EQ(c.dim, 16);
  EXPECT_EQ(c.hiddenDim, 24);
  EXPECT_EQ(c.nLayers, 2);
  EXPECT_EQ(c.nHeads, 4);
  EXPECT_EQ(c.nKvHeads, 2);
  EXPECT_EQ(c.vocabSize, 32);
  EXPECT_EQ(c.maxSeqLen, 8);
  EXPECT_EQ(c.tiedEmbeddings, tied);
  EXPECT_EQ(c.ropeStyle, RopeStyle::Interleaved);
  EXPECT_EQ(c.rmsEps, 1e-5);
  EXPECT_EQ(c.ropeTheta, 10000.0);
  EXPECT_EQ(file->tensors().size(), size_t(2 + 9 * 2 + (tied ? 0 : 1)));
  expectLlama2cValues(*file, config);
  // Tensors are listed in file order and never overlap.
  for (size_t i = 1; i < file->tensors().size(); ++i)
    EXPECT_LE(file->tensors()[i - 1].end, file->tensors()[i].begin);
  EXPECT_EQ(file->dataSize(), fs::file_size(path) - (version ? 256 : 28));

  // The same through openTensorFile and LlamaCheckpoint.
  std::unique_ptr<TensorFile> any = openTensorFile(path, &error);
  ASSERT_NE(any, nullptr) << error;
  EXPECT_NE(dynamic_cast<Llama2cFile *>(any.get()), nullptr);
  std::unique_ptr<LlamaCheckpoint> ckpt = LlamaCheckpoint::open(path, &error);
  ASSERT_NE(ckpt, nullptr) << error;
  EXPECT_EQ(ckpt->format(), version ? CheckpointFormat::Llama2cV1
                                    : CheckpointFormat::Llama2cLegacy);
  EXPECT_EQ(ckpt->files().size(), 1u);
  EXPECT_EQ(ckpt->config().tiedEmbeddings, tied);
  auto [clsFile, clsInfo] = ckpt->lookup(TensorRole::Classifier);
  ASSERT_NE(clsInfo, nullptr);
  EXPECT_EQ(clsFile, ckpt->files()[0].get());
  EXPECT_EQ(clsInfo->name, tied ? "tok_embeddings.weight" : "output.weight");
  EXPECT_EQ(ckpt->tensorName(TensorRole::Classifier), clsInfo->name);
  for (int64_t layer = 0; layer < 2; ++layer)
    for (TensorRole role : kLayerRoles) {
      auto [f, info] = ckpt->lookup(role, layer);
      ASSERT_NE(info, nullptr);
      EXPECT_EQ(info->name, llama2cTensorName(role, layer));
      EXPECT_EQ(ckpt->tensorName(role, layer), info->name);
      const std::vector<float> want = valuesOf(config, role, layer);
      EXPECT_EQ(std::memcmp(f->data(*info), want.data(), want.size() * 4), 0);
    }
  EXPECT_EQ(ckpt->lookup(TensorRole::Wq, 2).second, nullptr);
  EXPECT_EQ(ckpt->lookup(TensorRole::Wq, -1).second, nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    AllLayouts, Llama2cRoundTrip,
    ::testing::Values(Llama2cCase{0, true}, Llama2cCase{0, false},
                      Llama2cCase{1, true}, Llama2cCase{1, false}),
    [](const ::testing::TestParamInfo<Llama2cCase> &info) {
      return std::string(info.param.version ? "V1" : "Legacy") +
             (info.param.tied ? "Shared" : "Unshared");
    });

TEST_F(CheckpointTest, HandMadeLlama2cFilesOpen) {
  for (bool tied : {true, false}) {
    const LlamaConfig config = tinyConfig(tied);
    std::string error;
    const std::string legacy = pathOf("legacy.bin");
    writeFile(legacy, handMadeLegacy(config));
    auto file = Llama2cFile::open(legacy, &error);
    ASSERT_NE(file, nullptr) << error;
    EXPECT_EQ(file->version(), 0);
    EXPECT_EQ(file->config().tiedEmbeddings, tied);
    expectLlama2cValues(*file, config);

    const std::string v1 = pathOf("v1.bin");
    writeFile(v1, handMadeV1(config));
    file = Llama2cFile::open(v1, &error);
    ASSERT_NE(file, nullptr) << error;
    EXPECT_EQ(file->version(), 1);
    EXPECT_EQ(file->config().tiedEmbeddings, tied);
    expectLlama2cValues(*file, config);

    // The writer produces the same bytes (the legacy RoPE tables aside).
    EXPECT_EQ(readFile(writeBin("w1.bin", config, 1)), handMadeV1(config));
  }
}

TEST_F(CheckpointTest, LegacyWriterStoresRopeTables) {
  const LlamaConfig config = tinyConfig();
  const std::string bytes = readFile(writeBin("model.bin", config, 0));
  const int64_t half = config.headDim() / 2;
  const size_t table = size_t(config.maxSeqLen * half) * 4;
  // The tables follow the final norm; the (tied) file ends with them.
  const size_t realAt = bytes.size() - 2 * table;
  for (int64_t t = 0; t < config.maxSeqLen; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double freq = 1.0 / std::pow(10000.0, double(2 * i) / 4.0);
      float re, im;
      const size_t k = size_t(t * half + i) * 4;
      std::memcpy(&re, bytes.data() + realAt + k, 4);
      std::memcpy(&im, bytes.data() + realAt + table + k, 4);
      EXPECT_NEAR(re, std::cos(double(t) * freq), 1e-6) << t << " " << i;
      EXPECT_NEAR(im, std::sin(double(t) * freq), 1e-6) << t << " " << i;
    }
}

TEST_F(CheckpointTest, ReleasePagesKeepsDataReadable) {
  LlamaConfig config = tinyConfig(false);
  config.vocabSize = 4096; // Tensors spanning several pages.
  const std::string path = writeBin("model.bin", config, 1);
  std::string error;
  auto file = Llama2cFile::open(path, &error);
  ASSERT_NE(file, nullptr) << error;
  for (const TensorInfo &t : file->tensors())
    file->releasePages(t);
  expectLlama2cValues(*file, config);
  TensorInfo foreign;
  foreign.end = file->dataSize() + 1;
  file->releasePages(foreign); // Ignored, no crash.
  EXPECT_EQ(file->data(foreign), nullptr);
}

//===----------------------------------------------------------------------===//
// llama2.c: errors
//===----------------------------------------------------------------------===//

TEST_F(CheckpointTest, Llama2cRejectsVersionsAndShortHeaders) {
  const std::string magic = le32(0x616b3432);
  EXPECT_EQ(llama2cError(magic + le32(2) + std::string(300, '\0')),
            "unsupported llama2.c version 2 (llama2.c's int8 export; only "
            "the f32 legacy and version 1 formats are read)");
  for (int32_t v : {0, 3, -1}) {
    const std::string msg =
        llama2cError(magic + le32(uint32_t(v)) + std::string(300, '\0'));
    EXPECT_EQ(msg.rfind("unsupported llama2.c version " + std::to_string(v),
                        0),
              0u)
        << msg;
  }
  EXPECT_EQ(llama2cError(magic + "ab"),
            "file is 6 bytes, too short to hold the llama2.c version after "
            "its magic number");
  EXPECT_EQ(llama2cError(magic + le32(1) + std::string(100, '\0')),
            "file is 108 bytes, shorter than the 256-byte version 1 header");
  for (size_t n : {0, 5, 27})
    EXPECT_EQ(llama2cError(std::string(n, '\x01')),
              "file is " + std::to_string(n) +
                  " bytes, shorter than the 28-byte llama2.c header");

  std::string error;
  const std::string missing = pathOf("missing.bin");
  EXPECT_EQ(Llama2cFile::open(missing, &error), nullptr);
  EXPECT_EQ(error, missing + ": cannot open: No such file or directory");
  EXPECT_EQ(Llama2cFile::open(dir_, &error), nullptr);
  EXPECT_EQ(error, dir_ + ": not a regular file");
  EXPECT_EQ(Llama2cFile::open(missing, nullptr), nullptr); // No crash.
}

TEST_F(CheckpointTest, Llama2cRejectsBadHeaderValues) {
  const LlamaConfig good = tinyConfig();
  auto legacyWith = [&](int field, int32_t value) {
    std::string bytes = handMadeLegacy(good);
    std::memcpy(bytes.data() + 4 * field, &value, 4);
    return llama2cError(bytes);
  };
  EXPECT_EQ(legacyWith(3, 0), "header: n_heads is 0, must be positive");
  EXPECT_EQ(legacyWith(0, -16), "header: dim is -16, must be positive");
  EXPECT_EQ(legacyWith(5, 0), "header: vocab_size is 0, must be nonzero");
  EXPECT_EQ(legacyWith(6, 0), "header: seq_len is 0, must be positive");
  EXPECT_EQ(legacyWith(0, 15),
            "header: invalid configuration: dim 15 is not divisible by "
            "n_heads 4");
  EXPECT_EQ(legacyWith(4, 3),
            "header: invalid configuration: n_heads 4 is not a multiple of "
            "n_kv_heads 3");

  std::string v1 = handMadeV1(good);
  v1[36] = 2;
  EXPECT_EQ(llama2cError(v1), "header: shared_classifier is 2, expected 0 or 1");
  v1 = handMadeV1(good);
  const int32_t negative = -32;
  std::memcpy(v1.data() + 8 + 5 * 4, &negative, 4);
  EXPECT_EQ(llama2cError(v1), "header: vocab_size is -32, must be positive");
}

TEST_F(CheckpointTest, Llama2cNamesTheTensorATruncatedFileCannotHold) {
  // Legacy, tied: ... layers.1.feed_forward.w3, norm, freq_cis_real/imag.
  const LlamaConfig config = tinyConfig();
  const std::string full = handMadeLegacy(config);
  writeFile(pathOf("full.bin"), full);
  std::string error;
  auto file = Llama2cFile::open(pathOf("full.bin"), &error);
  ASSERT_NE(file, nullptr) << error;
  auto cut = [&](size_t n) { return llama2cError(full.substr(0, n)); };
  const std::string fileHas = " but the file has ";

  EXPECT_EQ(cut(28), "truncated: tensor 'tok_embeddings.weight' needs bytes "
                     "[28, 2076) but the file has 28 bytes");
  EXPECT_EQ(cut(29).rfind("truncated: tensor 'tok_embeddings.weight'", 0), 0u);
  // Any byte of a tensor missing names it.
  for (const TensorInfo &t : file->tensors()) {
    for (uint64_t end : {t.begin + 28 + 1, t.end + 28 - 1}) {
      const std::string msg = cut(static_cast<size_t>(end));
      EXPECT_EQ(msg, "truncated: tensor '" + t.name + "' needs bytes [" +
                         std::to_string(t.begin + 28) + ", " +
                         std::to_string(t.end + 28) + ")" + fileHas +
                         std::to_string(end) + " bytes");
    }
  }
  const TensorInfo *w2 = file->find("layers.1.feed_forward.w2.weight");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(cut(static_cast<size_t>(w2->begin + 28 + 100)),
            "truncated: tensor 'layers.1.feed_forward.w2.weight' needs bytes "
            "[" + std::to_string(w2->begin + 28) + ", " +
                std::to_string(w2->end + 28) + ") but the file has " +
                std::to_string(w2->begin + 28 + 100) + " bytes");
  // The RoPE tables are not tensors but are part of the file.
  EXPECT_EQ(cut(full.size() - 1).rfind("truncated: tensor 'freq_cis_imag'", 0),
            0u);
  const size_t table = size_t(config.maxSeqLen * config.headDim() / 2) * 4;
  EXPECT_EQ(cut(full.size() - table - 4)
                .rfind("truncated: tensor 'freq_cis_real'", 0),
            0u);

  // Untied: the classifier is last.
  const std::string untied = handMadeLegacy(tinyConfig(false));
  EXPECT_EQ(llama2cError(untied.substr(0, untied.size() - 4))
                .rfind("truncated: tensor 'output.weight'", 0),
            0u);
  // Version 1: the norms come first.
  const std::string v1 = handMadeV1(tinyConfig(false));
  EXPECT_EQ(llama2cError(v1.substr(0, 256)),
            "truncated: tensor 'layers.0.attention_norm.weight' needs bytes "
            "[256, 320) but the file has 256 bytes");
  EXPECT_EQ(llama2cError(v1.substr(0, 256 + 2 * 64 + 10))
                .rfind("truncated: tensor 'layers.0.ffn_norm.weight'", 0),
            0u);
  EXPECT_EQ(llama2cError(v1.substr(0, 256 + 4 * 64 + 10))
                .rfind("truncated: tensor 'norm.weight'", 0),
            0u);
  EXPECT_EQ(llama2cError(v1.substr(0, v1.size() - 1))
                .rfind("truncated: tensor 'output.weight'", 0),
            0u);
}

TEST_F(CheckpointTest, Llama2cRejectsTrailingBytes) {
  for (int version : {0, 1}) {
    const LlamaConfig config = tinyConfig();
    const std::string bytes =
        version ? handMadeV1(config) : handMadeLegacy(config);
    EXPECT_EQ(llama2cError(bytes + "abcd"),
              "4 trailing bytes after the last tensor (the header implies a "
              "file of " +
                  std::to_string(bytes.size()) + " bytes)");
  }
  // A legacy file read as tied whose writer meant a classifier: the
  // classifier shows up as trailing bytes.
  LlamaConfig untied = tinyConfig(false);
  std::string bytes = handMadeLegacy(untied);
  const int32_t positive = 32;
  std::memcpy(bytes.data() + 20, &positive, 4);
  EXPECT_EQ(llama2cError(bytes).find("2048 trailing bytes"), 0u);
}

TEST_F(CheckpointTest, WriteLlama2cRejectsBadRequests) {
  const LlamaConfig config = tinyConfig();
  std::string error;
  const std::string path = pathOf("out.bin");
  EXPECT_FALSE(writeLlama2c(path, config, 2, sourceOf(config), &error));
  EXPECT_EQ(error, path + ": unsupported llama2.c version 2 (only 0 = legacy "
                          "and 1 can be written)");
  LlamaConfig hf = config;
  hf.ropeStyle = RopeStyle::HalfSplit;
  EXPECT_FALSE(writeLlama2c(path, hf, 1, sourceOf(config), &error));
  EXPECT_NE(error.find("interleaved"), std::string::npos) << error;
  LlamaConfig bad = config;
  bad.nHeads = 0;
  EXPECT_FALSE(writeLlama2c(path, bad, 1, sourceOf(config), &error));
  EXPECT_EQ(error, path + ": invalid configuration: n_heads is 0, must be "
                          "positive");
  LlamaConfig huge = config;
  huge.maxSeqLen = int64_t(1) << 31;
  EXPECT_FALSE(writeLlama2c(path, huge, 1, sourceOf(config), &error));
  EXPECT_EQ(error, path + ": seq_len 2147483648 does not fit the format's "
                          "int32 header field");

  // A source that gives the wrong number of values: nothing is left behind,
  // an existing file is kept.
  writeFile(path, "previous");
  TensorSource shortSource = [&](TensorRole role, int64_t layer) {
    std::vector<float> v = valuesOf(config, role, layer);
    if (role == TensorRole::W2 && layer == 1)
      v.pop_back();
    return v;
  };
  EXPECT_FALSE(writeLlama2c(path, config, 0, shortSource, &error));
  EXPECT_EQ(error, path + ": the source gave 383 values for tensor "
                          "'layers.1.feed_forward.w2.weight', expected 384");
  EXPECT_EQ(readFile(path), "previous");
  EXPECT_EQ(listDir(dir_), std::set<std::string>{"out.bin"});

  // A throwing source is reported, not propagated.
  TensorSource throwing = [](TensorRole, int64_t) -> std::vector<float> {
    throw std::runtime_error("boom");
  };
  EXPECT_FALSE(writeLlama2c(path, config, 1, throwing, &error));
  EXPECT_EQ(error, path + ": unexpected error: boom");
  EXPECT_EQ(listDir(dir_), std::set<std::string>{"out.bin"});

  // A missing directory.
  const std::string nowhere = pathOf("no/such/dir/out.bin");
  EXPECT_FALSE(writeLlama2c(nowhere, config, 1, sourceOf(config), &error));
  EXPECT_EQ(error.rfind(nowhere + ": cannot create temporary file", 0), 0u)
      << error;
}

//===----------------------------------------------------------------------===//
// openTensorFile
//===----------------------------------------------------------------------===//

TEST_F(CheckpointTest, OpenTensorFileDetectsTheFormat) {
  SafetensorsWriter writer;
  const float v[2] = {1, 2};
  std::string error;
  ASSERT_TRUE(writer.add("v", DType::F32, {2}, v, sizeof(v), &error));
  const std::string st = pathOf("x.safetensors");
  ASSERT_TRUE(writer.write(st, &error)) << error;
  auto file = openTensorFile(st, &error);
  ASSERT_NE(file, nullptr) << error;
  EXPECT_NE(dynamic_cast<SafetensorsFile *>(file.get()), nullptr);
  ASSERT_NE(file->find("v"), nullptr);
  EXPECT_EQ(std::memcmp(file->data(*file->find("v")), v, sizeof(v)), 0);

  // A legacy llama2.c file with 123 layers: its byte 8 is '{'.
  LlamaConfig c;
  c.dim = 8;
  c.hiddenDim = 8;
  c.nLayers = 123;
  c.nHeads = 2;
  c.nKvHeads = 2;
  c.vocabSize = 4;
  c.maxSeqLen = 2;
  const std::string bin = writeBin("curly.bin", c, 0);
  ASSERT_EQ(readFile(bin)[8], '{');
  file = openTensorFile(bin, &error);
  ASSERT_NE(file, nullptr) << error;
  EXPECT_NE(dynamic_cast<Llama2cFile *>(file.get()), nullptr);
  EXPECT_EQ(file->tensors().size(), size_t(2 + 9 * 123));

  // Errors come from the reader the content points to.
  const std::string broken = pathOf("broken.safetensors");
  writeFile(broken, std::string("\x05\0\0\0\0\0\0\0{\"a\":", 13));
  EXPECT_EQ(openTensorFile(broken, &error), nullptr);
  EXPECT_EQ(error.rfind(broken + ": header is not valid JSON", 0), 0u)
      << error;
  const std::string junk = pathOf("junk.bin");
  writeFile(junk, "hello");
  EXPECT_EQ(openTensorFile(junk, &error), nullptr);
  EXPECT_EQ(error, junk + ": file is 5 bytes, shorter than the 28-byte "
                          "llama2.c header");
  EXPECT_EQ(openTensorFile(pathOf("missing"), &error), nullptr);
  EXPECT_EQ(error, pathOf("missing") + ": cannot open: No such file or "
                                       "directory");
}

//===----------------------------------------------------------------------===//
// Hugging Face directories
//===----------------------------------------------------------------------===//

struct HfCase {
  DType dtype;
  int shards;
  bool tied;
};

class HfRoundTrip : public CheckpointTest,
                    public ::testing::WithParamInterface<HfCase> {};

TEST_P(HfRoundTrip, WriteThenOpen) {
  // Not structured bindings: C++17 lambdas cannot capture those.
  const DType dtype = GetParam().dtype;
  const int shards = GetParam().shards;
  const bool tied = GetParam().tied;
  LlamaConfig config = tinyConfig(tied);
  config.rmsEps = 1e-6;
  config.ropeTheta = 500000.0;
  HfOptions options;
  options.dtype = dtype;
  options.shards = shards;
  const std::string dir = writeHf("hf", config, options);

  for (const std::string &path : {dir, dir + "/", dir + "/config.json"}) {
    std::string error;
    auto ckpt = LlamaCheckpoint::open(path, &error);
    ASSERT_NE(ckpt, nullptr) << error;
    EXPECT_EQ(ckpt->format(), CheckpointFormat::HuggingFace);
    EXPECT_EQ(ckpt->files().size(), size_t(shards));
    const LlamaConfig &c = ckpt->config();
    EXPECT_EQ(c.dim, 16);
    EXPECT_EQ(c.hiddenDim, 24);
    EXPECT_EQ(c.nLayers, 2);
    EXPECT_EQ(c.nHeads, 4);
    EXPECT_EQ(c.nKvHeads, 2);
    EXPECT_EQ(c.vocabSize, 32);
    EXPECT_EQ(c.maxSeqLen, 8);
    EXPECT_EQ(c.rmsEps, 1e-6);
    EXPECT_EQ(c.ropeTheta, 500000.0);
    EXPECT_EQ(c.tiedEmbeddings, tied);
    EXPECT_EQ(c.ropeStyle, RopeStyle::HalfSplit);

    auto check = [&](TensorRole role, int64_t layer) {
      auto [file, info] = ckpt->lookup(role, layer);
      ASSERT_NE(file, nullptr);
      ASSERT_NE(info, nullptr);
      const TensorRole stored =
          role == TensorRole::Classifier && tied ? TensorRole::TokEmbeddings
                                                 : role;
      EXPECT_EQ(info->name, hfTensorName(stored, layer));
      EXPECT_EQ(ckpt->tensorName(role, layer), info->name);
      EXPECT_EQ(info->dtype, dtype);
      EXPECT_EQ(info->shape, expectedShape(config, role));
      const std::vector<uint8_t> want =
          bytesOf(config, stored, layer, dtype);
      ASSERT_EQ(info->numBytes(), want.size());
      EXPECT_EQ(std::memcmp(file->data(*info), want.data(), want.size()), 0)
          << info->name;
    };
    for (TensorRole role : kGlobalRoles)
      check(role, -1);
    for (int64_t layer = 0; layer < config.nLayers; ++layer)
      for (TensorRole role : kLayerRoles)
        check(role, layer);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, HfRoundTrip,
    ::testing::Values(HfCase{DType::F32, 1, true}, HfCase{DType::F32, 1, false},
                      HfCase{DType::F16, 1, false},
                      HfCase{DType::BF16, 3, true},
                      HfCase{DType::BF16, 3, false},
                      HfCase{DType::F16, 2, true}),
    [](const ::testing::TestParamInfo<HfCase> &info) {
      return std::string(dtypeName(info.param.dtype)) + "_" +
             std::to_string(info.param.shards) + "Shards_" +
             (info.param.tied ? "Tied" : "Untied");
    });

TEST_F(CheckpointTest, HfDefaultsAndExtras) {
  const LlamaConfig config = tinyConfig(false);
  HfOptions options;
  // Absent keys take Hugging Face's defaults; head_dim may be given.
  options.configPatch = {{"num_key_value_heads", nullptr},
                         {"rms_norm_eps", nullptr},
                         {"rope_theta", nullptr},
                         {"tie_word_embeddings", nullptr},
                         {"hidden_act", nullptr},
                         {"head_dim", 4}};
  LlamaConfig mha = config;
  mha.nKvHeads = mha.nHeads;
  std::string dir = writeHf("defaults", mha, options);
  std::string error;
  auto ckpt = LlamaCheckpoint::open(dir, &error);
  ASSERT_NE(ckpt, nullptr) << error;
  EXPECT_EQ(ckpt->config().nKvHeads, 4);
  EXPECT_EQ(ckpt->config().rmsEps, 1e-6);
  EXPECT_EQ(ckpt->config().ropeTheta, 10000.0);
  EXPECT_FALSE(ckpt->config().tiedEmbeddings);

  // Tied with an lm_head stored anyway: the embedding is the classifier.
  HfOptions extra;
  extra.forceLmHead = true;
  dir = writeHf("tied-extra", tinyConfig(true), extra);
  ckpt = LlamaCheckpoint::open(dir, &error);
  ASSERT_NE(ckpt, nullptr) << error;
  EXPECT_EQ(ckpt->tensorName(TensorRole::Classifier),
            "model.embed_tokens.weight");

  // Mistral with a sliding window shorter than the context.
  HfOptions mistral;
  mistral.configPatch = {{"model_type", "mistral"}, {"sliding_window", 4}};
  dir = writeHf("mistral", config, mistral);
  ckpt = LlamaCheckpoint::open(dir, &error);
  ASSERT_NE(ckpt, nullptr) << error;
  EXPECT_EQ(ckpt->config().maxSeqLen, 4);
}

TEST_F(CheckpointTest, HfRejectsBadConfigs) {
  const LlamaConfig config = tinyConfig();
  auto errorWith = [&](const json &patch) {
    HfOptions options;
    options.configPatch = patch;
    const std::string dir = writeHf("bad", config, options);
    const std::string msg = checkpointError(dir);
    const std::string prefix = dir + "/config.json: ";
    EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
    fs::remove_all(dir);
    return msg.substr(std::min(msg.size(), prefix.size()));
  };
  EXPECT_EQ(errorWith({{"hidden_size", nullptr}}),
            "missing required key 'hidden_size'");
  EXPECT_EQ(errorWith({{"vocab_size", nullptr}}),
            "missing required key 'vocab_size'");
  EXPECT_EQ(errorWith({{"model_type", nullptr}}),
            "missing required key 'model_type'");
  EXPECT_EQ(errorWith({{"hidden_size", "16"}}),
            "'hidden_size' must be a positive integer, got \"16\"");
  EXPECT_EQ(errorWith({{"num_hidden_layers", 0}}),
            "'num_hidden_layers' must be a positive integer, got 0");
  EXPECT_EQ(errorWith({{"intermediate_size", -3}}),
            "'intermediate_size' must be a positive integer, got -3");
  EXPECT_EQ(errorWith({{"num_attention_heads", 2.5}}),
            "'num_attention_heads' must be a positive integer, got 2.5");
  EXPECT_EQ(errorWith({{"rms_norm_eps", "small"}}),
            "'rms_norm_eps' must be a number, got \"small\"");
  EXPECT_EQ(errorWith({{"tie_word_embeddings", 1}}),
            "'tie_word_embeddings' must be a boolean, got 1");
  EXPECT_EQ(errorWith({{"model_type", "gpt2"}}),
            "unsupported model_type 'gpt2' (expected 'llama' or 'mistral')");
  EXPECT_EQ(errorWith({{"rope_scaling", {{"type", "linear"}, {"factor", 2}}}}),
            "unsupported rope_scaling {\"factor\":2,\"type\":\"linear\"} "
            "(only unscaled RoPE is supported)");
  EXPECT_EQ(errorWith({{"hidden_act", "gelu"}}),
            "unsupported hidden_act \"gelu\" (expected \"silu\")");
  EXPECT_EQ(errorWith({{"attention_bias", true}}),
            "unsupported attention_bias true (expected false)");
  EXPECT_EQ(errorWith({{"head_dim", 8}}),
            "head_dim 8 differs from hidden_size / num_attention_heads (16 / "
            "4); only head_dim = hidden_size / num_attention_heads is "
            "supported");
  EXPECT_EQ(errorWith({{"num_key_value_heads", 3}}),
            "invalid configuration: n_heads 4 is not a multiple of "
            "n_kv_heads 3");
  EXPECT_EQ(errorWith({{"rms_norm_eps", -1}}).rfind(
                "invalid configuration: rms_eps", 0),
            0u);

  // Unreadable config.json.
  const std::string dir = pathOf("nojson");
  fs::create_directories(dir);
  EXPECT_EQ(checkpointError(dir),
            dir + "/config.json: cannot open: No such file or directory");
  writeFile(dir + "/config.json", "{\"hidden_size\": ");
  EXPECT_EQ(checkpointError(dir).rfind(dir + "/config.json: not valid JSON",
                                       0),
            0u);
  writeFile(dir + "/config.json", "[1, 2]");
  EXPECT_EQ(checkpointError(dir),
            dir + "/config.json: the top level is not an object");
  writeFile(dir + "/config.json", hfConfigJson(config).dump());
  EXPECT_EQ(checkpointError(dir),
            dir + ": neither model.safetensors.index.json nor "
                  "model.safetensors found");
}

TEST_F(CheckpointTest, HfRejectsMissingAndMisshapenTensors) {
  const LlamaConfig config = tinyConfig(false);
  // Single file.
  HfOptions omit;
  omit.omit = {"model.layers.1.mlp.up_proj.weight"};
  std::string dir = writeHf("omit", config, omit);
  EXPECT_EQ(checkpointError(dir),
            dir + "/model.safetensors: no tensor "
                  "'model.layers.1.mlp.up_proj.weight'");

  // Untied and no lm_head.
  HfOptions noHead;
  noHead.omit = {"lm_head.weight"};
  dir = writeHf("nohead", config, noHead);
  EXPECT_EQ(checkpointError(dir),
            dir + "/model.safetensors: no tensor 'lm_head.weight' "
                  "(tie_word_embeddings is false)");
  // The same weights open when tied.
  HfOptions tiedPatch = noHead;
  tiedPatch.configPatch = {{"tie_word_embeddings", true}};
  dir = writeHf("nohead-tied", config, tiedPatch);
  std::string error;
  EXPECT_NE(LlamaCheckpoint::open(dir, &error), nullptr) << error;

  // Shape mismatch: a k_proj written as if there were no GQA.
  HfOptions reshape;
  reshape.reshape = {{"model.layers.0.self_attn.k_proj.weight", {16, 16}}};
  dir = writeHf("reshape", config, reshape);
  EXPECT_EQ(checkpointError(dir),
            dir + "/model.safetensors: tensor "
                  "'model.layers.0.self_attn.k_proj.weight' is 16x16 but "
                  "config.json implies 8x16");
  HfOptions transposed;
  transposed.reshape = {{"model.layers.1.mlp.down_proj.weight", {24, 16}}};
  dir = writeHf("transposed", config, transposed);
  EXPECT_EQ(checkpointError(dir),
            dir + "/model.safetensors: tensor "
                  "'model.layers.1.mlp.down_proj.weight' is 24x16 but "
                  "config.json implies 16x24");
  HfOptions scalarNorm;
  scalarNorm.reshape = {{"model.norm.weight", {1, 16}}};
  dir = writeHf("norm", config, scalarNorm);
  EXPECT_EQ(checkpointError(dir),
            dir + "/model.safetensors: tensor 'model.norm.weight' is 1x16 "
                  "but config.json implies 16");

  // Not a float type.
  HfOptions retype;
  retype.retype = {{"model.layers.0.self_attn.q_proj.weight", DType::I8}};
  dir = writeHf("retype", config, retype);
  EXPECT_EQ(checkpointError(dir),
            dir + "/model.safetensors: tensor "
                  "'model.layers.0.self_attn.q_proj.weight' has dtype I8, "
                  "expected F32, F16 or BF16");

  // A corrupt model.safetensors reports the reader's error.
  dir = pathOf("corrupt");
  fs::create_directories(dir);
  writeFile(dir + "/config.json", hfConfigJson(config).dump());
  writeFile(dir + "/model.safetensors", "short");
  EXPECT_EQ(checkpointError(dir),
            dir + "/model.safetensors: file is 5 bytes, shorter than the "
                  "8-byte header length prefix");
}

TEST_F(CheckpointTest, HfShardErrors) {
  const LlamaConfig config = tinyConfig(false);
  HfOptions sharded;
  sharded.shards = 3;
  const std::string dir = writeHf("sharded", config, sharded);
  const std::string index = dir + "/model.safetensors.index.json";
  const json original = json::parse(readFile(index));
  std::string error;
  ASSERT_NE(LlamaCheckpoint::open(dir, &error), nullptr) << error;

  // A missing shard names the shard and a tensor it holds.
  const std::string shard2 = dir + "/model-00002-of-00003.safetensors";
  fs::rename(shard2, shard2 + ".away");
  std::string msg = checkpointError(dir);
  EXPECT_EQ(msg.rfind(index + ": shard 'model-00002-of-00003.safetensors' "
                              "(holding 'model.layers.",
                      0),
            0u)
      << msg;
  EXPECT_NE(msg.find("') cannot be opened: " + shard2 +
                     ": cannot open: No such file or directory"),
            std::string::npos)
      << msg;
  fs::rename(shard2 + ".away", shard2);

  // A tensor the weight_map does not list.
  json patched = original;
  patched["weight_map"].erase("model.layers.0.self_attn.v_proj.weight");
  writeFile(index, patched.dump());
  EXPECT_EQ(checkpointError(dir),
            index + ": no tensor 'model.layers.0.self_attn.v_proj.weight' in "
                    "weight_map");

  // A tensor mapped to the wrong shard.
  patched = original;
  patched["weight_map"]["model.norm.weight"] =
      "model-00001-of-00003.safetensors";
  writeFile(index, patched.dump());
  EXPECT_EQ(checkpointError(dir),
            dir + "/model-00001-of-00003.safetensors: no tensor "
                  "'model.norm.weight' (model.safetensors.index.json maps it "
                  "to this file)");

  // A shard that does not exist at all; one outside the directory.
  patched = original;
  patched["weight_map"]["extra.weight"] = "model-00009-of-00003.safetensors";
  writeFile(index, patched.dump());
  EXPECT_EQ(checkpointError(dir).rfind(
                index + ": shard 'model-00009-of-00003.safetensors' (holding "
                        "'extra.weight') cannot be opened: ",
                0),
            0u);
  patched["weight_map"]["extra.weight"] = "../elsewhere.safetensors";
  writeFile(index, patched.dump());
  EXPECT_EQ(checkpointError(dir),
            index + ": shard '../elsewhere.safetensors' (holding "
                    "'extra.weight') is not inside the model directory");

  // Malformed index files.
  writeFile(index, "{}");
  EXPECT_EQ(checkpointError(dir),
            index + ": 'weight_map' is missing or not an object");
  writeFile(index, "{\"weight_map\": {\"a\": 3}}");
  EXPECT_EQ(checkpointError(dir),
            index + ": weight_map value for 'a' is not a string");
  writeFile(index, "not json");
  EXPECT_EQ(checkpointError(dir).rfind(index + ": not valid JSON", 0), 0u);

  // The index wins over a model.safetensors next to it.
  writeFile(index, original.dump());
  writeFile(dir + "/model.safetensors", "garbage");
  EXPECT_NE(LlamaCheckpoint::open(dir, &error), nullptr) << error;
}

//===----------------------------------------------------------------------===//
// SafetensorsWriter spill mode
//===----------------------------------------------------------------------===//

/// Adds the same tensors (some large, some empty, a scalar) to `writer`.
void addSpillTensors(SafetensorsWriter &writer) {
  std::string error;
  auto add = [&](const std::string &name, DType dtype,
                 std::vector<int64_t> shape) {
    const auto n = static_cast<size_t>(numel(shape) * dtypeSize(dtype));
    std::vector<uint8_t> bytes(n);
    uint32_t x = static_cast<uint32_t>(name.size()) * 2654435761u;
    for (uint8_t &b : bytes) {
      x = x * 1103515245u + 12345u;
      b = static_cast<uint8_t>(x >> 16);
    }
    ASSERT_TRUE(writer.add(name, dtype, shape, bytes.data(), bytes.size(),
                           &error))
        << error;
  };
  add("big.f32", DType::F32, {1024, 1031});       // ~4 MiB, odd size.
  add("empty", DType::I8, {0});
  add("big.bf16", DType::BF16, {3, 1024, 1024}); // 6 MiB.
  add("scalar", DType::I64, {});
  add("odd.u8", DType::U8, {12345});
  writer.setMetadata("format", "pt");
}

TEST_F(CheckpointTest, SpillWriterMatchesInMemoryWriter) {
  SafetensorsWriter memory;
  addSpillTensors(memory);
  EXPECT_FALSE(memory.isSpilling());
  std::vector<uint8_t> want;
  std::string error;
  ASSERT_TRUE(memory.serialize(&want, &error)) << error;

  const std::string spillDir = pathOf("spill");
  fs::create_directories(spillDir);
  SafetensorsWriter spilled;
  ASSERT_TRUE(spilled.setSpillDirectory(spillDir, &error)) << error;
  EXPECT_TRUE(spilled.isSpilling());
  addSpillTensors(spilled);
  EXPECT_EQ(spilled.numTensors(), 5u);
  // The spill file is unlinked: the directory stays empty.
  EXPECT_TRUE(fs::is_empty(spillDir));
  std::vector<uint8_t> got;
  ASSERT_TRUE(spilled.serialize(&got, &error)) << error;
  EXPECT_TRUE(got == want);

  const std::string a = pathOf("memory.safetensors");
  const std::string b = pathOf("spilled.safetensors");
  ASSERT_TRUE(memory.write(a, &error)) << error;
  ASSERT_TRUE(spilled.write(b, &error)) << error;
  EXPECT_TRUE(readFile(a) == readFile(b));
  EXPECT_EQ(readFile(b).size(), want.size());
  // Writing twice from the same spill file gives the same bytes.
  ASSERT_TRUE(spilled.write(b, &error)) << error;
  EXPECT_TRUE(readFile(a) == readFile(b));
  EXPECT_EQ(listDir(dir_), (std::set<std::string>{"memory.safetensors",
                                                  "spill",
                                                  "spilled.safetensors"}));
  auto file = SafetensorsFile::open(b, &error);
  ASSERT_NE(file, nullptr) << error;
  EXPECT_EQ(file->tensors().size(), 5u);
  EXPECT_EQ(file->metadata().at("format"), "pt");

  // Failed adds change nothing in spill mode either.
  const uint8_t byte = 7;
  EXPECT_FALSE(spilled.add("scalar", DType::U8, {1}, &byte, 1, &error));
  EXPECT_FALSE(spilled.add("x", DType::U8, {2}, &byte, 1, &error));
  ASSERT_TRUE(spilled.serialize(&got, &error)) << error;
  EXPECT_TRUE(got == want);

  // A moved writer keeps its spill file.
  SafetensorsWriter moved(std::move(spilled));
  ASSERT_TRUE(moved.serialize(&got, &error)) << error;
  EXPECT_TRUE(got == want);
}

TEST_F(CheckpointTest, SpillAfterAddsMovesTheData) {
  SafetensorsWriter memory;
  addSpillTensors(memory);
  std::vector<uint8_t> want;
  std::string error;
  ASSERT_TRUE(memory.serialize(&want, &error)) << error;

  SafetensorsWriter late;
  addSpillTensors(late);
  ASSERT_TRUE(late.setSpillDirectory(dir_, &error)) << error;
  ASSERT_TRUE(late.setSpillDirectory("/nonexistent", &error)) << error;
  const uint8_t byte = 9;
  ASSERT_TRUE(late.add("tail", DType::U8, {1}, &byte, 1, &error)) << error;
  ASSERT_TRUE(memory.add("tail", DType::U8, {1}, &byte, 1, &error)) << error;
  ASSERT_TRUE(memory.serialize(&want, &error)) << error;
  std::vector<uint8_t> got;
  ASSERT_TRUE(late.serialize(&got, &error)) << error;
  EXPECT_TRUE(got == want);
  EXPECT_TRUE(listDir(dir_).empty());
}

TEST_F(CheckpointTest, SpillDirectoryErrors) {
  SafetensorsWriter writer;
  std::string error;
  const std::string missing = pathOf("missing");
  EXPECT_FALSE(writer.setSpillDirectory(missing, &error));
  EXPECT_EQ(error, missing + ": cannot create spill file: No such file or "
                             "directory");
  EXPECT_FALSE(writer.isSpilling());
  // The writer still works in memory.
  const uint8_t byte = 1;
  ASSERT_TRUE(writer.add("b", DType::U8, {1}, &byte, 1, &error)) << error;
  ASSERT_TRUE(writer.write(pathOf("out.safetensors"), &error)) << error;
}

TEST_F(CheckpointTest, SpillAcrossFilesystems) {
  // /dev/shm is a tmpfs, usually not the filesystem of the temporary
  // directory: copy_file_range may refuse (EXDEV) and write() must fall back
  // to copying through memory.
  if (!fs::is_directory("/dev/shm") || ::access("/dev/shm", W_OK) != 0)
    GTEST_SKIP() << "/dev/shm not writable";
  SafetensorsWriter memory, spilled;
  std::string error;
  ASSERT_TRUE(spilled.setSpillDirectory("/dev/shm", &error)) << error;
  addSpillTensors(memory);
  addSpillTensors(spilled);
  ASSERT_TRUE(memory.write(pathOf("a.safetensors"), &error)) << error;
  ASSERT_TRUE(spilled.write(pathOf("b.safetensors"), &error)) << error;
  EXPECT_TRUE(readFile(pathOf("a.safetensors")) ==
              readFile(pathOf("b.safetensors")));
}

//===----------------------------------------------------------------------===//
// The real stories260K model
//===----------------------------------------------------------------------===//

TEST(RealCheckpointTest, Stories260KOpens) {
  const std::string shared = QNT_SOURCE_DIR "/../shared";
  const std::string path = shared + "/models/stories260K/stories260K.bin";
  if (!fs::exists(path))
    GTEST_SKIP() << "../shared not found: " << path;
  std::string error;
  auto ckpt = LlamaCheckpoint::open(path, &error);
  ASSERT_NE(ckpt, nullptr) << error;
  const LlamaConfig &c = ckpt->config();
  EXPECT_EQ(ckpt->format(), CheckpointFormat::Llama2cLegacy);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.nLayers, 5);
  EXPECT_EQ(c.nHeads, 8);
  EXPECT_EQ(c.nKvHeads, 4);
  EXPECT_EQ(c.vocabSize, 512);
  EXPECT_TRUE(c.tiedEmbeddings);
  std::printf("stories260K: seq_len %lld, hidden_dim %lld, %lld parameters\n",
              static_cast<long long>(c.maxSeqLen),
              static_cast<long long>(c.hiddenDim),
              static_cast<long long>(c.numParameters()));
  EXPECT_EQ(fs::file_size(path), llama2cSize(c, 0));

  // Every weight is finite and the norm gains are not all zero.
  const TensorFile &file = *ckpt->files()[0];
  EXPECT_EQ(file.tensors().size(), size_t(2 + 9 * 5));
  for (const TensorInfo &t : file.tensors()) {
    const auto *p = reinterpret_cast<const uint8_t *>(file.data(t));
    ASSERT_NE(p, nullptr) << t.name;
    bool allZero = true;
    for (int64_t i = 0; i < t.numElements(); ++i) {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      ASSERT_TRUE(std::isfinite(v)) << t.name << "[" << i << "]";
      allZero &= v == 0;
    }
    EXPECT_FALSE(allZero) << t.name;
    file.releasePages(t);
  }
}

} // namespace
