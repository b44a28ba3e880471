//===- SyntheticModel.cpp - Deterministic LLaMA-shaped checkpoints --------===//
//
// Random numbers come from xoshiro256** seeded through splitmix64, and every
// distribution is built here from uniform bits rather than taken from
// <random>, whose distributions differ between standard libraries. The
// Student-t(4) default uses only +, -, *, / and sqrt, which IEEE arithmetic
// rounds exactly; the normals (embedding, norms) and other dofs also call
// log and expm1, whose last bit may differ between libm implementations.
//
// A tensor is cut into blocks of kBlockSize elements, each drawn from its own
// generator seeded from (seed, role, layer, block). Blocks are independent,
// so they are generated on all hardware threads and the result does not
// depend on how many there are. The dof = 4 default has a sqrt-only
// sampler (Bailey's polar method, whose W^(-2/dof) is then 1/sqrt(W)) at
// about 10 ns per weight on one core, so the 6.7e9 weights of a 7B model
// take a little over a minute of CPU time, plus the conversion and the
// write; other dofs need a log and an exp per weight (about 3x slower).
//
// The thread count never changes the bytes. FMA contraction (GCC's default
// on targets with FMA instructions, e.g. AArch64) may change the last bit of
// a draw, so bytes can differ between architectures.
//
//===----------------------------------------------------------------------===//

#include "qnt/io/SyntheticModel.h"

#include "FileUtil.h"
#include "qnt/io/Llama2c.h"
#include "qnt/io/Safetensors.h"
#include "qnt/support/Random.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <new>
#include <thread>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace qnt::io {

namespace {

//===----------------------------------------------------------------------===//
// Random numbers
//===----------------------------------------------------------------------===//

using Rng = Xoshiro256;

/// Seed tags for draws that are not tensors.
constexpr uint64_t kOutlierTag = 0x6F75746C69657273ull; // "outliers"

uint64_t tensorSeed(uint64_t seed, TensorRole role, int64_t layer) {
  uint64_t h = mix64(seed);
  h = hashCombine(h, uint64_t(role) + 1);
  return hashCombine(h, uint64_t(layer + 1));
}

//===----------------------------------------------------------------------===//
// Floating-point rounding
//===----------------------------------------------------------------------===//

uint32_t floatBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  return x;
}

float bitsFloat(uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}

/// Round to nearest even; NaN stays NaN (quietened), overflow gives inf.
uint16_t floatToBf16(float f) {
  const uint32_t x = floatBits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u)
    return uint16_t((x >> 16) | 0x40);
  return uint16_t((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

float bf16ToFloat(uint16_t h) { return bitsFloat(uint32_t(h) << 16); }

/// IEEE binary16, round to nearest even, subnormals included.
uint16_t floatToF16(float f) {
  const uint32_t x = floatBits(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) // inf, NaN (quietened)
    return uint16_t(sign | 0x7C00u |
                    (abs > 0x7F800000u ? 0x200u | ((abs >> 13) & 0x3FFu) : 0));
  if (abs >= 0x477FF000u) // >= 65520: rounds to inf
    return uint16_t(sign | 0x7C00u);
  const uint32_t exponent = abs >> 23;
  uint32_t mantissa, shift, base;
  if (exponent >= 113) {
    // Normal half: rebias the exponent, keep 10 mantissa bits.
    mantissa = abs & 0x7FFFFFu;
    base = (exponent - 112) << 10;
    shift = 13;
  } else {
    // Subnormal half (in units of 2^-24) or zero.
    if (exponent < 102) // below 2^-25: rounds to zero
      return sign;
    mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    base = 0;
    shift = 126 - exponent;
  }
  uint32_t q = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1)))
    ++q; // a carry into the exponent is the right result
  return uint16_t(sign | (base + q));
}

float f16ToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1F;
  const uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F)
    return bitsFloat(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    // Subnormal: mantissa * 2^-24, exact in float.
    float v = float(mantissa) * 0x1p-24f;
    return sign ? -v : v;
  }
  return bitsFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

float roundValue(float f, DType dtype) {
  switch (dtype) {
  case DType::BF16:
    return bf16ToFloat(floatToBf16(f));
  case DType::F16:
    return f16ToFloat(floatToF16(f));
  default:
    return f;
  }
}

bool isWeightDType(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

//===----------------------------------------------------------------------===//
// Samplers
//===----------------------------------------------------------------------===//

/// Values beyond this many standard units are clamped: Student-t tails are
/// unbounded and a single huge weight would make every test brittle.
constexpr double kMaxSigma = 50.0;

/// Candidate points drawn per batch by the polar samplers.
constexpr int kBatch = 256;

/// Points uniform in the unit disk (without its centre) for the polar
/// methods: draws kBatch candidates and keeps those inside, writing u, v and
/// W = u^2 + v^2; returns how many (78.5% on average). Compacting without a
/// branch per candidate avoids the mispredictions of a rejection loop and
/// leaves the samplers a straight loop over the kept points.
int diskPoints(Rng &rng, double *u, double *v, double *w) {
  int kept = 0;
  for (int k = 0; k < kBatch; ++k) {
    double x, y;
    rng.uniformPair(&x, &y);
    const double r2 = x * x + y * y;
    u[kept] = x;
    v[kept] = y;
    w[kept] = r2;
    kept += int(r2 < 1.0) & int(r2 > 0.0);
  }
  return kept;
}

/// Marsaglia's polar method: two normals per point.
void fillNormal(Rng &rng, float *out, int64_t count, double mean,
                double stddev) {
  double u[kBatch], v[kBatch], w[kBatch];
  int64_t i = 0;
  while (i < count) {
    const int kept = diskPoints(rng, u, v, w);
    for (int k = 0; k < kept && i < count; ++k) {
      const double f = stddev * std::sqrt(-2.0 * std::log(w[k]) / w[k]);
      out[i++] = float(mean + u[k] * f);
      if (i < count)
        out[i++] = float(mean + v[k] * f);
    }
  }
}

/// Bailey's polar method (Math. Comp. 62, 1994): for a point (u, v) uniform
/// in the unit disk with W = u^2 + v^2, u * sqrt(dof (W^(-2/dof) - 1) / W)
/// is Student-t with `dof` degrees of freedom. One variate per point: v's
/// twin shares the radius and would make neighbours dependent.
void fillStudentT(Rng &rng, float *out, int64_t count, double dof,
                  double scale) {
  double u[kBatch], v[kBatch], w[kBatch];
  const double exponent = -2.0 / dof;
  int64_t i = 0;
  while (i < count) {
    const int kept = diskPoints(rng, u, v, w);
    const int take = int(std::min<int64_t>(kept, count - i));
    float *dst = out + i;
    if (dof == 4.0) {
      // dof (W^(-2/dof) - 1) = 4 (1 - s) / s with s = sqrt(W): no log or
      // pow.
      int k = 0;
#ifdef __SSE2__
      // The same IEEE operations two at a time (std::sqrt's errno handling
      // keeps the compiler from vectorizing the scalar loop).
      const __m128d one = _mm_set1_pd(1.0), four = _mm_set1_pd(4.0);
      const __m128d lo = _mm_set1_pd(-kMaxSigma), hi = _mm_set1_pd(kMaxSigma);
      const __m128d vscale = _mm_set1_pd(scale);
      for (; k + 2 <= take; k += 2) {
        const __m128d wk = _mm_loadu_pd(w + k);
        const __m128d s = _mm_sqrt_pd(wk);
        const __m128d r =
            _mm_div_pd(_mm_mul_pd(four, _mm_sub_pd(one, s)), _mm_mul_pd(s, wk));
        __m128d t = _mm_mul_pd(_mm_loadu_pd(u + k), _mm_sqrt_pd(r));
        t = _mm_min_pd(_mm_max_pd(t, lo), hi);
        const __m128 f = _mm_cvtpd_ps(_mm_mul_pd(t, vscale));
        dst[k] = _mm_cvtss_f32(f);
        dst[k + 1] = _mm_cvtss_f32(_mm_shuffle_ps(f, f, 1));
      }
#endif
      for (; k < take; ++k) {
        const double s = std::sqrt(w[k]);
        double t = u[k] * std::sqrt(4.0 * (1.0 - s) / (s * w[k]));
        t = t < -kMaxSigma ? -kMaxSigma : (t > kMaxSigma ? kMaxSigma : t);
        dst[k] = float(t * scale);
      }
    } else {
      for (int k = 0; k < take; ++k) {
        const double r2 = dof * std::expm1(exponent * std::log(w[k]));
        double t = u[k] * std::sqrt(r2 / w[k]);
        t = t < -kMaxSigma ? -kMaxSigma : (t > kMaxSigma ? kMaxSigma : t);
        dst[k] = float(t * scale);
      }
    }
    i += take;
  }
}

/// Elements per independently seeded block.
constexpr int64_t kBlockSize = int64_t(1) << 16;

/// Fills out[0, n) block by block, `fill(rng, out, count)` per block, then
/// rounds to `roundTo`. Uses every hardware thread for large tensors; the
/// result depends only on `seed`.
template <typename Fill>
void generate(float *out, int64_t n, uint64_t seed, DType roundTo,
              const Fill &fill) {
  const int64_t numBlocks = (n + kBlockSize - 1) / kBlockSize;
  auto runBlock = [&](int64_t block) {
    Rng rng(hashCombine(seed, uint64_t(block)));
    const int64_t begin = block * kBlockSize;
    const int64_t count = std::min(kBlockSize, n - begin);
    float *p = out + begin;
    fill(rng, p, count);
    // One loop per dtype so that the conversions inline.
    if (roundTo == DType::BF16) {
      for (int64_t i = 0; i < count; ++i)
        p[i] = bf16ToFloat(floatToBf16(p[i]));
    } else if (roundTo == DType::F16) {
      for (int64_t i = 0; i < count; ++i)
        p[i] = f16ToFloat(floatToF16(p[i]));
    }
  };
  const unsigned hw = std::thread::hardware_concurrency();
  const int64_t numThreads = std::min<int64_t>(hw ? hw : 1, numBlocks);
  if (numThreads <= 1) {
    for (int64_t b = 0; b < numBlocks; ++b)
      runBlock(b);
    return;
  }
  std::atomic<int64_t> nextBlock{0};
  auto worker = [&]() {
    for (int64_t b; (b = nextBlock.fetch_add(1)) < numBlocks;)
      runBlock(b);
  };
  std::vector<std::thread> pool;
  try {
    for (int64_t t = 1; t < numThreads; ++t)
      pool.emplace_back(worker);
  } catch (const std::exception &) {
    // Fewer threads (even none) only make it slower.
  }
  worker();
  for (std::thread &t : pool)
    t.join();
}

int64_t numElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > std::numeric_limits<int64_t>::max() / d))
      return -1;
    n *= d;
  }
  return n;
}

//===----------------------------------------------------------------------===//
// Checkpoint layout
//===----------------------------------------------------------------------===//

struct TensorItem {
  TensorRole role;
  int64_t layer;
  std::string name;
  std::vector<int64_t> shape;
  uint64_t numBytes;
};

/// The tensors of a Hugging Face checkpoint in file order: the embedding,
/// each layer's block, the final norm, the untied head.
std::vector<TensorItem> hfTensors(const LlamaConfig &config, DType dtype) {
  std::vector<TensorItem> items;
  auto add = [&](TensorRole role, int64_t layer) {
    std::vector<int64_t> shape = expectedShape(config, role);
    uint64_t bytes = uint64_t(numElements(shape)) * uint64_t(dtypeSize(dtype));
    items.push_back({role, layer, hfTensorName(role, layer), shape, bytes});
  };
  add(TensorRole::TokEmbeddings, -1);
  for (int64_t l = 0; l < config.nLayers; ++l)
    for (TensorRole role : kLayerRoles)
      add(role, l);
  add(TensorRole::FinalNorm, -1);
  if (!config.tiedEmbeddings)
    add(TensorRole::Classifier, -1);
  return items;
}

/// first[s] is the index of shard s's first tensor (first[numShards] = the
/// tensor count): consecutive runs whose byte sizes are as close as the
/// tensor boundaries allow to total / numShards, none empty.
std::vector<size_t> shardBoundaries(const std::vector<TensorItem> &items,
                                    size_t numShards) {
  std::vector<uint64_t> before(items.size() + 1, 0);
  for (size_t i = 0; i < items.size(); ++i)
    before[i + 1] = before[i] + items[i].numBytes;
  const long double total = (long double)before.back();
  std::vector<size_t> first(numShards + 1, 0);
  first[numShards] = items.size();
  for (size_t s = 1; s < numShards; ++s) {
    const long double target = total * (long double)s / (long double)numShards;
    // Keep at least one tensor in this shard and in each one after it.
    const size_t lo = first[s - 1] + 1;
    const size_t hi = items.size() - (numShards - s);
    size_t best = lo;
    for (size_t e = lo; e <= hi; ++e) {
      if (std::fabs((long double)before[e] - target) <
          std::fabs((long double)before[best] - target))
        best = e;
      if ((long double)before[e] >= target)
        break;
    }
    first[s] = best;
  }
  return first;
}

/// `name` for shard `index` (0-based) of `count`, as transformers names them.
std::string shardFileName(size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", index + 1,
                count);
  return buf;
}

/// Converts f32 values to `dtype`'s little-endian bytes, optionally with the
/// rows permuted Meta -> Hugging Face for `numHeads` heads.
void toHfBytes(const std::vector<float> &values, const TensorItem &item,
               int64_t numHeads, DType dtype, std::vector<uint8_t> *bytes) {
  const int64_t rows = item.shape.size() == 2 ? item.shape[0] : 1;
  const int64_t cols = item.shape.empty() ? 1 : item.shape.back();
  const int64_t size = dtypeSize(dtype);
  bytes->resize(size_t(rows * cols * size));
  const int64_t headDim = numHeads > 0 ? rows / numHeads : 0;
  for (int64_t r = 0; r < rows; ++r) {
    // rotate_half pairs (i, i + hd/2); Meta's rows pair (2i, 2i+1). The
    // conversion script's permute() puts Meta row 2i + p at HF row
    // p * hd/2 + i within each head.
    int64_t source = r;
    if (numHeads > 0) {
      const int64_t head = r / headDim, within = r % headDim;
      const int64_t p = within / (headDim / 2), i = within % (headDim / 2);
      source = head * headDim + 2 * i + p;
    }
    const float *src = values.data() + source * cols;
    uint8_t *dst = bytes->data() + r * cols * size;
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t bits;
      switch (dtype) {
      case DType::BF16:
        bits = floatToBf16(src[c]);
        dst[2 * c] = uint8_t(bits);
        dst[2 * c + 1] = uint8_t(bits >> 8);
        break;
      case DType::F16:
        bits = floatToF16(src[c]);
        dst[2 * c] = uint8_t(bits);
        dst[2 * c + 1] = uint8_t(bits >> 8);
        break;
      default:
        bits = floatBits(src[c]);
        for (int k = 0; k < 4; ++k)
          dst[4 * c + k] = uint8_t(bits >> (8 * k));
        break;
      }
    }
  }
}

bool writeTextAtomically(const std::string &path, const std::string &text,
                         std::string *error) {
  detail::AtomicFile file;
  std::string message;
  if (!file.create(path, &message)) {
    *error = path + ": " + message;
    return false;
  }
  int err = 0;
  if (!detail::writeAll(file.fd(), text.data(), text.size(), &err)) {
    *error = path + ": " + file.writeError(err);
    return false;
  }
  if (!file.commit(&message)) {
    *error = path + ": " + message;
    return false;
  }
  return true;
}

const char *torchDType(DType dtype) {
  switch (dtype) {
  case DType::BF16:
    return "bfloat16";
  case DType::F16:
    return "float16";
  default:
    return "float32";
  }
}

bool writeHf(const std::string &dir, const SyntheticModelOptions &options,
             DType dtype, int64_t numShards, const SyntheticProgress &progress,
             std::string *error) {
  const LlamaConfig &config = options.config;
  if (!isWeightDType(dtype)) {
    *error = dir + ": unsupported weight dtype " + dtypeName(dtype) +
             " (F32, F16 or BF16)";
    return false;
  }
  if (std::string problem = config.validate(); !problem.empty()) {
    *error = dir + ": invalid model configuration: " + problem;
    return false;
  }
  const std::vector<TensorItem> items = hfTensors(config, dtype);
  if (numShards < 1 || uint64_t(numShards) > items.size()) {
    *error = dir + ": the number of shards must be in [1, " +
             std::to_string(items.size()) + "] (one tensor at least per " +
             "shard), not " + std::to_string(numShards);
    return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = dir + ": cannot create directory: " + ec.message();
    return false;
  }

  // A stale file of the other layout would be opened instead of (or mixed
  // with) the new one: LlamaCheckpoint::open looks for the index first.
  const std::string single = dir + "/model.safetensors";
  const std::string indexPath = dir + "/model.safetensors.index.json";
  std::filesystem::remove(numShards == 1 ? indexPath : single, ec);

  const size_t shards = size_t(numShards);
  const std::vector<size_t> first = shardBoundaries(items, shards);
  nlohmann::json weightMap = nlohmann::json::object();
  uint64_t totalBytes = 0;
  int64_t done = 0;
  std::vector<uint8_t> bytes;
  for (size_t s = 0; s < shards; ++s) {
    const std::string fileName =
        shards == 1 ? "model.safetensors" : shardFileName(s, shards);
    const std::string path = dir + "/" + fileName;
    SafetensorsWriter writer;
    // Tensors go to an unlinked file next to the target, not to memory.
    if (!writer.setSpillDirectory(dir, error))
      return false;
    writer.setMetadata("format", "pt");
    for (size_t i = first[s]; i < first[s + 1]; ++i) {
      const TensorItem &item = items[i];
      std::vector<float> values =
          syntheticTensor(options, item.role, item.layer, dtype);
      if (values.size() != size_t(numElements(item.shape))) {
        *error = path + ": cannot generate tensor '" + item.name +
                 "' (out of memory?)";
        return false;
      }
      int64_t heads = 0;
      if (item.role == TensorRole::Wq)
        heads = config.nHeads;
      else if (item.role == TensorRole::Wk)
        heads = config.nKvHeads;
      toHfBytes(values, item, heads, dtype, &bytes);
      values = std::vector<float>(); // free before the copy into the spill
      std::string message;
      if (!writer.add(item.name, dtype, item.shape, bytes.data(), bytes.size(),
                      &message)) {
        *error = path + ": " + message;
        return false;
      }
      weightMap[item.name] = fileName;
      totalBytes += item.numBytes;
      ++done;
      if (progress)
        progress(done, int64_t(items.size()), totalBytes);
    }
    if (!writer.write(path, error))
      return false;
  }
  bytes = std::vector<uint8_t>();

  if (shards > 1) {
    nlohmann::ordered_json index;
    index["metadata"]["total_size"] = totalBytes;
    index["weight_map"] = weightMap; // sorted by name, as transformers does
    if (!writeTextAtomically(indexPath, index.dump(2) + "\n", error))
      return false;
  }

  // config.json last: the directory looks like a model only when complete.
  nlohmann::ordered_json cfg;
  cfg["architectures"] = {"LlamaForCausalLM"};
  cfg["model_type"] = "llama";
  cfg["hidden_size"] = config.dim;
  cfg["intermediate_size"] = config.hiddenDim;
  cfg["num_hidden_layers"] = config.nLayers;
  cfg["num_attention_heads"] = config.nHeads;
  cfg["num_key_value_heads"] = config.nKvHeads;
  cfg["vocab_size"] = config.vocabSize;
  cfg["max_position_embeddings"] = config.maxSeqLen;
  cfg["rms_norm_eps"] = config.rmsEps;
  cfg["rope_theta"] = config.ropeTheta;
  cfg["tie_word_embeddings"] = config.tiedEmbeddings;
  cfg["torch_dtype"] = torchDType(dtype);
  cfg["hidden_act"] = "silu";
  cfg["bos_token_id"] = 1;
  cfg["eos_token_id"] = 2;
  return writeTextAtomically(dir + "/config.json", cfg.dump(2) + "\n", error);
}

} // namespace

//===----------------------------------------------------------------------===//
// Public API
//===----------------------------------------------------------------------===//

bool syntheticPreset(const std::string &name, LlamaConfig *config) {
  LlamaConfig c;
  if (name == "tiny") {
    c.dim = 64, c.hiddenDim = 176, c.nLayers = 2, c.nHeads = 8, c.nKvHeads = 4,
    c.vocabSize = 512, c.maxSeqLen = 128;
  } else if (name == "small") {
    c.dim = 256, c.hiddenDim = 704, c.nLayers = 4, c.nHeads = 8, c.nKvHeads = 4,
    c.vocabSize = 1024, c.maxSeqLen = 256;
  } else if (name == "llama-7b" || name == "llama2-7b-gqa") {
    c.dim = 4096, c.hiddenDim = 11008, c.nLayers = 32, c.nHeads = 32,
    c.nKvHeads = name == "llama-7b" ? 32 : 8, c.vocabSize = 32000,
    c.maxSeqLen = 4096;
    c.tiedEmbeddings = false;
  } else {
    return false;
  }
  c.rmsEps = 1e-5;
  c.ropeTheta = 10000.0;
  *config = c;
  return true;
}

std::vector<int64_t>
syntheticOutlierChannels(const SyntheticModelOptions &options) {
  const int64_t dim = options.config.dim;
  const int64_t count = std::clamp<int64_t>(options.numOutlierChannels, 0,
                                            std::max<int64_t>(dim, 0));
  if (count == 0)
    return {};
  // A partial Fisher-Yates shuffle over a sparse map, so a large dim costs
  // nothing.
  Rng rng(hashCombine(mix64(options.seed), kOutlierTag));
  std::vector<std::pair<int64_t, int64_t>> swapped; // position -> value
  auto valueAt = [&](int64_t pos) {
    for (const auto &[p, v] : swapped)
      if (p == pos)
        return v;
    return pos;
  };
  auto setAt = [&](int64_t pos, int64_t value) {
    for (auto &[p, v] : swapped)
      if (p == pos) {
        v = value;
        return;
      }
    swapped.emplace_back(pos, value);
  };
  std::vector<int64_t> channels;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t j = k + int64_t(rng.below(uint64_t(dim - k)));
    const int64_t vj = valueAt(j), vk = valueAt(k);
    setAt(j, vk);
    setAt(k, vj);
    channels.push_back(vj);
  }
  std::sort(channels.begin(), channels.end());
  return channels;
}

std::vector<float> syntheticTensor(const SyntheticModelOptions &options,
                                   TensorRole role, int64_t layer,
                                   DType roundTo) {
  const LlamaConfig &config = options.config;
  if (!isWeightDType(roundTo) || !config.validate().empty())
    return {};
  if (isPerLayer(role)) {
    if (layer < 0 || layer >= config.nLayers)
      return {};
  } else {
    layer = -1;
  }
  // A tied classifier is the embedding.
  if (role == TensorRole::Classifier && config.tiedEmbeddings)
    role = TensorRole::TokEmbeddings;
  const std::vector<int64_t> shape = expectedShape(config, role);
  const int64_t n = numElements(shape);
  if (n < 0 || uint64_t(n) > std::numeric_limits<size_t>::max() / 4)
    return {};
  const uint64_t seed = tensorSeed(options.seed, role, layer);
  try {
    std::vector<float> values(static_cast<size_t>(n));
    switch (role) {
    case TensorRole::TokEmbeddings:
      // Unit-variance entries: rows of RMS ~1, like trained embeddings.
      generate(values.data(), n, seed, roundTo,
               [](Rng &rng, float *out, int64_t count) {
                 fillNormal(rng, out, count, 0.0, 1.0);
               });
      break;
    case TensorRole::Classifier: {
      const double stddev = 1.0 / std::sqrt(double(shape[1]));
      generate(values.data(), n, seed, roundTo,
               [stddev](Rng &rng, float *out, int64_t count) {
                 fillNormal(rng, out, count, 0.0, stddev);
               });
      break;
    }
    case TensorRole::AttnNorm:
    case TensorRole::FfnNorm:
    case TensorRole::FinalNorm: {
      generate(values.data(), n, seed, roundTo,
               [](Rng &rng, float *out, int64_t count) {
                 fillNormal(rng, out, count, 1.0, 0.1);
               });
      if (role != TensorRole::FinalNorm) {
        // The same channels in every layer, as in real models, where a few
        // hidden dimensions carry large activations throughout the network.
        const float gain = roundValue(float(options.outlierGain), roundTo);
        for (int64_t c : syntheticOutlierChannels(options))
          values[size_t(c)] = gain;
      }
      break;
    }
    default: {
      // Projection weights: Student-t with std 1/sqrt(fan_in).
      const double fanIn = double(shape.back());
      const double dof = options.tailDof;
      const bool gaussian = !(dof > 0.0) || !(dof <= 1e6);
      double scale = 1.0 / std::sqrt(fanIn);
      if (gaussian) {
        generate(values.data(), n, seed, roundTo,
                 [scale](Rng &rng, float *out, int64_t count) {
                   fillNormal(rng, out, count, 0.0, scale);
                 });
      } else {
        // The variance of t is dof / (dof - 2); it is infinite for dof <= 2,
        // where the raw variates are used.
        if (dof > 2.0)
          scale *= std::sqrt((dof - 2.0) / dof);
        generate(values.data(), n, seed, roundTo,
                 [scale, dof](Rng &rng, float *out, int64_t count) {
                   fillStudentT(rng, out, count, dof, scale);
                 });
      }
      break;
    }
    }
    return values;
  } catch (const std::bad_alloc &) {
    return {};
  }
}

bool writeSyntheticHf(const std::string &dir,
                      const SyntheticModelOptions &options, DType dtype,
                      int64_t numShards, const SyntheticProgress &progress,
                      std::string *error) {
  std::string message;
  bool ok;
  try {
    ok = writeHf(dir, options, dtype, numShards, progress, &message);
  } catch (const std::exception &e) {
    // Allocation (or the JSON library) failed; the progress callback may
    // throw too.
    message = dir + ": " + e.what();
    ok = false;
  }
  if (!ok && error)
    *error = message;
  return ok;
}

bool writeSyntheticLlama2c(const std::string &path,
                           const SyntheticModelOptions &options, int version,
                           DType roundTo, std::string *error) {
  if (!isWeightDType(roundTo)) {
    if (error)
      *error = path + ": unsupported rounding dtype " +
               std::string(dtypeName(roundTo)) + " (F32, F16 or BF16)";
    return false;
  }
  // syntheticTensor gives Meta's layout whatever the config's rope style.
  LlamaConfig config = options.config;
  config.ropeStyle = RopeStyle::Interleaved;
  SyntheticModelOptions meta = options;
  meta.config = config;
  try {
    return writeLlama2c(
        path, config, version,
        [&](TensorRole role, int64_t layer) {
          return syntheticTensor(meta, role, layer, roundTo);
        },
        error);
  } catch (const std::exception &e) {
    if (error)
      *error = path + ": " + e.what();
    return false;
  }
}

} // namespace qnt::io
