// The client transport against a fake daemon: the other end of a
// socketpair, read and written by the test itself. What a call sends, what
// it takes as its reply, and how its deadlines and a broken stream leave it.
#include "client/transport.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <future>
#include <thread>

namespace genomed::client_detail {
namespace {

using namespace std::chrono_literals;

// The daemon's end of the socketpair.
class FakeDaemon {
 public:
  explicit FakeDaemon(int fd) : fd_(fd), reader_(fd) {}
  ~FakeDaemon() { close(); }

  // The next request the client sent (fails the test if none comes in 10 s).
  ipc::Request next_request() {
    auto frame = reader_.read(ipc::kMaxRequestFrame, ipc::Clock::now() + 10s);
    EXPECT_TRUE(frame.ok()) << frame.status().message();
    if (!frame) return {};
    auto req = ipc::decode_request(frame->body);
    EXPECT_TRUE(req.ok()) << req.status().message();
    return req.ok() ? *req : ipc::Request{};
  }
  // Whether the client sent anything more (without waiting for it).
  bool sent_nothing_more() {
    auto frame = reader_.read(ipc::kMaxRequestFrame, ipc::Clock::now());
    return !frame && frame.code() == Errc::timeout;
  }
  void reply(std::string_view body) { ASSERT_TRUE(ipc::write_frame(fd_, body).ok()); }
  void write_raw(std::string_view bytes) {
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  ipc::FrameReader reader_;
};

struct Pair {
  explicit Pair(Millis release_timeout = 5000ms) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    transport = std::make_unique<Transport>(fds[0], ForkGuard(), release_timeout);
    transport->serve();
    daemon = std::make_unique<FakeDaemon>(fds[1]);
    daemon_fd = fds[1];
  }
  // Bytes the client wrote that the fake daemon has not read.
  int unread() const {
    int n = -1;
    EXPECT_EQ(::ioctl(daemon_fd, FIONREAD, &n), 0);
    return n;
  }
  int daemon_fd = -1;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<FakeDaemon> daemon;
};

ipc::Request request(ipc::Op op) {
  ipc::Request r;
  r.op = op;
  if (op == ipc::Op::release) r.leases = {7};
  if (op == ipc::Op::unload) r.names = {"a"};
  return r;
}

// A call of `op` (10 s) on another thread.
std::future<Result<std::string>> call_async(Transport& transport, ipc::Op op) {
  return std::async(std::launch::async,
                    [&transport, op] { return transport.call(request(op), 10s); });
}

TEST(Transport, ACallSendsItsRequestAndReturnsTheReplyBody) {
  Pair p;
  auto call = call_async(*p.transport, ipc::Op::stats);
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::stats);
  p.daemon->reply("the reply");
  auto reply = call.get();
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(*reply, "the reply");
  EXPECT_TRUE(p.transport->usable());
}

TEST(Transport, NoReplyByTheDeadlineBreaksItButAReleaseStillGoesOut) {
  Pair p;
  p.transport->lease_taken();  // a lease keeps the broken transport's socket open
  auto reply = p.transport->call(request(ipc::Op::unload), 20ms);
  ASSERT_EQ(reply.code(), Errc::timeout);
  EXPECT_EQ(reply.status().message().rfind("unload: no reply from genomed within 20 ms", 0), 0u)
      << reply.status().message();
  EXPECT_EQ(p.transport->broken_why(), Transport::kTimedOut);
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::unload);

  // A late reply would be taken for the next request's: nothing more is asked.
  auto next = p.transport->call(request(ipc::Op::stats), 10s);
  EXPECT_EQ(next.code(), Errc::not_connected);
  EXPECT_NE(next.status().message().find("an earlier call on it timed out"), std::string::npos)
      << next.status().message();
  EXPECT_TRUE(p.daemon->sent_nothing_more());

  // The request went out whole, so a release can follow it.
  p.transport->send(request(ipc::Op::release));
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::release);
}

// Whether the daemon's end sees the client's socket closed (EOF) now.
bool daemon_sees_hang_up(const Pair& p) {
  char byte;
  return ::recv(p.daemon_fd, &byte, 1, MSG_DONTWAIT) == 0;
}

TEST(Transport, ABrokenTransportWithNoLeaseClosesItsSocketAtOnce) {
  Pair p;
  ASSERT_EQ(p.transport->call(request(ipc::Op::stats), 20ms).code(), Errc::timeout);
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::stats);
  // Closed now, not when the Transport (the Client) goes: the daemon frees
  // the connection.
  EXPECT_TRUE(daemon_sees_hang_up(p));
  EXPECT_EQ(p.transport->call(request(ipc::Op::stats), 10s).code(), Errc::not_connected);
}

TEST(Transport, ABrokenTransportClosesItsSocketWithItsLastLease) {
  Pair p;
  p.transport->lease_taken();
  p.transport->lease_taken();
  ASSERT_EQ(p.transport->call(request(ipc::Op::stats), 20ms).code(), Errc::timeout);
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::stats);
  p.transport->send(request(ipc::Op::release));
  p.transport->lease_ended();
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::release);
  EXPECT_FALSE(daemon_sees_hang_up(p));  // one lease lives: the daemon keeps it
  p.transport->send(request(ipc::Op::release));
  p.transport->lease_ended();
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::release);  // its RELEASE went out first
  EXPECT_TRUE(daemon_sees_hang_up(p));
}

TEST(Transport, AUsableTransportKeepsItsSocketWhenItsLeasesEnd) {
  Pair p;
  p.transport->lease_taken();
  p.transport->lease_ended();
  EXPECT_FALSE(daemon_sees_hang_up(p));
  auto call = call_async(*p.transport, ipc::Op::stats);
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::stats);
  p.daemon->reply("stats");
  EXPECT_TRUE(call.get().ok());
}

extern "C" void on_test_signal(int) {}

// SIGUSR1 handled without SA_RESTART (as Python's handlers are) while it lives.
class InterruptingSignal {
 public:
  InterruptingSignal() {
    struct sigaction sa {};
    sa.sa_handler = on_test_signal;
    sigemptyset(&sa.sa_mask);
    EXPECT_EQ(::sigaction(SIGUSR1, &sa, &old_), 0);
  }
  ~InterruptingSignal() { ::sigaction(SIGUSR1, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

// A transport whose call()s ask `check` at a signal, and a fake daemon that
// answers only when the test says so.
struct InterruptiblePair {
  explicit InterruptiblePair(std::function<std::string()> check) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    transport = std::make_unique<Transport>(fds[0], ForkGuard(), 5000ms, std::move(check));
    transport->serve();
    daemon = std::make_unique<FakeDaemon>(fds[1]);
  }
  // Starts a STATS call on another thread and returns once the daemon has it.
  void call_stats() {
    std::promise<pthread_t> who;
    call = std::async(std::launch::async, [this, &who] {
      who.set_value(::pthread_self());
      return transport->call(request(ipc::Op::stats), 60s);
    });
    waiter = who.get_future().get();
    EXPECT_EQ(daemon->next_request().op, ipc::Op::stats);  // the reply is pending now
  }
  // Signals the waiting thread until `done` (a signal that comes before its
  // wait interrupts nothing: the next one will).
  void signal_until(const std::function<bool()>& done) {
    while (!done()) {
      ::pthread_kill(waiter, SIGUSR1);
      if (call.wait_for(1ms) == std::future_status::ready) return;
    }
  }
  std::unique_ptr<Transport> transport;
  std::unique_ptr<FakeDaemon> daemon;
  std::future<Result<std::string>> call;
  pthread_t waiter{};
};

TEST(Transport, AnInterruptCheckThatSaysStopAbandonsTheCallAndBreaksTheTransport) {
  InterruptingSignal sig;
  std::atomic<int> asked{0};
  InterruptiblePair p([&asked] {
    ++asked;
    return std::string("SIGUSR1");
  });
  p.transport->lease_taken();  // a lease taken before: its socket stays open
  p.call_stats();              // the daemon never answers: only the signal ends the wait
  p.signal_until([] { return false; });
  auto reply = p.call.get();
  ASSERT_EQ(reply.code(), Errc::cancelled) << reply.status().message();
  EXPECT_EQ(reply.status().message().rfind(
                "stats: interrupted by SIGUSR1 while waiting for genomed's reply", 0),
            0u)
      << reply.status().message();
  EXPECT_EQ(asked.load(), 1);
  EXPECT_EQ(p.transport->broken_why(), Transport::kInterrupted);
  // A late reply would be taken for the next request's, as after a timeout.
  auto next = p.transport->call(request(ipc::Op::health), 10s);
  EXPECT_EQ(next.code(), Errc::not_connected);
  EXPECT_NE(next.status().message().find("an earlier call on it was interrupted by SIGUSR1"),
            std::string::npos)
      << next.status().message();
  EXPECT_TRUE(p.daemon->sent_nothing_more());
  // The lease's release still goes out, then the socket closes.
  p.transport->send(request(ipc::Op::release));
  p.transport->lease_ended();
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::release);
}

TEST(Transport, AnInterruptCheckThatSaysGoOnKeepsTheCallWaiting) {
  InterruptingSignal sig;
  std::atomic<int> asked{0};
  InterruptiblePair p([&asked] {
    ++asked;
    return std::string();  // go on waiting
  });
  p.call_stats();
  p.signal_until([&asked] { return asked.load() > 0; });
  p.daemon->reply("stats");
  auto reply = p.call.get();
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(*reply, "stats");
  EXPECT_TRUE(p.transport->usable());
}

TEST(Transport, ACallWaitingForAnotherThreadsRequestSendsNothingAndBreaksNothing) {
  Pair p;
  auto first = call_async(*p.transport, ipc::Op::stats);
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::stats);  // `first` holds the call now
  auto second = p.transport->call(request(ipc::Op::health), 10ms);
  ASSERT_EQ(second.code(), Errc::timeout);
  EXPECT_NE(second.status().message().find("nothing was sent"), std::string::npos)
      << second.status().message();
  EXPECT_TRUE(p.transport->usable());
  p.daemon->reply("first's reply");
  auto reply = first.get();
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(*reply, "first's reply");
  EXPECT_TRUE(p.daemon->sent_nothing_more());
}

TEST(Transport, AReleaseNeverWaitsForAPendingRequestsReply) {
  Pair p;
  auto pending = call_async(*p.transport, ipc::Op::stats);
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::stats);
  p.transport->send(request(ipc::Op::release));  // returns while `pending` waits
  EXPECT_EQ(p.daemon->next_request().op, ipc::Op::release);
  p.daemon->reply("stats");
  EXPECT_TRUE(pending.get().ok());
}

TEST(Transport, AReleaseCutShortByItsDeadlineStopsEveryLaterWrite) {
  Pair p(/*release_timeout=*/10ms);
  // The daemon reads nothing: releases fill the socket until one times out
  // part-way, leaving a partial frame that nothing may follow.
  for (int i = 0; i < 1'000'000 && p.transport->usable(); ++i) {
    p.transport->send(request(ipc::Op::release));
  }
  ASSERT_EQ(p.transport->broken_why(), Transport::kTimedOut);
  char buf[65536];  // the daemon reads it all: room for any further write
  while (::recv(p.daemon_fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
  p.transport->send(request(ipc::Op::release));
  EXPECT_EQ(p.transport->call(request(ipc::Op::stats), 10s).code(), Errc::not_connected);
  EXPECT_EQ(p.unread(), 0);
}

TEST(Transport, AReplyLongerThanAReplyMayBeBreaksTheProtocol) {
  Pair p;
  auto call = call_async(*p.transport, ipc::Op::stats);
  p.daemon->next_request();
  const std::uint32_t n = ipc::kMaxReplyFrame + 1;
  const char prefix[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                          static_cast<char>(n >> 8), static_cast<char>(n)};
  p.daemon->write_raw(std::string_view(prefix, 4));
  auto reply = call.get();
  EXPECT_EQ(reply.code(), Errc::protocol_error) << reply.status().message();
  EXPECT_EQ(p.transport->broken_why(), Transport::kProtocol);
}

TEST(Transport, ADaemonThatClosesTheSocketLosesTheConnection) {
  Pair p;
  p.daemon->close();
  auto reply = p.transport->call(request(ipc::Op::stats), 10s);
  EXPECT_EQ(reply.code(), Errc::not_connected);
  EXPECT_NE(reply.status().message().find("lost the connection to genomed"), std::string::npos)
      << reply.status().message();
  EXPECT_EQ(p.transport->broken_why(), Transport::kLost);
}

TEST(Transport, TheLivenessLookSeesAHangUpWithoutARequest) {
  Pair p;
  EXPECT_TRUE(p.transport->daemon_alive());
  Pair q;  // a fresh transport: its first look polls at once
  q.daemon->close();
  EXPECT_FALSE(q.transport->daemon_alive());
  EXPECT_EQ(q.transport->broken_why(), Transport::kLost);
}

TEST(Transport, InAChildOfForkNothingIsSentAndEveryCallIsRefused) {
  Pair p;
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto reply = p.transport->call(request(ipc::Op::stats), 10s);
    p.transport->send(request(ipc::Op::release));
    const bool refused = reply.code() == Errc::not_connected &&
                         reply.status().message().find("child of fork()") != std::string::npos;
    ::_exit(refused ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(p.daemon->sent_nothing_more());
  EXPECT_TRUE(p.transport->usable());
}

}  // namespace
}  // namespace genomed::client_detail
