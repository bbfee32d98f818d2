// One connection over a socketpair, driven by hand: the test writes the
// client's bytes, then delivers the epoll event a request thread would get
// (Connection::on_event), and reads what the daemon answered. The server is
// a fake host that records what the connection asks of it; the coordinator
// is the fixture's (fake clock, in-process runner).
#include "loader/connection.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"
#include "tests/loader/coordinator_fixture.h"

namespace genomed::loader {
namespace {

constexpr ConnectionId kConn = 21;

class FakeHost final : public ConnectionHost {
 public:
  void rearm(int, ConnectionId, std::uint32_t events) override {
    std::lock_guard g(mu_);
    rearms_.push_back(events);
  }
  void schedule(ConnectionId, ipc::Clock::time_point) override {}
  void blocking(bool) override {}
  void closed(ConnectionId, int) override {
    std::lock_guard g(mu_);
    ++closed_;
  }
  int closed_count() {
    std::lock_guard g(mu_);
    return closed_;
  }
  // The events of the last re-registration (0: none yet).
  std::uint32_t last_rearm() {
    std::lock_guard g(mu_);
    return rearms_.empty() ? 0 : rearms_.back();
  }

 private:
  std::mutex mu_;
  std::vector<std::uint32_t> rearms_;
  int closed_ = 0;
};

class ConnectionTest : public genomed::testing::CoordinatorTest {
 protected:
  // `sndbuf` > 0: the daemon's send buffer, made small to fill it.
  void open(int sndbuf = 0) {
    start_with({"a"}, 4);
    ctx_.coordinator = coordinator_.get();
    ctx_.arena_ro_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ctx_.arena_bytes = 4096;
    ctx_.server_version = "genomed test";
    ctx_.limits.lease_slots = 0;
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    if (sndbuf > 0) {
      ASSERT_EQ(::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    }
    client_ = fds[1];
    // A liveness bound for the reads below, not a timing assertion: a reply
    // that never comes fails the test instead of hanging it.
    timeval tv{30, 0};
    ::setsockopt(client_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    conn_ = std::make_shared<Connection>(fds[0], kConn, ctx_, host_);
  }
  void TearDown() override {
    if (conn_) conn_->shut_down();
    conn_.reset();
    if (client_ >= 0) ::close(client_);
    if (ctx_.arena_ro_fd >= 0) ::close(ctx_.arena_ro_fd);
    CoordinatorTest::TearDown();
  }

  void write_bytes(std::string_view bytes) {
    ASSERT_EQ(::send(client_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()))
        << std::strerror(errno);
  }
  // The client sends `bytes`; the daemon's request thread gets the event.
  void deliver(std::string_view bytes) {
    write_bytes(bytes);
    conn_->on_event(EPOLLIN);
  }
  Result<ipc::ReceivedFrame> reply() {
    auto r = ipc::read_frame(client_, ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/2);
    if (r.ok()) {
      for (int fd : r->fds) ::close(fd);
    }
    return r;
  }
  // Nothing waits on the client's side of the socket.
  bool nothing_to_read() {
    char c;
    return ::recv(client_, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
  }
  // True when the daemon closed the connection, reading past what it sent.
  bool closed_by_daemon() {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(client_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  static std::string request(ipc::Op op, std::uint32_t version = ipc::kProtocolVersion) {
    ipc::Request req;
    req.op = op;
    req.version = version;
    req.client = "connection-test";
    return ipc::encode_frame(ipc::encode_request(req));
  }
  void hello() {
    deliver(request(ipc::Op::hello));
    auto r = reply();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_TRUE(ipc::decode_hello_reply(r->body).ok());
  }
  // The code of an error reply (ok if it is another reply).
  Errc next_error() {
    auto r = reply();
    if (!r) return r.code();
    auto decoded = ipc::decode_stats_reply(r->body);
    return decoded.ok() ? Errc::ok : decoded.code();
  }

  ConnectionContext ctx_;
  FakeHost host_;
  int client_ = -1;
  std::shared_ptr<Connection> conn_;
};

TEST_F(ConnectionTest, AFrameSplitOverReadsIsServedOnceWhole) {
  open();
  hello();
  const std::string stats = request(ipc::Op::stats);
  deliver(stats.substr(0, 3));  // not even the whole length prefix
  EXPECT_TRUE(nothing_to_read());
  deliver(stats.substr(3, 4));
  EXPECT_TRUE(nothing_to_read());
  deliver(stats.substr(7));
  EXPECT_EQ(next_error(), Errc::ok);
  EXPECT_EQ(host_.closed_count(), 0);
}

TEST_F(ConnectionTest, RequestsInOneReadAreAnsweredInOrder) {
  open();
  hello();
  ipc::Request health;
  health.op = ipc::Op::health;
  deliver(request(ipc::Op::stats) + ipc::encode_frame(ipc::encode_request(health)) +
          request(ipc::Op::stats));
  auto first = reply(), second = reply(), third = reply();
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_TRUE(ipc::decode_stats_reply(first->body).ok());
  EXPECT_TRUE(ipc::decode_health_reply(second->body).ok());
  EXPECT_TRUE(ipc::decode_stats_reply(third->body).ok());
}

TEST_F(ConnectionTest, AnUnknownOpIsAnsweredAndTheConnectionServesOn) {
  open();
  hello();
  ipc::MapWriter w;
  w.put("op", "frobnicate");
  deliver(ipc::encode_frame(w.finish()));
  EXPECT_EQ(next_error(), Errc::unknown_op);
  deliver(request(ipc::Op::stats));
  EXPECT_EQ(next_error(), Errc::ok);
  EXPECT_EQ(host_.closed_count(), 0);
  EXPECT_EQ(ctx_.counters->bad_requests.load(), 1u);
}

TEST_F(ConnectionTest, HelloOfAnotherVersionIsAnsweredThenTheConnectionCloses) {
  open();
  deliver(request(ipc::Op::hello, ipc::kProtocolVersion + 1));
  EXPECT_EQ(next_error(), Errc::unsupported_version);
  EXPECT_TRUE(closed_by_daemon());
  EXPECT_EQ(host_.closed_count(), 1);
}

TEST_F(ConnectionTest, ARequestBeforeHelloIsAnsweredThenTheConnectionCloses) {
  open();
  deliver(request(ipc::Op::stats));
  EXPECT_EQ(next_error(), Errc::hello_required);
  EXPECT_TRUE(closed_by_daemon());
  EXPECT_EQ(host_.closed_count(), 1);
}

TEST_F(ConnectionTest, AnOversizedLengthPrefixIsAnsweredThenTheConnectionCloses) {
  open();
  hello();
  const std::uint32_t too_long = ipc::kMaxRequestFrame + 1;
  const unsigned char prefix[4] = {static_cast<unsigned char>(too_long >> 24),
                                   static_cast<unsigned char>(too_long >> 16),
                                   static_cast<unsigned char>(too_long >> 8),
                                   static_cast<unsigned char>(too_long)};
  const std::string framed = ipc::encode_frame("x");
  ASSERT_EQ(framed.substr(0, 4), std::string("\0\0\0\1", 4)) << "the prefix is big-endian";
  deliver(std::string(reinterpret_cast<const char*>(prefix), 4) + "and some body");
  EXPECT_EQ(next_error(), Errc::frame_too_large);
  EXPECT_TRUE(closed_by_daemon());
  EXPECT_EQ(host_.closed_count(), 1);
  EXPECT_EQ(ctx_.counters->bad_requests.load(), 1u);
}

TEST_F(ConnectionTest, RepliesTheClientDoesNotReadWaitForRoomAndGoOutWholeInOrder) {
  open(/*sndbuf=*/4096);
  hello();
  // Requests the client does not read the replies of, until one does not fit.
  int sent = 0;
  while ((host_.last_rearm() & EPOLLOUT) == 0) {
    ASSERT_LT(sent, 1000) << "the socket never filled";
    deliver(request(ipc::Op::stats));
    ++sent;
  }
  // More behind the one waiting: queued, not lost.
  for (int i = 0; i < 5; ++i, ++sent) deliver(request(ipc::Op::stats));
  EXPECT_EQ(host_.closed_count(), 0);

  // The client reads; each EPOLLOUT sends more; every reply arrives whole.
  int got = 0;
  while (got < sent) {
    auto frame = ipc::read_frame(client_, ipc::kMaxReplyFrame);
    ASSERT_TRUE(frame.ok()) << frame.status().to_string() << " after " << got << " of " << sent;
    ASSERT_TRUE(ipc::decode_stats_reply(frame->body).ok()) << "reply " << got;
    ++got;
    if (nothing_to_read()) conn_->on_event(EPOLLOUT);
  }
  EXPECT_TRUE(nothing_to_read());
  EXPECT_EQ(host_.last_rearm() & EPOLLOUT, 0u) << "still asks for EPOLLOUT with nothing to send";
  EXPECT_EQ(host_.closed_count(), 0);
}

}  // namespace
}  // namespace genomed::loader
