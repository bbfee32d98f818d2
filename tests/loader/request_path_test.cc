// The request path's bookkeeping (loader/request_path.h): the invariants
// Requests::check_invariants holds the requests in progress to. The
// coordinator's tests (coordinator_test.cc and the feature tests beside it)
// run the request path itself and check these after every step.
#include "loader/request_path.h"

#include <gtest/gtest.h>

#include <memory>

#include "loader/flight.h"

namespace genomed::loader {
namespace {

class RequestsTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }

  // A LOADING entry "a" whose flight has `req` as its waiter, as
  // RequestPath::join leaves them.
  std::shared_ptr<Flight> joined_loading(Request& req) {
    auto flight = std::make_shared<Flight>();
    flight->name = "a";
    entries.start_loading("a", flight);
    requests.add(req);
    req.joined.push_back(flight);
    flight->waiters.push_back(&req);
    return flight;
  }

  AdapterTable entries;
  Requests requests;
};

TEST_F(RequestsTest, ARequestAndTheFlightsItJoinedListEachOther) {
  Request req;
  const auto flight = joined_loading(req);
  auto ticket = std::make_shared<AdmissionTicket>();
  requests.give_ticket(req, ticket);
  requests.check_invariants(entries);  // waiting for room, not admitted: consistent
  EXPECT_EQ(requests.owner_of(ticket.get()), &req);
  // Served: admitted, leased, the served ticket still held until it looks.
  ticket->outcome = AdmissionTicket::Outcome::served;
  req.admitted = true;
  req.leases.emplace_back("b", 7);
  requests.check_invariants(entries);
  // leave(): both sides let go.
  requests.drop_ticket(req);
  std::erase(flight->waiters, &req);
  req.joined.clear();
  requests.remove(req);
  requests.check_invariants(entries);
  EXPECT_EQ(requests.owner_of(ticket.get()), nullptr);
}

TEST_F(RequestsTest, AJoinedFlightThatDoesNotListTheRequestAborts) {
  Request req;
  const auto flight = joined_loading(req);
  flight->waiters.clear();
  EXPECT_DEATH(requests.check_invariants(entries), "does not list it once as a waiter");
  flight->waiters = {&req, &req};  // listed twice: left once, it would stay a waiter
  EXPECT_DEATH(requests.check_invariants(entries), "does not list it once as a waiter");
}

TEST_F(RequestsTest, AWaiterThatLeftWithoutLeavingItsFlightAborts) {
  Request req;
  joined_loading(req);
  requests.remove(req);  // gone, but still the flight's waiter: a dangling pointer
  EXPECT_DEATH(requests.check_invariants(entries), "not a request in progress that joined it");
}

TEST_F(RequestsTest, AnAdmittedRequestStillWaitingForRoomAborts) {
  Request req;
  requests.add(req);
  requests.give_ticket(req, std::make_shared<AdmissionTicket>());
  req.admitted = true;
  EXPECT_DEATH(requests.check_invariants(entries), "an admitted request still waits for room");
}

TEST_F(RequestsTest, LeasesBeforeAdmissionAbort) {
  Request req;
  requests.add(req);
  req.leases.emplace_back("a", 1);
  EXPECT_DEATH(requests.check_invariants(entries), "holds leases before admission");
}

TEST(DistinctNames, KeepTheFirstOrderWithoutRepeats) {
  EXPECT_EQ(distinct_names({"b", "a", "b", "c", "a"}), (std::vector<std::string>{"b", "a", "c"}));
  EXPECT_TRUE(distinct_names({}).empty());
}

}  // namespace
}  // namespace genomed::loader
