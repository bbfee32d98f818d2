// RequestThreads: a request that blocks gets a thread started beside it, so
// other events are still served; threads beyond the base end once idle.
#include "loader/request_threads.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

namespace genomed::loader {
namespace {

// An eventfd made readable once: one event for whoever registers it.
struct Ready {
  int fd = ::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  ~Ready() { ::close(fd); }
};

// Polls `predicate` (a liveness bound, not a timing assertion).
template <class P>
bool eventually(P predicate) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(RequestThreads, ABlockedRequestGetsAThreadBesideItAndExtrasEndWhenIdle) {
  std::promise<void> unblock;
  std::shared_future<void> unblocked = unblock.get_future().share();
  std::promise<void> blocked_served, other_served;
  RequestThreads* self = nullptr;
  RequestThreads threads({.base = 1, .max = 4, .idle_exit = std::chrono::milliseconds(20)},
                         [&](std::uint64_t key, std::uint32_t) {
                           if (key == 1) {  // a request that waits inside the coordinator
                             self->blocking_begins();
                             unblocked.wait();
                             self->blocking_ends();
                             blocked_served.set_value();
                           } else {
                             other_served.set_value();
                           }
                         });
  self = &threads;
  ASSERT_TRUE(threads.start().ok());
  EXPECT_EQ(threads.threads(), 1);

  Ready blocking, other;
  ASSERT_TRUE(threads.add(blocking.fd, 1, EPOLLIN | EPOLLONESHOT).ok());
  // The only base thread is blocked now (or soon): the other event is served
  // only because a second thread was started.
  ASSERT_TRUE(threads.add(other.fd, 2, EPOLLIN | EPOLLONESHOT).ok());
  EXPECT_EQ(other_served.get_future().wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  EXPECT_EQ(threads.threads(), 2);

  unblock.set_value();
  blocked_served.get_future().wait();
  EXPECT_TRUE(eventually([&] { return threads.threads() == 1; })) << threads.threads();
  threads.stop();
}

}  // namespace
}  // namespace genomed::loader
