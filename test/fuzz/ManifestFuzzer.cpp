//===- ManifestFuzzer.cpp - Fuzz the artifact manifest reader -------------===//
//
// The input is a manifest's text. It is parsed as it is (almost always
// refused for its checksum), then, when it is a JSON object, sealed with
// its correct checksum and parsed again, so that the validation of every
// field is reached. A manifest that parses must write back to text that
// parses to the same text.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Artifact.h"
#include "qnt/io/Checksum.h"

#include <cstdlib>
#include <string>

using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  qnt::io::ArtifactManifest raw;
  std::string error;
  (void)qnt::io::parseManifest(text, raw, &error);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    return 0;
  j[qnt::io::kManifestChecksumKey] =
      qnt::io::crc32cHex(qnt::io::manifestChecksum(j));
  std::string sealed = j.dump(-1, ' ', false, json::error_handler_t::replace);
  qnt::io::ArtifactManifest manifest;
  if (!qnt::io::parseManifest(sealed, manifest, &error)) {
    if (error.empty())
      abort(); // every refusal says why
    return 0;
  }
  std::string written = qnt::io::writeManifest(manifest);
  qnt::io::ArtifactManifest back;
  if (!qnt::io::parseManifest(written, back, &error) ||
      qnt::io::writeManifest(back) != written)
    abort();
  return 0;
}
