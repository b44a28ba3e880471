//===- TokenizerFuzzer.cpp - Fuzz the llama2.c tokenizer reader -----------===//
//
// The first two bytes choose the vocabulary size the model would state (the
// file does not store it); the rest is the tokenizer file. An opened
// tokenizer then encodes and decodes a fixed text and the file's own bytes.
//
//===----------------------------------------------------------------------===//
#include "FuzzSupport.h"

#include "qnt/io/Tokenizer.h"

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  int64_t vocabSize = int64_t(data[0]) | int64_t(data[1]) << 8;
  qnt::fuzz::MemoryFile file(data + 2, size - 2);
  std::string error;
  auto tokenizer = qnt::io::Tokenizer::open(file.path(), vocabSize, &error);
  if (!tokenizer) {
    if (error.rfind(file.path(), 0) != 0)
      abort();
    return 0;
  }
  std::string_view text(reinterpret_cast<const char *>(data), size);
  for (std::string_view sample :
       {std::string_view("Once upon a time, \xc3\xa9t\xc3\xa9  \n\t"),
        text.substr(0, 256)}) {
    std::vector<int32_t> ids = tokenizer->encode(sample, true, true);
    for (int32_t id : ids)
      if (id < 0 || id >= tokenizer->vocabSize())
        abort(); // encode() only produces ids of the vocabulary.
    volatile size_t length = tokenizer->decode(ids).size();
    (void)length;
  }
  return 0;
}
