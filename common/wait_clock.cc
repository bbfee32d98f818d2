#include "common/wait_clock.h"

namespace genomed {
namespace {

class SteadyWaitClock final : public WaitClock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) override {
    cv.wait_until(lock, deadline);
  }
};

}  // namespace

WaitClock& WaitClock::steady() {
  static SteadyWaitClock clock;
  return clock;
}

}  // namespace genomed
