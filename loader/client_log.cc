#include "loader/client_log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <string>

namespace genomed::loader {
namespace {

// The longest line the daemon writes is well under this (common/safe_text.h
// cuts messages at 4 KiB, values at 200 bytes): the bucket always holds one.
constexpr std::uint64_t kMinBurstBytes = 16 * 1024;

std::atomic<spdlog::logger*> g_client_logger{nullptr};

}  // namespace

LogByteBudget::Options ClientLogOptions::budget() const {
  return {bytes_per_second,
          std::max<std::uint64_t>(kMinBurstBytes,
                                  bytes_per_second * static_cast<std::uint64_t>(burst.count()))};
}

ClientLogSink::ClientLogSink(spdlog::sink_ptr out, ClientLogOptions options,
                             std::shared_ptr<ConnectionCounters> counters, Now now)
    : out_(std::move(out)),
      options_(options),
      counters_(std::move(counters)),
      now_(std::move(now)),
      budget_(options_.budget(), now_()),
      last_summary_(now_()) {}

void ClientLogSink::sink_it_(const spdlog::details::log_msg& msg) {
  const Clock::time_point now = now_();
  report_locked(now, /*force=*/false);
  // Charged what it costs on disk: the line as this format writes it.
  spdlog::memory_buf_t line;
  formatter_->format(msg, line);
  if (!budget_.take(now, line.size())) {
    ++held_lines_;
    ++held_total_;
    held_bytes_ += line.size();
    if (counters_) counters_->log_lines_suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  out_->log(msg);
}

void ClientLogSink::flush_() { out_->flush(); }

void ClientLogSink::set_pattern_(const std::string& pattern) {
  set_formatter_(std::make_unique<spdlog::pattern_formatter>(pattern));
}

void ClientLogSink::set_formatter_(std::unique_ptr<spdlog::formatter> formatter) {
  out_->set_formatter(formatter->clone());
  formatter_ = std::move(formatter);
}

void ClientLogSink::report_held_back(bool at_stop) {
  std::lock_guard<std::mutex> lock(mutex_);
  report_locked(now_(), at_stop);
}

std::uint64_t ClientLogSink::held_back_total() {
  std::lock_guard<std::mutex> lock(mutex_);
  return held_total_;
}

void ClientLogSink::report_locked(Clock::time_point now, bool force) {
  if (held_lines_ == 0 || (!force && now < last_summary_ + options_.summary_interval)) return;
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now - last_summary_);
  // Not charged to the budget: one line per summary_interval at most.
  const std::string text =
      std::to_string(held_lines_) + " log line(s) (" + std::to_string(held_bytes_) +
      " bytes) caused by clients were held back in the last " + std::to_string(seconds.count()) +
      " s: clients may make genomed log " + std::to_string(options_.bytes_per_second) +
      " bytes/s (--client-log-rate); STATS log_lines_suppressed counts them";
  const spdlog::details::log_msg summary(spdlog::string_view_t("genomed"), spdlog::level::warn,
                                         spdlog::string_view_t(text));
  out_->log(summary);
  held_lines_ = 0;
  held_bytes_ = 0;
  last_summary_ = now;
}

spdlog::logger& client_log() {
  spdlog::logger* logger = g_client_logger.load(std::memory_order_acquire);
  return logger != nullptr ? *logger : *spdlog::default_logger_raw();
}

std::shared_ptr<ClientLogSink> install_client_log(ClientLogOptions options,
                                                  std::shared_ptr<ConnectionCounters> counters) {
  const auto& sinks = spdlog::default_logger()->sinks();
  spdlog::sink_ptr out = sinks.size() == 1
                             ? sinks.front()
                             : std::make_shared<spdlog::sinks::dist_sink_mt>(sinks);
  auto sink = std::make_shared<ClientLogSink>(std::move(out), options, std::move(counters));
  // Kept by spdlog's registry until exit, as the default logger is.
  auto logger = std::make_shared<spdlog::logger>("genomed.client", sink);
  spdlog::initialize_logger(logger);
  g_client_logger.store(logger.get(), std::memory_order_release);
  return sink;
}

}  // namespace genomed::loader
