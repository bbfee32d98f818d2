#include "loader/restart_policy.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace genomed::loader {

std::chrono::milliseconds RestartPolicy::backoff(int consecutive) const {
  const double factor = std::pow(options_.backoff_multiplier, std::max(0, consecutive - 1));
  const double ms = std::min(static_cast<double>(options_.backoff_first.count()) * factor,
                             static_cast<double>(options_.backoff_max.count()));
  return std::chrono::milliseconds(static_cast<long long>(ms));
}

bool RestartPolicy::unhealthy() const { return now_() < paused_until_; }

RestartPolicy::TimePoint RestartPolicy::on_death(int consecutive) {
  const TimePoint now = now_();
  while (!restarts_.empty() && now - restarts_.front() > options_.period) restarts_.pop_front();
  restarts_.push_back(now);
  TimePoint at = now + backoff(consecutive);
  if (static_cast<int>(restarts_.size()) > options_.max_restarts && now >= paused_until_) {
    paused_until_ = now + options_.period;
    restarts_.clear();
    spdlog::error(
        "{} worker restarts within {} ms (limit {}): the pool stops spawning and reports unhealthy "
        "for {} ms",
        options_.max_restarts + 1, options_.period.count(), options_.max_restarts,
        options_.period.count());
  }
  return std::max(at, paused_until_);
}

}  // namespace genomed::loader
