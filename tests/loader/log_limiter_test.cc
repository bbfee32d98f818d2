// What one connection can make the daemon log is bounded: a burst, then one
// line per interval, each saying how many were held back. What all clients
// together can make it log is bounded in bytes: one LogByteBudget behind the
// client logger (ClientLogSink), whose held-back lines are counted and
// summed up in one line per interval.
#include "loader/log_limiter.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>

#include "fake_clock.h"
#include "loader/client_log.h"
#include "loader/log_format.h"

namespace genomed::loader {
namespace {

using namespace std::chrono_literals;

TEST(LogLimiter, WritesTheBurstThenOneLinePerIntervalCountingTheRest) {
  LogLimiter limiter({.burst = 3, .interval = 10s});
  const LogLimiter::Clock::time_point t0{};
  for (int i = 0; i < 3; ++i) {
    const auto v = limiter.admit(t0);
    EXPECT_TRUE(v.write) << i;
    EXPECT_EQ(v.held_back, 0u);
  }
  for (int i = 0; i < 100'000; ++i) EXPECT_FALSE(limiter.admit(t0 + 9s).write);
  EXPECT_EQ(limiter.held_back(), 100'000u);
  const auto summary = limiter.admit(t0 + 10s);
  EXPECT_TRUE(summary.write);
  EXPECT_EQ(summary.held_back, 100'000u) << "the line written says how many were held back";
  EXPECT_EQ(limiter.held_back(), 0u);
  EXPECT_FALSE(limiter.admit(t0 + 19s).write);
  EXPECT_TRUE(limiter.admit(t0 + 20s).write);
}

TEST(LogLimiter, AFloodWritesAtMostBurstPlusOneLinePerInterval) {
  LogLimiter limiter({.burst = 10, .interval = 10s});
  const LogLimiter::Clock::time_point t0{};
  int written = 0;
  // A million warnings over 60 s.
  for (int i = 0; i < 1'000'000; ++i) {
    written += limiter.admit(t0 + std::chrono::microseconds(i * 60)).write ? 1 : 0;
  }
  EXPECT_LE(written, 10 + 6);
  EXPECT_GE(written, 10 + 5);
}

TEST(LogByteBudget, GrantsTheBurstThenTheRateAndNeverMoreOverAnySpan) {
  testing::FakeClock clock;
  LogByteBudget budget({.bytes_per_second = 1000, .burst_bytes = 4000}, clock.now());
  EXPECT_TRUE(budget.take(clock.now(), 4000)) << "full at the start";
  EXPECT_FALSE(budget.take(clock.now(), 1)) << "the burst is spent";
  clock.advance(500ms);
  EXPECT_FALSE(budget.take(clock.now(), 501));
  EXPECT_TRUE(budget.take(clock.now(), 500)) << "half a second brings half the rate";
  // A refused request takes nothing: a smaller one that fits still passes.
  clock.advance(100ms);
  EXPECT_FALSE(budget.take(clock.now(), 200));
  EXPECT_TRUE(budget.take(clock.now(), 100));
  // Idle for an hour: the bucket holds the burst, no more.
  clock.advance(std::chrono::hours(1));
  EXPECT_TRUE(budget.take(clock.now(), 4000));
  EXPECT_FALSE(budget.take(clock.now(), 1));
}

TEST(LogByteBudget, AFloodIsGrantedAtMostTheBurstPlusTheRateTimesItsLength) {
  testing::FakeClock clock;
  const LogByteBudget::Options options{.bytes_per_second = 64 * 1024, .burst_bytes = 256 * 1024};
  LogByteBudget budget(options, clock.now());
  std::uint64_t granted = 0;
  // Lines of 300 bytes asked every 100 µs (3 MB/s) for 60 s.
  for (int i = 0; i < 600'000; ++i) {
    if (i % 10 == 0) clock.advance(1ms);
    if (budget.take(clock.now(), 300)) granted += 300;
  }
  const std::uint64_t bound = options.burst_bytes + options.bytes_per_second * 60;
  EXPECT_LE(granted, bound);
  EXPECT_GE(granted, bound - 2 * 300) << "the allowance is used, not wasted";
}

// A client logger over a string, a fake clock, and the counters STATS reads.
struct ClientLogHarness {
  explicit ClientLogHarness(ClientLogOptions options) {
    sink = std::make_shared<ClientLogSink>(
        std::make_shared<spdlog::sinks::ostream_sink_st>(out), options, counters, clock.fn());
    logger = std::make_shared<spdlog::logger>("client-log-test", sink);
    logger->set_pattern("%l %v");  // the sink charges what this pattern writes
    logger->set_level(spdlog::level::info);
  }
  std::size_t lines_with(const std::string& needle) const {
    std::istringstream in(out.str());
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
    return n;
  }

  testing::FakeClock clock;
  std::ostringstream out;
  std::shared_ptr<ConnectionCounters> counters = std::make_shared<ConnectionCounters>();
  std::shared_ptr<ClientLogSink> sink;
  std::shared_ptr<spdlog::logger> logger;
};

TEST(ClientLog, AllLinesTogetherStayWithinTheByteRateAndTheRestAreCounted) {
  ClientLogHarness h({.bytes_per_second = 1024, .burst = 4s, .summary_interval = 10s});
  // 16 KiB, the least burst: one long line always fits.
  const std::uint64_t burst = 16 * 1024;
  const std::string hello = "connection 17: hello from '" + std::string(200, 'x') + "'";
  std::uint64_t asked = 0;
  // A reconnect loop for 30 s: 100 lines a second of several kinds, as one
  // allowance covers them all.
  for (int i = 0; i < 3000; ++i) {
    if (i % 10 == 0) h.clock.advance(100ms);
    if (i % 3 == 0) {
      h.logger->info("{}", hello);
    } else if (i % 3 == 1) {
      h.logger->warn("connection {}: malformed frame; closing it", i);
    } else {
      h.logger->warn("load of 'a' failed: not_found: no adapter named 'a'");
    }
    ++asked;
  }
  const std::string all = h.out.str();
  const std::size_t written = h.lines_with("connection ") + h.lines_with("load of");
  std::size_t summaries = h.lines_with("held back");
  // Summaries are not charged: take them out before comparing with the bound.
  std::size_t summary_bytes = 0;
  {
    std::istringstream in(all);
    for (std::string line; std::getline(in, line);)
      if (line.find("held back") != std::string::npos) summary_bytes += line.size() + 1;
  }
  EXPECT_LE(all.size() - summary_bytes, burst + 1024 * 30);
  EXPECT_GT(written, 0u);
  EXPECT_EQ(written + h.counters->log_lines_suppressed.load(), asked)
      << "every line held back is counted";
  EXPECT_EQ(h.sink->held_back_total(), h.counters->log_lines_suppressed.load());
  // One summary per 10 s at most: with the first line at or after 10, 20
  // and 30 s.
  EXPECT_EQ(summaries, 3u) << all.substr(0, 2000);
  EXPECT_NE(all.find("caused by clients were held back in the last 10 s"), std::string::npos);
  EXPECT_NE(all.find("--client-log-rate"), std::string::npos);
}

TEST(ClientLog, HeldBackLinesAreSummedUpInOneLineAndOnlyWhenDue) {
  ClientLogHarness h({.bytes_per_second = 1024, .burst = 1s, .summary_interval = 10s});
  const std::string line(1000, 'y');
  int asked = 0;
  while (h.counters->log_lines_suppressed.load() < 50) {
    h.logger->warn("{}", line);
    ++asked;
  }
  const std::size_t written = static_cast<std::size_t>(asked) - 50;
  h.sink->report_held_back();
  EXPECT_EQ(h.lines_with("held back"), 0u) << "not due before the interval";
  h.clock.advance(10s);
  h.sink->report_held_back();
  EXPECT_EQ(h.lines_with("held back"), 1u);
  EXPECT_NE(h.out.str().find("warning 50 log line(s) ("), std::string::npos) << h.out.str();
  h.clock.advance(10s);
  h.sink->report_held_back();
  EXPECT_EQ(h.lines_with("held back"), 1u) << "nothing more held back: no line";
  // The stop reports what is left whenever it comes.
  h.logger->warn("{}", std::string(20'000, 'z'));  // longer than the whole bucket: held back
  h.sink->report_held_back(/*at_stop=*/true);
  EXPECT_EQ(h.lines_with("held back"), 2u);
  EXPECT_EQ(h.lines_with(line), written);
}

TEST(ClientLog, ALineCostsWhatItsFormatWritesJsonEscapesIncluded) {
  ClientLogHarness h({.bytes_per_second = 1024, .burst = 4s, .summary_interval = 3600s});
  h.logger->set_formatter(std::make_unique<JsonLogFormatter>());
  // Backslashes and quotes double in JSON: a sink that charged the message
  // alone would let through twice the rate.
  const std::string escaped(300, '\\');
  for (int i = 0; i < 2000; ++i) {
    if (i % 10 == 0) h.clock.advance(100ms);
    h.logger->warn("connection {}: {}", i, escaped);
  }
  EXPECT_LE(h.out.str().size(), 16u * 1024 + 1024 * 20) << "20 s at 1 KiB/s after a 16 KiB burst";
  EXPECT_GT(h.lines_with("\\\\\\\\"), 0u) << h.out.str().substr(0, 500);
}

TEST(ClientLog, LinesBelowTheLevelCostNothing) {
  ClientLogHarness h({.bytes_per_second = 1024, .burst = 1s, .summary_interval = 10s});
  for (int i = 0; i < 10'000; ++i) h.logger->debug("{}", std::string(500, 'd'));
  h.logger->warn("still written");
  EXPECT_EQ(h.out.str(), "warning still written\n");
  EXPECT_EQ(h.counters->log_lines_suppressed.load(), 0u);
}

}  // namespace
}  // namespace genomed::loader
