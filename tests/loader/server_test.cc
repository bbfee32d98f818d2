// The server's accept path on a real listening socket in a scratch
// directory: the peer check before a client takes a slot, and the room made
// (or refused) at --max-connections. The coordinator is the fixture's (fake
// clock, in-process runner); clients speak the protocol frame by frame.
#include "loader/server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "integration/raw_socket.h"
#include "ipc/protocol.h"
#include "tests/loader/coordinator_fixture.h"

namespace genomed::loader {
namespace {

using genomed::testing::RawSocket;

class ServerTest : public genomed::testing::CoordinatorTest {
 protected:
  void serve(ConnectionLimits limits, std::shared_ptr<AccessControl> access = nullptr) {
    start_with({"a"}, 4);
    ctx_.coordinator = coordinator_.get();
    ctx_.arena_ro_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ctx_.arena_bytes = 4096;
    ctx_.server_version = "genomed test";
    ctx_.limits = limits;
    ctx_.limits.lease_slots = 0;  // every lease a request: the server sees who holds one
    ctx_.access = std::move(access);
    auto server = Server::listen(path_, ctx_);
    ASSERT_TRUE(server.ok()) << server.status().to_string();
    server_ = std::move(server).value();
    ASSERT_TRUE(server_->start().ok());
  }
  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    if (ctx_.arena_ro_fd >= 0) ::close(ctx_.arena_ro_fd);
    CoordinatorTest::TearDown();
  }
  // The error a client reads in place of its HELLO reply (ok: it was served).
  static Errc hello_answer(RawSocket& client) {
    ipc::Request req;
    req.op = ipc::Op::hello;
    req.version = ipc::kProtocolVersion;
    req.client = "server-test";
    client.send(req);
    auto frame = ipc::read_frame(client.fd(), ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/2);
    if (!frame) return frame.code();
    for (int fd : frame->fds) ::close(fd);
    auto hello = ipc::decode_hello_reply(frame->body);
    return hello.ok() ? Errc::ok : hello.code();
  }
  // What a client refused at accept reads before it says anything (Ok: a
  // HELLO reply, which a refused client never gets).
  static Status refusal(RawSocket& client) {
    auto frame = client.reply();
    if (!frame) return frame.status();
    auto decoded = ipc::decode_hello_reply(frame->body);
    return decoded.ok() ? Status::Ok() : decoded.status();
  }
  // A client that said HELLO and holds a lease on "a": never closed for room.
  std::unique_ptr<RawSocket> lease_holder() {
    auto holder = std::make_unique<RawSocket>(path_);
    EXPECT_EQ(hello_answer(*holder), Errc::ok);
    EXPECT_NE(holder->acquire("a"), 0u);
    return holder;
  }
  static Errc next_error(RawSocket& client) {
    auto frame = client.reply();
    if (!frame) return frame.code();
    auto decoded = ipc::decode_stats_reply(frame->body);
    return decoded.ok() ? Errc::ok : decoded.code();
  }
  static Errc stats(RawSocket& client) {
    ipc::Request req;
    req.op = ipc::Op::stats;
    client.send(req);
    return next_error(client);
  }

  std::string path_ = scratch_.path() + "/genomed.sock";
  ConnectionContext ctx_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, APeerWhoseUidIsNotAllowedIsRefusedAtAccept) {
  // Neither the test's uid nor the daemon's (which is always allowed).
  const uid_t other = ::getuid() + 4242;
  serve({}, std::make_shared<AccessControl>(AccessOptions{.allow_uids = {other}}, other));
  RawSocket client(path_);
  const Status refused = refusal(client);
  EXPECT_EQ(refused.code(), Errc::permission_denied) << refused.to_string();
  EXPECT_TRUE(client.closed_by_peer());
  EXPECT_EQ(ctx_.counters->permission_denied.load(), 1u);
}

TEST_F(ServerTest, AnAllowedUidIsServed) {
  serve({}, std::make_shared<AccessControl>(AccessOptions{.allow_uids = {::getuid()}},
                                            ::getuid() + 4242));
  RawSocket client(path_);
  EXPECT_EQ(hello_answer(client), Errc::ok);
  EXPECT_EQ(stats(client), Errc::ok);
  EXPECT_EQ(ctx_.counters->permission_denied.load(), 0u);
}

TEST_F(ServerTest, AtMaxConnectionsANewClientTakesTheIdleOnesPlace) {
  serve({.max_connections = 1, .max_connections_per_uid = 0});
  RawSocket idle(path_);
  ASSERT_EQ(hello_answer(idle), Errc::ok);
  // HELLO's reply leaves while the server still reads the socket; after an
  // ordinary request's reply the connection is idle (as hello_then_idle()).
  ASSERT_EQ(stats(idle), Errc::ok);
  RawSocket fresh(path_);
  EXPECT_EQ(hello_answer(fresh), Errc::ok);
  // The idle one was told why, then closed.
  EXPECT_EQ(next_error(idle), Errc::overloaded);
  EXPECT_TRUE(idle.closed_by_peer());
  EXPECT_EQ(ctx_.counters->connections_evicted.load(), 1u);
  EXPECT_EQ(stats(fresh), Errc::ok);
}

TEST_F(ServerTest, AtMaxConnectionsAConnectionHoldingALeaseKeepsItsPlace) {
  serve({.max_connections = 1, .max_connections_per_uid = 0});
  auto holder = lease_holder();
  RawSocket refused(path_);
  const Status why = refusal(refused);
  EXPECT_EQ(why.code(), Errc::overloaded) << why.to_string();
  EXPECT_TRUE(refused.closed_by_peer());
  EXPECT_EQ(ctx_.counters->connections_evicted.load(), 0u);
  EXPECT_EQ(stats(*holder), Errc::ok);  // still served
}

TEST_F(ServerTest, AtItsUidsShareAClientTakesOnlyThePlaceOfItsOwn) {
  serve({.max_connections = 8, .max_connections_per_uid = 1});
  auto holder = lease_holder();
  // Room for eight, but this uid holds its one: refused, naming the limit.
  RawSocket refused(path_);
  const Status why = refusal(refused);
  EXPECT_EQ(why.code(), Errc::overloaded) << why.to_string();
  EXPECT_NE(why.message().find("--max-connections-per-uid"), std::string::npos) << why.message();
}

}  // namespace
}  // namespace genomed::loader
