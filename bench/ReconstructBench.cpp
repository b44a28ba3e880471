//===- ReconstructBench.cpp - One block of learned rounding, timed --------===//
//
// reconstruct-bench --model M [--method flexround|adaround|ptq161]
//   [--sequences S]
//   [--tokens T] [--iterations N] [--bits B] [--group-size G]
//   [--evaluation-sequences E] [--json FILE]
// Trains block 0 of model M (a llama2.c .bin, a Hugging Face directory or
// a .mlir) as qnt-flexround / qnt-adaround / qnt-ptq161 do under a recipe
// (PTQ1.61 at its defaults: 20% salient channels at 4 bits, picked by a
// synthetic heavy-tailed activation absmax, lr 5e-4 and 1e-3): S sequences
// of T deterministic token ids, their embeddings as the block's inputs and
// the float block's outputs as targets (the first four computed, copied for
// the others), N Adam steps of one sequence each.
// Reports min/median/max seconds per step, the forward and adjoint shares,
// the compile time, the trainable elements and optimizer state, and the
// peak resident memory (the calibration inputs and targets included).
// The 7B-shaped block: quant-synth --preset llama-7b --layers 1
// --format llama2c --dtype f32.
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/bench/Report.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/numerics/Statistics.h"
#include "qnt/ptq/BlockReconstruction.h"
#include "qnt/runtime/ModelRunner.h"
#include "qnt/support/Random.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <sys/resource.h>

using namespace mlir;
namespace cl = llvm::cl;
namespace nx = ::qnt::numerics;
namespace rt = ::qnt::runtime;

static cl::opt<std::string> modelOpt("model", cl::desc("Model to train"),
                                     cl::Required);
static cl::opt<std::string> methodOpt("method",
                                      cl::desc("flexround, adaround or "
                                               "ptq161"),
                                      cl::init("flexround"));
static cl::opt<int64_t> sequencesOpt("sequences",
                                     cl::desc("Calibration sequences"),
                                     cl::init(128));
static cl::opt<int64_t> tokensOpt("tokens", cl::desc("Tokens per sequence"),
                                  cl::init(512));
static cl::opt<int64_t> iterationsOpt("iterations", cl::desc("Adam steps"),
                                      cl::init(5));
static cl::opt<int64_t> bitsOpt("bits", cl::desc("Bits per weight"),
                                cl::init(4));
static cl::opt<int64_t> groupOpt("group-size",
                                 cl::desc("Group size (0: per channel)"),
                                 cl::init(0));
static cl::opt<int64_t> evaluationOpt(
    "evaluation-sequences",
    cl::desc("Sequences the loss before and after is measured on"),
    cl::init(2));
static cl::opt<std::string> jsonOpt("json", cl::desc("Write results here"));

static int64_t peakRssBytes() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

static int fail(const std::string &message) {
  llvm::errs() << "reconstruct-bench: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "reconstruct-bench: one block of FlexRound, "
                              "AdaRound or PTQ1.61, timed\n");
  const bool salient = methodOpt == "ptq161";
  if (methodOpt != "flexround" && methodOpt != "adaround" && !salient)
    return fail("--method must be flexround, adaround or ptq161");
  if (sequencesOpt < 1 || tokensOpt < 1 || iterationsOpt < 1 ||
      bitsOpt < 2 || bitsOpt > 8 || groupOpt < 0 || evaluationOpt < 1)
    return fail("--sequences, --tokens, --iterations and "
                "--evaluation-sequences must be positive, --bits in 2..8, "
                "--group-size >= 0");
  ::qnt::registerAllPasses();
  DialectRegistry registry;
  ::qnt::registerAllDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();

  OwningOpRef<ModuleOp> model = mlir::qnt::loadModel(&ctx, modelOpt);
  if (!model)
    return 1;
  OwningOpRef<ModuleOp> runnerModule = model->clone();
  auto runner = rt::ModelRunner::create(*runnerModule);
  if (failed(runner))
    return 1;
  const ::qnt::io::LlamaConfig &config = (*runner)->config();
  if (tokensOpt > config.maxSeqLen)
    return fail(llvm::formatv("--tokens {0} exceeds the model's context of "
                              "{1}",
                              tokensOpt, config.maxSeqLen));

  // Inputs: embeddings of deterministic ids; targets: block 0's outputs,
  // computed for the first few sequences and copied for the others (the
  // values do not change the time of a step; the memory is all there).
  std::vector<rt::HostTensor> inputs, targets;
  ::qnt::Xoshiro256 random(7);
  const int64_t distinct = 4;
  for (int64_t s = 0; s < sequencesOpt; ++s) {
    if (s >= distinct) {
      // Real copies (a HostTensor copy shares its bytes).
      for (auto *list : {&inputs, &targets})
        list->push_back((*list)[s % distinct].deepCopy());
      continue;
    }
    std::vector<int32_t> ids(tokensOpt);
    for (int32_t &id : ids)
      id = int32_t(random.below(config.vocabSize));
    rt::HostTensor x, y;
    if (failed((*runner)->embed(ids, x)))
      return 1;
    y = x;
    if (failed((*runner)->block(0, y, 0)))
      return 1;
    inputs.push_back(std::move(x));
    targets.push_back(std::move(y));
  }
  // The block's linears, read as the float block has them bound.
  const char *const kinds[] = {"attention.wq", "attention.wk",
                               "attention.wv", "attention.wo",
                               "feed_forward.w1", "feed_forward.w3",
                               "feed_forward.w2"};
  auto store = mlir::qnt::ParamStore::open(*model);
  if (failed(store))
    return 1;
  std::vector<std::string> names;
  std::vector<std::vector<float>> weights;
  std::vector<mlir::qnt::LayerSettings> settings;
  std::vector<nx::WeightProblem> problems;
  nx::UniformSpec spec;
  spec.bits = int(bitsOpt);
  spec.symmetric = false;
  spec.granularity =
      groupOpt ? nx::Granularity::PerGroup : nx::Granularity::PerChannel;
  spec.groupSize = groupOpt;
  int64_t weightElements = 0;
  for (const char *kind : kinds) {
    std::string name = std::string("layers.0.") + kind + ".weight";
    RankedTensorType type = (*runner)->paramType(name);
    if (!type)
      return fail("the model has no parameter " + name);
    auto values = store->readAsF32(model->getLoc(), name, type);
    if (failed(values))
      return 1;
    names.push_back(name);
    weights.push_back(std::move(*values));
    settings.push_back({spec, {}});
    weightElements += type.getNumElements();
  }
  // PTQ1.61 picks its salient channels by the inputs' absmax: a
  // deterministic heavy-tailed one per layer (which channels are salient
  // does not change the time of a step).
  std::vector<nx::LayerStatistics> statistics(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    RankedTensorType type = (*runner)->paramType(names[i]);
    int64_t cols = type.getDimSize(1);
    nx::LayerStatistics &stats = statistics[i];
    stats.channels = cols;
    stats.count = 1;
    stats.absmax.resize(cols);
    for (float &a : stats.absmax)
      a = float(1.0 / (1e-3 + random.uniform()));
    problems.push_back({names[i], weights[i].data(), type.getDimSize(0), cols,
                        salient ? &stats : nullptr});
  }

  ::qnt::ptq::ReconstructionData data;
  data.sequences = inputs.size();
  data.input = [&](size_t s) { return FailureOr<rt::HostTensor>(inputs[s]); };
  data.target = [&](size_t s) {
    return FailureOr<rt::HostTensor>(targets[s]);
  };
  mlir::qnt::ReconstructionOptions options;
  options.method = salient ? mlir::qnt::LearnedRounding::SalientBinarization
                 : methodOpt == "flexround"
                     ? mlir::qnt::LearnedRounding::FlexRound
                     : mlir::qnt::LearnedRounding::AdaRound;
  options.iterations = iterationsOpt;
  // Each pass's default learning rate (qnt-ptq161's lr and rescale-lr).
  options.learningRate = salient                  ? 5e-4
                         : methodOpt == "flexround" ? 3e-3
                                                    : 1e-3;
  options.rescaleLearningRate = 1e-3;
  options.evaluationSequences = evaluationOpt;
  ::qnt::ptq::BlockReconstructor trainer(
      *model, "block0", data, [](int64_t step, int64_t steps, double loss) {
        std::fprintf(stderr, "\rstep %lld/%lld  loss %.4e",
                     (long long)step, (long long)steps, loss);
      });
  try {
    trainer.train(settings, problems, options);
  } catch (const std::exception &e) {
    return fail(e.what());
  }
  std::fprintf(stderr, "\n");
  const ::qnt::ptq::ReconstructionReport &r = trainer.report();
  std::vector<double> steps = r.stepSeconds;
  std::sort(steps.begin(), steps.end());
  double median = steps[steps.size() / 2];
  double training = r.forwardSeconds + r.adjointSeconds;
  std::string encoding =
      salient ? "20% salient channels int4 asym, the rest binarized"
              : nx::describe(spec);
  nlohmann::json result = {
      {"model", modelOpt.getValue()},
      {"shape", llvm::formatv("dim {0}, hidden {1}, heads {2} (kv {3})",
                              config.dim, config.hiddenDim, config.nHeads,
                              config.nKvHeads)
                    .str()},
      {"method", methodOpt.getValue()},
      {"encoding", encoding},
      {"sequences", sequencesOpt.getValue()},
      {"tokens", tokensOpt.getValue()},
      {"iterations", r.iterations},
      {"step_seconds_min", steps.front()},
      {"step_seconds_median", median},
      {"step_seconds_max", steps.back()},
      {"forward_share", training > 0 ? r.forwardSeconds / training : 0},
      {"adjoint_share", training > 0 ? r.adjointSeconds / training : 0},
      {"compile_seconds", r.compileSeconds},
      {"block_weights", weightElements},
      {"trainable_elements", r.trainableElements},
      {"optimizer_state_bytes", r.optimizerStateBytes},
      {"calibration_bytes",
       2 * sequencesOpt * tokensOpt * config.dim * int64_t(sizeof(float))},
      {"peak_rss_bytes", peakRssBytes()},
      {"initial_loss", r.initialLoss},
      {"final_loss", r.finalLoss}};
  std::printf("%s\n", result.dump(2).c_str());
  std::printf("%s block 0 (%s, %lld x %lld tokens): %.3f s/step median "
              "(min %.3f, max %.3f), forward %.0f%% / adjoint %.0f%%, "
              "compile %.1f s, peak RSS %.2f GiB; 500 steps: %.1f min\n",
              methodOpt.c_str(), encoding.c_str(),
              (long long)sequencesOpt.getValue(),
              (long long)tokensOpt.getValue(), median, steps.front(),
              steps.back(), 100 * double(result["forward_share"]),
              100 * double(result["adjoint_share"]), r.compileSeconds,
              double(peakRssBytes()) / double(1 << 30), 500 * median / 60);
  if (!jsonOpt.empty()) {
    std::string error;
    if (!::qnt::bench::writeJsonAtomically(jsonOpt, result, &error))
      return fail("cannot write " + jsonOpt + ": " + error);
  }
  return 0;
}
