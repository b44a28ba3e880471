//===- Llama2cFuzzer.cpp - Fuzz the llama2.c checkpoint reader ------------===//
//
// A llama2.c header states sizes the rest of the file must match; a lying
// header must be refused before anything it implies is allocated.
//
//===----------------------------------------------------------------------===//
#include "FuzzSupport.h"

#include "qnt/io/Llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  qnt::fuzz::MemoryFile file(data, size);
  std::string error;
  auto opened = qnt::io::Llama2cFile::open(file.path(), &error);
  if (!opened) {
    if (error.rfind(file.path(), 0) != 0)
      abort();
    return 0;
  }
  if (!opened->config().validate().empty())
    abort(); // An opened checkpoint has a usable configuration.
  volatile uint64_t sum = qnt::fuzz::touchAllTensors(*opened);
  (void)sum;
  return 0;
}
