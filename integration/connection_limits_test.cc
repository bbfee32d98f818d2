// Connections cannot pin the daemon's resources: a client that never says
// HELLO, one that holds no lease and goes idle past --idle-timeout-ms, or one
// that does not read its replies is disconnected (its leases released); past
// --max-connections a client gets a typed `overloaded` answer.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "integration/daemon_fixture.h"
#include "integration/raw_socket.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"

namespace genomed::testing {
namespace {

TEST(ConnectionLimits, AClientThatSendsNoHelloIsClosedAtTheHandshakeDeadline) {
  Daemon daemon({.extra_args = {"--handshake-timeout-ms", "200"}});
  RawSocket silent(daemon.socket_path());
  EXPECT_TRUE(silent.closed_by_peer());
  EXPECT_NE(daemon.log().find("no HELLO within 200 ms"), std::string::npos) << daemon.log();
  EXPECT_TRUE(daemon.connect().health().ok()) << "the daemon keeps serving";
}

TEST(ConnectionLimits, AnIdleClientIsClosedUnlessItHoldsLeases) {
  Daemon daemon({.extra_args = {"--idle-timeout-ms", "300"}});
  daemon.add_adapter("a", {});
  // A client holding a lease may read its tensors for hours without a word
  // to the daemon: closing it would let the daemon reuse memory under its
  // views. So only lease-free idle clients are closed.
  RawSocket holder(daemon.socket_path());
  holder.hello();
  holder.acquire("a");
  RawSocket idle(daemon.socket_path());
  idle.hello();
  EXPECT_TRUE(idle.closed_by_peer());
  // `holder` has been idle at least as long as `idle` was when it was closed.
  char byte;
  EXPECT_EQ(::recv(holder.fd(), &byte, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN) << "the lease holder's connection is still open";
  EXPECT_EQ(daemon.stat("leases_active"), 1u);
  EXPECT_NE(daemon.log().find("idle for 300 ms holding no lease"), std::string::npos)
      << daemon.log();
}

TEST(ConnectionLimits, AClientThatDoesNotReadItsRepliesIsClosedAndItsLeasesReleased) {
  Daemon daemon({.extra_args = {"--write-timeout-ms", "200"}});
  daemon.add_adapter("a", {});
  RawSocket deaf(daemon.socket_path());
  int small = 4096;
  ::setsockopt(deaf.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  deaf.hello();
  deaf.acquire("a");
  ASSERT_EQ(daemon.stat("leases_active"), 1u);
  // Ask for replies and never read them, until the daemon stops taking
  // requests (its reply writes block, then hit the deadline).
  ipc::Request stats;
  stats.op = ipc::Op::stats;
  const std::string frame = ipc::encode_request(stats);
  std::string wire(4, '\0');
  wire[3] = static_cast<char>(frame.size());
  wire += frame;
  for (int i = 0; i < 100000; ++i) {
    if (::send(deaf.fd(), wire.data(), wire.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) break;
  }
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0; }, 30000));
  EXPECT_NE(daemon.log().find("did not read its reply within 200 ms"), std::string::npos)
      << daemon.log();
}

TEST(ConnectionLimits, PastTheConnectionLimitAClientIsToldOverloaded) {
  Daemon daemon({.extra_args = {"--max-connections", "2"}});
  Client first = daemon.connect();
  Client second = daemon.connect();
  auto third = Client::connect(daemon.socket_path());
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.code(), Errc::overloaded) << third.status().to_string();
  EXPECT_NE(third.status().message().find("--max-connections"), std::string::npos);
  EXPECT_TRUE(first.health().ok());
}

}  // namespace
}  // namespace genomed::testing
