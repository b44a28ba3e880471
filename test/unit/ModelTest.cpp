//===- ModelTest.cpp - Whole models through the compiler ------------------===//
//
// Imports checkpoints, compiles them with the project's CPU code generation
// and checks the results against the independent fp32 reference forward
// pass in support/ReferenceLlama: logits, greedy decoding, the perplexity
// protocol, the loss of int8 RTN, the Hugging Face path (bf16, sharded,
// rotate_half) against the llama2.c path on the same weights, and the
// calibration statistics against Hessians computed from captured inputs.
//
//===----------------------------------------------------------------------===//

#include "support/ReferenceLlama.h"
#include "support/TempDirTest.h"

#include "passes/Passes.h"
#include "qnt/InitAll.h"
#include "qnt/calibration/Calibrator.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/Corpus.h"
#include "qnt/io/SyntheticModel.h"
#include "qnt/io/Tokenizer.h"
#include "qnt/runtime/Evaluate.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>


namespace io = qnt::io;
namespace fs = std::filesystem;
using qnt::runtime::CpuCompileOptions;
using qnt::runtime::HostTensor;
using qnt::runtime::ModelRunner;
using qnt::testing::ReferenceLlama;

namespace {

const std::string kShared = QNT_SOURCE_DIR "/../shared";
const std::string kStoriesModel = kShared + "/models/stories260K/stories260K.bin";
const std::string kStoriesTokenizer = kShared + "/models/stories260K/tok512.bin";

#define REQUIRE_SHARED()                                                      \
  if (!fs::exists(kStoriesModel))                                             \
  GTEST_SKIP() << "../shared not found beside the checkout (" << kStoriesModel \
               << "); the stories260K tests need it"

class ModelTest : public qnt::testing::TempDirTest {
protected:
  static void SetUpTestSuite() { qnt::registerAllPasses(); }
  ModelTest() : TempDirTest("qnt-model-test"), context(makeRegistry()) {
    context.getDiagEngine().registerHandler([this](mlir::Diagnostic &d) {
      diagnostics += d.str() + "\n";
    });
  }
  static mlir::DialectRegistry makeRegistry() {
    mlir::DialectRegistry registry;
    qnt::registerAllDialects(registry);
    return registry;
  }

  std::unique_ptr<io::LlamaCheckpoint> open(const std::string &path) {
    std::string error;
    auto checkpoint = io::LlamaCheckpoint::open(path, &error);
    EXPECT_TRUE(checkpoint) << error;
    return checkpoint;
  }
  /// Imports `path`, runs `pipeline` (if any) and compiles the result.
  std::unique_ptr<ModelRunner> compile(const std::string &path,
                                       const std::string &pipeline = "",
                                       const CpuCompileOptions &options = {}) {
    module = mlir::qnt::loadModel(&context, path);
    if (!module)
      return nullptr;
    if (!pipeline.empty() &&
        failed(mlir::qnt::runPassPipeline(*module, pipeline)))
      return nullptr;
    auto runner = ModelRunner::create(*module, options);
    return succeeded(runner) ? std::move(*runner) : nullptr;
  }

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::string diagnostics;
  void SetUp() override {
    TempDirTest::SetUp();
    tmp = dir_;
  }
  fs::path tmp;
};

/// Largest |a - b| over the largest |b|.
double relativeDifference(const float *a, const float *b, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return diff / scale;
}

std::vector<std::vector<int32_t>> encodeFile(const io::Tokenizer &tokenizer,
                                             const std::string &path) {
  std::string text, error;
  EXPECT_TRUE(io::readTextFile(path, &text, &error)) << error;
  std::vector<std::vector<int32_t>> docs;
  for (const std::string &doc : io::splitDocuments(text))
    docs.push_back(tokenizer.encode(doc, true, false));
  return docs;
}

//===----------------------------------------------------------------------===//
// stories260K (llama2.c)
//===----------------------------------------------------------------------===//

TEST_F(ModelTest, StoriesLogitsMatchReferenceAtEveryPosition) {
  REQUIRE_SHARED();
  auto runner = compile(kStoriesModel);
  ASSERT_TRUE(runner) << diagnostics;
  auto checkpoint = open(kStoriesModel);
  ReferenceLlama reference(*checkpoint);
  std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286, 261};
  HostTensor logits;
  ASSERT_TRUE(succeeded(runner->forward(tokens, 0, logits))) << diagnostics;
  int64_t vocab = runner->config().vocabSize;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    const std::vector<float> &expected = reference.forward(tokens[pos], pos);
    EXPECT_LT(relativeDifference(logits.f32() + pos * vocab, expected.data(),
                                 vocab),
              1e-5)
        << "position " << pos;
  }
}

TEST_F(ModelTest, StoriesDecodingWithTheCacheMatchesAFullPass) {
  REQUIRE_SHARED();
  auto runner = compile(kStoriesModel);
  ASSERT_TRUE(runner) << diagnostics;
  std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432};
  HostTensor full, step;
  ASSERT_TRUE(succeeded(runner->forward(tokens, 0, full)));
  // The prefix in one call, then the last token alone at its position.
  ASSERT_TRUE(succeeded(runner->forward(
      llvm::ArrayRef<int32_t>(tokens).drop_back(), 0, step)));
  ASSERT_TRUE(succeeded(runner->forward({tokens.back()}, tokens.size() - 1,
                                        step)));
  int64_t vocab = runner->config().vocabSize;
  EXPECT_LT(relativeDifference(step.f32(),
                               full.f32() + (tokens.size() - 1) * vocab, vocab),
            1e-5);
}

TEST_F(ModelTest, StoriesWeightsInHugePagesGiveTheSameLogits) {
  REQUIRE_SHARED();
  // int4 g32 with int8 activations: the copies in the arena are read by the
  // vector kernels (64-byte loads, prefetches ahead of them).
  // One output file per runner: the first maps its file while the second
  // is compiled.
  auto rtn = [&](const char *file) {
    return "builtin.module(qnt-rtn{bits=4 group-size=32 output=" +
           (tmp / file).string() + "})";
  };
  CpuCompileOptions int8{/*threads=*/1, /*int8Activations=*/true, "", false};
  CpuCompileOptions arena = int8;
  arena.hugePageWeights = true;
  auto mapped = compile(kStoriesModel, rtn("mapped.safetensors"), int8);
  ASSERT_TRUE(mapped) << diagnostics;
  auto copied = compile(kStoriesModel, rtn("copied.safetensors"), arena);
  ASSERT_TRUE(copied) << diagnostics;
  std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286, 261};
  HostTensor a, b;
  ASSERT_TRUE(succeeded(mapped->forward(tokens, 0, a))) << diagnostics;
  ASSERT_TRUE(succeeded(copied->forward(tokens, 0, b))) << diagnostics;
  ASSERT_EQ(a.numBytes(), b.numBytes());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.numBytes()), 0);
  // Only the second runner copied its parameters: at least those of the
  // blocks and the head (the embedding may be the head's, tied), each at a
  // 64-byte boundary.
  EXPECT_EQ(mapped->parameterArenaBytes(), 0);
  int64_t parameters = copied->parameterBytes("head");
  for (int64_t layer = 0; layer < copied->config().nLayers; ++layer)
    parameters +=
        copied->parameterBytes(mlir::qnt::blockFunctionName(layer));
  EXPECT_GE(copied->parameterArenaBytes(), parameters);
}

TEST_F(ModelTest, StoriesGreedyGenerationMatchesReference) {
  REQUIRE_SHARED();
  auto runner = compile(kStoriesModel);
  ASSERT_TRUE(runner) << diagnostics;
  auto checkpoint = open(kStoriesModel);
  ReferenceLlama reference(*checkpoint);
  std::vector<int32_t> expected;
  int32_t token = 1;
  for (int64_t pos = 0; pos < 30; ++pos) {
    const std::vector<float> &l = reference.forward(token, pos);
    token = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
    expected.push_back(token);
  }
  qnt::runtime::Sampler greedy(0.0f, 0.9f, 1);
  auto produced = qnt::runtime::generate(*runner, {1}, 30, greedy);
  ASSERT_TRUE(succeeded(produced));
  EXPECT_EQ(*produced, expected);
}

TEST_F(ModelTest, StoriesPerplexityMatchesReference) {
  REQUIRE_SHARED();
  std::string error;
  auto tokenizer = io::Tokenizer::open(kStoriesTokenizer, 512, &error);
  ASSERT_TRUE(tokenizer) << error;
  auto docs = encodeFile(*tokenizer, kShared + "/data/tinystories_sample5.txt");
  auto runner = compile(kStoriesModel);
  ASSERT_TRUE(runner) << diagnostics;
  auto result = qnt::runtime::evaluatePerplexity(*runner, docs, 512);
  ASSERT_TRUE(succeeded(result)) << diagnostics;

  auto checkpoint = open(kStoriesModel);
  ReferenceLlama reference(*checkpoint);
  qnt::testing::ReferenceNll expected =
      qnt::testing::referenceNll(reference, docs, 512);
  EXPECT_EQ(result->scored, expected.scored);
  EXPECT_NEAR(result->perplexity() / expected.perplexity(), 1.0, 1e-4);
  // A shorter context cuts documents into more chunks and scores fewer
  // tokens, exactly n - ceil(n / context) per document.
  auto chunked = qnt::runtime::evaluatePerplexity(*runner, docs, 64);
  ASSERT_TRUE(succeeded(chunked));
  int64_t scored = 0;
  for (const auto &doc : docs)
    scored += doc.size() - (doc.size() + 63) / 64;
  EXPECT_EQ(chunked->scored, scored);
  qnt::testing::ReferenceNll expectedChunked =
      qnt::testing::referenceNll(reference, docs, 64);
  EXPECT_NEAR(chunked->perplexity() / expectedChunked.perplexity(), 1.0, 1e-4);
}

TEST_F(ModelTest, StoriesInt8RtnLosesUnderOnePercent) {
  REQUIRE_SHARED();
  std::string error;
  auto tokenizer = io::Tokenizer::open(kStoriesTokenizer, 512, &error);
  ASSERT_TRUE(tokenizer) << error;
  auto docs = encodeFile(*tokenizer, kShared + "/data/tinystories_sample5.txt");
  auto floatRunner = compile(kStoriesModel);
  ASSERT_TRUE(floatRunner) << diagnostics;
  auto base = qnt::runtime::evaluatePerplexity(*floatRunner, docs, 512);
  ASSERT_TRUE(succeeded(base));

  auto quantized = compile(
      kStoriesModel,
      "builtin.module(qnt-rtn{bits=8 granularity=per-channel symmetric=1 "
      "output=" + (tmp / "q8.safetensors").string() + "})");
  ASSERT_TRUE(quantized) << diagnostics;
  auto q8 = qnt::runtime::evaluatePerplexity(*quantized, docs, 512);
  ASSERT_TRUE(succeeded(q8));
  double loss = q8->perplexity() / base->perplexity() - 1.0;
  EXPECT_LT(std::fabs(loss), 0.01) << "int8 " << q8->perplexity() << " vs "
                                   << base->perplexity();
  // Quantization really happened: the numbers differ.
  EXPECT_NE(q8->sumNll, base->sumNll);
}

TEST_F(ModelTest, StoriesCalibrationHessianIsTheSumOfCapturedOuterProducts) {
  REQUIRE_SHARED();
  std::string error;
  auto tokenizer = io::Tokenizer::open(kStoriesTokenizer, 512, &error);
  ASSERT_TRUE(tokenizer) << error;
  auto docs =
      encodeFile(*tokenizer, kShared + "/data/tinystories_excerpt.txt");
  auto sequences = qnt::calibration::makeCalibrationSequences(docs, 3, 24);
  ASSERT_EQ(sequences.size(), 3u);
  module = mlir::qnt::loadModel(&context, kStoriesModel);
  ASSERT_TRUE(module) << diagnostics;
  auto stats = qnt::calibration::calibrate(*module, mlir::ModuleOp(), sequences,
                                           qnt::calibration::Stream::Quantized);
  ASSERT_TRUE(succeeded(stats)) << diagnostics;

  // The reference model's captured linear-layer inputs, token by token.
  auto checkpoint = open(kStoriesModel);
  ReferenceLlama reference(*checkpoint);
  std::map<std::string, std::vector<std::vector<float>>> captured;
  reference.capture = &captured;
  for (const auto &sequence : sequences)
    for (size_t pos = 0; pos < sequence.size(); ++pos)
      reference.forward(sequence[pos], pos);

  // 5 blocks x 7 linears + the classifier.
  EXPECT_EQ(stats->layers.size(), 36u);
  ASSERT_EQ(captured.size(), stats->layers.size());
  for (const auto &[name, rows] : captured) {
    SCOPED_TRACE(name);
    auto it = stats->layers.find(name);
    ASSERT_NE(it, stats->layers.end());
    const qnt::calibration::LayerStatistics &layer = it->second;
    int64_t k = rows.front().size();
    ASSERT_EQ(layer.channels, k);
    EXPECT_EQ(layer.count, int64_t(rows.size()));
    Eigen::MatrixXd hessian = Eigen::MatrixXd::Zero(k, k);
    std::vector<double> absmax(k, 0), meanAbs(k, 0);
    for (const std::vector<float> &row : rows)
      for (int64_t i = 0; i < k; ++i) {
        absmax[i] = std::max(absmax[i], double(std::fabs(row[i])));
        meanAbs[i] += std::fabs(row[i]) / double(rows.size());
        for (int64_t j = 0; j < k; ++j)
          hessian(i, j) += double(row[i]) * double(row[j]);
      }
    Eigen::MatrixXd got = layer.fullHessian();
    EXPECT_LT((got - hessian).cwiseAbs().maxCoeff() /
                  hessian.cwiseAbs().maxCoeff(),
              1e-4);
    for (int64_t i = 0; i < k; ++i) {
      EXPECT_NEAR(layer.absmax[i], absmax[i], 1e-4 * (1 + absmax[i]));
      EXPECT_NEAR(layer.sumAbs[i] / double(layer.count), meanAbs[i],
                  1e-4 * (1 + meanAbs[i]));
    }
  }

  // The statistics file round-trips through the safetensors reader.
  std::string path = (tmp / "stats.safetensors").string();
  ASSERT_TRUE(stats->write(path, &error)) << error;
  auto file = io::SafetensorsFile::open(path, &error);
  ASSERT_TRUE(file) << error;
  const io::TensorInfo *h = file->find("layers.2.feed_forward.w2.weight.hessian");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->shape, (std::vector<int64_t>{172, 172}));
  const io::TensorInfo *count = file->find("layers.2.feed_forward.w2.weight.count");
  ASSERT_TRUE(count);
  int64_t n;
  std::memcpy(&n, file->data(*count), 8);
  EXPECT_EQ(n, 72);
  EXPECT_EQ(file->metadata().at("format"), "qnt.calibration/1");
}

//===----------------------------------------------------------------------===//
// Synthetic checkpoints (no ../shared needed)
//===----------------------------------------------------------------------===//

TEST_F(ModelTest, HuggingFaceBf16ShardedMatchesLlama2cOnTheSameWeights) {
  io::SyntheticModelOptions options;
  ASSERT_TRUE(io::syntheticPreset("tiny", &options.config));
  options.config.tiedEmbeddings = false;
  options.seed = 11;
  std::string error;
  std::string hfDir = (tmp / "hf").string();
  std::string binPath = (tmp / "model.bin").string();
  ASSERT_TRUE(io::writeSyntheticHf(hfDir, options, io::DType::BF16, 3, {},
                                   &error))
      << error;
  ASSERT_TRUE(io::writeSyntheticLlama2c(binPath, options, 1, io::DType::BF16,
                                        &error))
      << error;
  ASSERT_TRUE(fs::exists(tmp / "hf" / "model.safetensors.index.json"));

  auto hf = compile(hfDir);
  ASSERT_TRUE(hf) << diagnostics;
  auto hfCheckpoint = open(hfDir);
  EXPECT_EQ(hfCheckpoint->files().size(), 3u);
  EXPECT_EQ(hfCheckpoint->config().ropeStyle, io::RopeStyle::HalfSplit);
  mlir::OwningOpRef<mlir::ModuleOp> hfModule = std::move(module);
  auto llama2c = compile(binPath);
  ASSERT_TRUE(llama2c) << diagnostics;

  std::vector<int32_t> tokens = {1, 17, 300, 42, 9, 511, 7, 128, 64, 3};
  HostTensor a, b;
  ASSERT_TRUE(succeeded(hf->forward(tokens, 0, a))) << diagnostics;
  ASSERT_TRUE(succeeded(llama2c->forward(tokens, 0, b))) << diagnostics;
  int64_t vocab = options.config.vocabSize;
  EXPECT_LT(relativeDifference(a.f32(), b.f32(), tokens.size() * vocab), 1e-5);

  // And both agree with the reference on the Hugging Face files.
  ReferenceLlama reference(*hfCheckpoint);
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    const std::vector<float> &expected = reference.forward(tokens[pos], pos);
    EXPECT_LT(relativeDifference(a.f32() + pos * vocab, expected.data(), vocab),
              1e-5)
        << "position " << pos;
  }
}

TEST_F(ModelTest, RtnOnBf16WeightsDequantizesToF32) {
  io::SyntheticModelOptions options;
  ASSERT_TRUE(io::syntheticPreset("tiny", &options.config));
  std::string error, hfDir = (tmp / "hf16").string();
  ASSERT_TRUE(io::writeSyntheticHf(hfDir, options, io::DType::BF16, 1, {},
                                   &error))
      << error;
  auto floatRunner = compile(hfDir);
  ASSERT_TRUE(floatRunner) << diagnostics;
  auto q8 = compile(hfDir, "builtin.module(qnt-rtn{bits=8 "
                           "granularity=per-channel symmetric=1 output=" +
                               (tmp / "q8.safetensors").string() + "})");
  ASSERT_TRUE(q8) << diagnostics;
  // Every bf16 weight became an f32 dequantization feeding an f32 matmul.
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6};
  HostTensor a, b;
  ASSERT_TRUE(succeeded(floatRunner->forward(tokens, 0, a)));
  ASSERT_TRUE(succeeded(q8->forward(tokens, 0, b)));
  int64_t n = tokens.size() * options.config.vocabSize;
  double difference = relativeDifference(b.f32(), a.f32(), n);
  // Quantized, so not equal; int8 per channel on these heavy-tailed,
  // outlier-gained weights moves the logits by ~6.5%, while a wrong
  // dequantization (bf16 bits read as f32, a transposed weight) moves them
  // by O(1).
  EXPECT_GT(difference, 0.0);
  EXPECT_LT(difference, 0.15);
}

TEST_F(ModelTest, ImportedModuleNamesOneFunctionPerBlock) {
  io::SyntheticModelOptions options;
  ASSERT_TRUE(io::syntheticPreset("tiny", &options.config));
  std::string error, path = (tmp / "tiny.bin").string();
  ASSERT_TRUE(io::writeSyntheticLlama2c(path, options, 0, io::DType::F32,
                                        &error))
      << error;
  module = mlir::qnt::loadModel(&context, path);
  ASSERT_TRUE(module) << diagnostics;
  std::vector<std::string> names;
  int64_t params = 0, matmuls = 0;
  for (auto func : module->getOps<mlir::func::FuncOp>())
    names.push_back(func.getSymName().str());
  module->walk([&](mlir::qnt::ParamOp) { ++params; });
  module->walk([&](mlir::linalg::MatmulOp) { ++matmuls; });
  EXPECT_EQ(names, (std::vector<std::string>{"embed", "block0", "block1",
                                             "head"}));
  // 9 weights per block, the embedding, the final norm, the tied classifier.
  EXPECT_EQ(params, 2 * 9 + 3);
  EXPECT_EQ(matmuls, 2 * 7 + 1);
  auto config = mlir::qnt::readModelConfig(*module);
  ASSERT_TRUE(succeeded(config));
  EXPECT_EQ(config->dim, options.config.dim);
  EXPECT_EQ(config->nKvHeads, options.config.nKvHeads);
}

TEST_F(ModelTest, OutOfVocabularyTokenIsALocatedError) {
  io::SyntheticModelOptions options;
  ASSERT_TRUE(io::syntheticPreset("tiny", &options.config));
  std::string error, path = (tmp / "tiny.bin").string();
  ASSERT_TRUE(io::writeSyntheticLlama2c(path, options, 1, io::DType::F32,
                                        &error));
  auto runner = compile(path);
  ASSERT_TRUE(runner) << diagnostics;
  HostTensor logits;
  EXPECT_TRUE(failed(runner->forward({1, 512}, 0, logits)));
  EXPECT_NE(diagnostics.find("token id 512 at position 1 is outside the "
                             "vocabulary [0, 512)"),
            std::string::npos)
      << diagnostics;
  diagnostics.clear();
  std::vector<int32_t> tooLong(options.config.maxSeqLen + 1, 5);
  EXPECT_TRUE(failed(runner->forward(tooLong, 0, logits)));
  EXPECT_NE(diagnostics.find("exceed the context of"), std::string::npos)
      << diagnostics;
}

} // namespace
