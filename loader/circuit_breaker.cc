#include "loader/circuit_breaker.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace genomed::loader {

CircuitBreaker::CircuitBreaker(BreakerOptions options, Now now)
    : options_(options), now_(std::move(now)), cooldown_(options.cooldown) {}

const char* CircuitBreaker::state_name(State s) {
  switch (s) {
    case State::closed:
      return "closed";
    case State::open:
      return "open";
    case State::half_open:
      return "half_open";
  }
  return "unknown";
}

void CircuitBreaker::transition(State to, const std::string& why) {
  spdlog::warn("circuit breaker {} -> {}: {}", state_name(state_), state_name(to), why);
  state_ = to;
  ++transitions_;
}

void CircuitBreaker::prune(TimePoint now) {
  while (!failures_.empty() && now - failures_.front() > options_.window) failures_.pop_front();
}

CircuitBreaker::State CircuitBreaker::state() {
  if (state_ == State::open && now_() >= open_until_) {
    probes_in_flight_ = 0;
    transition(State::half_open,
               "cool-down of " + std::to_string(cooldown_.count()) + " ms elapsed");
  }
  return state_;
}

Result<CircuitBreaker::Ticket> CircuitBreaker::admit() {
  switch (state()) {
    case State::closed:
      return Ticket{false};
    case State::half_open:
      if (probes_in_flight_ < options_.half_open_probes) {
        ++probes_in_flight_;
        return Ticket{true};
      }
      return Status(
          Errc::circuit_open,
          "the circuit breaker is half-open and its probe load is running; retry in a moment");
    case State::open: {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(open_until_ - now_());
      return Status(Errc::circuit_open,
                    "loader workers failed repeatedly; loads are refused for " +
                        std::to_string(std::max<long long>(left.count(), 0)) +
                        " ms more (retry after that; cached adapters are still served)");
    }
  }
  return Status(Errc::internal, "unknown breaker state");
}

void CircuitBreaker::record_failure() {
  if (state_ != State::closed) return;  // OPEN/HALF_OPEN decide on probes only
  const TimePoint now = now_();
  prune(now);
  failures_.push_back(now);
  if (static_cast<int>(failures_.size()) >= options_.failure_threshold) {
    failures_.clear();
    cooldown_ = options_.cooldown;
    open_until_ = now + cooldown_;
    transition(State::open, std::to_string(options_.failure_threshold) +
                                " worker failures within " +
                                std::to_string(options_.window.count()) + " ms");
  }
}

void CircuitBreaker::record(const Ticket& ticket, bool worker_failed) {
  if (!ticket.probe) return;  // failures were counted as they happened
  probes_in_flight_ = std::max(0, probes_in_flight_ - 1);
  if (state_ != State::half_open) return;
  if (!worker_failed) {
    cooldown_ = options_.cooldown;
    failures_.clear();
    transition(State::closed, "a probe load succeeded");
    return;
  }
  const auto longer = std::chrono::duration_cast<std::chrono::milliseconds>(
      cooldown_ * options_.cooldown_multiplier);
  cooldown_ = std::min(longer, options_.max_cooldown);
  open_until_ = now_() + cooldown_;
  transition(State::open,
             "a probe load failed; cool-down now " + std::to_string(cooldown_.count()) + " ms");
}

}  // namespace genomed::loader
