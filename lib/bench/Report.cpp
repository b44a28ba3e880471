//===- Report.cpp - quant-bench results as a table and as JSON ------------===//

#include "qnt/bench/Report.h"

// QntIO's private file helpers (AtomicFile); QntBench links QntIO.
#include "lib/io/FileUtil.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <new>

namespace qnt::bench {

namespace {

std::string format(const char *fmt, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, value);
  return buf;
}

/// True for a derived figure that was computed (the "0 when none" fields).
bool present(double value) { return value > 0 && std::isfinite(value); }

/// `fmt` of `value`, or "-" when the figure is missing.
std::string formatOrDash(const char *fmt, double value) {
  return present(value) ? format(fmt, value) : "-";
}

nlohmann::json numberOrNull(double value) {
  return present(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

std::string streamSummary(const StreamResult &s) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "host STREAM (%d threads, %.0f MiB/array%s): copy %.2f, "
                "scale %.2f, add %.2f, triad %.2f, read %.2f GB/s",
                s.threads, static_cast<double>(s.bytesPerArray) / (1 << 20),
                s.valid ? "" : ", FAILED CHECK", s.copyGBs, s.scaleGBs,
                s.addGBs, s.triadGBs, s.readGBs);
  return buf;
}

} // namespace

void computeDerived(BenchRow &row, double boundGBs) {
  const double medianMs = row.time.samples > 0 ? row.time.medianMs : 0;
  row.effectiveGBs = 0;
  row.boundFraction = 0;
  row.speedupVsBaseline = 0;
  if (!present(medianMs))
    return;
  if (row.weightBytes > 0)
    row.effectiveGBs =
        static_cast<double>(row.weightBytes) / (medianMs * 1e-3) / 1e9;
  if (!row.roundFractions.empty())
    row.boundFraction = summarize(row.roundFractions).medianMs;
  else if (present(boundGBs) && present(row.effectiveGBs))
    row.boundFraction = row.effectiveGBs / boundGBs;
  if (present(row.baselineMs))
    row.speedupVsBaseline = row.baselineMs / medianMs;
}

//===----------------------------------------------------------------------===//
// Table
//===----------------------------------------------------------------------===//

void printTable(std::ostream &os, const BenchContext &context,
                const std::vector<BenchRow> &rows) {
  os << "# device: " << (context.device.empty() ? "-" : context.device)
     << " | bound: ";
  if (present(context.boundGBs))
    os << format("%.2f", context.boundGBs) << " GB/s";
  else
    os << "-";
  if (!context.boundName.empty())
    os << " (" << context.boundName << ")";
  if (context.hostStream)
    os << " | " << streamSummary(*context.hostStream);
  for (const auto &[key, value] : context.extra)
    os << " | " << key << ": " << value;
  os << "\n";

  const bool anyNote = std::any_of(rows.begin(), rows.end(),
                                   [](const BenchRow &r) {
                                     return !r.note.empty();
                                   });
  std::vector<std::vector<std::string>> cells;
  const bool anyRounds = std::any_of(rows.begin(), rows.end(),
                                     [](const BenchRow &r) {
                                       return !r.roundFractions.empty();
                                     });
  cells.push_back({"target", "kernel", "encoding", "M", "N", "K", "bits/w",
                   "MB", "median_ms", "GB/s", "%bound", "baseline_ms",
                   "speedup"});
  if (anyRounds) {
    cells.back().push_back("row_bound");
    cells.back().push_back("%bound_range");
  }
  if (anyNote)
    cells.back().push_back("note");
  for (const BenchRow &r : rows) {
    const bool timed = r.time.samples > 0;
    std::vector<std::string> line = {
        r.target,
        r.kernel,
        r.encoding,
        std::to_string(r.rows),
        std::to_string(r.n),
        std::to_string(r.k),
        format("%.2f", r.bitsPerWeight),
        format("%.2f", static_cast<double>(r.weightBytes) / 1e6),
        timed ? format("%.4f", r.time.medianMs) : "-",
        formatOrDash("%.2f", r.effectiveGBs),
        formatOrDash("%.1f", r.boundFraction * 100),
        formatOrDash("%.4f", r.baselineMs),
        present(r.speedupVsBaseline) ? format("%.2fx", r.speedupVsBaseline)
                                     : "-"};
    if (anyRounds) {
      line.push_back(formatOrDash("%.2f", r.rowBoundGBs));
      line.push_back(r.roundFractions.empty()
                         ? "-"
                         : format("%.1f", 100 * *std::min_element(
                                                    r.roundFractions.begin(),
                                                    r.roundFractions.end())) +
                               "-" +
                               format("%.1f",
                                      100 * *std::max_element(
                                                r.roundFractions.begin(),
                                                r.roundFractions.end())));
    }
    if (anyNote)
      line.push_back(r.note);
    cells.push_back(std::move(line));
  }

  // Names read best left-aligned, numbers right-aligned.
  const size_t numColumns = cells.front().size();
  const size_t kLeftAligned[] = {0, 1, 2, anyNote ? numColumns - 1 : 0};
  std::vector<size_t> width(numColumns, 0);
  for (const auto &line : cells)
    for (size_t c = 0; c < numColumns; ++c)
      width[c] = std::max(width[c], line[c].size());
  for (const auto &line : cells) {
    std::string out;
    for (size_t c = 0; c < numColumns; ++c) {
      const std::string &cell = line[c];
      const std::string pad(width[c] - cell.size(), ' ');
      const bool left = std::find(std::begin(kLeftAligned),
                                  std::end(kLeftAligned),
                                  c) != std::end(kLeftAligned);
      if (c > 0)
        out += "  ";
      if (left)
        out += c + 1 == numColumns ? cell : cell + pad;
      else
        out += pad + cell;
    }
    os << out << "\n";
  }
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

nlohmann::json toJson(const BenchContext &context,
                      const std::vector<BenchRow> &rows) {
  nlohmann::json ctx = {
      {"device", context.device},
      {"bound_gbs", numberOrNull(context.boundGBs)},
      {"bound_name", context.boundName},
      {"host_stream", nullptr},
      {"extra", nlohmann::json::object()},
  };
  if (const auto &s = context.hostStream) {
    ctx["host_stream"] = {
        {"copy_gbs", s->copyGBs},     {"scale_gbs", s->scaleGBs},
        {"add_gbs", s->addGBs},       {"triad_gbs", s->triadGBs},
        {"read_gbs", s->readGBs},     {"threads", s->threads},
        {"bytes_per_array", s->bytesPerArray},
        {"repetitions", s->repetitions}, {"valid", s->valid},
    };
  }
  for (const auto &[key, value] : context.extra)
    ctx["extra"][key] = value;

  nlohmann::json results = nlohmann::json::array();
  for (const BenchRow &r : rows) {
    nlohmann::json baseline = nullptr;
    if (!r.baselineName.empty() || present(r.baselineMs))
      baseline = {{"name", r.baselineName},
                  {"median_ms", numberOrNull(r.baselineMs)}};
    results.push_back({
        {"target", r.target},
        {"kernel", r.kernel},
        {"encoding", r.encoding},
        {"m", r.rows},
        {"n", r.n},
        {"k", r.k},
        {"bits_per_weight", r.bitsPerWeight},
        {"weight_bytes", r.weightBytes},
        {"time_ms",
         {{"median", r.time.medianMs},
          {"min", r.time.minMs},
          {"max", r.time.maxMs},
          {"mean", r.time.meanMs},
          {"samples", r.time.samples}}},
        {"effective_gbs", numberOrNull(r.effectiveGBs)},
        {"bound_fraction", numberOrNull(r.boundFraction)},
        {"row_bound_gbs", numberOrNull(r.rowBoundGBs)},
        {"bound_fraction_rounds", r.roundFractions},
        {"baseline", baseline},
        {"speedup_vs_baseline", numberOrNull(r.speedupVsBaseline)},
        {"note", r.note},
    });
  }
  return {{"schema", kBenchSchema}, {"context", ctx}, {"results", results}};
}

bool writeJsonAtomically(const std::string &path, const nlohmann::json &json,
                         std::string *error) {
  auto fail = [&](const std::string &message) {
    if (error)
      *error = path + ": " + message;
    return false;
  };
  try {
    std::string text =
        json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    text += '\n';
    io::detail::AtomicFile file; // Removes the temporary on early returns.
    std::string message;
    if (!file.create(path, &message))
      return fail(message);
    int err = 0;
    if (!io::detail::writeAll(file.fd(), text.data(), text.size(), &err))
      return fail(file.writeError(err));
    if (!file.commit(&message))
      return fail(message);
    return true;
  } catch (const std::bad_alloc &) {
    return fail("out of memory");
  } catch (const std::exception &e) {
    return fail(std::string("unexpected error: ") + e.what());
  }
}

} // namespace qnt::bench
