//===- Artifact.cpp - The manifest of a deployable artifact ---------------===//
//
// See Artifact.h. Parsing never throws: every field is type-checked before
// it is read, and the first problem is reported with its JSON path.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/Artifact.h"
#include "qnt/io/Checksum.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

using namespace qnt::io;
using nlohmann::json;

const ArtifactEntry *ArtifactManifest::entry(const std::string &name) const {
  for (const ArtifactEntry &e : entries)
    if (e.name == name)
      return &e;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// CPU features
//===----------------------------------------------------------------------===//

namespace {
struct CheckedFeature {
  const char *name;
  bool (*present)();
};
} // namespace

// __builtin_cpu_supports takes a string literal, hence one lambda each.
#define QNT_FEATURE(name)                                                     \
  CheckedFeature { name, [] { return bool(__builtin_cpu_supports(name)); } }

static const std::vector<CheckedFeature> &checkedFeatures() {
  static const std::vector<CheckedFeature> features = {
#if defined(__x86_64__)
      QNT_FEATURE("x86-64-v2"),  QNT_FEATURE("x86-64-v3"),
      QNT_FEATURE("x86-64-v4"),  QNT_FEATURE("sse2"),       QNT_FEATURE("sse3"),
      QNT_FEATURE("ssse3"),      QNT_FEATURE("sse4.1"),
      QNT_FEATURE("sse4.2"),     QNT_FEATURE("popcnt"),
      QNT_FEATURE("avx"),        QNT_FEATURE("avx2"),
      QNT_FEATURE("fma"),        QNT_FEATURE("f16c"),
      QNT_FEATURE("bmi"),        QNT_FEATURE("bmi2"),
      QNT_FEATURE("avx512f"),    QNT_FEATURE("avx512bw"),
      QNT_FEATURE("avx512dq"),   QNT_FEATURE("avx512vl"),
      QNT_FEATURE("avx512cd"),   QNT_FEATURE("avx512vnni"),
      QNT_FEATURE("avx512vbmi"), QNT_FEATURE("avx512vbmi2"),
      QNT_FEATURE("avx512bf16"), QNT_FEATURE("avx512fp16"),
      QNT_FEATURE("avxvnni"),
#endif
  };
  return features;
}
#undef QNT_FEATURE

bool qnt::io::isCheckedCpuFeature(const std::string &feature) {
  for (const CheckedFeature &f : checkedFeatures())
    if (feature == f.name)
      return true;
  return false;
}

bool qnt::io::hostCpuHasFeature(const std::string &feature) {
  for (const CheckedFeature &f : checkedFeatures())
    if (feature == f.name)
      return f.present();
  return false;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//


uint32_t qnt::io::manifestChecksum(const json &manifest) {
  json j = manifest;
  if (j.is_object())
    j.erase(kManifestChecksumKey);
  // Invalid UTF-8 in a string is replaced, not thrown about: a corrupted
  // manifest is then refused for its checksum.
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return crc32c(text.data(), text.size());
}

static json typeJson(const ArtifactTensorType &type) {
  return {{"dtype", dtypeName(type.dtype)}, {"shape", type.shape}};
}

static json fileJson(const ArtifactFile &file) {
  return {{"path", file.path},
          {"bytes", file.bytes},
          {"crc32c", crc32cHex(file.crc32c)}};
}

static json modelJson(const LlamaConfig &c) {
  return {{"architecture", "llama"},
          {"dim", c.dim},
          {"hidden_dim", c.hiddenDim},
          {"n_layers", c.nLayers},
          {"n_heads", c.nHeads},
          {"n_kv_heads", c.nKvHeads},
          {"vocab_size", c.vocabSize},
          {"max_seq_len", c.maxSeqLen},
          {"rope_theta", c.ropeTheta},
          {"rms_eps", c.rmsEps},
          {"tied_embeddings", c.tiedEmbeddings},
          {"rope_style", c.ropeStyle == RopeStyle::Interleaved
                             ? "interleaved"
                             : "half-split"}};
}

std::string qnt::io::writeManifest(const ArtifactManifest &m) {
  json entries = json::array();
  for (const ArtifactEntry &e : m.entries) {
    json inputs = json::array(), params = json::array(),
         results = json::array();
    for (const ArtifactTensorType &t : e.inputs)
      inputs.push_back(typeJson(t));
    for (const auto &[name, t] : e.params) {
      json p = typeJson(t);
      p["name"] = name;
      params.push_back(p);
    }
    for (const ArtifactTensorType &t : e.results)
      results.push_back(typeJson(t));
    entries.push_back({{"name", e.name},
                       {"inputs", inputs},
                       {"params", params},
                       {"results", results}});
  }
  json images = json::array();
  for (const CpuImage &image : m.cpuImages)
    images.push_back({{"name", image.name},
                      {"file", fileJson(image.file)},
                      {"triple", image.triple},
                      {"cpu", image.cpu},
                      {"required_features", image.requiredFeatures},
                      {"openmp", image.openmp},
                      {"activations", image.activations},
                      {"threads", image.threads}});
  json out = {{"format", kArtifactFormatName},
              {"version", m.version},
              {"producer", m.producer},
              {"model", modelJson(m.model)},
              {"entries", entries},
              {"weights", fileJson(m.weights)},
              {"cpu_images", images},
              {"layers", m.layers},
              {"recipe", m.recipe}};
  if (m.tokenizer)
    out["tokenizer"] = fileJson(*m.tokenizer);
  if (m.cuda) {
    json cubins = json::array();
    for (const CudaCubin &cubin : m.cuda->cubins)
      cubins.push_back({{"chip", cubin.chip}, {"file", fileJson(cubin.file)}});
    out["cuda"] = {{"host", fileJson(m.cuda->host)},
                   {"host_triple", m.cuda->hostTriple},
                   {"cubins", cubins},
                   {"ptx", {{"chip", m.cuda->ptxChip},
                            {"file", fileJson(m.cuda->ptx)}}},
                   {"kernels", m.cuda->kernels}};
  }
  out[kManifestChecksumKey] = crc32cHex(manifestChecksum(out));
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

namespace {
/// An integer that fits int64_t (JSON's unsigned values above INT64_MAX
/// would wrap).
bool isInt64(const json &value) {
  return value.is_number_integer() &&
         !(value.is_number_unsigned() &&
           value.get<uint64_t>() > uint64_t(INT64_MAX));
}

/// Reads typed fields of JSON objects, remembering the first problem.
struct Reader {
  std::string error;

  bool fail(const std::string &path, const std::string &what) {
    if (error.empty())
      error = path + ": " + what;
    return false;
  }
  const json *field(const json &object, const std::string &path,
                    const char *key) {
    if (!object.is_object()) {
      fail(path, "must be an object");
      return nullptr;
    }
    auto it = object.find(key);
    if (it == object.end()) {
      fail(path, std::string("missing \"") + key + "\"");
      return nullptr;
    }
    return &*it;
  }
  bool string(const json &object, const std::string &path, const char *key,
              std::string &out) {
    const json *value = field(object, path, key);
    if (!value)
      return false;
    if (!value->is_string())
      return fail(path + "." + key, "must be a string");
    out = value->get<std::string>();
    return true;
  }
  bool integer(const json &object, const std::string &path, const char *key,
               int64_t &out) {
    const json *value = field(object, path, key);
    if (!value)
      return false;
    if (!isInt64(*value))
      return fail(path + "." + key, "must be an integer");
    out = value->get<int64_t>();
    return true;
  }
  bool number(const json &object, const std::string &path, const char *key,
              double &out) {
    const json *value = field(object, path, key);
    if (!value)
      return false;
    if (!value->is_number())
      return fail(path + "." + key, "must be a number");
    out = value->get<double>();
    return true;
  }
  bool boolean(const json &object, const std::string &path, const char *key,
               bool &out) {
    const json *value = field(object, path, key);
    if (!value)
      return false;
    if (!value->is_boolean())
      return fail(path + "." + key, "must be true or false");
    out = value->get<bool>();
    return true;
  }
  const json *array(const json &object, const std::string &path,
                    const char *key) {
    const json *value = field(object, path, key);
    if (value && !value->is_array()) {
      fail(path + "." + key, "must be an array");
      return nullptr;
    }
    return value;
  }

  bool tensorType(const json &j, const std::string &path,
                  ArtifactTensorType &type) {
    std::string dtype;
    if (!string(j, path, "dtype", dtype))
      return false;
    std::optional<DType> parsed = parseDType(dtype);
    if (!parsed)
      return fail(path + ".dtype", "unknown dtype \"" + dtype + "\"");
    type.dtype = *parsed;
    const json *shape = array(j, path, "shape");
    if (!shape)
      return false;
    type.shape.clear();
    for (const json &d : *shape) {
      if (!isInt64(d) || d.get<int64_t>() < -1)
        return fail(path + ".shape", "dimensions must be integers >= -1");
      type.shape.push_back(d.get<int64_t>());
    }
    return true;
  }
  bool file(const json &object, const std::string &path, const char *key,
            ArtifactFile &out) {
    const json *j = field(object, path, key);
    if (!j)
      return false;
    std::string where = path + "." + key;
    int64_t bytes;
    std::string crc;
    if (!string(*j, where, "path", out.path) ||
        !integer(*j, where, "bytes", bytes) ||
        !string(*j, where, "crc32c", crc))
      return false;
    if (bytes < 0)
      return fail(where + ".bytes", "must not be negative");
    out.bytes = uint64_t(bytes);
    if (out.path.empty() || out.path.front() == '/' ||
        out.path.find("..") != std::string::npos)
      return fail(where + ".path", "\"" + out.path +
                                       "\" must be a relative path inside "
                                       "the artifact");
    if (crc.size() != 8 ||
        !std::all_of(crc.begin(), crc.end(),
                     [](char c) { return std::isxdigit((unsigned char)c); }))
      return fail(where + ".crc32c", "must be 8 hexadecimal digits");
    out.crc32c = uint32_t(std::strtoul(crc.c_str(), nullptr, 16));
    return true;
  }
  bool model(const json &j, LlamaConfig &c) {
    const std::string path = "model";
    std::string architecture, rope;
    if (!string(j, path, "architecture", architecture))
      return false;
    if (architecture != "llama")
      return fail(path + ".architecture",
                  "unsupported architecture \"" + architecture + "\"");
    if (!integer(j, path, "dim", c.dim) ||
        !integer(j, path, "hidden_dim", c.hiddenDim) ||
        !integer(j, path, "n_layers", c.nLayers) ||
        !integer(j, path, "n_heads", c.nHeads) ||
        !integer(j, path, "n_kv_heads", c.nKvHeads) ||
        !integer(j, path, "vocab_size", c.vocabSize) ||
        !integer(j, path, "max_seq_len", c.maxSeqLen) ||
        !number(j, path, "rope_theta", c.ropeTheta) ||
        !number(j, path, "rms_eps", c.rmsEps) ||
        !boolean(j, path, "tied_embeddings", c.tiedEmbeddings) ||
        !string(j, path, "rope_style", rope))
      return false;
    if (rope == "interleaved")
      c.ropeStyle = RopeStyle::Interleaved;
    else if (rope == "half-split")
      c.ropeStyle = RopeStyle::HalfSplit;
    else
      return fail(path + ".rope_style", "unknown \"" + rope + "\"");
    if (std::string problem = c.validate(); !problem.empty())
      return fail(path, problem);
    return true;
  }
  bool entry(const json &j, const std::string &path, ArtifactEntry &e) {
    if (!string(j, path, "name", e.name))
      return false;
    const json *inputs = array(j, path, "inputs");
    const json *params = array(j, path, "params");
    const json *results = array(j, path, "results");
    if (!inputs || !params || !results)
      return false;
    for (size_t i = 0; i < inputs->size(); ++i) {
      ArtifactTensorType t;
      if (!tensorType((*inputs)[i], path + ".inputs[" + std::to_string(i) + "]",
                      t))
        return false;
      e.inputs.push_back(t);
    }
    for (size_t i = 0; i < params->size(); ++i) {
      std::string where = path + ".params[" + std::to_string(i) + "]";
      ArtifactTensorType t;
      std::string name;
      if (!string((*params)[i], where, "name", name) ||
          !tensorType((*params)[i], where, t))
        return false;
      for (int64_t d : t.shape)
        if (d < 0)
          return fail(where + ".shape", "a parameter's shape must be static");
      e.params.emplace_back(name, t);
    }
    for (size_t i = 0; i < results->size(); ++i) {
      ArtifactTensorType t;
      if (!tensorType((*results)[i],
                      path + ".results[" + std::to_string(i) + "]", t))
        return false;
      e.results.push_back(t);
    }
    return true;
  }
  bool chip(const json &j, const std::string &path, std::string &out) {
    if (!string(j, path, "chip", out))
      return false;
    if (out.size() < 4 || out.compare(0, 3, "sm_") != 0 ||
        !std::all_of(out.begin() + 3, out.end(),
                     [](char c) { return std::isalnum((unsigned char)c); }))
      return fail(path + ".chip", "\"" + out + "\" is not a chip name "
                                  "like sm_90");
    return true;
  }
  bool cuda(const json &j, CudaTarget &target) {
    const std::string path = "cuda";
    if (!j.is_object())
      return fail(path, "must be an object");
    if (!file(j, path, "host", target.host) ||
        !string(j, path, "host_triple", target.hostTriple) ||
        !integer(j, path, "kernels", target.kernels))
      return false;
    if (target.kernels < 0)
      return fail(path + ".kernels", "must not be negative");
    const json *cubins = array(j, path, "cubins");
    const json *ptx = field(j, path, "ptx");
    if (!cubins || !ptx)
      return false;
    for (size_t i = 0; i < cubins->size(); ++i) {
      std::string where = path + ".cubins[" + std::to_string(i) + "]";
      CudaCubin cubin;
      if (!(*cubins)[i].is_object())
        return fail(where, "must be an object");
      if (!chip((*cubins)[i], where, cubin.chip) ||
          !file((*cubins)[i], where, "file", cubin.file))
        return false;
      target.cubins.push_back(std::move(cubin));
    }
    if (!ptx->is_object())
      return fail(path + ".ptx", "must be an object");
    return chip(*ptx, path + ".ptx", target.ptxChip) &&
           file(*ptx, path + ".ptx", "file", target.ptx);
  }
  bool image(const json &j, const std::string &path, CpuImage &image) {
    if (!string(j, path, "name", image.name) ||
        !file(j, path, "file", image.file) ||
        !string(j, path, "triple", image.triple) ||
        !string(j, path, "cpu", image.cpu) ||
        !boolean(j, path, "openmp", image.openmp) ||
        !string(j, path, "activations", image.activations) ||
        !integer(j, path, "threads", image.threads))
      return false;
    const json *features = array(j, path, "required_features");
    if (!features)
      return false;
    for (const json &f : *features) {
      if (!f.is_string())
        return fail(path + ".required_features", "must be strings");
      image.requiredFeatures.push_back(f.get<std::string>());
    }
    return true;
  }
};
} // namespace

/// The deepest nesting of arrays and objects in JSON `text` (outside
/// strings). A manifest is a few levels deep; bounding it before parsing
/// keeps hostile input from exhausting the stack in the recursive copy and
/// dump of the checksum.
static int64_t nestingDepth(const std::string &text) {
  int64_t depth = 0, deepest = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    else if (c == '[' || c == '{')
      deepest = std::max(deepest, ++depth);
    else if (c == ']' || c == '}')
      --depth;
  }
  return deepest;
}

bool qnt::io::parseManifest(const std::string &text, ArtifactManifest &m,
                            std::string *error) {
  Reader r;
  constexpr int64_t kMaxDepth = 64;
  if (nestingDepth(text) > kMaxDepth) {
    if (error)
      *error = "manifest: nested deeper than " + std::to_string(kMaxDepth) +
               " levels";
    return false;
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto done = [&](bool ok) {
    if (!ok && error)
      *error = r.error.empty() ? "invalid manifest" : r.error;
    return ok;
  };
  if (j.is_discarded())
    return done(r.fail("manifest", "not valid JSON"));
  std::string format;
  if (!r.string(j, "manifest", "format", format))
    return done(false);
  if (format != kArtifactFormatName)
    return done(r.fail("manifest.format", "\"" + format + "\" is not \"" +
                                              kArtifactFormatName + "\""));
  if (!r.integer(j, "manifest", "version", m.version))
    return done(false);
  if (m.version != kArtifactFormatVersion)
    return done(r.fail("manifest.version",
                       "artifact format version " + std::to_string(m.version) +
                           ", this runtime reads version " +
                           std::to_string(kArtifactFormatVersion) +
                           "; compile the model again with this release"));
  const json *model = r.field(j, "manifest", "model");
  std::string checksum;
  if (!r.string(j, "manifest", kManifestChecksumKey, checksum))
    return done(false);
  if (checksum != crc32cHex(manifestChecksum(j)))
    return done(r.fail("manifest", "its content does not match its checksum "
                                   "(manifest_crc32c " + checksum +
                                   ", computed " +
                                   crc32cHex(manifestChecksum(j)) +
                                   "): the manifest is corrupted or was "
                                   "edited"));
  if (!r.string(j, "manifest", "producer", m.producer) || !model ||
      !r.model(*model, m.model) ||
      !r.file(j, "manifest", "weights", m.weights))
    return done(false);
  if (j.contains("tokenizer")) {
    m.tokenizer.emplace();
    if (!r.file(j, "manifest", "tokenizer", *m.tokenizer))
      return done(false);
  }
  const json *entries = r.array(j, "manifest", "entries");
  const json *images = r.array(j, "manifest", "cpu_images");
  if (!entries || !images)
    return done(false);
  for (size_t i = 0; i < entries->size(); ++i) {
    ArtifactEntry e;
    if (!r.entry((*entries)[i], "entries[" + std::to_string(i) + "]", e))
      return done(false);
    m.entries.push_back(std::move(e));
  }
  for (size_t i = 0; i < images->size(); ++i) {
    CpuImage image;
    if (!r.image((*images)[i], "cpu_images[" + std::to_string(i) + "]",
                 image))
      return done(false);
    m.cpuImages.push_back(std::move(image));
  }
  if (j.contains("cuda")) {
    m.cuda.emplace();
    if (!r.cuda(j["cuda"], *m.cuda))
      return done(false);
  }
  if (j.contains("layers"))
    m.layers = j["layers"];
  if (j.contains("recipe"))
    m.recipe = j["recipe"];
  return done(true);
}
