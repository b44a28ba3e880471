//===- HfCheckpointFuzzer.cpp - Fuzz HF config.json and index parsing -----===//
//
// The input is a config.json, optionally followed by a line "#index" and a
// model.safetensors.index.json. Both are written into a directory that
// already holds the two shards of a small valid model (written once per
// process: quant-synth's tiny preset), and the directory is opened as a
// checkpoint: a config or index that lies about the shards must be refused
// with a message, not trusted.
//
//===----------------------------------------------------------------------===//
#include "FuzzSupport.h"

#include "qnt/io/Llama.h"
#include "qnt/io/SyntheticModel.h"

#include <filesystem>
#include <fstream>
#include <string_view>

namespace {

/// The checkpoint directory, created and filled on first use and removed at
/// exit. Never destroyed: the exit handler that removes the directory runs
/// after static destructors would have.
const std::string &checkpointDir() {
  static const std::string *dir = [] {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "qnt-fuzz-hf-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
      abort();
    // The model of the seed corpus (test/fuzz/make-seeds.py): quant-synth
    // --preset tiny --format hf --dtype f32 --shards 2 --seed 1.
    qnt::io::SyntheticModelOptions options;
    options.seed = 1;
    if (!qnt::io::syntheticPreset("tiny", &options.config))
      abort();
    std::string error;
    if (!qnt::io::writeSyntheticHf(pattern, options, qnt::io::DType::F32,
                                   /*numShards=*/2, nullptr, &error)) {
      fprintf(stderr, "cannot write the fuzz checkpoint: %s\n", error.c_str());
      abort();
    }
    std::atexit([] { std::filesystem::remove_all(checkpointDir()); });
    return new std::string(pattern);
  }();
  return *dir;
}

void writeFile(const std::string &path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), std::streamsize(text.size()));
  if (!out)
    abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string &dir = checkpointDir();
  std::string_view input(reinterpret_cast<const char *>(data), size);
  constexpr std::string_view separator = "\n#index\n";
  size_t split = input.find(separator);
  writeFile(dir + "/config.json", input.substr(0, split));
  std::string indexPath = dir + "/model.safetensors.index.json";
  if (split == std::string_view::npos)
    std::filesystem::remove(indexPath);
  else
    writeFile(indexPath, input.substr(split + separator.size()));

  std::string error;
  auto checkpoint = qnt::io::LlamaCheckpoint::open(dir, &error);
  if (!checkpoint) {
    if (error.empty())
      abort();
    return 0;
  }
  const qnt::io::LlamaConfig &config = checkpoint->config();
  if (!config.validate().empty())
    abort();
  // Every role resolves to a tensor of the expected shape inside its file.
  volatile uint64_t sum = 0;
  auto touch = [&](qnt::io::TensorRole role, int64_t layer) {
    auto [file, info] = checkpoint->lookup(role, layer);
    if (!file || !info || info->shape != qnt::io::expectedShape(config, role))
      abort();
    const uint8_t *bytes = file->data(*info);
    if (info->numBytes() && !bytes)
      abort();
    for (uint64_t i = 0; i < info->numBytes(); i += 61)
      sum = sum + bytes[i];
  };
  for (qnt::io::TensorRole role : qnt::io::kGlobalRoles)
    touch(role, -1);
  for (int64_t layer = 0; layer < config.nLayers; ++layer)
    for (qnt::io::TensorRole role : qnt::io::kLayerRoles)
      touch(role, layer);
  return 0;
}
