//===- ArtifactTest.cpp - Artifacts: checksums, manifests, the runtime ----===//
//
// CRC-32C against a bitwise reference; manifests round-trip and every
// changed byte of one is rejected or harmless; an artifact of a synthetic
// model, run through the C API, gives the JIT's logits; and a seeded loop of
// corruptions (flipped bits, truncations, appended bytes in every file) is
// always rejected with an error, or runs exactly as the intact artifact.
//
//===----------------------------------------------------------------------===//

#include "support/TempDirTest.h"

#include "qnt/InitAll.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/Artifact.h"
#include "qnt/io/Checksum.h"
#include "qnt/io/SyntheticModel.h"
#include "qnt/package/Package.h"
#include "qnt/runtime.h"
#include "qnt/runtime/ModelRunner.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

namespace io = qnt::io;
namespace fs = std::filesystem;

namespace {

/// CRC-32C one bit at a time, straight from the definition.
uint32_t referenceCrc32c(const uint8_t *data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0);
  }
  return ~crc;
}

TEST(Crc32cTest, MatchesTheStandardCheckValueAndTheBitwiseDefinition) {
  const char *check = "123456789";
  EXPECT_EQ(io::crc32c(check, 9), 0xE3069283u);
  EXPECT_EQ(io::crc32c(nullptr, 0), 0u);
  std::mt19937 rng(7);
  std::vector<uint8_t> bytes(4099);
  for (uint8_t &b : bytes)
    b = uint8_t(rng());
  // Every start alignment and odd lengths: the 8-byte loop and its tail.
  for (size_t start : {0, 1, 3, 7})
    for (size_t size : {0, 1, 7, 8, 9, 63, 1000, 4090}) {
      uint32_t want = referenceCrc32c(bytes.data() + start, size);
      EXPECT_EQ(io::crc32c(bytes.data() + start, size), want)
          << "start " << start << " size " << size;
      // Continued over two pieces.
      size_t half = size / 2;
      uint32_t first = io::crc32c(bytes.data() + start, half);
      EXPECT_EQ(io::crc32c(bytes.data() + start + half, size - half, first),
                want);
    }
  EXPECT_EQ(io::crc32cHex(0xE3069283u), "e3069283");
}

io::ArtifactManifest sampleManifest() {
  io::ArtifactManifest m;
  m.producer = "quant-compile test";
  io::syntheticPreset("tiny", &m.model);
  io::ArtifactEntry head;
  head.name = "head";
  head.inputs.push_back({io::DType::F32, {-1, 64}});
  head.params.emplace_back("norm.weight",
                           io::ArtifactTensorType{io::DType::F32, {64}});
  head.results.push_back({io::DType::F32, {-1, 512}});
  m.entries.push_back(head);
  m.weights = {"weights.safetensors", 1234, 0xDEADBEEF};
  m.tokenizer = io::ArtifactFile{"tokenizer.bin", 99, 1};
  io::CpuImage image;
  image.name = "native";
  image.file = {"cpu/native.so", 4096, 0x01234567};
  image.triple = "x86_64-unknown-linux-gnu";
  image.cpu = "znver5";
  image.requiredFeatures = {"avx2", "avx512f"};
  image.openmp = true;
  image.activations = "int8";
  image.threads = 1;
  m.cpuImages.push_back(image);
  io::CudaTarget cuda;
  cuda.host = {"cuda/host.so", 2048, 0x0badcafe};
  cuda.hostTriple = "x86_64-unknown-linux-gnu";
  cuda.cubins.push_back({"sm_80", {"cuda/sm_80.cubin", 512, 0x11111111}});
  cuda.cubins.push_back({"sm_90a", {"cuda/sm_90a.cubin", 640, 0x22222222}});
  cuda.ptxChip = "sm_90a";
  cuda.ptx = {"cuda/sm_90a.ptx", 700, 0x33333333};
  cuda.kernels = 341;
  m.cuda = cuda;
  m.recipe = {{"source", "model.bin"}};
  return m;
}

TEST(ManifestTest, RoundTrips) {
  io::ArtifactManifest m = sampleManifest(), back;
  std::string error;
  ASSERT_TRUE(io::parseManifest(io::writeManifest(m), back, &error)) << error;
  EXPECT_EQ(back.producer, m.producer);
  EXPECT_EQ(back.model.dim, 64);
  EXPECT_EQ(back.model.maxSeqLen, m.model.maxSeqLen);
  EXPECT_EQ(back.model.rmsEps, m.model.rmsEps);
  ASSERT_EQ(back.entries.size(), 1u);
  EXPECT_EQ(back.entries[0].inputs[0], m.entries[0].inputs[0]);
  EXPECT_EQ(back.entries[0].params[0].first, "norm.weight");
  EXPECT_EQ(back.weights.crc32c, 0xDEADBEEFu);
  ASSERT_TRUE(back.tokenizer);
  EXPECT_EQ(back.tokenizer->bytes, 99u);
  ASSERT_EQ(back.cpuImages.size(), 1u);
  EXPECT_EQ(back.cpuImages[0].requiredFeatures, m.cpuImages[0].requiredFeatures);
  EXPECT_TRUE(back.cpuImages[0].openmp);
  EXPECT_EQ(back.cpuImages[0].threads, 1);
  ASSERT_TRUE(back.cuda);
  ASSERT_EQ(back.cuda->cubins.size(), 2u);
  EXPECT_EQ(back.cuda->cubins[1].chip, "sm_90a");
  EXPECT_EQ(back.cuda->cubins[1].file.crc32c, 0x22222222u);
  EXPECT_EQ(back.cuda->ptxChip, "sm_90a");
  EXPECT_EQ(back.cuda->ptx.bytes, 700u);
  EXPECT_EQ(back.cuda->host.path, "cuda/host.so");
  EXPECT_EQ(back.cuda->kernels, 341);
  // Without a GPU part, none is read back.
  io::ArtifactManifest cpuOnly = sampleManifest(), cpuBack;
  cpuOnly.cuda.reset();
  ASSERT_TRUE(io::parseManifest(io::writeManifest(cpuOnly), cpuBack, &error))
      << error;
  EXPECT_FALSE(cpuBack.cuda);
  // Writing what was read gives the same text.
  EXPECT_EQ(io::writeManifest(back), io::writeManifest(m));
}

TEST(ManifestTest, EveryChangedByteIsRejectedOrHarmless) {
  std::string text = io::writeManifest(sampleManifest());
  io::ArtifactManifest original;
  std::string error;
  ASSERT_TRUE(io::parseManifest(text, original, &error)) << error;
  int rejected = 0;
  for (size_t i = 0; i < text.size(); ++i)
    for (uint8_t mask : {0x01, 0x20}) {
      std::string changed = text;
      changed[i] = char(changed[i] ^ mask);
      io::ArtifactManifest parsed;
      std::string problem;
      if (!io::parseManifest(changed, parsed, &problem)) {
        ++rejected;
        EXPECT_FALSE(problem.empty());
        continue;
      }
      // Accepted: only where the content is the same (whitespace, the case
      // of a number's exponent).
      EXPECT_EQ(io::writeManifest(parsed), text)
          << "byte " << i << " ^ " << int(mask) << " changed the content";
    }
  EXPECT_GT(rejected, int(text.size()));
}

TEST(ManifestTest, RefusesPathsOutsideTheArtifactAndOtherVersions) {
  io::ArtifactManifest m = sampleManifest(), back;
  std::string error;
  m.weights.path = "../weights.safetensors";
  EXPECT_FALSE(io::parseManifest(io::writeManifest(m), back, &error));
  EXPECT_NE(error.find("must be a relative path inside the artifact"),
            std::string::npos)
      << error;
  m = sampleManifest();
  m.version = 7;
  EXPECT_FALSE(io::parseManifest(io::writeManifest(m), back, &error));
  EXPECT_NE(error.find("artifact format version 7"), std::string::npos)
      << error;
  m = sampleManifest();
  m.cuda->cubins[0].file.path = "/tmp/sm_80.cubin";
  EXPECT_FALSE(io::parseManifest(io::writeManifest(m), back, &error));
  EXPECT_NE(error.find("cuda.cubins[0].file.path"), std::string::npos)
      << error;
  m = sampleManifest();
  m.cuda->ptxChip = "gfx90a";
  EXPECT_FALSE(io::parseManifest(io::writeManifest(m), back, &error));
  EXPECT_NE(error.find("cuda.ptx.chip"), std::string::npos) << error;
  EXPECT_FALSE(io::parseManifest("{\"format\": 3}", back, &error));
  EXPECT_NE(error.find("manifest.format"), std::string::npos) << error;
  EXPECT_FALSE(io::parseManifest("[1, 2", back, &error));
  EXPECT_NE(error.find("not valid JSON"), std::string::npos) << error;
}

/// An artifact of the tiny synthetic model, made once for the suite.
class ArtifactRuntimeTest : public qnt::testing::TempDirTest {
protected:
  ArtifactRuntimeTest() : TempDirTest("qnt-artifact-test") {}
  static void SetUpTestSuite() { qnt::registerAllPasses(); }

  void SetUp() override {
    TempDirTest::SetUp();
    io::SyntheticModelOptions options;
    ASSERT_TRUE(io::syntheticPreset("tiny", &options.config));
    options.seed = 3;
    std::string error;
    checkpoint = pathOf("tiny.bin");
    ASSERT_TRUE(io::writeSyntheticLlama2c(checkpoint, options, 1,
                                          io::DType::F32, &error))
        << error;
    artifact = pathOf("tiny.qnt");
    context.printOpOnDiagnostic(false);
    mlir::ScopedDiagnosticHandler handler(
        &context, [&](mlir::Diagnostic &d) {
          diagnostics += d.str() + "\n";
          return mlir::success();
        });
    auto module = mlir::qnt::loadModel(&context, checkpoint);
    ASSERT_TRUE(module) << diagnostics;
    qnt::package::ArtifactOptions package;
    package.outputDir = artifact;
    package.portableImage = false;
    ASSERT_TRUE(succeeded(qnt::package::writeArtifact(*module, package)))
        << diagnostics;
  }

  /// Logits of `tokens` from the artifact at `dir` (empty when it cannot
  /// be opened or run; the error goes to *error).
  static std::vector<float> artifactLogits(const std::string &dir,
                                           const std::vector<int32_t> &tokens,
                                           std::string *error) {
    qnt_model *model = qnt_model_open(dir.c_str(), nullptr);
    if (!model) {
      *error = qnt_last_error();
      return {};
    }
    std::vector<float> logits;
    qnt_session *session = qnt_session_create(model, 0);
    int64_t rows = 0;
    if (session &&
        qnt_session_prefill(session, tokens.data(), int64_t(tokens.size())) ==
            0) {
      const float *data = qnt_session_logits(session, &rows);
      logits.assign(data, data + rows * qnt_model_vocab_size(model));
    } else {
      *error = qnt_last_error();
    }
    qnt_session_free(session);
    qnt_model_free(model);
    return logits;
  }

  mlir::MLIRContext context{makeRegistry()};
  std::string diagnostics, checkpoint, artifact;
  const std::vector<int32_t> tokens = {1, 17, 300, 42, 5, 511, 99, 3};

private:
  static mlir::DialectRegistry makeRegistry() {
    mlir::DialectRegistry registry;
    qnt::registerAllDialects(registry);
    return registry;
  }
};

TEST_F(ArtifactRuntimeTest, GivesTheJitsLogitsAndDecodesStepByStep) {
  std::string error;
  std::vector<float> logits = artifactLogits(artifact, tokens, &error);
  ASSERT_EQ(logits.size(), tokens.size() * 512) << error;

  auto module = mlir::qnt::loadModel(&context, checkpoint);
  ASSERT_TRUE(module);
  auto runner = qnt::runtime::ModelRunner::create(*module);
  ASSERT_TRUE(succeeded(runner)) << diagnostics;
  qnt::runtime::HostTensor jit;
  ASSERT_TRUE(succeeded((*runner)->forward(tokens, 0, jit)));
  double diff = 0, scale = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    diff = std::max(diff, double(std::fabs(logits[i] - jit.f32()[i])));
    scale = std::max(scale, double(std::fabs(jit.f32()[i])));
  }
  EXPECT_LE(diff, 1e-5 * scale);

  // The same tokens one per call continue the cache: the last row agrees.
  qnt_model *model = qnt_model_open(artifact.c_str(), nullptr);
  ASSERT_TRUE(model) << qnt_last_error();
  qnt_session *session = qnt_session_create(model, 16);
  ASSERT_TRUE(session) << qnt_last_error();
  for (int32_t token : tokens)
    ASSERT_EQ(qnt_session_decode(session, token), 0) << qnt_last_error();
  int64_t rows;
  const float *last = qnt_session_logits(session, &rows);
  ASSERT_EQ(rows, 1);
  const float *want = logits.data() + (tokens.size() - 1) * 512;
  for (int i = 0; i < 512; ++i)
    EXPECT_NEAR(last[i], want[i], 1e-4 * scale) << i;
  EXPECT_EQ(qnt_session_position(session), int64_t(tokens.size()));
  // Errors: past the session's context, an id outside the vocabulary.
  std::vector<int32_t> many(16, 5);
  EXPECT_NE(qnt_session_prefill(session, many.data(), 16), 0);
  EXPECT_NE(std::string(qnt_last_error()).find("exceed the session's context"),
            std::string::npos);
  qnt_session_reset(session);
  EXPECT_NE(qnt_session_decode(session, 512), 0);
  EXPECT_NE(std::string(qnt_last_error()).find("outside the vocabulary"),
            std::string::npos);
  EXPECT_EQ(qnt_session_create(model, 100000), nullptr);
  qnt_session_free(session);
  qnt_model_free(model);
  EXPECT_EQ(qnt_model_open("/nonexistent/model.qnt", nullptr), nullptr);
  EXPECT_NE(std::string(qnt_last_error()).find("/nonexistent/model.qnt"),
            std::string::npos);
}

TEST_F(ArtifactRuntimeTest, SeededCorruptionsAreRejectedOrHarmless) {
  std::string error;
  std::vector<float> intact = artifactLogits(artifact, tokens, &error);
  ASSERT_FALSE(intact.empty()) << error;
  std::vector<std::string> files;
  for (const auto &entry : fs::recursive_directory_iterator(artifact))
    if (entry.is_regular_file())
      files.push_back(fs::relative(entry.path(), artifact).string());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 3u);
  std::mt19937_64 rng(20261206);
  int rejected = 0, harmless = 0;
  for (int round = 0; round < 48; ++round) {
    std::string copy = pathOf("corrupt-" + std::to_string(round));
    fs::copy(artifact, copy, fs::copy_options::recursive);
    const std::string &file = files[rng() % files.size()];
    std::string path = copy + "/" + file;
    std::string bytes;
    {
      std::ifstream in(path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    ASSERT_FALSE(bytes.empty()) << file;
    int kind = int(rng() % 3);
    if (kind == 0)
      bytes[rng() % bytes.size()] ^= char(1u << (rng() % 8));
    else if (kind == 1)
      bytes.resize(rng() % bytes.size());
    else
      bytes.push_back(char(rng()));
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << bytes;
    }
    std::string problem;
    std::vector<float> logits = artifactLogits(copy, tokens, &problem);
    if (logits.empty()) {
      ++rejected;
      EXPECT_FALSE(problem.empty()) << file;
    } else {
      ++harmless;
      EXPECT_EQ(logits, intact) << file << " mutation " << kind
                                << " ran with different results";
    }
    fs::remove_all(copy);
  }
  EXPECT_GT(rejected, 40) << harmless << " harmless";
}

} // namespace
