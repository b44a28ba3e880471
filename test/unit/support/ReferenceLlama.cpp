//===- ReferenceLlama.cpp - Plain fp32 LLaMA forward pass for tests -------===//
//
// A line-by-line transcription of llama2.c's run.c forward(): rmsnorm,
// matmul, RoPE, grouped-query attention over a KV cache, softmax, SwiGLU,
// residuals, final rmsnorm and classifier, with float accumulation
// throughout. Deliberately naive: the point is being obviously right.
//
//===----------------------------------------------------------------------===//

#include "ReferenceLlama.h"

#include "qnt/io/TensorFile.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

using namespace qnt::io;

namespace qnt::testing {
namespace {

[[noreturn]] void fail(const std::string &message) {
  std::fprintf(stderr, "ReferenceLlama: %s\n", message.c_str());
  std::abort();
}

/// IEEE 754 binary16 to float.
float halfToFloat(uint16_t h) {
  int sign = (h >> 15) & 1;
  int exponent = (h >> 10) & 0x1F;
  int mantissa = h & 0x3FF;
  float value;
  if (exponent == 0)
    value = std::ldexp(float(mantissa), -24); // zero or subnormal
  else if (exponent == 31)
    value = mantissa ? std::numeric_limits<float>::quiet_NaN()
                     : std::numeric_limits<float>::infinity();
  else
    value = std::ldexp(float(1024 + mantissa), exponent - 25);
  return sign ? -value : value;
}

/// bfloat16 to float: the top 16 bits of a float.
float bfloatToFloat(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

/// The tensor of `role` (of `layer`) as f32, row-major.
std::vector<float> loadF32(const LlamaCheckpoint &checkpoint, TensorRole role,
                           int64_t layer = -1) {
  auto [file, info] = checkpoint.lookup(role, layer);
  if (!file || !info)
    fail(std::string("no tensor for ") + roleName(role));
  const uint8_t *bytes = file->data(*info);
  if (!bytes)
    fail("tensor " + info->name + " lies outside its file");
  int64_t n = info->numElements();
  std::vector<int64_t> shape = expectedShape(checkpoint.config(), role);
  int64_t expected = 1;
  for (int64_t d : shape)
    expected *= d;
  if (n != expected)
    fail("tensor " + info->name + " has " + std::to_string(n) +
         " elements, expected " + std::to_string(expected));
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (info->dtype) {
    case DType::F32:
      std::memcpy(&out[i], bytes + 4 * i, 4);
      break;
    case DType::F64: {
      double d;
      std::memcpy(&d, bytes + 8 * i, 8);
      out[i] = float(d);
      break;
    }
    case DType::F16:
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = info->dtype == DType::F16 ? halfToFloat(h) : bfloatToFloat(h);
      break;
    }
    default:
      fail("tensor " + info->name + " has non-float dtype " +
           dtypeName(info->dtype));
    }
  }
  return out;
}

void rmsnorm(float *o, const float *x, const float *weight, int64_t size,
             float eps) {
  float ss = 0.0f;
  for (int64_t j = 0; j < size; ++j)
    ss += x[j] * x[j];
  ss /= size;
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  for (int64_t j = 0; j < size; ++j)
    o[j] = weight[j] * (ss * x[j]);
}

void softmax(float *x, int64_t size) {
  float maxVal = x[0];
  for (int64_t i = 1; i < size; ++i)
    if (x[i] > maxVal)
      maxVal = x[i];
  float sum = 0.0f;
  for (int64_t i = 0; i < size; ++i) {
    x[i] = expf(x[i] - maxVal);
    sum += x[i];
  }
  for (int64_t i = 0; i < size; ++i)
    x[i] /= sum;
}

/// W (d,n) @ x (n,) -> xout (d,).
void matmul(float *xout, const float *x, const float *w, int64_t n, int64_t d) {
  for (int64_t i = 0; i < d; ++i) {
    float val = 0.0f;
    for (int64_t j = 0; j < n; ++j)
      val += w[i * n + j] * x[j];
    xout[i] = val;
  }
}

/// Rotates the pair (v[a], v[b]) by the angle whose cosine/sine are given.
void rotate(float *v, int64_t a, int64_t b, float fcr, float fci) {
  float v0 = v[a];
  float v1 = v[b];
  v[a] = v0 * fcr - v1 * fci;
  v[b] = v0 * fci + v1 * fcr;
}

} // namespace

ReferenceLlama::ReferenceLlama(const LlamaCheckpoint &checkpoint)
    : config_(checkpoint.config()) {
  std::string problem = config_.validate();
  if (!problem.empty())
    fail("invalid config: " + problem);
  const LlamaConfig &c = config_;
  tokEmbeddings_ = loadF32(checkpoint, TensorRole::TokEmbeddings);
  finalNorm_ = loadF32(checkpoint, TensorRole::FinalNorm);
  classifier_ = loadF32(checkpoint, TensorRole::Classifier);
  classifierName_ = checkpoint.tensorName(TensorRole::Classifier);
  layers_.resize(c.nLayers);
  for (int64_t l = 0; l < c.nLayers; ++l) {
    Layer &layer = layers_[l];
    layer.attnNorm = loadF32(checkpoint, TensorRole::AttnNorm, l);
    layer.wq = loadF32(checkpoint, TensorRole::Wq, l);
    layer.wk = loadF32(checkpoint, TensorRole::Wk, l);
    layer.wv = loadF32(checkpoint, TensorRole::Wv, l);
    layer.wo = loadF32(checkpoint, TensorRole::Wo, l);
    layer.ffnNorm = loadF32(checkpoint, TensorRole::FfnNorm, l);
    layer.w1 = loadF32(checkpoint, TensorRole::W1, l);
    layer.w2 = loadF32(checkpoint, TensorRole::W2, l);
    layer.w3 = loadF32(checkpoint, TensorRole::W3, l);
    layer.wqName = checkpoint.tensorName(TensorRole::Wq, l);
    layer.wkName = checkpoint.tensorName(TensorRole::Wk, l);
    layer.wvName = checkpoint.tensorName(TensorRole::Wv, l);
    layer.woName = checkpoint.tensorName(TensorRole::Wo, l);
    layer.w1Name = checkpoint.tensorName(TensorRole::W1, l);
    layer.w2Name = checkpoint.tensorName(TensorRole::W2, l);
    layer.w3Name = checkpoint.tensorName(TensorRole::W3, l);
  }

  x_.assign(c.dim, 0.0f);
  xb_.assign(c.dim, 0.0f);
  xb2_.assign(c.dim, 0.0f);
  hb_.assign(c.hiddenDim, 0.0f);
  hb2_.assign(c.hiddenDim, 0.0f);
  q_.assign(c.dim, 0.0f);
  k_.assign(c.kvDim(), 0.0f);
  v_.assign(c.kvDim(), 0.0f);
  att_.assign(c.nHeads * c.maxSeqLen, 0.0f);
  logits_.assign(c.vocabSize, 0.0f);
  keyCache_.assign(c.nLayers * c.maxSeqLen * c.kvDim(), 0.0f);
  valueCache_.assign(c.nLayers * c.maxSeqLen * c.kvDim(), 0.0f);
}

void ReferenceLlama::record(const std::string &name,
                            const std::vector<float> &row) {
  if (capture)
    (*capture)[name].push_back(row);
}

const std::vector<float> &ReferenceLlama::forward(int32_t token, int64_t pos) {
  const LlamaConfig &c = config_;
  if (token < 0 || token >= c.vocabSize)
    fail("token " + std::to_string(token) + " out of range");
  if (pos < 0 || pos >= c.maxSeqLen)
    fail("position " + std::to_string(pos) + " out of range");

  const int64_t dim = c.dim;
  const int64_t kvDim = c.kvDim();
  const int64_t kvMul = c.nHeads / c.nKvHeads;
  const int64_t hiddenDim = c.hiddenDim;
  const int64_t headSize = c.headDim();
  const float eps = float(c.rmsEps);
  const float theta = float(c.ropeTheta);

  // Token embedding.
  std::memcpy(x_.data(), tokEmbeddings_.data() + token * dim,
              dim * sizeof(float));

  for (int64_t l = 0; l < c.nLayers; ++l) {
    const Layer &layer = layers_[l];

    // Attention rmsnorm.
    rmsnorm(xb_.data(), x_.data(), layer.attnNorm.data(), dim, eps);
    record(layer.wqName, xb_);
    record(layer.wkName, xb_);
    record(layer.wvName, xb_);

    // q, k, v for this position.
    matmul(q_.data(), xb_.data(), layer.wq.data(), dim, dim);
    matmul(k_.data(), xb_.data(), layer.wk.data(), dim, kvDim);
    matmul(v_.data(), xb_.data(), layer.wv.data(), dim, kvDim);

    // RoPE: q over all of dim, k over kv_dim.
    if (c.ropeStyle == RopeStyle::Interleaved) {
      for (int64_t i = 0; i < dim; i += 2) {
        int64_t headDim = i % headSize;
        float freq = 1.0f / powf(theta, headDim / (float)headSize);
        float val = pos * freq;
        float fcr = cosf(val);
        float fci = sinf(val);
        rotate(q_.data(), i, i + 1, fcr, fci);
        if (i < kvDim)
          rotate(k_.data(), i, i + 1, fcr, fci);
      }
    } else {
      int64_t half = headSize / 2;
      for (int64_t h = 0; h < c.nHeads; ++h) {
        for (int64_t i = 0; i < half; ++i) {
          float freq = 1.0f / powf(theta, (2 * i) / (float)headSize);
          float val = pos * freq;
          float fcr = cosf(val);
          float fci = sinf(val);
          int64_t a = h * headSize + i;
          rotate(q_.data(), a, a + half, fcr, fci);
          if (h < c.nKvHeads)
            rotate(k_.data(), a, a + half, fcr, fci);
        }
      }
    }

    // Save k and v in the cache.
    int64_t loff = l * c.maxSeqLen * kvDim;
    std::memcpy(keyCache_.data() + loff + pos * kvDim, k_.data(),
                kvDim * sizeof(float));
    std::memcpy(valueCache_.data() + loff + pos * kvDim, v_.data(),
                kvDim * sizeof(float));

    // Multi-head attention, kv head h / kvMul serving head h.
    for (int64_t h = 0; h < c.nHeads; ++h) {
      const float *q = q_.data() + h * headSize;
      float *att = att_.data() + h * c.maxSeqLen;
      for (int64_t t = 0; t <= pos; ++t) {
        const float *k =
            keyCache_.data() + loff + t * kvDim + (h / kvMul) * headSize;
        float score = 0.0f;
        for (int64_t i = 0; i < headSize; ++i)
          score += q[i] * k[i];
        score /= sqrtf(float(headSize));
        att[t] = score;
      }
      softmax(att, pos + 1);
      float *xb = xb_.data() + h * headSize;
      for (int64_t i = 0; i < headSize; ++i)
        xb[i] = 0.0f;
      for (int64_t t = 0; t <= pos; ++t) {
        const float *v =
            valueCache_.data() + loff + t * kvDim + (h / kvMul) * headSize;
        float a = att[t];
        for (int64_t i = 0; i < headSize; ++i)
          xb[i] += a * v[i];
      }
    }

    // Output projection and residual.
    record(layer.woName, xb_);
    matmul(xb2_.data(), xb_.data(), layer.wo.data(), dim, dim);
    for (int64_t i = 0; i < dim; ++i)
      x_[i] += xb2_[i];

    // FFN rmsnorm, SwiGLU, down projection and residual.
    rmsnorm(xb_.data(), x_.data(), layer.ffnNorm.data(), dim, eps);
    record(layer.w1Name, xb_);
    record(layer.w3Name, xb_);
    matmul(hb_.data(), xb_.data(), layer.w1.data(), dim, hiddenDim);
    matmul(hb2_.data(), xb_.data(), layer.w3.data(), dim, hiddenDim);
    for (int64_t i = 0; i < hiddenDim; ++i) {
      float val = hb_[i];
      val *= (1.0f / (1.0f + expf(-val)));
      val *= hb2_[i];
      hb_[i] = val;
    }
    record(layer.w2Name, hb_);
    matmul(xb_.data(), hb_.data(), layer.w2.data(), hiddenDim, dim);
    for (int64_t i = 0; i < dim; ++i)
      x_[i] += xb_[i];
  }

  // Final rmsnorm (in place, as run.c) and classifier.
  rmsnorm(x_.data(), x_.data(), finalNorm_.data(), dim, eps);
  record(classifierName_, x_);
  matmul(logits_.data(), x_.data(), classifier_.data(), dim, c.vocabSize);
  return logits_;
}

double ReferenceNll::perplexity() const {
  if (scored == 0)
    return std::numeric_limits<double>::quiet_NaN();
  return std::exp(sumNll / double(scored));
}

ReferenceNll referenceNll(ReferenceLlama &model,
                          const std::vector<std::vector<int32_t>> &documents,
                          int64_t context) {
  ReferenceNll result;
  if (context <= 0)
    return result;
  for (const std::vector<int32_t> &doc : documents) {
    int64_t n = int64_t(doc.size());
    for (int64_t b = 0; b < n; b += context) {
      int64_t e = b + context < n ? b + context : n;
      // Position j predicts token b + j + 1; the chunk's last token is
      // never fed since nothing in the chunk follows it.
      for (int64_t j = 0; b + j + 1 < e; ++j) {
        const std::vector<float> &logits = model.forward(doc[b + j], j);
        double maxLogit = logits[0];
        for (float l : logits)
          if (l > maxLogit)
            maxLogit = l;
        double sum = 0;
        for (float l : logits)
          sum += std::exp(double(l) - maxLogit);
        double logSumExp = maxLogit + std::log(sum);
        result.sumNll += logSumExp - double(logits[doc[b + j + 1]]);
        ++result.scored;
      }
    }
  }
  return result;
}

} // namespace qnt::testing
