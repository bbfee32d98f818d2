// HELLO, the first frame of a connection: refused unless it is HELLO of this
// daemon's protocol version; accepted, it carries the arena's descriptor and,
// when asked for and offered, a page of lease slots.
#include "loader/handshake.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/protocol.h"
#include "ipc/wire.h"

namespace genomed::loader {
namespace {

class HandshakeTest : public ::testing::Test {
 protected:
  HandshakeTest() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, peer_), 0);
    ctx_.arena_ro_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ctx_.arena_bytes = 1 << 20;
    ctx_.server_version = "genomed test";
  }
  ~HandshakeTest() override {
    ::close(peer_[0]);
    ::close(peer_[1]);
    ::close(ctx_.arena_ro_fd);
  }

  static std::string hello(std::uint32_t version, bool lease_slots = false) {
    ipc::Request req;
    req.op = ipc::Op::hello;
    req.version = version;
    req.client = "handshake-test";
    req.lease_slots = lease_slots;
    return ipc::encode_request(req);
  }
  Result<Handshake> take(std::string_view body) {
    return accept_hello(body, peer_[0], 7, ctx_, [this](std::string* note) {
      ++warnings_;
      note->clear();
      return true;
    });
  }
  std::uint64_t bad_requests() const { return ctx_.counters->bad_requests.load(); }

  int peer_[2] = {-1, -1};
  ConnectionContext ctx_;
  int warnings_ = 0;
};

TEST_F(HandshakeTest, AnotherProtocolVersionIsRefused) {
  auto r = take(hello(ipc::kProtocolVersion + 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::unsupported_version) << r.status().to_string();
  EXPECT_NE(r.status().message().find(std::to_string(ipc::kProtocolVersion + 1)),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(bad_requests(), 1u);
}

TEST_F(HandshakeTest, AnyOtherFirstRequestIsRefused) {
  ipc::Request stats;
  stats.op = ipc::Op::stats;
  auto r = take(ipc::encode_request(stats));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::hello_required) << r.status().to_string();

  auto garbage = take("\xc1 not msgpack");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.code(), Errc::malformed_frame) << garbage.status().to_string();

  ipc::MapWriter w;
  w.put("op", "frobnicate");
  auto unknown = take(w.finish());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.code(), Errc::unknown_op) << unknown.status().to_string();
  EXPECT_EQ(bad_requests(), 3u);
}

TEST_F(HandshakeTest, TheReplyCarriesTheArenaAndNoPageUnlessAskedFor) {
  auto r = take(hello(ipc::kProtocolVersion));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->reply.server, "genomed test");
  EXPECT_EQ(r->reply.arena_bytes, 1u << 20);
  EXPECT_EQ(r->reply.pid, static_cast<std::uint64_t>(::getpid()));
  EXPECT_EQ(r->reply.lease_slots, 0u);
  EXPECT_EQ(r->slot_page, nullptr);
  ASSERT_EQ(r->pass_fds().size(), 1u);
  EXPECT_EQ(r->pass_fds()[0], ctx_.arena_ro_fd);
  EXPECT_EQ(bad_requests(), 0u);
}

TEST_F(HandshakeTest, AClientThatAsksGetsAPageOfLeaseSlotsAfterTheArena) {
  ctx_.limits.lease_slots = 8;
  auto r = take(hello(ipc::kProtocolVersion, /*lease_slots=*/true));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_NE(r->slot_page, nullptr);
  EXPECT_EQ(r->reply.lease_slots, r->slot_page->slots());
  EXPECT_GE(r->reply.lease_slots, 8u);
  ASSERT_EQ(r->pass_fds().size(), 2u);
  EXPECT_EQ(r->pass_fds()[0], ctx_.arena_ro_fd);
  EXPECT_EQ(r->pass_fds()[1], r->slot_page->fd());

  // None offered (--lease-slots 0): the client takes every lease by request.
  ctx_.limits.lease_slots = 0;
  auto none = take(hello(ipc::kProtocolVersion, /*lease_slots=*/true));
  ASSERT_TRUE(none.ok()) << none.status().to_string();
  EXPECT_EQ(none->slot_page, nullptr);
  EXPECT_EQ(none->pass_fds().size(), 1u);
}

TEST(PeerDescription, NamesThePeersPidAndUid) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  EXPECT_EQ(peer_description(fds[0]),
            "pid " + std::to_string(::getpid()) + " uid " + std::to_string(::getuid()));
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(peer_description(-1), "unknown peer");
}

}  // namespace
}  // namespace genomed::loader
