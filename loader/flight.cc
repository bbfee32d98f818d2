#include "loader/flight.h"

#include <algorithm>
#include <utility>

#include "cache/check.h"
#include "loader/request_path.h"

namespace genomed::loader {

bool Flight::predecessors_ended() const {
  return std::all_of(predecessors.begin(), predecessors.end(),
                     [](const auto& p) { return p->phase == Phase::ended; });
}

void Flight::notify_waiters() const {
  for (Request* w : waiters) w->cv.notify_all();
}

void FlightThreads::start(const std::shared_ptr<Flight>& flight, std::function<void()> body) {
  auto& live = live_[flight->name];
  flight->predecessors = live;
  live.push_back(flight);
  const std::uint64_t id = next_id_++;
  threads_.emplace(id, std::thread([this, flight, id, body = std::move(body)] {
                     body();
                     MutexLock lock(mu_);
                     end(id, flight);
                   }));
}

void FlightThreads::end(std::uint64_t id, const std::shared_ptr<Flight>& flight) {
  GENOMED_CHECK(flight->phase == Flight::Phase::finished, "a flight ended before it finished");
  flight->phase = Flight::Phase::ended;
  flight->predecessors.clear();
  auto it = live_.find(flight->name);
  if (it != live_.end()) {
    std::erase(it->second, flight);
    // A successor may start.
    for (const auto& next : it->second) next->cv.notify_all();
    if (it->second.empty()) live_.erase(it);
  }
  ended_.push_back(id);
}

void FlightThreads::reap() {
  // These threads have pushed their id as their last step under the mutex;
  // joining them here waits only for them to return.
  for (std::uint64_t id : ended_) {
    auto it = threads_.find(id);
    if (it != threads_.end()) {
      it->second.join();
      threads_.erase(it);
    }
  }
  ended_.clear();
}

void FlightThreads::wake_all() {
  for (const auto& [name, flights] : live_) {
    for (const auto& f : flights) f->cv.notify_all();
  }
}

std::map<std::uint64_t, std::thread> FlightThreads::take_threads() {
  ended_.clear();
  return std::exchange(threads_, {});
}

void FlightThreads::check_invariants() const {
  for (const auto& [name, flights] : live_) {
    GENOMED_CHECK(!flights.empty(), "an empty chain of live flights");
    for (std::size_t i = 0; i < flights.size(); ++i) {
      const Flight& f = *flights[i];
      GENOMED_CHECK(f.name == name && f.phase != Flight::Phase::ended,
                    "an ended flight, or one of another name, in a live chain");
      for (const auto& p : f.predecessors) {
        GENOMED_CHECK(p->name == name, "a predecessor of another name");
        GENOMED_CHECK(p->phase == Flight::Phase::ended ||
                          std::find(flights.begin(), flights.begin() + static_cast<long>(i), p) !=
                              flights.begin() + static_cast<long>(i),
                      "a live predecessor that is not earlier in the chain");
      }
    }
  }
}

}  // namespace genomed::loader
