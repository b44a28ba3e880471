//===- Optimizer.cpp - Adam/AdamW and learning-rate schedules -------------===//
//
// See Optimizer.h. The step follows torch.optim.Adam's single-tensor
// implementation: the moments in float, the bias corrections in double
// (PyTorch computes them as Python floats), and
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace qnt::numerics {

static void require(bool condition, const std::string &message) {
  if (!condition)
    throw std::invalid_argument(message);
}

static bool isNonNegative(double x) { return std::isfinite(x) && x >= 0; }

void validate(const AdamOptions &options) {
  require(isNonNegative(options.learningRate),
          "Adam: the learning rate must be finite and >= 0");
  require(options.beta1 >= 0 && options.beta1 < 1,
          "Adam: beta1 must be in [0, 1)");
  require(options.beta2 >= 0 && options.beta2 < 1,
          "Adam: beta2 must be in [0, 1)");
  require(isNonNegative(options.epsilon),
          "Adam: epsilon must be finite and >= 0");
  require(isNonNegative(options.weightDecay),
          "Adam: the weight decay must be finite and >= 0");
}

Adam::Adam(std::vector<ParameterGroup> groups) : groups_(std::move(groups)) {
  for (const ParameterGroup &group : groups_) {
    try {
      validate(group.options);
    } catch (const std::invalid_argument &e) {
      throw std::invalid_argument(std::string(e.what()) + " (group '" +
                                  group.name + "')");
    }
    std::vector<State> states;
    for (const Parameter &p : group.parameters) {
      require(p.size >= 0 && (p.size == 0 || (p.values && p.gradient)),
              "Adam: parameter '" + p.name + "' of group '" + group.name +
                  "' has no values or gradient");
      State s;
      s.m.assign(p.size, 0.0f);
      s.v.assign(p.size, 0.0f);
      if (group.options.amsgrad)
        s.vMax.assign(p.size, 0.0f);
      states.push_back(std::move(s));
    }
    states_.push_back(std::move(states));
  }
}

/// One Adam update of `n` elements.
static void updateTensor(const AdamOptions &o, double lr, double bias1,
                         double bias2Sqrt, float *p, const float *g,
                         float *m, float *v, float *vMax, int64_t n) {
  // 1 - beta in double, then rounded, as torch (its betas are Python
  // floats): 1.0f - 0.999f is 1.7e-5 away from float(0.001) relatively.
  const float beta2 = float(o.beta2);
  const float oneMinusBeta1 = float(1.0 - o.beta1);
  const float oneMinusBeta2 = float(1.0 - o.beta2);
  const float decay = float(o.weightDecay);
  const float shrink = float(1.0 - lr * o.weightDecay);
  const float stepSize = float(lr / bias1);
  const float bias2SqrtF = float(bias2Sqrt);
  const float eps = float(o.epsilon);
  const bool l2 = o.weightDecay != 0 && !o.decoupledWeightDecay;
  const bool decoupled = o.weightDecay != 0 && o.decoupledWeightDecay;
  // Each element on its own: any split over threads gives the same bytes.
#pragma omp parallel for schedule(static) if (n >= (int64_t(1) << 16))
  for (int64_t i = 0; i < n; ++i) {
    float grad = g[i];
    if (l2)
      grad += decay * p[i];
    if (decoupled)
      p[i] *= shrink;
    m[i] += (grad - m[i]) * oneMinusBeta1; // torch: exp_avg.lerp_
    v[i] = v[i] * beta2 + oneMinusBeta2 * grad * grad;
    float second = v[i];
    if (vMax) {
      vMax[i] = std::max(vMax[i], v[i]);
      second = vMax[i];
    }
    float denom = std::sqrt(second) / bias2SqrtF + eps;
    p[i] -= stepSize * (m[i] / denom);
  }
}

void Adam::step(double learningRateFactor) {
  require(std::isfinite(learningRateFactor) && learningRateFactor >= 0,
          "Adam: the learning-rate factor must be finite and >= 0");
  ++steps_;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const AdamOptions &o = groups_[gi].options;
    const double lr = o.learningRate * learningRateFactor;
    const double bias1 = 1.0 - std::pow(o.beta1, double(steps_));
    const double bias2Sqrt = std::sqrt(1.0 - std::pow(o.beta2, double(steps_)));
    for (size_t pi = 0; pi < groups_[gi].parameters.size(); ++pi) {
      const Parameter &p = groups_[gi].parameters[pi];
      State &s = states_[gi][pi];
      updateTensor(o, lr, bias1, bias2Sqrt, p.values, p.gradient, s.m.data(),
                   s.v.data(), s.vMax.empty() ? nullptr : s.vMax.data(),
                   p.size);
    }
  }
}

const Adam::State &Adam::state(size_t group, size_t index) const {
  require(group < states_.size() && index < states_[group].size(),
          "Adam: no parameter " + std::to_string(index) + " in group " +
              std::to_string(group));
  return states_[group][index];
}

const std::vector<float> &Adam::firstMoment(size_t group, size_t index) const {
  return state(group, index).m;
}
const std::vector<float> &Adam::secondMoment(size_t group,
                                             size_t index) const {
  return state(group, index).v;
}
const std::vector<float> &Adam::maxSecondMoment(size_t group,
                                                size_t index) const {
  return state(group, index).vMax;
}

int64_t Adam::stateBytes() const {
  int64_t bytes = 0;
  for (const std::vector<State> &states : states_)
    for (const State &s : states)
      bytes += int64_t(s.m.size() + s.v.size() + s.vMax.size()) *
               int64_t(sizeof(float));
  return bytes;
}

//===----------------------------------------------------------------------===//
// Schedules
//===----------------------------------------------------------------------===//

void validate(const Schedule &schedule) {
  require(schedule.kind == Schedule::Kind::Constant ||
              schedule.totalSteps >= 1,
          "schedule: a decaying schedule needs at least 1 step");
  require(schedule.warmupSteps >= 0 &&
              (schedule.warmupSteps == 0 ||
               schedule.warmupSteps < schedule.totalSteps),
          "schedule: the warm-up must be shorter than the schedule");
  require(schedule.minFactor >= 0 && schedule.minFactor <= 1,
          "schedule: the minimum factor must be in [0, 1]");
}

double Schedule::factor(int64_t step) const {
  step = std::max<int64_t>(step, 0);
  if (step < warmupSteps)
    return double(step + 1) / double(warmupSteps + 1);
  if (kind == Kind::Constant)
    return 1.0;
  // Progress through the decay: 0 at its first step, 1 at totalSteps.
  const double span = double(totalSteps - warmupSteps);
  if (span <= 0) // an unvalidated schedule without steps: no decay
    return 1.0;
  const double t = std::min(double(step - warmupSteps) / span, 1.0);
  const double shape = kind == Kind::Cosine
                           ? 0.5 * (1.0 + std::cos(M_PI * t))
                           : 1.0 - t;
  return minFactor + (1.0 - minFactor) * shape;
}

bool parseScheduleKind(const std::string &text, Schedule::Kind &kind) {
  for (Schedule::Kind k : {Schedule::Kind::Constant, Schedule::Kind::Cosine,
                           Schedule::Kind::Linear})
    if (text == scheduleKindName(k)) {
      kind = k;
      return true;
    }
  return false;
}

const char *scheduleKindName(Schedule::Kind kind) {
  switch (kind) {
  case Schedule::Kind::Constant:
    return "constant";
  case Schedule::Kind::Cosine:
    return "cosine";
  case Schedule::Kind::Linear:
    return "linear";
  }
  return "?";
}

double annealedBeta(int64_t step, int64_t totalSteps, double start,
                    double end, double warmupFraction) {
  const double decayStart = warmupFraction * double(totalSteps);
  if (double(step) < decayStart)
    return start;
  const double span = double(totalSteps) - decayStart;
  const double t = span > 0 ? (double(step) - decayStart) / span : 1.0;
  return end + (start - end) * std::max(0.0, 1.0 - t);
}

} // namespace qnt::numerics
