// The log lines a client's actions cause, over every connection and every
// kind of line (hellos, malformed frames, refusals, failed and finished
// loads, releases of unknown leases, permission denied, connections closed),
// share one allowance of bytes per second (--client-log-rate): whatever
// clients do, reconnecting in a loop included, genomed writes at most
// burst + rate * T bytes of such lines in any T seconds (LogByteBudget;
// the burst is 4 s of the rate). A line that does not fit is not written:
// it is counted in STATS (log_lines_suppressed) and reported in one summary
// line at most every 10 s (report_held_back(), called by genomed's main
// thread and before each line that fits).
//
// Lines about the daemon itself (start and stop, workers dying, the circuit
// breaker, quarantines, restarts) do not pass this allowance and so are
// never starved by client noise: they go to spdlog's default logger, and
// each of them is bounded by its own policy (restart intensity, breaker
// cool-downs, quarantine strikes), not by how often a client asks.
//
// Per-connection limits (loader/log_limiter.h LogLimiter) still apply first:
// they keep one connection's repeated warnings short; this one bounds them all.
#pragma once

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "loader/connection_counters.h"
#include "loader/log_limiter.h"

namespace genomed::loader {

struct ClientLogOptions {
  std::uint64_t bytes_per_second = 64 * 1024;  // --client-log-rate
  // The bucket holds this much of the rate (and never less than one long line).
  std::chrono::seconds burst{4};
  // Lines held back are reported at most this often.
  std::chrono::seconds summary_interval{10};

  LogByteBudget::Options budget() const;
};

// Passes whole formatted lines (their exact bytes, as the --log-format
// writes them) to `out` while the allowance lasts.
class ClientLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  using Clock = LogByteBudget::Clock;
  using Now = std::function<Clock::time_point()>;

  ClientLogSink(spdlog::sink_ptr out, ClientLogOptions options,
                std::shared_ptr<ConnectionCounters> counters, Now now = &Clock::now);

  // Writes the summary of the lines held back since the last one, if there
  // are any and summary_interval has passed since it (or `at_stop`).
  void report_held_back(bool at_stop = false);

  // Lines held back so far (also counted in log_lines_suppressed).
  std::uint64_t held_back_total();

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;
  // `out` writes with the same format, so a line costs what it was charged.
  void set_pattern_(const std::string& pattern) override;
  void set_formatter_(std::unique_ptr<spdlog::formatter> formatter) override;

 private:
  // REQUIRES: mutex_ (base_sink's) held.
  void report_locked(Clock::time_point now, bool force);

  const spdlog::sink_ptr out_;
  const ClientLogOptions options_;
  const std::shared_ptr<ConnectionCounters> counters_;
  const Now now_;
  // Guarded by base_sink's mutex_.
  LogByteBudget budget_;
  std::uint64_t held_lines_ = 0;  // since the last summary
  std::uint64_t held_bytes_ = 0;
  std::uint64_t held_total_ = 0;
  Clock::time_point last_summary_;
};

// The logger for lines a client's actions cause. Before
// install_client_log(): spdlog's default logger (unit tests).
spdlog::logger& client_log();

// Creates that logger over the default logger's output and registers it
// (spdlog::set_level and the --log-format then reach it too). Once, at
// start, before any other thread runs.
std::shared_ptr<ClientLogSink> install_client_log(ClientLogOptions options,
                                                  std::shared_ptr<ConnectionCounters> counters);

}  // namespace genomed::loader
