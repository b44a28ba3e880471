//===- SafetensorsFuzzer.cpp - Fuzz the safetensors reader ----------------===//
//
// Any byte string either fails to open with a message starting with the
// path, or opens into tensors that lie inside the mapping with exact sizes.
//
//===----------------------------------------------------------------------===//
#include "FuzzSupport.h"

#include "qnt/io/Safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  qnt::fuzz::MemoryFile file(data, size);
  std::string error;
  auto opened = qnt::io::SafetensorsFile::open(file.path(), &error);
  return qnt::fuzz::checkOpenedTensorFile(file, opened, error,
                                          [](const auto &) { return true; });
}
