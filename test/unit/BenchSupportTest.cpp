//===- BenchSupportTest.cpp - Tests for quant-bench's support library -----===//
//
// The IR-free pieces quant-bench builds on: timing statistics and the
// repeat-until loop, the cache-defeating copy arithmetic, the STREAM-style
// host bandwidth measurement (run small, for its bookkeeping and checks,
// not its speed), the table and JSON reports, and the atomic JSON writer.
//
//===----------------------------------------------------------------------===//

#include "qnt/bench/Bandwidth.h"
#include "qnt/bench/Report.h"
#include "qnt/bench/Stats.h"
#include "support/TempDirTest.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

using namespace qnt::bench;
namespace fs = std::filesystem;

namespace {

constexpr size_t kMiB = size_t(1) << 20;

std::vector<std::string> splitLines(const std::string &text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

std::vector<std::string> splitWords(const std::string &text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;)
    words.push_back(word);
  return words;
}

size_t entriesIn(const std::string &dir) {
  size_t count = 0;
  for ([[maybe_unused]] const auto &entry : fs::directory_iterator(dir))
    ++count;
  return count;
}

/// A 4096x14336 int4 g128 GEMV at 2.5 ms against a 13.3 GB/s bound and a
/// 5 ms baseline: 31195136 bytes, 12.478 GB/s, 93.8% of the bound, 2x.
BenchRow sampleRow() {
  BenchRow row;
  row.target = "cpu";
  row.kernel = "gemv";
  row.encoding = "int4 asym g128";
  row.rows = 1;
  row.n = 4096;
  row.k = 14336;
  row.bitsPerWeight = 4.25;
  row.weightBytes = 4096LL * 14336 * 17 / 32; // 4.25 bits per weight.
  row.time = summarize({2.4, 2.5, 2.6});
  row.baselineName = "fp32 gemv";
  row.baselineMs = 5.0;
  computeDerived(row, 13.3);
  return row;
}

BenchContext sampleContext() {
  BenchContext context;
  context.device = "test-cpu";
  context.boundGBs = 13.3;
  context.boundName = "STREAM read";
  context.extra = {{"threads", "2"}, {"compiler", "g++ 12"}};
  return context;
}

} // namespace

//===----------------------------------------------------------------------===//
// Stats
//===----------------------------------------------------------------------===//

TEST(BenchStatsTest, SummarizeOddCount) {
  const TimingStats s = summarize({5.0, 1.0, 3.0});
  EXPECT_EQ(s.samples, 3);
  EXPECT_DOUBLE_EQ(s.medianMs, 3.0);
  EXPECT_DOUBLE_EQ(s.minMs, 1.0);
  EXPECT_DOUBLE_EQ(s.maxMs, 5.0);
  EXPECT_DOUBLE_EQ(s.meanMs, 3.0);
}

TEST(BenchStatsTest, SummarizeEvenCountAveragesTheMiddlePair) {
  const TimingStats s = summarize({4.0, 1.0, 10.0, 2.0});
  EXPECT_EQ(s.samples, 4);
  EXPECT_DOUBLE_EQ(s.medianMs, 3.0);
  EXPECT_DOUBLE_EQ(s.minMs, 1.0);
  EXPECT_DOUBLE_EQ(s.maxMs, 10.0);
  EXPECT_DOUBLE_EQ(s.meanMs, 4.25);
}

TEST(BenchStatsTest, SummarizeDropsNonFiniteAndHandlesEmpty) {
  const TimingStats s =
      summarize({std::numeric_limits<double>::quiet_NaN(), 2.0,
                 std::numeric_limits<double>::infinity()});
  EXPECT_EQ(s.samples, 1);
  EXPECT_DOUBLE_EQ(s.medianMs, 2.0);
  EXPECT_DOUBLE_EQ(s.maxMs, 2.0);

  const TimingStats empty = summarize({});
  EXPECT_EQ(empty.samples, 0);
  EXPECT_EQ(empty.medianMs, 0.0);
}

TEST(BenchStatsTest, TimeRepeatedRunsWarmupPlusIterations) {
  int calls = 0;
  const std::vector<double> ms =
      timeRepeated([&] { ++calls; }, /*warmup=*/3, /*iterations=*/5,
                   /*minTotalSeconds=*/0);
  EXPECT_EQ(calls, 8);
  ASSERT_EQ(ms.size(), 5u);
  for (double v : ms)
    EXPECT_GE(v, 0.0);
}

TEST(BenchStatsTest, TimeRepeatedMeasuresTheBody) {
  // sleep_for sleeps at least as long as asked, so every sample must too.
  const std::vector<double> ms = timeRepeated(
      [] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }, 0,
      3, 0);
  ASSERT_EQ(ms.size(), 3u);
  for (double v : ms)
    EXPECT_GE(v, 2.0);
}

TEST(BenchStatsTest, TimeRepeatedHonoursMinimumTimeAndCap) {
  int calls = 0;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<double> ms = timeRepeated(
      [&] {
        ++calls;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      },
      0, 1, /*minTotalSeconds=*/0.03);
  const double elapsed = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  EXPECT_GE(elapsed, 0.03);
  EXPECT_GT(ms.size(), 1u); // One 1 ms call cannot fill 30 ms.
  EXPECT_EQ(static_cast<size_t>(calls), ms.size());

  // The cap wins over a minimum time that would take forever.
  const std::vector<double> capped =
      timeRepeated([] {}, 0, 1, /*minTotalSeconds=*/1e9,
                   /*maxIterations=*/4);
  EXPECT_EQ(capped.size(), 4u);
}

TEST(BenchStatsTest, CopiesToExceed) {
  // (c - 1) * bytesPerCopy >= 2 * cacheBytes, smallest c >= 2.
  EXPECT_EQ(RotatingBuffers::copiesToExceed(48 * kMiB, 48 * kMiB), 3);
  EXPECT_EQ(RotatingBuffers::copiesToExceed(kMiB, 32 * kMiB), 65);
  EXPECT_EQ(RotatingBuffers::copiesToExceed(3, 10), 8);   // ceil(20/3) + 1
  EXPECT_EQ(RotatingBuffers::copiesToExceed(20, 10), 2);  // exactly 2x
  EXPECT_EQ(RotatingBuffers::copiesToExceed(21, 10), 2);
  EXPECT_EQ(RotatingBuffers::copiesToExceed(19, 10), 3);
  EXPECT_EQ(RotatingBuffers::copiesToExceed(size_t(100) << 30, 48 * kMiB),
            2);
  EXPECT_EQ(RotatingBuffers::copiesToExceed(0, 48 * kMiB), 1);
  EXPECT_EQ(RotatingBuffers::copiesToExceed(kMiB, 0), 1);
  EXPECT_EQ(RotatingBuffers::copiesToExceed(1, SIZE_MAX), INT_MAX);
}

TEST(BenchStatsTest, RotatingBuffersHoldAlignedCopiesInTurn) {
  std::vector<uint8_t> blob(1000);
  for (size_t i = 0; i < blob.size(); ++i)
    blob[i] = static_cast<uint8_t>(i * 7 + 1);
  RotatingBuffers buffers(blob.data(), blob.size(), 3);
  ASSERT_EQ(buffers.copies(), 3);
  EXPECT_EQ(buffers.bytesPerCopy(), 1000u);
  EXPECT_EQ(buffers.totalBytes(), 3000u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buffers.copy(i)) % 4096, 0u);
    EXPECT_EQ(std::vector<uint8_t>(buffers.copy(i), buffers.copy(i) + 1000),
              blob);
  }
  EXPECT_NE(buffers.copy(0), buffers.copy(1));
  EXPECT_NE(buffers.copy(1), buffers.copy(2));
  // Writing one copy leaves the others alone.
  buffers.copy(1)[0] = 0xEE;
  EXPECT_EQ(buffers.copy(0)[0], blob[0]);
  EXPECT_EQ(buffers.copy(2)[0], blob[0]);

  EXPECT_EQ(buffers.next(), buffers.copy(0));
  EXPECT_EQ(buffers.next(), buffers.copy(1));
  EXPECT_EQ(buffers.next(), buffers.copy(2));
  EXPECT_EQ(buffers.next(), buffers.copy(0));
}

TEST(BenchStatsTest, ParseCacheSize) {
  size_t bytes = 0;
  EXPECT_TRUE(parseCacheSize("32768K", &bytes));
  EXPECT_EQ(bytes, 32 * kMiB);
  EXPECT_TRUE(parseCacheSize("48M\n", &bytes));
  EXPECT_EQ(bytes, 48 * kMiB);
  EXPECT_TRUE(parseCacheSize("512", &bytes));
  EXPECT_EQ(bytes, 512u);
  EXPECT_TRUE(parseCacheSize("1G", &bytes));
  EXPECT_EQ(bytes, size_t(1) << 30);
  EXPECT_FALSE(parseCacheSize("", &bytes));
  EXPECT_FALSE(parseCacheSize("K", &bytes));
  EXPECT_FALSE(parseCacheSize("12KB", &bytes));
  EXPECT_FALSE(parseCacheSize("-1K", &bytes));
  EXPECT_GT(lastLevelCacheBytes(), 0u);
}

//===----------------------------------------------------------------------===//
// Bandwidth
//===----------------------------------------------------------------------===//

TEST(BenchBandwidthTest, SmallSingleThreadRun) {
  const StreamResult r = measureHostBandwidth(8 * kMiB, 1, 2);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.threads, 1);
  EXPECT_EQ(r.repetitions, 2);
  EXPECT_EQ(r.bytesPerArray, 8 * kMiB);
  for (double gbs : {r.copyGBs, r.scaleGBs, r.addGBs, r.triadGBs, r.readGBs}) {
    EXPECT_TRUE(std::isfinite(gbs));
    EXPECT_GT(gbs, 0.0);
    // 8 MiB moved 2-3 times in under 10 us would be > 1 TB/s: a sign of
    // miscounted bytes or a kernel that did not run.
    EXPECT_LT(gbs, 5000.0);
  }
  // STREAM's byte counts: copy and scale move 2 arrays, add and triad 3,
  // read 1.
  const double gbs[] = {r.copyGBs, r.scaleGBs, r.addGBs, r.triadGBs,
                        r.readGBs};
  const int arrays[] = {2, 2, 3, 3, 1};
  for (int k = 0; k < 5; ++k) {
    ASSERT_GT(r.bestSeconds[k], 0.0) << "kernel " << k;
    EXPECT_NEAR(gbs[k] * 1e9 * r.bestSeconds[k],
                arrays[k] * double(8 * kMiB), 1.0)
        << "kernel " << k;
  }
}

TEST(BenchBandwidthTest, TwoThreadsRoundToWholeLinesPerThread) {
  const size_t request = kMiB + 100;
  const StreamResult r = measureHostBandwidth(request, 2, 1);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.threads, 2);
  EXPECT_EQ(r.repetitions, 1);
  EXPECT_LE(r.bytesPerArray, request);
  EXPECT_GT(r.bytesPerArray, request - 2 * 64);
  EXPECT_EQ(r.bytesPerArray % (2 * 64), 0u);
  EXPECT_GT(r.readGBs, 0.0);
  EXPECT_GT(r.triadGBs, 0.0);
}

TEST(BenchBandwidthTest, ReadProbeReadsWholeLinesPerThread) {
  const size_t request = kMiB + 100;
  ReadProbe probe(request, 2);
  EXPECT_EQ(probe.bytes(), kMiB + 64); // whole lines
  // Each thread count reads whole lines per thread of the one array.
  EXPECT_EQ(probe.bytesRead(1), kMiB + 64);
  EXPECT_EQ(probe.bytesRead(2), kMiB);
  EXPECT_EQ(probe.bytesRead(3), (kMiB + 64) / 64 / 3 * 3 * 64);
  // Measured again and again, with any thread count, each time a figure.
  for (int threads : {1, 2, 1, 3}) {
    const double gbs = probe.measure(threads, 2);
    EXPECT_GT(gbs, 0.0) << threads << " threads";
    EXPECT_LT(gbs, 5000.0);
  }
}

TEST(BenchBandwidthTest, ReadProbeSumsEveryElement) {
  // 3 lines (24 doubles) per thread: too short for one pass of the four
  // streams' vector loop, so the sum runs through the scalar tails, and a
  // miscounted tail makes measure() report the wrong sum as 0.
  for (int threads : {1, 2, 3}) {
    ReadProbe probe(size_t(threads) * 3 * 64, threads);
    EXPECT_EQ(probe.bytesRead(threads), size_t(threads) * 3 * 64);
    EXPECT_GT(probe.measure(threads, 1), 0.0) << threads << " threads";
  }
  // Below one line per thread: one line each; more threads than lines
  // read one line each.
  ReadProbe tiny(1, 2);
  EXPECT_EQ(tiny.bytes(), 2u * 64);
  EXPECT_EQ(tiny.bytesRead(5), 2u * 64);
  EXPECT_GT(tiny.measure(5, 0), 0.0);
}

TEST(BenchBandwidthTest, Defaults) {
  EXPECT_GE(hardwareThreads(), 1);
  const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  const size_t physical = size_t(pages) * size_t(pageSize);
  const size_t floor =
      std::min(std::max(size_t(256) * kMiB, 4 * lastLevelCacheBytes()),
               physical / 8);
  EXPECT_EQ(defaultStreamBytes(), floor);
  EXPECT_EQ(defaultReadProbeBytes(), std::min(size_t(1) << 30, physical / 8));
}

//===----------------------------------------------------------------------===//
// Report
//===----------------------------------------------------------------------===//

TEST(BenchReportTest, ComputeDerived) {
  const BenchRow row = sampleRow();
  EXPECT_EQ(row.weightBytes, 31195136);
  EXPECT_NEAR(row.effectiveGBs, 31195136 / 2.5e-3 / 1e9, 1e-9);
  EXPECT_NEAR(row.boundFraction, row.effectiveGBs / 13.3, 1e-12);
  EXPECT_DOUBLE_EQ(row.speedupVsBaseline, 2.0);

  BenchRow bare = sampleRow();
  bare.baselineMs = 0;
  computeDerived(bare, 0);
  EXPECT_GT(bare.effectiveGBs, 0.0);
  EXPECT_EQ(bare.boundFraction, 0.0);
  EXPECT_EQ(bare.speedupVsBaseline, 0.0);

  BenchRow untimed = sampleRow();
  untimed.time = TimingStats();
  computeDerived(untimed, 13.3);
  EXPECT_EQ(untimed.effectiveGBs, 0.0);
  EXPECT_EQ(untimed.speedupVsBaseline, 0.0);
}

TEST(BenchReportTest, RoundsGiveTheBoundFraction) {
  // Rounds beside their own bounds: the row's fraction is the median round,
  // whatever the context's bound says.
  BenchRow row = sampleRow();
  row.roundFractions = {0.70, 0.90, 0.75};
  row.rowBoundGBs = 16.0;
  computeDerived(row, 13.3);
  EXPECT_DOUBLE_EQ(row.boundFraction, 0.75);
  EXPECT_NEAR(row.effectiveGBs, 31195136 / 2.5e-3 / 1e9, 1e-9);
  row.roundFractions = {0.70, 0.80};
  computeDerived(row, 0);
  EXPECT_DOUBLE_EQ(row.boundFraction, 0.75);
}

TEST(BenchReportTest, PrintTableShowsRowBoundsOnlyWhenMeasured) {
  BenchRow rounds = sampleRow();
  rounds.roundFractions = {0.612, 0.704, 0.65};
  rounds.rowBoundGBs = 19.2;
  computeDerived(rounds, 13.3);
  std::ostringstream os;
  printTable(os, sampleContext(), {rounds, sampleRow()});
  const std::vector<std::string> lines = splitLines(os.str());
  ASSERT_EQ(lines.size(), 4u) << os.str();
  const std::vector<std::string> header = splitWords(lines[1]);
  ASSERT_GE(header.size(), 2u);
  EXPECT_EQ(header[header.size() - 2], "row_bound");
  EXPECT_EQ(header.back(), "%bound_range");
  const std::vector<std::string> measured = splitWords(lines[2]);
  EXPECT_EQ(measured[measured.size() - 2], "19.20");
  EXPECT_EQ(measured.back(), "61.2-70.4");
  EXPECT_NE(lines[2].find(" 65.0 "), std::string::npos) << lines[2];
  const std::vector<std::string> plain = splitWords(lines[3]);
  EXPECT_EQ(plain[plain.size() - 2], "-");
  EXPECT_EQ(plain.back(), "-");
  EXPECT_EQ(lines[2].size(), lines[1].size());

  std::ostringstream without;
  printTable(without, sampleContext(), {sampleRow()});
  EXPECT_EQ(without.str().find("row_bound"), std::string::npos);
}

TEST(BenchReportTest, PrintTable) {
  BenchRow noBaseline = sampleRow();
  noBaseline.encoding = "int8 sym";
  noBaseline.baselineName.clear();
  noBaseline.baselineMs = 0;
  computeDerived(noBaseline, 13.3);

  std::ostringstream os;
  printTable(os, sampleContext(), {sampleRow(), noBaseline});
  const std::vector<std::string> lines = splitLines(os.str());
  ASSERT_EQ(lines.size(), 4u) << os.str();

  EXPECT_EQ(lines[0].rfind("# device: test-cpu | bound: 13.30 GB/s "
                           "(STREAM read)",
                           0),
            0u)
      << lines[0];
  EXPECT_NE(lines[0].find("threads: 2"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("compiler: g++ 12"), std::string::npos);

  const std::string &header = lines[1];
  EXPECT_EQ(splitWords(header),
            (std::vector<std::string>{"target", "kernel", "encoding", "M",
                                      "N", "K", "bits/w", "MB", "median_ms",
                                      "GB/s", "%bound", "baseline_ms",
                                      "speedup"}));

  const std::string &row = lines[2];
  const size_t enc = row.find("int4 asym g128");
  ASSERT_NE(enc, std::string::npos) << row;
  EXPECT_EQ(splitWords(row.substr(0, enc)),
            (std::vector<std::string>{"cpu", "gemv"}));
  EXPECT_EQ(splitWords(row.substr(enc + 14)),
            (std::vector<std::string>{"1", "4096", "14336", "4.25", "31.20",
                                      "2.5000", "12.48", "93.8", "5.0000",
                                      "2.00x"}))
      << row;
  // Columns line up: numbers end where their right-aligned header ends.
  EXPECT_EQ(header.size(), row.size());
  EXPECT_EQ(header.find("median_ms") + 9, row.find("2.5000") + 6);
  EXPECT_EQ(header.find("%bound") + 6, row.find("93.8") + 4);
  EXPECT_EQ(header.find("encoding"), enc);

  // A missing baseline prints dashes rather than zeros.
  const std::vector<std::string> words = splitWords(lines[3]);
  ASSERT_GE(words.size(), 2u);
  EXPECT_EQ(words[words.size() - 2], "-");
  EXPECT_EQ(words.back(), "-");
  EXPECT_EQ(lines[3].size(), header.size());
}

TEST(BenchReportTest, PrintTableAddsNoteColumnOnlyWhenNeeded) {
  BenchRow noted = sampleRow();
  noted.note = "cache-resident";
  std::ostringstream os;
  printTable(os, sampleContext(), {sampleRow(), noted});
  const std::vector<std::string> lines = splitLines(os.str());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(splitWords(lines[1]).back(), "note");
  EXPECT_EQ(splitWords(lines[3]).back(), "cache-resident");

  std::ostringstream plain;
  printTable(plain, sampleContext(), {sampleRow()});
  EXPECT_EQ(plain.str().find("note"), std::string::npos);
}

TEST(BenchReportTest, JsonRoundTrip) {
  BenchContext context = sampleContext();
  BenchRow bare = sampleRow();
  bare.baselineName.clear();
  bare.baselineMs = 0;
  computeDerived(bare, context.boundGBs);

  const nlohmann::json parsed =
      nlohmann::json::parse(toJson(context, {sampleRow(), bare}).dump());
  EXPECT_EQ(parsed.at("schema"), "qnt.bench/2");
  const auto &ctx = parsed.at("context");
  EXPECT_EQ(ctx.at("device"), "test-cpu");
  EXPECT_DOUBLE_EQ(ctx.at("bound_gbs").get<double>(), 13.3);
  EXPECT_EQ(ctx.at("bound_name"), "STREAM read");
  EXPECT_EQ(ctx.at("extra").at("threads"), "2");
  EXPECT_TRUE(ctx.at("host_stream").is_null());

  const auto &results = parsed.at("results");
  ASSERT_EQ(results.size(), 2u);
  const auto &r = results[0];
  EXPECT_EQ(r.at("target"), "cpu");
  EXPECT_EQ(r.at("kernel"), "gemv");
  EXPECT_EQ(r.at("encoding"), "int4 asym g128");
  EXPECT_EQ(r.at("m").get<int64_t>(), 1);
  EXPECT_EQ(r.at("n").get<int64_t>(), 4096);
  EXPECT_EQ(r.at("k").get<int64_t>(), 14336);
  EXPECT_EQ(r.at("weight_bytes").get<int64_t>(), 31195136);
  EXPECT_DOUBLE_EQ(r.at("bits_per_weight").get<double>(), 4.25);
  EXPECT_DOUBLE_EQ(r.at("time_ms").at("median").get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(r.at("time_ms").at("min").get<double>(), 2.4);
  EXPECT_EQ(r.at("time_ms").at("samples").get<int>(), 3);
  EXPECT_NEAR(r.at("effective_gbs").get<double>(), 12.4780544, 1e-6);
  EXPECT_EQ(r.at("baseline").at("name"), "fp32 gemv");
  EXPECT_DOUBLE_EQ(r.at("baseline").at("median_ms").get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(r.at("speedup_vs_baseline").get<double>(), 2.0);

  EXPECT_TRUE(results[1].at("baseline").is_null());
  EXPECT_TRUE(results[1].at("speedup_vs_baseline").is_null());
  EXPECT_TRUE(r.at("row_bound_gbs").is_null());
  EXPECT_TRUE(r.at("bound_fraction_rounds").empty());

  BenchRow rounds = sampleRow();
  rounds.roundFractions = {0.5, 0.6};
  rounds.rowBoundGBs = 20.0;
  computeDerived(rounds, context.boundGBs);
  const nlohmann::json withRounds = toJson(context, {rounds})["results"][0];
  EXPECT_DOUBLE_EQ(withRounds.at("row_bound_gbs").get<double>(), 20.0);
  EXPECT_EQ(withRounds.at("bound_fraction_rounds").get<std::vector<double>>(),
            (std::vector<double>{0.5, 0.6}));
  EXPECT_DOUBLE_EQ(withRounds.at("bound_fraction").get<double>(), 0.55);

  StreamResult stream;
  stream.readGBs = 13.3;
  stream.threads = 2;
  stream.bytesPerArray = 256 * kMiB;
  stream.valid = true;
  context.hostStream = stream;
  const nlohmann::json withStream = toJson(context, {});
  EXPECT_DOUBLE_EQ(
      withStream["context"]["host_stream"]["read_gbs"].get<double>(), 13.3);
  EXPECT_EQ(withStream["context"]["host_stream"]["bytes_per_array"]
                .get<uint64_t>(),
            256 * kMiB);
  EXPECT_TRUE(withStream["results"].is_array());
  EXPECT_TRUE(withStream["results"].empty());
}

class BenchJsonFileTest : public qnt::testing::TempDirTest {
protected:
  BenchJsonFileTest() : TempDirTest("qnt-bench") {}
};

TEST_F(BenchJsonFileTest, WritesAndReplacesAtomically) {
  const std::string path = pathOf("bench.json");
  {
    std::ofstream old(path);
    old << "old contents that are longer than nothing";
  }
  const nlohmann::json json = toJson(sampleContext(), {sampleRow()});
  std::string error;
  ASSERT_TRUE(writeJsonAtomically(path, json, &error)) << error;
  std::ifstream in(path);
  EXPECT_EQ(nlohmann::json::parse(in), json);
  EXPECT_EQ(entriesIn(dir_), 1u); // No temporary left behind.
}

TEST_F(BenchJsonFileTest, InvalidUtf8IsReplacedNotFatal) {
  const std::string path = pathOf("bad.json");
  const nlohmann::json json = {{"encoding", std::string("int4\xff")}};
  std::string error;
  ASSERT_TRUE(writeJsonAtomically(path, json, &error)) << error;
  std::ifstream in(path);
  EXPECT_EQ(nlohmann::json::parse(in).at("encoding"), "int4\xEF\xBF\xBD");
}

TEST_F(BenchJsonFileTest, MissingDirectoryFailsAndLeavesNothing) {
  const std::string path = pathOf("missing/bench.json");
  std::string error;
  EXPECT_FALSE(writeJsonAtomically(path, {{"a", 1}}, &error));
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_EQ(entriesIn(dir_), 0u);
}

TEST_F(BenchJsonFileTest, UnwritableDirectoryFailsAndLeavesNothing) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root writes into read-only directories";
  const std::string locked = pathOf("locked");
  ASSERT_EQ(::mkdir(locked.c_str(), 0555), 0);
  std::string error;
  EXPECT_FALSE(
      writeJsonAtomically(locked + "/bench.json", {{"a", 1}}, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(entriesIn(locked), 0u);
  ::chmod(locked.c_str(), 0755); // So that TearDown can remove it.
}
