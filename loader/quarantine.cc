#include "loader/quarantine.h"

#include <spdlog/spdlog.h>

#include "common/safe_text.h"

namespace genomed::loader {

bool Quarantine::strike(const std::string& name, const std::string& cause,
                        const FileIdentity& file) {
  Record& r = records_[name];
  const TimePoint now = now_();
  // Strikes count against one version of the file, and only recent ones.
  if (r.file != file || (!r.quarantined && now - r.last_strike > options_.duration)) r.strikes = 0;
  r.last_strike = now;
  r.file = file;
  r.cause = cause;
  ++r.strikes;
  if (r.quarantined || r.strikes < options_.strikes) return false;
  r.quarantined = true;
  r.until = now + options_.duration;
  spdlog::error("adapter {} quarantined for {} ms after {} worker failures (last: {})", quote(name),
                options_.duration.count(), r.strikes, printable(cause));
  return true;
}

Status Quarantine::check(const std::string& name, const FileIdentity& file) {
  auto it = records_.find(name);
  if (it == records_.end() || !it->second.quarantined) return Status::Ok();
  const Record& r = it->second;
  if (now_() >= r.until) {
    spdlog::info("quarantine of {} expired", quote(name));
    records_.erase(it);
    return Status::Ok();
  }
  if (r.file != file) {
    spdlog::info("quarantine of {} lifted: its weights file changed", quote(name));
    records_.erase(it);
    return Status::Ok();
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(r.until - now_());
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", static_cast<double>(left.count()) / 1000.0);
  return Status(Errc::quarantined, "adapter " + quote(name) + " is quarantined for " + seconds +
                                       " s more: its loads " + "crashed or hung loader workers " +
                                       std::to_string(r.strikes) + " times (last: " + r.cause +
                                       "); replace the file or run genomectl unload " +
                                       quote(name) + " to retry now");
}

std::size_t Quarantine::active() const {
  const TimePoint now = now_();
  std::size_t n = 0;
  for (const auto& [name, r] : records_) {
    if (r.quarantined && now < r.until) ++n;
  }
  return n;
}

}  // namespace genomed::loader
