//===- Recipe.cpp - Quantization recipes (YAML) ---------------------------===//
//
// Parsed with LLVM's YAML I/O; see Recipe.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/ptq/Recipe.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/YAMLTraits.h"
#include "llvm/Support/raw_ostream.h"

using namespace qnt::ptq;
using OptionMap = std::map<std::string, std::string>;

namespace llvm::yaml {

template <> struct CustomMappingTraits<OptionMap> {
  static void inputOne(IO &io, StringRef key, OptionMap &map) {
    io.mapRequired(key.str().c_str(), map[key.str()]);
  }
  static void output(IO &io, OptionMap &map) {
    for (auto &[key, value] : map)
      io.mapRequired(key.c_str(), value);
  }
};

template <> struct MappingTraits<RecipeCalibration> {
  static void mapping(IO &io, RecipeCalibration &c) {
    c.present = true;
    io.mapOptional("tokens", c.tokens);
    io.mapOptional("windows", c.windows);
    io.mapOptional("text", c.text);
    io.mapOptional("sequence-length", c.sequenceLength);
    io.mapOptional("num-sequences", c.numSequences);
    io.mapOptional("stream", c.stream);
    io.mapOptional("true-sequential", c.trueSequential);
    io.mapOptional("memory-budget-mb", c.memoryBudgetMb);
  }
  static std::string validate(IO &, RecipeCalibration &c) {
    if (c.tokens.empty() == c.text.empty())
      return "calibration needs exactly one of 'tokens' and 'text'";
    if (!c.windows.empty() && c.tokens.empty())
      return "calibration 'windows' index into 'tokens'";
    if (c.sequenceLength <= 0)
      return "calibration needs a positive 'sequence-length'";
    if (c.windows.empty() && c.numSequences <= 0)
      return "calibration needs 'windows' or a positive 'num-sequences'";
    if (c.stream != "quantized" && c.stream != "float")
      return "calibration 'stream' must be quantized or float";
    if (c.memoryBudgetMb < -1)
      return "calibration 'memory-budget-mb' must be -1 (no limit) or more";
    return "";
  }
};

template <> struct MappingTraits<RecipeSearch> {
  static void mapping(IO &io, RecipeSearch &s) {
    s.present = true;
    io.mapRequired("option", s.option);
    io.mapRequired("values", s.values);
    io.mapOptional("sequences", s.sequences);
  }
  static std::string validate(IO &, RecipeSearch &s) {
    if (s.option.empty())
      return "a search needs an 'option'";
    if (s.values.empty())
      return "a search needs at least one value";
    if (s.sequences <= 0)
      return "a search needs a positive number of 'sequences'";
    return "";
  }
};

template <> struct MappingTraits<RecipeStep> {
  static void mapping(IO &io, RecipeStep &s) {
    io.mapRequired("pass", s.pass);
    io.mapOptional("options", s.options);
    io.mapOptional("search", s.search);
  }
  static std::string validate(IO &, RecipeStep &s) {
    if (s.pass.empty())
      return "a step needs a 'pass'";
    if (s.search.present && s.options.count(s.search.option))
      return "option '" + s.search.option +
             "' is both given and searched";
    return "";
  }
};

template <> struct MappingTraits<Recipe> {
  static void mapping(IO &io, Recipe &r) {
    io.mapOptional("name", r.name);
    io.mapOptional("description", r.description);
    io.mapOptional("calibration", r.calibration);
    io.mapRequired("steps", r.steps);
  }
  static std::string validate(IO &, Recipe &r) {
    if (r.steps.empty())
      return "a recipe needs at least one step";
    return "";
  }
};

} // namespace llvm::yaml

LLVM_YAML_IS_SEQUENCE_VECTOR(RecipeStep)

bool qnt::ptq::readRecipe(const std::string &path, Recipe &recipe,
                          std::string *error) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    *error = path + ": " + buffer.getError().message();
    return false;
  }
  recipe = Recipe();
  recipe.text = (*buffer)->getBuffer().str();
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  auto handler = [](const llvm::SMDiagnostic &diag, void *context) {
    auto &out = *static_cast<llvm::raw_string_ostream *>(context);
    out << diag.getLineNo() << ":" << diag.getColumnNo() + 1 << ": "
        << diag.getMessage();
  };
  llvm::yaml::Input input((*buffer)->getBuffer(), nullptr, handler, &os);
  input >> recipe;
  if (input.error()) {
    *error = path + ":" + (diagnostics.empty() ? std::string(" invalid recipe")
                                               : diagnostics);
    return false;
  }
  // Paths are relative to the recipe file.
  llvm::SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  for (std::string *file : {&recipe.calibration.tokens,
                            &recipe.calibration.windows,
                            &recipe.calibration.text}) {
    if (file->empty() || llvm::sys::path::is_absolute(*file))
      continue;
    llvm::SmallString<256> resolved(dir);
    llvm::sys::path::append(resolved, *file);
    llvm::sys::path::remove_dots(resolved, /*remove_dot_dot=*/true);
    *file = resolved.str().str();
  }
  return true;
}

std::string qnt::ptq::stepPipeline(const RecipeStep &step,
                                   const OptionMap &extra) {
  std::string text = step.pass;
  OptionMap options = step.options;
  for (const auto &[key, value] : extra)
    options[key] = value;
  if (options.empty())
    return text;
  text += "{";
  bool first = true;
  for (const auto &[key, value] : options) {
    text += (first ? "" : " ") + key + "=";
    first = false;
    bool quote = value.find_first_of(" {}\",") != std::string::npos;
    text += quote ? "\"" + value + "\"" : value;
  }
  return text + "}";
}
