//===- GptqBench.cpp - GPTQ time and memory on LLaMA-7B-sized layers ------===//
//
// gptq-bench [--method gptq|aqlm] [--aqlm MxB:g] [--aqlm-phases P]
//            [--shapes NxK,...] [--tokens T] [--rounds R] [--json FILE]
// Times one layer's method on a random weight: runGPTQ (int4 g128 asym,
// act-order, blocksize 128), or AQLM's quantizeAdditive (M codebooks of
// 2^B words over groups of g, default 2x8:8, beam 1, at most P Adam phases
// of 100 steps, default 100, relative tolerance 0.01: the pass's
// defaults), with the Hessian of T synthetic tokens (default 128 x 2048): a
// heavy-tailed rank-64 latent with outlier channels plus isotropic noise,
// formed in closed form (D M^T Z^T Z M D + T s^2 I) since T rank-one
// updates of a 14336-wide Hessian would dominate the run. Reports
// min/median/max seconds over the rounds and the peak resident memory;
// AQLM prints each stage (k-means, Adam phase, beam pass) as it ends.
//
//===----------------------------------------------------------------------===//

#include "qnt/bench/Report.h"
#include "qnt/numerics/Aqlm.h"
#include "qnt/numerics/Gptq.h"

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <sys/resource.h>

using namespace qnt::numerics;

static int64_t peakRssBytes() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

static Eigen::MatrixXd syntheticHessian(int64_t k, int64_t tokens,
                                        unsigned seed) {
  const int64_t rank = 64;
  std::mt19937 rng(seed);
  std::student_t_distribution<double> heavy(3.0);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd z(4096, rank), m(rank, k);
  for (int64_t i = 0; i < z.size(); ++i)
    z.data()[i] = heavy(rng);
  for (int64_t i = 0; i < m.size(); ++i)
    m.data()[i] = normal(rng);
  // Z^T Z of 4096 sampled tokens, scaled to `tokens`.
  Eigen::MatrixXd gram = z.transpose() * z * (double(tokens) / 4096.0);
  Eigen::VectorXd d = Eigen::VectorXd::Ones(k);
  for (int64_t c = 0; c < k; c += 97)
    d[c] = 20.0; // outlier channels
  Eigen::MatrixXd dm = m * d.asDiagonal();
  Eigen::MatrixXd h = dm.transpose() * gram * dm;
  h.diagonal().array() += 0.1 * double(tokens);
  return h;
}

int main(int argc, char **argv) {
  std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096},
                                                     {4096, 14336}};
  int64_t tokens = 128 * 2048, rounds = 3, aqlmPhases = 100;
  std::string json, method = "gptq";
  CodebookSpec aqlmSpec{2, 8, 8};
  // Flags come in pairs; every number is range-checked (--tokens 1..2^31,
  // --rounds 1..1000, shapes NxK with 1 <= N, K <= 65536).
  if (argc % 2 == 0) {
    std::fprintf(stderr, "gptq-bench: %s needs a value\n", argv[argc - 1]);
    return 1;
  }
  auto number = [](const std::string &flag, const std::string &text,
                   int64_t lo, int64_t hi, int64_t *out) {
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(text, &used);
    } catch (const std::exception &) {
      used = 0;
    }
    if (used != text.size() || text.empty() || value < lo || value > hi) {
      std::fprintf(stderr, "gptq-bench: %s must be a whole number in [%lld, "
                           "%lld], got '%s'\n",
                   flag.c_str(), (long long)lo, (long long)hi, text.c_str());
      return false;
    }
    *out = value;
    return true;
  };
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--tokens") {
      if (!number(flag, value, 1, int64_t(1) << 31, &tokens))
        return 1;
    } else if (flag == "--rounds") {
      if (!number(flag, value, 1, 1000, &rounds))
        return 1;
    } else if (flag == "--json") {
      json = value;
    } else if (flag == "--method") {
      if (value != "gptq" && value != "aqlm") {
        std::fprintf(stderr,
                     "gptq-bench: --method must be gptq or aqlm, got '%s'\n",
                     value.c_str());
        return 1;
      }
      method = value;
    } else if (flag == "--aqlm-phases") {
      if (!number(flag, value, 1, 1000, &aqlmPhases))
        return 1;
    } else if (flag == "--aqlm") {
      size_t x = value.find('x'), colon = value.find(':');
      int64_t m = 0, bits = 0, group = 0;
      if (x == std::string::npos || colon == std::string::npos || colon < x) {
        std::fprintf(stderr,
                     "gptq-bench: --aqlm takes MxB:g (codebooks x code bits : "
                     "group), e.g. 2x8:8, got '%s'\n",
                     value.c_str());
        return 1;
      }
      if (!number("--aqlm M", value.substr(0, x), 1, 8, &m) ||
          !number("--aqlm B", value.substr(x + 1, colon - x - 1), 1, 16,
                  &bits) ||
          !number("--aqlm g", value.substr(colon + 1), 1, 64, &group))
        return 1;
      aqlmSpec = CodebookSpec{int(m), int(bits), group};
    } else if (flag == "--shapes") {
      shapes.clear();
      size_t start = 0;
      while (start < value.size()) {
        size_t end = value.find(',', start);
        std::string s = value.substr(start, end - start);
        size_t x = s.find('x');
        int64_t n = 0, k = 0;
        if (x == std::string::npos ||
            !number("--shapes N", s.substr(0, x), 1, 65536, &n) ||
            !number("--shapes K", s.substr(x + 1), 1, 65536, &k))
          return 1;
        shapes.emplace_back(n, k);
        start = end == std::string::npos ? value.size() : end + 1;
      }
    } else {
      std::fprintf(stderr, "gptq-bench: unknown flag %s\n", flag.c_str());
      return 1;
    }
  }
  nlohmann::json results = nlohmann::json::array();
  std::string config =
      method == "gptq"
          ? std::string("GPTQ int4 g128 asym act-order")
          : "AQLM " + std::to_string(aqlmSpec.numCodebooks) + "x" +
                std::to_string(aqlmSpec.codeBits) + " g" +
                std::to_string(aqlmSpec.groupSize) + ", beam 1, <= " +
                std::to_string(aqlmPhases) + " phases";
  for (auto [n, k] : shapes)
    if (method == "aqlm" && k % aqlmSpec.groupSize != 0) {
      std::fprintf(stderr,
                   "gptq-bench: the AQLM group %lld does not divide K = %lld\n",
                   (long long)aqlmSpec.groupSize, (long long)k);
      return 1;
    }
  std::printf("%-12s %8s %8s %8s %10s  (%s)\n", "N x K", "min s", "median s",
              "max s", "peak MiB", config.c_str());
  for (auto [n, k] : shapes) {
    Eigen::MatrixXd h = syntheticHessian(k, tokens, 1);
    std::mt19937 rng(2);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> w(n * k);
    for (float &v : w)
      v = normal(rng);
    UniformSpec spec{4, false, Granularity::PerGroup, 128};
    GptqOptions options;
    options.actOrder = true;
    AqlmOptions aqlm;
    aqlm.maxEpochs = int(aqlmPhases);
    // Each stage on the terminal as it ends (one layer can take hours), and
    // the first round's stages in the JSON.
    nlohmann::json stages = nlohmann::json::array();
    bool firstRound = true;
    aqlm.onStage = [&](const AqlmStage &stage) {
      static const char *names[] = {"k-means initialization",
                                    "codebook update (Adam)", "beam search"};
      std::fprintf(stderr, "  phase %3d  %-24s %9.2f s  objective %.6g\n",
                   stage.phase, names[stage.kind], stage.seconds,
                   stage.objective);
      if (firstRound)
        stages.push_back({{"phase", stage.phase},
                          {"stage", names[stage.kind]},
                          {"seconds", stage.seconds},
                          {"objective", stage.objective}});
    };
    // quantizeAdditive takes X^T X / T.
    Eigen::MatrixXd meanHessian =
        method == "aqlm" ? Eigen::MatrixXd(h / double(tokens))
                         : Eigen::MatrixXd();
    std::vector<double> seconds;
    for (int64_t r = 0; r < rounds; ++r) {
      auto begin = std::chrono::steady_clock::now();
      if (method == "gptq")
        runGPTQ(spec, options, w.data(), n, k, h);
      else
        quantizeAdditive(aqlmSpec, w.data(), n, k, meanHessian, aqlm);
      firstRound = false;
      seconds.push_back(std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - begin)
                            .count());
    }
    std::sort(seconds.begin(), seconds.end());
    double peak = peakRssBytes() / 1048576.0;
    std::printf("%5lldx%-6lld %8.2f %8.2f %8.2f %10.0f\n", (long long)n,
                (long long)k, seconds.front(), seconds[seconds.size() / 2],
                seconds.back(), peak);
    results.push_back({{"method", config},
                       {"rows", n},
                       {"cols", k},
                       {"tokens", tokens},
                       {"seconds_min", seconds.front()},
                       {"seconds_median", seconds[seconds.size() / 2]},
                       {"seconds_max", seconds.back()},
                       {"peak_rss_bytes", peakRssBytes()}});
    if (method == "aqlm")
      results.back()["stages"] = stages;
  }
  if (!json.empty()) {
    std::string error;
    if (!qnt::bench::writeJsonAtomically(json, {{method, results}}, &error)) {
      std::fprintf(stderr, "gptq-bench: %s\n", error.c_str());
      return 1;
    }
  }
  return 0;
}
