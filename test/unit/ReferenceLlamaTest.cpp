//===- ReferenceLlamaTest.cpp - Tests for the fp32 reference forward ------===//
//
// Checks the test-support ReferenceLlama on its own: a tiny synthetic model
// against a direct double-precision evaluation of the formula at position
// 0, the Hugging Face layout (permuted q/k, rotate_half RoPE, F16/BF16
// storage) against the llama2.c layout of the same weights, and, when
// ../shared is beside the checkout, the real stories260K model (finite
// logits, KV-cache consistency, deterministic greedy decoding, the
// perplexity protocol's bookkeeping).
//
//===----------------------------------------------------------------------===//

#include "support/ReferenceLlama.h"

#include "qnt/io/Corpus.h"
#include "qnt/io/Llama.h"
#include "qnt/io/Llama2c.h"
#include "qnt/io/Safetensors.h"
#include "qnt/io/Tokenizer.h"
#include "support/TempDirTest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

using namespace qnt::io;
using qnt::testing::ReferenceLlama;
using qnt::testing::ReferenceNll;
using qnt::testing::referenceNll;
namespace fs = std::filesystem;

namespace {


int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// The weights of a tiny model in Meta's layout. Every value is k/64 with
/// |k| <= 40, exactly representable in F16 and BF16; norm gains are 1 +
/// k/64.
struct TinyWeights {
  LlamaConfig config;
  std::map<std::pair<TensorRole, int64_t>, std::vector<float>> tensors;

  explicit TinyWeights(const LlamaConfig &c) : config(c) {
    uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&state]() {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return int((state >> 33) % 81) - 40;
    };
    auto fill = [&](TensorRole role, int64_t layer) {
      std::vector<float> v(product(expectedShape(config, role)));
      bool isNorm = role == TensorRole::AttnNorm ||
                    role == TensorRole::FfnNorm ||
                    role == TensorRole::FinalNorm;
      for (float &x : v)
        x = (isNorm ? 1.0f : 0.0f) + float(next()) / 64.0f;
      tensors[{role, layer}] = std::move(v);
    };
    for (TensorRole role : kGlobalRoles)
      if (role != TensorRole::Classifier || !config.tiedEmbeddings)
        fill(role, -1);
    for (int64_t l = 0; l < config.nLayers; ++l)
      for (TensorRole role : kLayerRoles)
        fill(role, l);
  }

  const std::vector<float> &get(TensorRole role, int64_t layer = -1) const {
    if (role == TensorRole::Classifier && config.tiedEmbeddings)
      role = TensorRole::TokEmbeddings;
    return tensors.at({role, isPerLayer(role) ? layer : -1});
  }
};

LlamaConfig tinyConfig(bool tied) {
  LlamaConfig c;
  c.dim = 8;
  c.hiddenDim = 12;
  c.nLayers = 1;
  c.nHeads = 2;
  c.nKvHeads = 1;
  c.vocabSize = 5;
  c.maxSeqLen = 8;
  c.tiedEmbeddings = tied;
  return c;
}

/// Hugging Face's permute() of q/k rows: within each head, row 2j + s of
/// Meta's layout becomes row s * head_dim/2 + j.
std::vector<float> permuteRows(const std::vector<float> &w, int64_t heads,
                               int64_t headDim, int64_t cols) {
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < headDim / 2; ++j)
      for (int64_t s = 0; s < 2; ++s) {
        int64_t from = h * headDim + 2 * j + s;
        int64_t to = h * headDim + s * (headDim / 2) + j;
        std::memcpy(&out[to * cols], &w[from * cols], cols * sizeof(float));
      }
  return out;
}

uint16_t toHalf(float f) {
  // Exact for the k/64 values of TinyWeights (normal halves, short
  // mantissas); zero is handled apart.
  if (f == 0.0f)
    return 0;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint32_t sign = bits >> 31;
  int32_t exponent = int32_t((bits >> 23) & 0xFF) - 127 + 15;
  uint32_t mantissa = (bits >> 13) & 0x3FF;
  return uint16_t((sign << 15) | (uint32_t(exponent) << 10) | mantissa);
}

uint16_t toBfloat(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return uint16_t(bits >> 16);
}

class ReferenceLlamaTest : public qnt::testing::TempDirTest {
protected:
  ReferenceLlamaTest() : TempDirTest("qnt-reference") {}

  std::unique_ptr<LlamaCheckpoint> writeAndOpenLlama2c(const TinyWeights &w,
                                                       const std::string &name,
                                                       int version) {
    std::string path = dir_ + "/" + name;
    std::string error;
    bool ok = writeLlama2c(
        path, w.config, version,
        [&w](TensorRole role, int64_t layer) { return w.get(role, layer); },
        &error);
    EXPECT_TRUE(ok) << error;
    if (!ok)
      return nullptr;
    auto checkpoint = LlamaCheckpoint::open(path, &error);
    EXPECT_NE(checkpoint, nullptr) << error;
    return checkpoint;
  }

  /// Writes `w` as a Hugging Face directory (q/k permuted) in `dtype` with
  /// the given eps and theta, and opens it.
  std::unique_ptr<LlamaCheckpoint> writeAndOpenHf(const TinyWeights &w,
                                                  const std::string &name,
                                                  DType dtype, double eps,
                                                  double theta) {
    const LlamaConfig &c = w.config;
    std::string dir = dir_ + "/" + name;
    fs::create_directories(dir);
    std::ostringstream json;
    json.precision(17);
    json << "{\"architectures\": [\"LlamaForCausalLM\"], "
         << "\"model_type\": \"llama\", \"hidden_act\": \"silu\", "
         << "\"hidden_size\": " << c.dim
         << ", \"intermediate_size\": " << c.hiddenDim
         << ", \"num_hidden_layers\": " << c.nLayers
         << ", \"num_attention_heads\": " << c.nHeads
         << ", \"num_key_value_heads\": " << c.nKvHeads
         << ", \"vocab_size\": " << c.vocabSize
         << ", \"max_position_embeddings\": " << c.maxSeqLen
         << ", \"rms_norm_eps\": " << eps << ", \"rope_theta\": " << theta
         << ", \"tie_word_embeddings\": "
         << (c.tiedEmbeddings ? "true" : "false") << "}\n";
    std::ofstream(dir + "/config.json") << json.str();

    SafetensorsWriter writer;
    std::string error;
    auto add = [&](TensorRole role, int64_t layer) {
      std::vector<float> v = w.get(role, layer);
      if (role == TensorRole::Wq)
        v = permuteRows(v, c.nHeads, c.headDim(), c.dim);
      if (role == TensorRole::Wk)
        v = permuteRows(v, c.nKvHeads, c.headDim(), c.dim);
      std::vector<int64_t> shape = expectedShape(c, role);
      std::string tensorName = hfTensorName(role, layer);
      bool ok;
      if (dtype == DType::F32) {
        ok = writer.add(tensorName, dtype, shape, v.data(), v.size() * 4,
                        &error);
      } else {
        std::vector<uint16_t> half(v.size());
        for (size_t i = 0; i < v.size(); ++i)
          half[i] = dtype == DType::F16 ? toHalf(v[i]) : toBfloat(v[i]);
        ok = writer.add(tensorName, dtype, shape, half.data(), half.size() * 2,
                        &error);
      }
      EXPECT_TRUE(ok) << error;
    };
    for (TensorRole role : kGlobalRoles)
      if (role != TensorRole::Classifier || !c.tiedEmbeddings)
        add(role, -1);
    for (int64_t l = 0; l < c.nLayers; ++l)
      for (TensorRole role : kLayerRoles)
        add(role, l);
    EXPECT_TRUE(writer.write(dir + "/model.safetensors", &error)) << error;
    auto checkpoint = LlamaCheckpoint::open(dir, &error);
    EXPECT_NE(checkpoint, nullptr) << error;
    return checkpoint;
  }

};

//===----------------------------------------------------------------------===//
// Synthetic models
//===----------------------------------------------------------------------===//

std::vector<double> matvec(const std::vector<float> &w,
                           const std::vector<double> &x, int64_t rows) {
  int64_t cols = int64_t(x.size());
  std::vector<double> y(rows, 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      y[i] += double(w[i * cols + j]) * x[j];
  return y;
}

std::vector<double> rmsnormD(const std::vector<double> &x,
                             const std::vector<float> &g, double eps) {
  double ss = 0;
  for (double v : x)
    ss += v * v;
  double scale = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = double(g[i]) * x[i] * scale;
  return y;
}

/// Logits at position 0, where attention over one position returns v for
/// every head: cls . rmsnorm(h + ffn(h)), h = x + wo [v; v; ...].
std::vector<double> directLogitsAtPos0(const TinyWeights &w, int32_t token,
                                       double eps) {
  const LlamaConfig &c = w.config;
  const std::vector<float> &emb = w.get(TensorRole::TokEmbeddings);
  std::vector<double> x(emb.begin() + token * c.dim,
                        emb.begin() + (token + 1) * c.dim);
  for (int64_t l = 0; l < c.nLayers; ++l) {
    std::vector<double> xn = rmsnormD(x, w.get(TensorRole::AttnNorm, l), eps);
    std::vector<double> v = matvec(w.get(TensorRole::Wv, l), xn, c.kvDim());
    std::vector<double> heads(c.dim);
    int64_t group = c.nHeads / c.nKvHeads;
    for (int64_t h = 0; h < c.nHeads; ++h)
      for (int64_t i = 0; i < c.headDim(); ++i)
        heads[h * c.headDim() + i] = v[(h / group) * c.headDim() + i];
    std::vector<double> o = matvec(w.get(TensorRole::Wo, l), heads, c.dim);
    for (int64_t i = 0; i < c.dim; ++i)
      x[i] += o[i];
    std::vector<double> hn = rmsnormD(x, w.get(TensorRole::FfnNorm, l), eps);
    std::vector<double> gate =
        matvec(w.get(TensorRole::W1, l), hn, c.hiddenDim);
    std::vector<double> up = matvec(w.get(TensorRole::W3, l), hn, c.hiddenDim);
    std::vector<double> act(c.hiddenDim);
    for (int64_t i = 0; i < c.hiddenDim; ++i)
      act[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
    std::vector<double> down = matvec(w.get(TensorRole::W2, l), act, c.dim);
    for (int64_t i = 0; i < c.dim; ++i)
      x[i] += down[i];
  }
  std::vector<double> xf = rmsnormD(x, w.get(TensorRole::FinalNorm), eps);
  return matvec(w.get(TensorRole::Classifier), xf, c.vocabSize);
}

void expectLogitsNear(const std::vector<double> &expected,
                      const std::vector<float> &actual, double tol) {
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(expected[i], double(actual[i]),
                tol * (1 + std::fabs(expected[i])))
        << "logit " << i;
}

TEST_F(ReferenceLlamaTest, Pos0MatchesDirectFormulaLlama2c) {
  for (bool tied : {true, false}) {
    for (int version : {0, 1}) {
      SCOPED_TRACE(std::string(tied ? "tied" : "untied") + " version " +
                   std::to_string(version));
      TinyWeights w(tinyConfig(tied));
      auto checkpoint = writeAndOpenLlama2c(
          w, "tiny" + std::to_string(tied) + std::to_string(version) + ".bin",
          version);
      ASSERT_NE(checkpoint, nullptr);
      ReferenceLlama model(*checkpoint);
      EXPECT_EQ(model.config().dim, 8);
      for (int32_t token = 0; token < 5; ++token) {
        SCOPED_TRACE("token " + std::to_string(token));
        const std::vector<float> &logits = model.forward(token, 0);
        expectLogitsNear(directLogitsAtPos0(w, token, model.config().rmsEps),
                         logits, 1e-5);
      }
    }
  }
}

TEST_F(ReferenceLlamaTest, Pos0UsesConfigEpsHf) {
  // A large eps changes the result visibly: the reference must use it.
  TinyWeights w(tinyConfig(/*tied=*/false));
  auto checkpoint = writeAndOpenHf(w, "hf-eps", DType::BF16, 0.25, 10000.0);
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_EQ(checkpoint->config().ropeStyle, RopeStyle::HalfSplit);
  EXPECT_DOUBLE_EQ(checkpoint->config().rmsEps, 0.25);
  ReferenceLlama model(*checkpoint);
  for (int32_t token = 0; token < 5; ++token) {
    SCOPED_TRACE("token " + std::to_string(token));
    std::vector<double> expected = directLogitsAtPos0(w, token, 0.25);
    expectLogitsNear(expected, model.forward(token, 0), 1e-5);
    std::vector<double> withDefaultEps = directLogitsAtPos0(w, token, 1e-5);
    double diff = 0;
    for (size_t i = 0; i < expected.size(); ++i)
      diff = std::max(diff, std::fabs(expected[i] - withDefaultEps[i]));
    EXPECT_GT(diff, 1e-3);
  }
}

TEST_F(ReferenceLlamaTest, CaptureRecordsLinearInputs) {
  TinyWeights w(tinyConfig(/*tied=*/true));
  auto checkpoint = writeAndOpenLlama2c(w, "capture.bin", 1);
  ASSERT_NE(checkpoint, nullptr);
  ReferenceLlama model(*checkpoint);
  std::map<std::string, std::vector<std::vector<float>>> captured;
  model.capture = &captured;
  model.forward(3, 0);
  model.forward(1, 1);
  // 7 linear layers per block and the (tied: embedding-named) classifier.
  EXPECT_EQ(captured.size(), 8u);
  for (const auto &[name, rows] : captured) {
    EXPECT_EQ(rows.size(), 2u) << name;
  }
  const LlamaConfig &c = model.config();
  using Rows = std::vector<std::vector<float>>;
  auto rowsOf = [&](TensorRole role, int64_t layer) -> const Rows & {
    return captured.at(checkpoint->tensorName(role, layer));
  };
  EXPECT_EQ(rowsOf(TensorRole::Wq, 0), rowsOf(TensorRole::Wv, 0));
  EXPECT_EQ(rowsOf(TensorRole::W1, 0), rowsOf(TensorRole::W3, 0));
  EXPECT_EQ(rowsOf(TensorRole::Wo, 0)[0].size(), size_t(c.dim));
  EXPECT_EQ(rowsOf(TensorRole::W2, 0)[0].size(), size_t(c.hiddenDim));
  EXPECT_EQ(rowsOf(TensorRole::Classifier, -1)[0].size(), size_t(c.dim));

  // At position 0 the attention output is [v; v] = [wv x; wv x].
  std::vector<double> xn(rowsOf(TensorRole::Wv, 0)[0].begin(),
                         rowsOf(TensorRole::Wv, 0)[0].end());
  std::vector<double> v = matvec(w.get(TensorRole::Wv, 0), xn, c.kvDim());
  const std::vector<float> &attn = rowsOf(TensorRole::Wo, 0)[0];
  for (int64_t i = 0; i < c.dim; ++i)
    EXPECT_NEAR(attn[i], v[i % c.kvDim()],
                1e-5 * (1 + std::fabs(v[i % c.kvDim()])));
}

TEST_F(ReferenceLlamaTest, HfLayoutMatchesLlama2cLayout) {
  // Same weights: llama2.c (interleaved RoPE) vs Hugging Face (q/k rows
  // permuted, rotate_half RoPE) stored as F32, F16 and BF16.
  TinyWeights w(tinyConfig(/*tied=*/false));
  auto meta = writeAndOpenLlama2c(w, "meta.bin", 0);
  ASSERT_NE(meta, nullptr);
  ReferenceLlama expected(*meta);
  const int32_t tokens[] = {1, 4, 0, 2, 3, 3, 1, 0};
  std::vector<std::vector<float>> expectedLogits;
  for (int64_t pos = 0; pos < 8; ++pos)
    expectedLogits.push_back(expected.forward(tokens[pos], pos));
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtypeName(dtype));
    auto hf = writeAndOpenHf(w, std::string("hf-") + dtypeName(dtype), dtype,
                             1e-5, 10000.0);
    ASSERT_NE(hf, nullptr);
    ASSERT_EQ(hf->config().ropeStyle, RopeStyle::HalfSplit);
    ReferenceLlama model(*hf);
    for (int64_t pos = 0; pos < 8; ++pos) {
      const std::vector<float> &logits = model.forward(tokens[pos], pos);
      for (size_t i = 0; i < logits.size(); ++i)
        EXPECT_NEAR(logits[i], expectedLogits[pos][i],
                    1e-4 * (1 + std::fabs(expectedLogits[pos][i])))
            << "pos " << pos << " logit " << i;
    }
  }
}

TEST_F(ReferenceLlamaTest, RopeThetaIsUsed) {
  // theta does not matter at position 0 (no rotation) but does at 1.
  TinyWeights w(tinyConfig(/*tied=*/true));
  auto a = writeAndOpenHf(w, "theta-a", DType::F32, 1e-5, 10000.0);
  auto b = writeAndOpenHf(w, "theta-b", DType::F32, 1e-5, 3.0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ReferenceLlama ma(*a), mb(*b);
  EXPECT_EQ(ma.forward(2, 0), mb.forward(2, 0));
  std::vector<float> la = ma.forward(4, 1);
  std::vector<float> lb = mb.forward(4, 1);
  double diff = 0;
  for (size_t i = 0; i < la.size(); ++i)
    diff = std::max(diff, double(std::fabs(la[i] - lb[i])));
  EXPECT_GT(diff, 1e-4);
}

TEST_F(ReferenceLlamaTest, NllBookkeeping) {
  TinyWeights w(tinyConfig(/*tied=*/true));
  auto checkpoint = writeAndOpenLlama2c(w, "nll.bin", 0);
  ASSERT_NE(checkpoint, nullptr);
  ReferenceLlama model(*checkpoint);
  std::vector<std::vector<int32_t>> docs = {{1, 2, 3, 4, 0, 1, 2}, {1, 3}, {1}};
  // n - ceil(n / context) scored tokens per document.
  EXPECT_EQ(referenceNll(model, docs, 1).scored, 0);
  EXPECT_EQ(referenceNll(model, docs, 1).sumNll, 0.0);
  EXPECT_EQ(referenceNll(model, docs, 2).scored, 3 + 1 + 0);
  EXPECT_EQ(referenceNll(model, docs, 3).scored, 4 + 1 + 0);
  EXPECT_EQ(referenceNll(model, docs, 8).scored, 6 + 1 + 0);
  EXPECT_TRUE(std::isnan(referenceNll(model, docs, 1).perplexity()));

  // One chunk {1, 3}: -log softmax(logits(BOS at 0))[3], in double.
  ReferenceNll one = referenceNll(model, {{1, 3}}, 8);
  std::vector<double> l = directLogitsAtPos0(w, 1, 1e-5);
  double m = *std::max_element(l.begin(), l.end());
  double lse = 0;
  for (double v : l)
    lse += std::exp(v - m);
  lse = m + std::log(lse);
  EXPECT_NEAR(one.sumNll, lse - l[3], 1e-5);
  EXPECT_NEAR(one.perplexity(), std::exp(lse - l[3]), 1e-4);
}

//===----------------------------------------------------------------------===//
// stories260K (../shared)
//===----------------------------------------------------------------------===//

std::string sharedDir() {
#ifdef QNT_SOURCE_DIR
  std::string dir = std::string(QNT_SOURCE_DIR) + "/../shared";
#else
  std::string dir = "../shared";
#endif
  return dir;
}

#define REQUIRE_SHARED(dir)                                                    \
  std::string dir = sharedDir();                                               \
  {                                                                            \
    std::error_code ec;                                                        \
    if (!fs::is_directory(dir, ec))                                            \
      GTEST_SKIP() << "../shared not found beside the checkout: " << dir;      \
  }

std::vector<int32_t> greedy(ReferenceLlama &model, int32_t first,
                            int64_t steps) {
  std::vector<int32_t> out;
  int32_t token = first;
  for (int64_t pos = 0; pos < steps; ++pos) {
    const std::vector<float> &logits = model.forward(token, pos);
    int32_t best = 0;
    for (int32_t i = 1; i < int32_t(logits.size()); ++i)
      if (logits[i] > logits[best])
        best = i;
    out.push_back(best);
    token = best;
  }
  return out;
}

class Stories260KTest : public ::testing::Test {
protected:
  void SetUp() override {
    REQUIRE_SHARED(shared);
    shared_ = shared;
    std::string error;
    checkpoint_ = LlamaCheckpoint::open(
        shared + "/models/stories260K/stories260K.bin", &error);
    ASSERT_NE(checkpoint_, nullptr) << error;
  }
  std::string shared_;
  std::unique_ptr<LlamaCheckpoint> checkpoint_;
};

TEST_F(Stories260KTest, Config) {
  const LlamaConfig &c = checkpoint_->config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hiddenDim, 172);
  EXPECT_EQ(c.nLayers, 5);
  EXPECT_EQ(c.nHeads, 8);
  EXPECT_EQ(c.nKvHeads, 4);
  EXPECT_EQ(c.vocabSize, 512);
  EXPECT_EQ(c.maxSeqLen, 512);
}

TEST_F(Stories260KTest, LogitsAreFinite) {
  ReferenceLlama model(*checkpoint_);
  const int32_t tokens[] = {1, 403, 407, 261, 378};
  for (int64_t pos = 0; pos < 5; ++pos) {
    const std::vector<float> &logits = model.forward(tokens[pos], pos);
    ASSERT_EQ(logits.size(), 512u);
    for (float l : logits)
      ASSERT_TRUE(std::isfinite(l)) << "pos " << pos;
  }
}

TEST_F(Stories260KTest, CacheConsistency) {
  const std::vector<int32_t> seq = {1, 403, 407, 261, 378, 300, 42, 17, 99};
  ReferenceLlama fresh(*checkpoint_);
  std::vector<float> expected;
  for (int64_t pos = 0; pos < int64_t(seq.size()); ++pos)
    expected = fresh.forward(seq[pos], pos);

  // Another model whose cache first holds a longer, different sequence:
  // re-running from position 0 must overwrite and ignore it.
  ReferenceLlama reused(*checkpoint_);
  for (int64_t pos = 0; pos < 20; ++pos)
    reused.forward(int32_t((pos * 37 + 5) % 512), pos);
  std::vector<float> actual;
  for (int64_t pos = 0; pos < int64_t(seq.size()); ++pos)
    actual = reused.forward(seq[pos], pos);
  EXPECT_EQ(actual, expected);

  // And the same sequence again on `fresh`.
  for (int64_t pos = 0; pos < int64_t(seq.size()); ++pos)
    actual = fresh.forward(seq[pos], pos);
  EXPECT_EQ(actual, expected);
}

TEST_F(Stories260KTest, GreedyIsDeterministic) {
  ReferenceLlama a(*checkpoint_), b(*checkpoint_);
  std::vector<int32_t> first = greedy(a, Tokenizer::kBos, 30);
  std::vector<int32_t> second = greedy(b, Tokenizer::kBos, 30);
  EXPECT_EQ(first, second);
  std::vector<int32_t> third = greedy(a, Tokenizer::kBos, 30);
  EXPECT_EQ(first, third);
  std::string ids;
  for (int32_t t : first) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, 512);
    ids += (ids.empty() ? "" : " ") + std::to_string(t);
  }
  RecordProperty("greedy", ids);
  std::printf("stories260K greedy from BOS: %s\n", ids.c_str());
}

TEST_F(Stories260KTest, OneTokenChunksScoreNothing) {
  ReferenceLlama model(*checkpoint_);
  ReferenceNll nll =
      referenceNll(model, {{1, 403, 407, 261, 378}, {1, 300}}, 1);
  EXPECT_EQ(nll.scored, 0);
  EXPECT_EQ(nll.sumNll, 0.0);
}

TEST_F(Stories260KTest, Sample5Perplexity) {
  std::string error;
  auto tokenizer =
      Tokenizer::open(shared_ + "/models/stories260K/tok512.bin", 512, &error);
  ASSERT_NE(tokenizer, nullptr) << error;
  std::string text;
  ASSERT_TRUE(
      readTextFile(shared_ + "/data/tinystories_sample5.txt", &text, &error))
      << error;
  std::vector<std::vector<int32_t>> docs;
  int64_t expectedScored = 0;
  for (const std::string &doc : splitDocuments(text)) {
    docs.push_back(tokenizer->encode(doc, /*bos=*/true, /*eos=*/false));
    int64_t n = int64_t(docs.back().size());
    expectedScored += n - (n + 511) / 512; // one unscored token per chunk
  }
  ASSERT_EQ(docs.size(), 5u);
  ReferenceLlama model(*checkpoint_);
  ReferenceNll nll = referenceNll(model, docs, 512);
  EXPECT_EQ(nll.scored, expectedScored);
  double ppl = nll.perplexity();
  std::printf("stories260K sample5: %lld tokens scored, mean NLL %.6f, "
              "perplexity %.6f\n",
              (long long)nll.scored, nll.sumNll / double(nll.scored), ppl);
  RecordProperty("perplexity", std::to_string(ppl));
  // stories260K reaches a validation loss of about 1.3 nats on TinyStories.
  EXPECT_GT(ppl, 1.5);
  EXPECT_LT(ppl, 10.0);
}

} // namespace
