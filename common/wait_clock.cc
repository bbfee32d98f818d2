#include "common/wait_clock.h"

#include <algorithm>
#include <climits>
#include <cstdint>

namespace genomed {
namespace {

class SteadyWaitClock final : public WaitClock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) override {
    cv.wait_until(lock, deadline);
  }
  int poll(pollfd* fds, nfds_t n, TimePoint deadline) override {
    if (deadline == TimePoint::max()) return ::poll(fds, n, -1);
    // Rounded up: a wait that ends before the deadline would only be
    // followed by another one of 0 ms.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now()).count();
    return ::poll(fds, n, static_cast<int>(std::clamp<std::int64_t>(left, 0, INT_MAX)));
  }
};

}  // namespace

WaitClock& WaitClock::steady() {
  static SteadyWaitClock clock;
  return clock;
}

}  // namespace genomed
