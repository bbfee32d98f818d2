// eventually(): waits, re-checking, until a condition the system reaches
// asynchronously holds (a dead client's leases released, a request queued),
// or gives up. A poll of a condition with a bound, never a stand-in for
// ordering; shared by the unit and integration tests.
#pragma once

#include <chrono>
#include <thread>

namespace genomed::testkit {

// True once `predicate` holds; false if it still does not after `timeout_ms`.
template <class Predicate>
bool eventually(Predicate predicate, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return predicate();
}

}  // namespace genomed::testkit
