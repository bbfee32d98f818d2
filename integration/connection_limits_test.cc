// Connections cannot pin the daemon's resources: a client that never says
// HELLO, one that holds no lease and goes idle past --idle-timeout-ms, or one
// that does not read its replies is disconnected (its leases released); past
// --max-connections (or its uid's --max-connections-per-uid) a new client
// takes the place of the connection idle longest that holds no lease (which
// is told `overloaded`), or gets a typed `overloaded` answer when every
// connection holds leases; past
// --max-leases-per-connection an ACQUIRE gets `limit_exceeded`; and no reply
// outgrows what a client accepts (LIST comes in pages).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <vector>

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

// One process that holds every connection idle (HELLO said, then nothing)
// kept every other client out under default flags: `overloaded` for as long
// as it held them. At the limit a new client now takes the place of the
// connection idle longest that holds no lease; the default policy, with a
// smaller limit to keep the test cheap, and no per-uid share so that one
// uid reaches the limit.
TEST(ConnectionLimits, AtTheLimitANewClientTakesThePlaceOfTheConnectionIdleLongest) {
  constexpr int kLimit = 16;
  Daemon daemon({.extra_args = {"--max-connections", std::to_string(kLimit),
                                "--max-connections-per-uid", "0"}});
  std::vector<std::unique_ptr<RawSocket>> hog;
  // As many as it may hold, then as many again: each new one of its
  // connections takes the place of its own oldest.
  for (int i = 0; i < 2 * kLimit; ++i) {
    hog.push_back(std::make_unique<RawSocket>(daemon.socket_path()));
    hog.back()->hello_then_idle();
  }
  auto client = Client::connect(daemon.socket_path());
  ASSERT_TRUE(client.ok()) << client.status().to_string() << "\n" << daemon.log();
  ASSERT_TRUE(client->health().ok());
  auto stats = client->stats();
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  std::uint64_t evicted = 0;
  for (const auto& [key, value] : *stats) {
    if (key == "connections_evicted") evicted = std::get<std::uint64_t>(value);
  }
  EXPECT_EQ(evicted, std::uint64_t{kLimit + 1});
  // The oldest were closed, and told why in place of their next reply.
  for (int i = 0; i <= kLimit; ++i) {
    SCOPED_TRACE(i);
    auto told = hog[i]->reply();
    ASSERT_TRUE(told.ok()) << told.status().to_string();
    const Status why = ipc::decode_hello_reply(told->body).status();
    EXPECT_EQ(why.code(), Errc::overloaded) << why.to_string();
    EXPECT_NE(why.message().find("--max-connections"), std::string::npos) << why.message();
    EXPECT_TRUE(hog[i]->closed_by_peer());
  }
  EXPECT_NE(daemon.log().find("closed to make room for a new client"), std::string::npos)
      << daemon.log();
}

// A connection holding leases may be reading tensors without a word to the
// daemon: it is never closed to make room. With every connection holding
// one, a new client is told `overloaded`.
TEST(ConnectionLimits, PastTheLimitAClientIsToldOverloadedWhenEveryConnectionHoldsLeases) {
  Daemon daemon({.extra_args = {"--max-connections", "2", "--max-connections-per-uid", "0"}});
  daemon.add_adapter("a", {});
  Client first = daemon.connect();
  Client second = daemon.connect();
  auto held_first = first.acquire("a");
  auto held_second = second.acquire("a");
  ASSERT_TRUE(held_first.ok() && held_second.ok());
  auto third = Client::connect(daemon.socket_path());
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.code(), Errc::overloaded) << third.status().to_string();
  EXPECT_NE(third.status().message().find("--max-connections"), std::string::npos);
  EXPECT_TRUE(first.health().ok());
  EXPECT_TRUE(second.health().ok());
}

// Below --max-connections, a uid holding its share (--max-connections-per-uid,
// by default three quarters of them) gets a new connection only in place of
// one of its own idle without a lease; else it is told `overloaded`.
TEST(ConnectionLimits, AtItsUidsShareANewClientTakesThePlaceOfItsOwnIdleConnection) {
  Daemon daemon({.extra_args = {"--max-connections", "4"}});  // a share of 3
  daemon.add_adapter("a", {});
  std::vector<std::unique_ptr<RawSocket>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RawSocket>(daemon.socket_path()));
    idle.back()->hello_then_idle();
  }
  Client fourth = daemon.connect();
  // Admitted only once one of its own made room: idle[0] was told already
  // (without it, nothing comes and the read below would wait).
  char byte;
  ASSERT_EQ(::recv(idle[0]->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT), 1) << daemon.log();
  auto told = idle[0]->reply();
  ASSERT_TRUE(told.ok()) << told.status().to_string();
  const Status why = ipc::decode_hello_reply(told->body).status();
  EXPECT_EQ(why.code(), Errc::overloaded) << why.to_string();
  EXPECT_NE(why.message().find("(--max-connections-per-uid)"), std::string::npos)
      << why.message();
  EXPECT_TRUE(idle[0]->closed_by_peer());
  // With every connection of the uid holding a lease, none makes room.
  idle[1]->acquire("a");
  idle[2]->acquire("a");
  auto held = fourth.acquire("a");
  ASSERT_TRUE(held.ok()) << held.status().to_string();
  auto refused = Client::connect(daemon.socket_path());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), Errc::overloaded) << refused.status().to_string();
  EXPECT_NE(refused.status().message().find("--max-connections-per-uid"), std::string::npos)
      << refused.status().message();
  EXPECT_TRUE(fourth.health().ok());
}

TEST(ConnectionLimits, PastItsLeaseLimitAnAcquireIsRefusedLimitExceeded) {
  Daemon daemon({.extra_args = {"--max-leases-per-connection", "8"}});
  daemon.add_adapter("a", {});
  // Leases taken through a lease slot cost the daemon no record: the limit
  // is on those it keeps.
  Client hoarder = daemon.connect_without_slots();
  auto held = hoarder.acquire(std::vector<std::string>(8, "a"));
  ASSERT_TRUE(held.ok()) << held.status().to_string();
  auto over = hoarder.acquire("a");
  ASSERT_EQ(over.code(), Errc::limit_exceeded) << over.status().to_string();
  EXPECT_NE(over.status().message().find("--max-leases-per-connection"), std::string::npos)
      << over.status().message();
  EXPECT_FALSE(hoarder.broken()) << "a refused request leaves the connection usable";
  EXPECT_EQ(daemon.stat("limits_exceeded"), 1u);
  Client other = daemon.connect();
  EXPECT_TRUE(other.acquire("a").ok()) << "every connection has its own limit";
  held->pop_back();  // released (RELEASE goes out ahead of the next request): room for one
  EXPECT_TRUE(hoarder.acquire("a").ok());
}

// The C++ client follows LIST's pages: every adapter comes back, in order,
// however many there are; no reply of the daemon carries more than a page.
TEST(ConnectionLimits, ListReturnsMoreAdaptersThanOnePageThroughItsPages) {
  Daemon daemon;
  const std::size_t count = ipc::kMaxListPage + 6;
  const fixture::AdapterSpec tiny{.rank = 1, .layers = 1, .hidden = 8};
  const std::string first = daemon.add_adapter("n0000", tiny);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < count; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "n%04zu", i);
    names.push_back(name);
    if (i > 0) std::filesystem::copy(first, daemon.root() + "/" + name);
  }
  Client client = daemon.connect();
  for (std::size_t i = 0; i < count; i += ipc::kMaxBatch) {
    const std::vector<std::string> batch(names.begin() + i,
                                         names.begin() + std::min(count, i + ipc::kMaxBatch));
    auto leases = client.acquire(batch);  // loads them; released at once
    ASSERT_TRUE(leases.ok()) << leases.status().to_string();
  }
  RawSocket raw(daemon.socket_path());
  raw.hello();
  raw.send(ipc::Request{.op = ipc::Op::list});
  auto page = raw.reply();
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  auto first_page = ipc::decode_list_reply(page->body);
  ASSERT_TRUE(first_page.ok()) << first_page.status().to_string();
  EXPECT_EQ(first_page->adapters.size(), ipc::kMaxListPage);
  EXPECT_TRUE(first_page->next.has_value());

  auto all = client.list();
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), count);
  for (std::size_t i = 0; i < count; ++i) EXPECT_EQ((*all)[i].name, names[i]);
}

}  // namespace
}  // namespace genomed::testing
