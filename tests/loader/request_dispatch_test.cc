// One request -> the coordinator call it names -> its reply, on the
// coordinator's test fixture (fake clock, in-process runner): no socket, the
// reply is the encoded frame body the connection would send.
#include "loader/request_dispatch.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "ipc/protocol.h"
#include "tests/loader/coordinator_fixture.h"

namespace genomed::loader {
namespace {

using namespace std::chrono_literals;

constexpr ConnectionId kConn = 5;

class RequestDispatchTest : public genomed::testing::CoordinatorTest {
 protected:
  void start_context(std::initializer_list<const char*> names, CoordinatorOptions options = {}) {
    start_with(names, 4, options);
    ctx_.coordinator = coordinator_.get();
  }
  std::string run(const ipc::Request& req) {
    return dispatch(req, ctx_,
                    {.id = kConn, .wait = nullptr, .slot_page = nullptr,
                     .may_warn = [this](std::string* note) {
                       ++warnings_;
                       note->clear();
                       return true;
                     }});
  }
  static ipc::Request request(ipc::Op op, std::vector<std::string> names = {}) {
    ipc::Request req;
    req.op = op;
    req.names = std::move(names);
    return req;
  }
  // The code of an error reply (ok for a LOAD reply).
  static Errc error_of(const std::string& reply) {
    auto r = ipc::decode_load_reply(reply);
    return r.ok() ? Errc::ok : r.code();
  }

  ConnectionContext ctx_;
  int warnings_ = 0;
};

TEST_F(RequestDispatchTest, AcquireAndReleaseReachTheCoordinatorForTheirConnection) {
  start_context({"a"});
  auto acquired = ipc::decode_acquire_reply(run(request(ipc::Op::acquire, {"a"})));
  ASSERT_TRUE(acquired.ok()) << acquired.status().to_string();
  ASSERT_EQ(acquired->grants.size(), 1u);
  EXPECT_EQ(acquired->grants[0].name, "a");
  EXPECT_TRUE(coordinator_->holds_leases(kConn));

  ipc::Request release = request(ipc::Op::release);
  release.leases = {acquired->grants[0].lease};
  EXPECT_EQ(run(release), "");  // one-way: no reply
  EXPECT_FALSE(coordinator_->holds_leases(kConn));
}

TEST_F(RequestDispatchTest, TheCoordinatorsErrorsAreErrorReplies) {
  start_context({"a"});
  EXPECT_EQ(error_of(run(request(ipc::Op::acquire, {"missing"}))), Errc::not_found);
  EXPECT_EQ(error_of(run(request(ipc::Op::load, {"missing"}))), Errc::not_found);
  EXPECT_EQ(error_of(run(request(ipc::Op::load, {"a"}))), Errc::ok);
  EXPECT_TRUE(resident("a"));
}

TEST_F(RequestDispatchTest, ASecondHelloIsABadRequest) {
  start_context({});
  ipc::Request hello = request(ipc::Op::hello);
  hello.version = ipc::kProtocolVersion;
  EXPECT_EQ(error_of(run(hello)), Errc::bad_request);
  EXPECT_EQ(ctx_.counters->bad_requests.load(), 1u);
}

TEST_F(RequestDispatchTest, ARefusalAtTheLeaseLimitIsCountedAndWarnedAbout) {
  start_context({"a"}, {.max_leases_per_connection = 1});
  EXPECT_TRUE(ipc::decode_acquire_reply(run(request(ipc::Op::acquire, {"a"}))).ok());
  EXPECT_EQ(error_of(run(request(ipc::Op::acquire, {"a"}))), Errc::limit_exceeded);
  EXPECT_EQ(ctx_.counters->limits_exceeded.load(), 1u);
  EXPECT_EQ(warnings_, 1);
}

TEST_F(RequestDispatchTest, TheDrainRefusesLoadAcquireAndPinAndMakesHealthSaySo) {
  start_context({"a"});
  ctx_.drain = std::make_shared<Drain>(1s, clock_);
  ASSERT_EQ(ctx_.drain->run([] { return std::uint64_t{0}; }), Drain::Outcome::no_leases);
  ASSERT_TRUE(ctx_.drain->active());
  EXPECT_EQ(error_of(run(request(ipc::Op::load, {"a"}))), Errc::shutting_down);
  EXPECT_EQ(error_of(run(request(ipc::Op::acquire, {"a"}))), Errc::shutting_down);
  EXPECT_EQ(error_of(run(request(ipc::Op::pin, {"a"}))), Errc::shutting_down);
  EXPECT_FALSE(resident("a"));
  auto health = ipc::decode_health_reply(run(request(ipc::Op::health)));
  ASSERT_TRUE(health.ok()) << health.status().to_string();
  EXPECT_FALSE(health->healthy);
  EXPECT_EQ(health->reason, ctx_.drain->health_reason());
  // What does not start loads is still served.
  EXPECT_TRUE(ipc::decode_list_reply(run(request(ipc::Op::list))).ok());
}

TEST_F(RequestDispatchTest, StatsAreTheCoordinatorsFiguresThenTheConnections) {
  start_context({});
  ctx_.counters->bad_requests = 3;
  auto stats = ipc::decode_stats_reply(run(request(ipc::Op::stats)));
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  const auto coordinator = coordinator_->stats().values;
  ASSERT_GT(stats->values.size(), coordinator.size());
  for (std::size_t i = 0; i < coordinator.size(); ++i)
    EXPECT_EQ(stats->values[i].first, coordinator[i].first) << i;
  bool found = false;
  for (const auto& [key, value] : stats->values) {
    if (key != "bad_requests") continue;
    found = true;
    EXPECT_EQ(std::get<std::uint64_t>(value), 3u);
  }
  EXPECT_TRUE(found) << "no bad_requests in STATS";
}

}  // namespace
}  // namespace genomed::loader
