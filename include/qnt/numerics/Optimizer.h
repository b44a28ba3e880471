//===- Optimizer.h - Adam/AdamW and learning-rate schedules -----*- C++ -*-===//
//
// The optimizer core of the learned-rounding and fine-tuning methods
// (../shared/docs/ALGORITHMS.md §15): Adam and AdamW with optional
// AMSGrad, parameter groups with their own learning rate, betas and weight
// decay, and the schedules the reference code uses (cosine decay to a floor,
// linear decay, linear warm-up; AdaRound's annealed beta). The update is
// PyTorch's torch.optim.Adam / AdamW step, in float like the reference's
// fp32 parameters, element by element: the result does not depend on the
// thread count, and with the deterministic draws of qnt/support/Random.h
// a run is reproducible from its seed. IR-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_OPTIMIZER_H
#define QNT_NUMERICS_OPTIMIZER_H

#include <cstdint>
#include <string>
#include <vector>

namespace qnt::numerics {

/// Hyper-parameters of one parameter group (PyTorch's defaults).
struct AdamOptions {
  double learningRate = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double epsilon = 1e-8;
  /// 0 by default, as in every reference in ALGORITHMS.md §15.
  double weightDecay = 0;
  /// AdamW: decay the parameter itself (p *= 1 - lr wd) instead of adding
  /// wd p to the gradient (Adam's L2 penalty).
  bool decoupledWeightDecay = false;
  /// Divide by the running maximum of the second moment (AQLM's codebook
  /// updates use it with betas (0, 0.95)).
  bool amsgrad = false;
};

/// Throws std::invalid_argument naming the bad field: learning rate,
/// epsilon and weight decay must be finite and >= 0, betas in [0, 1).
void validate(const AdamOptions &options);

/// A trainable tensor: `size` floats updated in place, and where its
/// gradient is read from at each step. Both stay owned by the caller.
struct Parameter {
  std::string name;
  float *values = nullptr;
  const float *gradient = nullptr;
  int64_t size = 0;
};

struct ParameterGroup {
  std::string name;
  AdamOptions options;
  std::vector<Parameter> parameters;
};

class Adam {
public:
  /// Validates every group's options and parameter (non-null, size >= 0);
  /// throws std::invalid_argument naming the group or parameter.
  explicit Adam(std::vector<ParameterGroup> groups);

  /// One update of every parameter from its current gradient, each group at
  /// its learning rate times `learningRateFactor` (a schedule's value).
  void step(double learningRateFactor = 1.0);

  /// Steps taken so far (PyTorch's `step` state; bias corrections use it).
  int64_t stepCount() const { return steps_; }
  const std::vector<ParameterGroup> &groups() const { return groups_; }

  /// The moments of parameter `index` of group `group` (tests, inspection):
  /// first, second, and AMSGrad's running maximum (empty without amsgrad).
  const std::vector<float> &firstMoment(size_t group, size_t index) const;
  const std::vector<float> &secondMoment(size_t group, size_t index) const;
  const std::vector<float> &maxSecondMoment(size_t group, size_t index) const;

  /// Bytes of optimizer state (2 or 3 floats per trainable element).
  int64_t stateBytes() const;

private:
  struct State {
    std::vector<float> m, v, vMax;
  };
  const State &state(size_t group, size_t index) const;

  std::vector<ParameterGroup> groups_;
  /// Per group, per parameter.
  std::vector<std::vector<State>> states_;
  int64_t steps_ = 0;
};

/// How a learning rate changes over `totalSteps` optimizer steps.
struct Schedule {
  enum class Kind {
    Constant,
    /// lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2 after the warm-up
    /// (torch's CosineAnnealingLR with T_max = T; FlexRound decays to 0).
    Cosine,
    /// From lr down to lr_min in a straight line after the warm-up.
    Linear,
  };
  Kind kind = Kind::Constant;
  int64_t totalSteps = 0;
  /// Steps of linear warm-up W (0 for none; the references use none): step
  /// s < W uses (s + 1) / (W + 1).
  int64_t warmupSteps = 0;
  /// lr_min as a fraction of the group's learning rate.
  double minFactor = 0;

  /// The factor of the group learning rates for step `step` (0-based: the
  /// first step uses factor(0) = 1 without warm-up). factor(totalSteps) and
  /// beyond is minFactor (torch's schedulers stepped T times).
  double factor(int64_t step) const;
};

/// Throws std::invalid_argument unless totalSteps >= 1 (for a decaying
/// schedule), 0 <= warmupSteps < totalSteps and minFactor in [0, 1].
void validate(const Schedule &schedule);

/// Parses "constant", "cosine" or "linear"; false for anything else.
bool parseScheduleKind(const std::string &text, Schedule::Kind &kind);
const char *scheduleKindName(Schedule::Kind kind);

/// AdaRound's annealed exponent of the rounding regularizer (its
/// LinearTempDecay): `start` until `warmupFraction` of `totalSteps`, then
/// linearly down to `end`. Steps count from 1, as the reference's counter
/// (incremented before use): step == totalSteps, the last, gives `end`.
/// PD-Quant and Brevitas use start 20, end 2, warm-up 0.2.
double annealedBeta(int64_t step, int64_t totalSteps, double start,
                    double end, double warmupFraction);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_OPTIMIZER_H
