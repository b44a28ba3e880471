//===- quant-run-main.cpp - quant-run's LLVM-free front end ---------------===//
//
// `quant-run` runs deployable artifacts (quant-compile --target) itself,
// through libqnt_runtime, so that running one loads neither LLVM nor MLIR;
// for everything else (checkpoints, .mlir models, modules, --demo, --help)
// it executes `quant-run-jit` from its own directory with the same
// arguments. The artifact path reads the options that apply to an artifact
// (docs/Tools.md), with LLVM's spellings (--name=value, --name value, one
// or two dashes), and refuses the others.
//
//===----------------------------------------------------------------------===//

#include "ModelDrivers.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <unistd.h>
#include <vector>

using namespace qnt::run;

namespace {

/// One option of the artifact path: its name and what it sets.
struct ArtifactOption {
  const char *name;
  /// Null for a flag (--bench).
  std::function<bool(const std::string &value)> setValue;
  bool *flag = nullptr;
};

bool parseInteger(const std::string &text, int64_t &out) {
  if (text.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno || *end)
    return false;
  out = value;
  return true;
}

bool parseUnsigned(const std::string &text, uint64_t &out) {
  if (text.empty() || text[0] == '-')
    return false;
  char *end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno || *end)
    return false;
  out = value;
  return true;
}

bool parseFloat(const std::string &text, float &out) {
  if (text.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  float value = std::strtof(text.c_str(), &end);
  if (errno || *end)
    return false;
  out = value;
  return true;
}

std::vector<ArtifactOption> artifactOptions(ModelRunOptions &o,
                                            std::string &model) {
  auto text = [](std::string &field) {
    return [&field](const std::string &v) { return field = v, true; };
  };
  auto integer = [](int64_t &field) {
    return [&field](const std::string &v) { return parseInteger(v, field); };
  };
  return {
      {"model", text(model)},
      {"perplexity", text(o.perplexityText)},
      {"perplexity-tokens", text(o.perplexityTokens)},
      {"context", integer(o.context)},
      {"generate", text(o.prompt)},
      {"generate-tokens", text(o.promptTokens)},
      {"steps", integer(o.steps)},
      {"temperature",
       [&o](const std::string &v) { return parseFloat(v, o.temperature); }},
      {"top-p", [&o](const std::string &v) { return parseFloat(v, o.topP); }},
      {"sample-seed",
       [&o](const std::string &v) { return parseUnsigned(v, o.sampleSeed); }},
      {"tokenizer", text(o.tokenizerPath)},
      {"cpu-threads", integer(o.cpuThreads)},
      {"image", text(o.image)},
      {"bench-prompt", integer(o.benchPrompt)},
      {"bench-decode", integer(o.benchDecode)},
      {"bench-rounds", integer(o.benchRounds)},
      {"bench", nullptr, &o.bench},
  };
}

/// Options of the JIT that a compiled artifact has no use for.
bool isCompileTimeOption(const std::string &name) {
  return name == "pass-pipeline" || name == "int8-activations" ||
         name == "huge-page-weights" || name == "gpu-loops-on-cpu";
}

/// "--name=value" or "-name" -> name and value (empty when not given).
bool splitOption(const std::string &arg, std::string &name,
                 std::string &value, bool &hasValue) {
  if (arg.size() < 2 || arg[0] != '-')
    return false;
  std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
  size_t eq = body.find('=');
  hasValue = eq != std::string::npos;
  name = body.substr(0, eq);
  value = hasValue ? body.substr(eq + 1) : "";
  return true;
}

/// The artifact named by --model or as the first positional argument, or
/// "" when the arguments name none (or ask for help).
std::string findArtifact(int argc, char **argv) {
  ModelRunOptions scratch;
  std::string model;
  std::vector<ArtifactOption> table = artifactOptions(scratch, model);
  std::string firstPositional;
  for (int i = 1; i < argc; ++i) {
    std::string name, value;
    bool hasValue;
    if (!splitOption(argv[i], name, value, hasValue)) {
      if (firstPositional.empty())
        firstPositional = argv[i];
      continue;
    }
    if (name == "help" || name == "help-hidden" || name == "h" ||
        name == "version")
      return "";
    if (name == "model") {
      std::string path = hasValue ? value : (i + 1 < argc ? argv[i + 1] : "");
      return isArtifact(path) ? path : "";
    }
    // Skip the separate value of an option known to take one.
    for (const ArtifactOption &option : table)
      if (name == option.name && option.setValue && !hasValue)
        ++i;
  }
  return isArtifact(firstPositional) ? firstPositional : "";
}

int runArtifactFromArguments(int argc, char **argv) {
  ModelRunOptions options;
  std::string model, positional;
  std::vector<ArtifactOption> table = artifactOptions(options, model);
  for (int i = 1; i < argc; ++i) {
    std::string name, value;
    bool hasValue;
    if (!splitOption(argv[i], name, value, hasValue)) {
      if (!positional.empty() || !model.empty()) {
        std::fprintf(stderr, "quant-run: unexpected argument '%s'\n", argv[i]);
        return 1;
      }
      positional = argv[i];
      continue;
    }
    if (isCompileTimeOption(name)) {
      std::fprintf(stderr,
                   "quant-run: --pass-pipeline, --int8-activations, "
                   "--huge-page-weights and --gpu-loops-on-cpu do not "
                   "apply to an artifact (its code was fixed by "
                   "quant-compile)\n");
      return 1;
    }
    const ArtifactOption *option = nullptr;
    for (const ArtifactOption &candidate : table)
      if (name == candidate.name)
        option = &candidate;
    if (!option) {
      std::fprintf(stderr,
                   "quant-run: unknown option '%s' for an artifact (see "
                   "docs/Tools.md; quant-run --help lists every option)\n",
                   argv[i]);
      return 1;
    }
    if (!option->setValue) {
      if (hasValue && value != "true" && value != "false" && value != "1" &&
          value != "0") {
        std::fprintf(stderr, "quant-run: --%s takes no value other than "
                             "true or false\n", option->name);
        return 1;
      }
      *option->flag = !hasValue || value == "true" || value == "1";
      continue;
    }
    if (!hasValue) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "quant-run: --%s needs a value\n", option->name);
        return 1;
      }
      value = argv[++i];
    }
    if (!option->setValue(value)) {
      std::fprintf(stderr, "quant-run: invalid value '%s' for --%s\n",
                   value.c_str(), option->name);
      return 1;
    }
  }
  std::string path = model.empty() ? positional : model;
  std::optional<ModelMode> mode = chooseModelMode(options);
  if (!mode)
    return 1;
  return runArtifact(path, *mode, options);
}

/// quant-run-jit in this executable's directory.
std::string jitPath() {
  std::vector<char> self(PATH_MAX + 1, '\0');
  ssize_t n = ::readlink("/proc/self/exe", self.data(), PATH_MAX);
  std::string path = n > 0 ? std::string(self.data(), size_t(n)) : "";
  size_t slash = path.rfind('/');
  return (slash == std::string::npos ? std::string(".")
                                     : path.substr(0, slash)) +
         "/quant-run-jit";
}

} // namespace

int main(int argc, char **argv) {
  if (!findArtifact(argc, argv).empty())
    return runArtifactFromArguments(argc, argv);
  std::string jit = jitPath();
  ::execv(jit.c_str(), argv);
  std::fprintf(stderr, "quant-run: cannot run %s: %s\n", jit.c_str(),
               std::strerror(errno));
  return 1;
}
