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
  // An opened checkpoint has a usable configuration.
  return qnt::fuzz::checkOpenedTensorFile(
      file, opened, error, [](const qnt::io::Llama2cFile &f) {
        return f.config().validate().empty();
      });
}
