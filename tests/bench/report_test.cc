// genome-bench's report (bench/report.h): rows in the report's order, each
// target decided from its ratio, the JSON keys scripts read, and the verdict
// lines after the table.
#include "bench/report.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace genomed::bench {
namespace {

std::vector<std::string> figures_of(const std::vector<Row>& rows) {
  std::vector<std::string> names;
  for (const Row& r : rows) names.push_back(r.figure);
  return names;
}

ChurnFigures churn(std::uint64_t rss_before, std::uint64_t rss_after) {
  ChurnFigures c;
  c.cycles = 100;
  c.rate = 500;
  c.before = {.bytes_resident = 64, .rss_kb = rss_before, .fds = 20};
  c.after = {.bytes_resident = 64, .rss_kb = rss_after, .fds = 20};
  c.rss_trace = {rss_before, rss_after};
  return c;
}

TEST(BenchReport, ChurnRowsAreMetOnlyWhenNothingGrew) {
  std::vector<Row> rows;
  Json j;
  const ChurnVerdict steady = churn_rows(churn(9564, 9564), rows, j);
  EXPECT_TRUE(steady.ok());
  EXPECT_EQ(figures_of(rows),
            (std::vector<std::string>{"churn_load_unload_per_s", "churn_bytes_resident_after",
                                      "churn_rss_kb_after", "churn_fds_after"}));
  EXPECT_EQ(j["churn_cycles"], 100);
  EXPECT_EQ(j.begin().key(), "churn_cycles");
  EXPECT_TRUE(j["churn_growth_ok"].get<bool>());

  rows.clear();
  const ChurnVerdict grew = churn_rows(churn(9564, 9568), rows, j);
  EXPECT_FALSE(grew.ok());
  EXPECT_FALSE(grew.rss_ok);
  ASSERT_TRUE(rows[2].met.has_value());
  EXPECT_FALSE(*rows[2].met) << "churn_rss_kb_after grew";
  EXPECT_TRUE(*rows[1].met && *rows[3].met);
}

TEST(BenchReport, HitRowsDecideTheirTargetsFromTheRatioToTheRoundTrip) {
  HitFigures h;
  h.p50 = 12;
  h.rtt_p50 = 10;  // 1.2 x: within 1.5
  h.p99 = 40;      // 4 x: past 3
  h.small_p50 = 11;
  h.socket_p50 = 30;
  for (int n : {1, 4, 16}) {
    h.tput[n] = 1000;
    h.sock_tput[n] = 2000;  // 0.5: the 16-client target is 0.7
  }
  h.socket_tput16 = h.small_tput16 = 1500;
  std::vector<Row> rows;
  Json j;
  hit_rows(h, rows, j);
  ASSERT_EQ(rows.size(), 9u);
  EXPECT_EQ(rows[0].figure, "hit_p50_us");
  EXPECT_DOUBLE_EQ(rows[0].ratio, 1.2);
  EXPECT_TRUE(*rows[0].met);
  EXPECT_EQ(rows[1].figure, "hit_p99_us");
  EXPECT_FALSE(*rows[1].met);
  EXPECT_FALSE(rows[2].met.has_value()) << "hit_small_p50_us is informational";
  EXPECT_EQ(rows[5].figure, "hit_throughput_ops_16");
  EXPECT_FALSE(*rows[5].met);
  EXPECT_FALSE(rows[3].met.has_value()) << "only 16 clients have a target";
  EXPECT_DOUBLE_EQ(j["hit_vs_rtt"].get<double>(), 1.2);
}

TEST(BenchReport, TheVerdictCountsTargetsAndNamesWhatFailed) {
  std::vector<Row> rows = {{"a", 1, "x", "", NAN, NAN, "== 1", true},
                           {"b", 2, "x", "", NAN, NAN, "== 1", false},
                           {"c", 3, "x", "", NAN, NAN, "", std::nullopt}};
  const ChurnFigures c = churn(9564, 9564);
  DedupFigures dedup;
  dedup.clients = 4;
  dedup.loads = 2;
  dedup.ok = 4;
  DiskFigures disk;
  disk.skipped = "no O_DIRECT";
  Json j;
  ::testing::internal::CaptureStdout();
  print_verdict(/*quick=*/true, rows, c, ChurnVerdict{true, true, true}, dedup, disk, 12.5, j);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out,
            "FAIL: 4 concurrent cold acquires of one adapter: 2 load(s), 4 succeeded\n"
            "SKIPPED: cold from disk (no directory with O_DIRECT): no O_DIRECT\n"
            "targets met: 1 of 2; run took 12.5 s (quick)\n");
  EXPECT_EQ(j["targets_met"], 1);
  EXPECT_EQ(j["targets_total"], 2);
}

TEST(BenchReport, TheTableShowsEachRowWithItsStatus) {
  const std::vector<Row> rows = {
      {"hit_p50_us", 12, "us", "socket_rtt_p50_us", 10, 1.2, "<= 1.5", true},
      {"churn_load_unload_per_s", 1234.5, "1/s", "", NAN, NAN, "", std::nullopt}};
  ::testing::internal::CaptureStdout();
  print_table(rows);
  const std::string out = ::testing::internal::GetCapturedStdout();
  // Columns as performance.md's tables quote them: figure, value, unit,
  // baseline, its value, the ratio, the target, the status.
  EXPECT_NE(out.find("hit_p50_us                                12.00 us       "
                     "socket_rtt_p50_us                     10.00    1.200  <= 1.5     met\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("churn_load_unload_per_s                    1234 1/s      "
                     "                                          -        -"),
            std::string::npos)
      << out;
  EXPECT_EQ(shape_name({.streams = 4, .chunk = 8u << 20}), "4 x 8 MiB reads");
}

}  // namespace
}  // namespace genomed::bench
