//===- SyntheticModelTest.cpp - Tests for synthetic LLaMA checkpoints -----===//
//
// The generator's promises: values are a pure function of (seed, role,
// layer), weights have the requested scale and tails, norms carry the
// outlier channels, rounded values are exact in the target dtype, and the
// Hugging Face writer permutes q/k rows, shards and indexes as transformers
// does, producing files the readers accept.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/SyntheticModel.h"
#include "qnt/io/Llama.h"
#include "qnt/io/Llama2c.h"
#include "qnt/io/Safetensors.h"
#include "support/TempDirTest.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

using namespace qnt::io;
namespace fs = std::filesystem;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

uint32_t bitsOf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}

float floatOf(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

/// Round to nearest even to BF16, by comparing the two neighbours (an
/// independent formulation of the library's bit trick).
float bf16Nearest(float x) {
  const uint32_t down = bitsOf(x) & 0xFFFF0000u;
  const uint32_t up = down + 0x10000u;
  const double dDown = std::fabs(double(x) - double(floatOf(down)));
  const double dUp = std::fabs(double(floatOf(up)) - double(x));
  if (dDown < dUp)
    return floatOf(down);
  if (dUp < dDown)
    return floatOf(up);
  return (down & 0x10000u) ? floatOf(up) : floatOf(down);
}

struct Moments {
  double mean = 0, stddev = 0, kurtosis = 0;
};

Moments moments(const std::vector<float> &v) {
  double sum = 0;
  for (float x : v)
    sum += x;
  Moments m;
  m.mean = sum / double(v.size());
  double m2 = 0, m4 = 0;
  for (float x : v) {
    const double d = double(x) - m.mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= double(v.size());
  m4 /= double(v.size());
  m.stddev = std::sqrt(m2);
  m.kurtosis = m4 / (m2 * m2);
  return m;
}

LlamaConfig tinyConfig() {
  LlamaConfig c;
  EXPECT_TRUE(syntheticPreset("tiny", &c));
  return c;
}

/// The smallest model with real heads: dim 8, 2 heads of 4, 1 KV head.
LlamaConfig microConfig() {
  LlamaConfig c;
  c.dim = 8;
  c.hiddenDim = 12;
  c.nLayers = 2;
  c.nHeads = 2;
  c.nKvHeads = 1;
  c.vocabSize = 16;
  c.maxSeqLen = 8;
  c.tiedEmbeddings = false;
  return c;
}

std::vector<float> readAsFloats(const TensorFile &file, const TensorInfo &t) {
  std::vector<float> out(size_t(t.numElements()));
  const uint8_t *p = file.data(t);
  for (size_t i = 0; i < out.size(); ++i) {
    switch (t.dtype) {
    case DType::BF16:
      out[i] = floatOf(uint32_t(p[2 * i] | p[2 * i + 1] << 8) << 16);
      break;
    case DType::F32: {
      uint32_t x = uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 |
                   uint32_t(p[4 * i + 2]) << 16 | uint32_t(p[4 * i + 3]) << 24;
      out[i] = floatOf(x);
      break;
    }
    default:
      ADD_FAILURE() << "unexpected dtype " << dtypeName(t.dtype);
      return {};
    }
  }
  return out;
}

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

class SyntheticModelTest : public qnt::testing::TempDirTest {
protected:
  SyntheticModelTest() : TempDirTest("qnt-synthetic") {}
};

//===----------------------------------------------------------------------===//
// Presets and values
//===----------------------------------------------------------------------===//

TEST(SyntheticPresets, Shapes) {
  LlamaConfig c;
  ASSERT_TRUE(syntheticPreset("tiny", &c));
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hiddenDim, 176);
  EXPECT_EQ(c.nLayers, 2);
  EXPECT_EQ(c.nHeads, 8);
  EXPECT_EQ(c.nKvHeads, 4);
  EXPECT_EQ(c.vocabSize, 512);
  EXPECT_EQ(c.maxSeqLen, 128);
  ASSERT_TRUE(syntheticPreset("small", &c));
  EXPECT_EQ(c.dim, 256);
  EXPECT_EQ(c.hiddenDim, 704);
  EXPECT_EQ(c.vocabSize, 1024);
  ASSERT_TRUE(syntheticPreset("llama-7b", &c));
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.hiddenDim, 11008);
  EXPECT_EQ(c.nLayers, 32);
  EXPECT_EQ(c.nKvHeads, 32);
  EXPECT_EQ(c.vocabSize, 32000);
  EXPECT_EQ(c.maxSeqLen, 4096);
  EXPECT_FALSE(c.tiedEmbeddings);
  EXPECT_EQ(c.numParameters(), 6738415616);
  ASSERT_TRUE(syntheticPreset("llama2-7b-gqa", &c));
  EXPECT_EQ(c.nHeads, 32);
  EXPECT_EQ(c.nKvHeads, 8);
  EXPECT_DOUBLE_EQ(c.rmsEps, 1e-5);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 10000.0);
  for (const char *name : {"tiny", "small", "llama-7b", "llama2-7b-gqa"}) {
    ASSERT_TRUE(syntheticPreset(name, &c));
    EXPECT_EQ(c.validate(), "") << name;
  }
  EXPECT_FALSE(syntheticPreset("llama-13b", &c));
}

TEST(SyntheticTensor, ShapesAndDeterminism) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.config.tiedEmbeddings = false;
  options.seed = 7;
  for (TensorRole role : kLayerRoles) {
    std::vector<float> a = syntheticTensor(options, role, 1);
    std::vector<int64_t> shape = expectedShape(options.config, role);
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    ASSERT_EQ(int64_t(a.size()), n) << roleName(role);
    EXPECT_EQ(syntheticTensor(options, role, 1), a) << roleName(role);
    EXPECT_NE(syntheticTensor(options, role, 0), a) << roleName(role);
    SyntheticModelOptions other = options;
    other.seed = 8;
    EXPECT_NE(syntheticTensor(other, role, 1), a) << roleName(role);
    for (float x : a)
      ASSERT_TRUE(std::isfinite(x));
  }
  // Global roles ignore the layer.
  EXPECT_EQ(syntheticTensor(options, TensorRole::FinalNorm, -1),
            syntheticTensor(options, TensorRole::FinalNorm, 5));
  EXPECT_NE(syntheticTensor(options, TensorRole::Classifier, -1),
            syntheticTensor(options, TensorRole::TokEmbeddings, -1));
  // Tied: the classifier is the embedding.
  options.config.tiedEmbeddings = true;
  EXPECT_EQ(syntheticTensor(options, TensorRole::Classifier, -1),
            syntheticTensor(options, TensorRole::TokEmbeddings, -1));
}

TEST(SyntheticTensor, InvalidRequestsAreEmpty) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  EXPECT_TRUE(syntheticTensor(options, TensorRole::Wq, -1).empty());
  EXPECT_TRUE(syntheticTensor(options, TensorRole::Wq, 2).empty());
  EXPECT_TRUE(syntheticTensor(options, TensorRole::Wq, 0, DType::I8).empty());
  options.config.nHeads = 7; // dim 64 not divisible
  EXPECT_TRUE(syntheticTensor(options, TensorRole::Wq, 0).empty());
}

TEST(SyntheticTensor, ScaleAndHeavyTails) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.config.dim = 512;
  options.config.hiddenDim = 1536;
  // Student-t(4): infinite theoretical kurtosis, clamped at 50 sigma.
  std::vector<float> w = syntheticTensor(options, TensorRole::W1, 0);
  ASSERT_EQ(w.size(), size_t(1536 * 512));
  Moments m = moments(w);
  EXPECT_NEAR(m.mean, 0.0, 0.01 / std::sqrt(512.0));
  EXPECT_NEAR(m.stddev * std::sqrt(512.0), 1.0, 0.05);
  EXPECT_GT(m.kurtosis, 3.5);
  // fan_in is the second dimension: W2 is [dim, hidden].
  m = moments(syntheticTensor(options, TensorRole::W2, 0));
  EXPECT_NEAR(m.stddev * std::sqrt(1536.0), 1.0, 0.05);

  // Student-t(10) through the general sampler: kurtosis 3 + 6/(10-4) = 4.
  options.tailDof = 10;
  m = moments(syntheticTensor(options, TensorRole::W1, 0));
  EXPECT_NEAR(m.stddev * std::sqrt(512.0), 1.0, 0.02);
  EXPECT_NEAR(m.kurtosis, 4.0, 0.4);

  // Gaussian when tailDof <= 0 or infinite.
  for (double dof : {0.0, double(INFINITY)}) {
    options.tailDof = dof;
    m = moments(syntheticTensor(options, TensorRole::W1, 0));
    EXPECT_NEAR(m.stddev * std::sqrt(512.0), 1.0, 0.01);
    EXPECT_NEAR(m.kurtosis, 3.0, 0.05);
  }

  // Embedding rows of unit RMS; untied classifier std 1/sqrt(dim).
  m = moments(syntheticTensor(options, TensorRole::TokEmbeddings, -1));
  EXPECT_NEAR(m.stddev, 1.0, 0.02);
  options.config.tiedEmbeddings = false;
  m = moments(syntheticTensor(options, TensorRole::Classifier, -1));
  EXPECT_NEAR(m.stddev * std::sqrt(512.0), 1.0, 0.02);
}

TEST(SyntheticTensor, OutlierChannels) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.seed = 3;
  options.numOutlierChannels = 5;
  options.outlierGain = 25.0;
  std::vector<int64_t> channels = syntheticOutlierChannels(options);
  ASSERT_EQ(channels.size(), 5u);
  EXPECT_TRUE(std::is_sorted(channels.begin(), channels.end()));
  EXPECT_EQ(std::set<int64_t>(channels.begin(), channels.end()).size(), 5u);
  for (int64_t c : channels) {
    EXPECT_GE(c, 0);
    EXPECT_LT(c, options.config.dim);
  }
  std::set<int64_t> outliers(channels.begin(), channels.end());
  for (int64_t layer = 0; layer < options.config.nLayers; ++layer) {
    for (TensorRole role : {TensorRole::AttnNorm, TensorRole::FfnNorm}) {
      std::vector<float> g = syntheticTensor(options, role, layer);
      ASSERT_EQ(g.size(), size_t(options.config.dim));
      for (int64_t i = 0; i < options.config.dim; ++i) {
        if (outliers.count(i)) {
          EXPECT_EQ(g[i], 25.0f) << roleName(role) << " " << layer << " " << i;
        } else {
          EXPECT_GT(g[i], 0.4f);
          EXPECT_LT(g[i], 1.6f);
        }
      }
    }
  }
  std::vector<float> final =
      syntheticTensor(options, TensorRole::FinalNorm, -1);
  for (float x : final)
    EXPECT_LT(x, 1.6f);

  // The channels depend on the seed; zero channels, and more than dim.
  SyntheticModelOptions other = options;
  other.seed = 4;
  EXPECT_NE(syntheticOutlierChannels(other), channels);
  other.numOutlierChannels = 0;
  EXPECT_TRUE(syntheticOutlierChannels(other).empty());
  other.numOutlierChannels = 1000;
  EXPECT_EQ(syntheticOutlierChannels(other).size(), size_t(options.config.dim));
}

TEST(SyntheticTensor, RoundingIsExact) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.outlierGain = 20.3; // not representable in bf16 or f16
  for (TensorRole role : {TensorRole::Wq, TensorRole::AttnNorm}) {
    std::vector<float> f32 = syntheticTensor(options, role, 0, DType::F32);
    std::vector<float> bf16 = syntheticTensor(options, role, 0, DType::BF16);
    std::vector<float> f16 = syntheticTensor(options, role, 0, DType::F16);
    ASSERT_EQ(f32.size(), bf16.size());
    ASSERT_EQ(f32.size(), f16.size());
    size_t changed = 0;
    for (size_t i = 0; i < f32.size(); ++i) {
      // The same draws, rounded to nearest even.
      EXPECT_EQ(bitsOf(bf16[i]) & 0xFFFFu, 0u);
      EXPECT_EQ(bf16[i], bf16Nearest(f32[i])) << i;
      changed += bf16[i] != f32[i];
#ifdef __FLT16_MAX__
      EXPECT_EQ(f16[i], float(_Float16(f32[i]))) << i;
#else
      // 11 significant bits: the low 13 mantissa bits of a normal are zero.
      EXPECT_EQ(bitsOf(f16[i]) & 0x1FFFu, 0u);
#endif
    }
    EXPECT_GT(changed, f32.size() / 2);
  }
}

TEST(SyntheticTensor, LargeTensorsUseManyBlocks) {
  // More than one 64Ki-element block, generated on several threads: still
  // a pure function of the seed, and blocks are not copies of each other.
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.config.dim = 512;
  options.config.hiddenDim = 1024;
  std::vector<float> a = syntheticTensor(options, TensorRole::W3, 1);
  ASSERT_EQ(a.size(), size_t(1024 * 512));
  EXPECT_EQ(syntheticTensor(options, TensorRole::W3, 1), a);
  EXPECT_NE(std::vector<float>(a.begin(), a.begin() + 65536),
            std::vector<float>(a.begin() + 65536, a.begin() + 131072));
}

//===----------------------------------------------------------------------===//
// Hugging Face writer
//===----------------------------------------------------------------------===//

TEST_F(SyntheticModelTest, HfSingleFile) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.seed = 11;
  std::string dir = dir_ + "/hf";
  std::vector<std::pair<int64_t, int64_t>> calls;
  uint64_t lastBytes = 0;
  std::string error;
  ASSERT_TRUE(writeSyntheticHf(
      dir, options, DType::BF16, 1,
      [&](int64_t done, int64_t total, uint64_t bytes) {
        calls.emplace_back(done, total);
        EXPECT_GE(bytes, lastBytes);
        lastBytes = bytes;
      },
      &error))
      << error;
  // Tied: embedding, 9 per layer, final norm.
  const int64_t numTensors = 1 + 9 * options.config.nLayers + 1;
  ASSERT_EQ(int64_t(calls.size()), numTensors);
  for (int64_t i = 0; i < numTensors; ++i)
    EXPECT_EQ(calls[size_t(i)], std::make_pair(i + 1, numTensors));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));

  auto file = SafetensorsFile::open(dir + "/model.safetensors", &error);
  ASSERT_NE(file, nullptr) << error;
  EXPECT_EQ(int64_t(file->tensors().size()), numTensors);
  EXPECT_EQ(file->find("lm_head.weight"), nullptr);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  uint64_t bytes = 0;
  for (const TensorInfo &t : file->tensors())
    bytes += t.numBytes();
  EXPECT_EQ(bytes, lastBytes);
  EXPECT_EQ(bytes, uint64_t(options.config.numParameters()) * 2);

  auto check = [&](TensorRole role, int64_t layer) {
    const TensorInfo *t = file->find(hfTensorName(role, layer));
    ASSERT_NE(t, nullptr) << hfTensorName(role, layer);
    EXPECT_EQ(t->dtype, DType::BF16);
    EXPECT_EQ(t->shape, expectedShape(options.config, role));
    if (role != TensorRole::Wq && role != TensorRole::Wk) {
      EXPECT_EQ(readAsFloats(*file, *t),
                syntheticTensor(options, role, layer, DType::BF16))
          << hfTensorName(role, layer);
    }
  };
  check(TensorRole::TokEmbeddings, -1);
  check(TensorRole::FinalNorm, -1);
  for (int64_t l = 0; l < options.config.nLayers; ++l)
    for (TensorRole role : kLayerRoles)
      check(role, l);

  nlohmann::json config = nlohmann::json::parse(slurp(dir + "/config.json"));
  EXPECT_EQ(config["architectures"], nlohmann::json({"LlamaForCausalLM"}));
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["hidden_size"], 64);
  EXPECT_EQ(config["intermediate_size"], 176);
  EXPECT_EQ(config["num_hidden_layers"], 2);
  EXPECT_EQ(config["num_attention_heads"], 8);
  EXPECT_EQ(config["num_key_value_heads"], 4);
  EXPECT_EQ(config["vocab_size"], 512);
  EXPECT_EQ(config["max_position_embeddings"], 128);
  EXPECT_EQ(config["rms_norm_eps"], 1e-5);
  EXPECT_EQ(config["rope_theta"], 10000.0);
  EXPECT_EQ(config["tie_word_embeddings"], true);
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["hidden_act"], "silu");
  EXPECT_EQ(config["bos_token_id"], 1);
  EXPECT_EQ(config["eos_token_id"], 2);

  // Same options, same bytes.
  std::string dir2 = dir_ + "/hf2";
  ASSERT_TRUE(writeSyntheticHf(dir2, options, DType::BF16, 1, nullptr, &error))
      << error;
  EXPECT_EQ(slurp(dir + "/model.safetensors"),
            slurp(dir2 + "/model.safetensors"));
  EXPECT_EQ(slurp(dir + "/config.json"), slurp(dir2 + "/config.json"));
  options.seed = 12;
  ASSERT_TRUE(writeSyntheticHf(dir2, options, DType::BF16, 1, nullptr, &error))
      << error;
  EXPECT_NE(slurp(dir + "/model.safetensors"),
            slurp(dir2 + "/model.safetensors"));
}

TEST_F(SyntheticModelTest, HfPermutesQueryAndKeyRows) {
  SyntheticModelOptions options;
  options.config = microConfig();
  std::string error;
  ASSERT_TRUE(writeSyntheticHf(dir_, options, DType::F32, 1, nullptr, &error))
      << error;
  auto file = SafetensorsFile::open(dir_ + "/model.safetensors", &error);
  ASSERT_NE(file, nullptr) << error;
  // Head dim 4: within each head HF rows (0, 1, 2, 3) are Meta rows
  // (0, 2, 1, 3): the first halves of the rotary pairs, then the seconds.
  const std::map<TensorRole, std::vector<int64_t>> metaRowOf = {
      {TensorRole::Wq, {0, 2, 1, 3, 4, 6, 5, 7}},
      {TensorRole::Wk, {0, 2, 1, 3}}};
  const int64_t dim = options.config.dim;
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (const auto &[role, rows] : metaRowOf) {
      const TensorInfo *t = file->find(hfTensorName(role, layer));
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->shape, (std::vector<int64_t>{int64_t(rows.size()), dim}));
      std::vector<float> hf = readAsFloats(*file, *t);
      std::vector<float> meta = syntheticTensor(options, role, layer);
      ASSERT_EQ(hf.size(), meta.size());
      for (size_t r = 0; r < rows.size(); ++r)
        for (int64_t c = 0; c < dim; ++c)
          EXPECT_EQ(hf[r * dim + c], meta[rows[r] * dim + c])
              << roleName(role) << " row " << r << " col " << c;
    }
    // V is not permuted.
    const TensorInfo *v = file->find(hfTensorName(TensorRole::Wv, layer));
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(readAsFloats(*file, *v),
              syntheticTensor(options, TensorRole::Wv, layer));
  }
  // Untied: the head is written.
  const TensorInfo *head = file->find("lm_head.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(readAsFloats(*file, *head),
            syntheticTensor(options, TensorRole::Classifier, -1));
}

TEST_F(SyntheticModelTest, HfShards) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.config.tiedEmbeddings = false;
  std::string error;
  // A stale single file from an earlier write is removed.
  ASSERT_TRUE(writeSyntheticHf(dir_, options, DType::F32, 1, nullptr, &error))
      << error;
  ASSERT_TRUE(fs::exists(dir_ + "/model.safetensors"));
  ASSERT_TRUE(writeSyntheticHf(dir_, options, DType::F32, 3, nullptr, &error))
      << error;
  EXPECT_FALSE(fs::exists(dir_ + "/model.safetensors"));

  nlohmann::json index =
      nlohmann::json::parse(slurp(dir_ + "/model.safetensors.index.json"));
  ASSERT_TRUE(index["weight_map"].is_object());
  const std::vector<std::string> files = {"model-00001-of-00003.safetensors",
                                          "model-00002-of-00003.safetensors",
                                          "model-00003-of-00003.safetensors"};
  std::map<std::string, std::string> inFiles;
  uint64_t total = 0;
  std::vector<uint64_t> shardBytes;
  for (const std::string &name : files) {
    auto file = SafetensorsFile::open(dir_ + "/" + name, &error);
    ASSERT_NE(file, nullptr) << error;
    EXPECT_FALSE(file->tensors().empty()) << name;
    shardBytes.push_back(file->dataSize());
    total += file->dataSize();
    for (const TensorInfo &t : file->tensors()) {
      EXPECT_EQ(t.dtype, DType::F32);
      inFiles[t.name] = name;
    }
  }
  const int64_t numTensors = 1 + 9 * options.config.nLayers + 2;
  EXPECT_EQ(int64_t(inFiles.size()), numTensors);
  EXPECT_EQ(index["weight_map"].size(), inFiles.size());
  for (const auto &[name, file] : inFiles)
    EXPECT_EQ(index["weight_map"][name], file) << name;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(total, uint64_t(options.config.numParameters()) * 4);
  // Roughly equal: no shard beyond half again the average.
  for (uint64_t b : shardBytes)
    EXPECT_LT(b, total / 3 * 3 / 2);

  // The readers agree: the checkpoint opens with the config and tensors.
  auto ckpt = LlamaCheckpoint::open(dir_, &error);
  ASSERT_NE(ckpt, nullptr) << error;
  EXPECT_EQ(ckpt->format(), CheckpointFormat::HuggingFace);
  EXPECT_EQ(ckpt->config().dim, 64);
  EXPECT_EQ(ckpt->config().nKvHeads, 4);
  EXPECT_FALSE(ckpt->config().tiedEmbeddings);
  EXPECT_EQ(ckpt->config().ropeStyle, RopeStyle::HalfSplit);
  auto [file, info] = ckpt->lookup(TensorRole::W2, 1);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(readAsFloats(*file, *info),
            syntheticTensor(options, TensorRole::W2, 1));

  // Back to one file: the index goes.
  ASSERT_TRUE(writeSyntheticHf(dir_, options, DType::F32, 1, nullptr, &error))
      << error;
  EXPECT_FALSE(fs::exists(dir_ + "/model.safetensors.index.json"));
  EXPECT_NE(LlamaCheckpoint::open(dir_, &error), nullptr) << error;
}

TEST_F(SyntheticModelTest, HfErrors) {
  SyntheticModelOptions options;
  options.config = microConfig();
  std::string error;
  EXPECT_FALSE(writeSyntheticHf(dir_, options, DType::I8, 1, nullptr, &error));
  EXPECT_NE(error.find("I8"), std::string::npos) << error;
  EXPECT_FALSE(writeSyntheticHf(dir_, options, DType::F32, 0, nullptr, &error));
  EXPECT_NE(error.find("shards"), std::string::npos) << error;
  // 1 + 9 * 2 + 2 tensors.
  EXPECT_FALSE(
      writeSyntheticHf(dir_, options, DType::F32, 22, nullptr, &error));
  EXPECT_TRUE(writeSyntheticHf(dir_, options, DType::F32, 21, nullptr, &error))
      << error;
  options.config.nHeads = 3;
  EXPECT_FALSE(writeSyntheticHf(dir_, options, DType::F32, 1, nullptr, &error));
  EXPECT_NE(error.find("configuration"), std::string::npos) << error;
  // A path under a regular file cannot be a directory.
  options.config = microConfig();
  std::ofstream(dir_ + "/plain") << "x";
  EXPECT_FALSE(writeSyntheticHf(dir_ + "/plain/sub", options, DType::F32, 1,
                                nullptr, &error));
  EXPECT_NE(error.find(dir_ + "/plain/sub"), std::string::npos) << error;
}

//===----------------------------------------------------------------------===//
// llama2.c writer
//===----------------------------------------------------------------------===//

TEST_F(SyntheticModelTest, Llama2cHoldsTheSameWeights) {
  SyntheticModelOptions options;
  options.config = tinyConfig();
  options.seed = 5;
  for (int version : {0, 1}) {
    std::string path = dir_ + "/model-v" + std::to_string(version) + ".bin";
    std::string error;
    ASSERT_TRUE(
        writeSyntheticLlama2c(path, options, version, DType::BF16, &error))
        << error;
    auto file = Llama2cFile::open(path, &error);
    ASSERT_NE(file, nullptr) << error;
    EXPECT_EQ(file->version(), version);
    EXPECT_EQ(file->config().dim, 64);
    EXPECT_EQ(file->config().nKvHeads, 4);
    for (int64_t l = 0; l < options.config.nLayers; ++l) {
      for (TensorRole role : kLayerRoles) {
        const TensorInfo *t = file->find(llama2cTensorName(role, l));
        ASSERT_NE(t, nullptr) << llama2cTensorName(role, l);
        EXPECT_EQ(readAsFloats(*file, *t),
                  syntheticTensor(options, role, l, DType::BF16))
            << llama2cTensorName(role, l);
      }
    }
  }
  std::string error;
  EXPECT_FALSE(
      writeSyntheticLlama2c(dir_ + "/x.bin", options, 1, DType::I32, &error));
  EXPECT_NE(error.find("I32"), std::string::npos) << error;
}

} // namespace
