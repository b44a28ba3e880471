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
  if (!opened) {
    if (error.rfind(file.path(), 0) != 0)
      abort(); // Every message names the file.
    return 0;
  }
  volatile uint64_t sum = qnt::fuzz::touchAllTensors(*opened);
  (void)sum;
  return 0;
}
