// A raw connection to the daemon that speaks the protocol frame by frame,
// for tests of what a well-behaved Client never does: misbehave on purpose,
// or pipeline requests behind one that waits.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ipc/framing.h"
#include "ipc/protocol.h"

namespace genomed::testing {

class RawSocket {
 public:
  explicit RawSocket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    // A liveness bound for the reads below, not a timing assertion: a
    // daemon that never answers fails the test instead of hanging it.
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  int fd() const { return fd_; }

  // True when the daemon closed the connection (EOF), reading past any
  // replies it sent first.
  bool closed_by_peer() {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;  // EAGAIN: the bound passed, still open
    }
  }

  void send(const ipc::Request& req) {
    ASSERT_TRUE(ipc::write_frame(fd_, ipc::encode_request(req)).ok());
  }
  Result<ipc::ReceivedFrame> reply() { return ipc::read_frame(fd_, ipc::kMaxReplyFrame); }

  void hello() {
    ipc::Request req;
    req.op = ipc::Op::hello;
    req.version = ipc::kProtocolVersion;
    req.client = "raw";
    send(req);
    auto reply = ipc::read_frame(fd_, ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/1);
    ASSERT_TRUE(reply.ok()) << reply.status().to_string();
    for (int fd : reply->fds) ::close(fd);
  }

  // hello(), then one HEALTH round trip, after which the daemon holds the
  // connection idle (make_room may pick it by its age). The HELLO's reply
  // leaves while the daemon's thread is still reading the socket, so for a
  // moment after it the connection is busy; an ordinary request's reply
  // leaves as the thread lets go of the socket (Connection::run).
  void hello_then_idle() {
    hello();
    ipc::Request req;
    req.op = ipc::Op::health;
    send(req);
    auto frame = reply();
    ASSERT_TRUE(frame.ok()) << frame.status().to_string();
  }

  // Acquires `name`; its lease id (0 on failure, which fails the test).
  std::uint64_t acquire(const std::string& name) {
    ipc::Request req;
    req.op = ipc::Op::acquire;
    req.names = {name};
    send(req);
    auto frame = reply();
    EXPECT_TRUE(frame.ok()) << frame.status().to_string();
    if (!frame) return 0;
    auto grants = ipc::decode_acquire_reply(frame->body);
    EXPECT_TRUE(grants.ok()) << grants.status().to_string();
    return grants.ok() ? grants->grants.at(0).lease : 0;
  }

 private:
  int fd_ = -1;
};

}  // namespace genomed::testing
