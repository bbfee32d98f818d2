// The metrics endpoint's server loop (loader/metrics_server.h) on a real
// loopback socket with a stand-in for the metrics text: the connection cap,
// the deadline of a client that stops reading, a failing render, a request
// cut short. The request shapes against the real daemon are in
// integration/metrics_endpoint_test.cc.
#include "loader/metrics_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <vector>

#include "tools/testkit/http_probe.h"

namespace genomed::loader {
namespace {

using testkit::http_exchange;
using testkit::HttpProbe;
using testkit::parse_answer;

std::unique_ptr<MetricsServer> serve(MetricsServer::Render render,
                                     MetricsServerOptions options = {}) {
  auto server = MetricsServer::start("127.0.0.1:0", std::move(render), options);
  EXPECT_TRUE(server.ok()) << server.status().to_string();
  return server.ok() ? std::move(server).value() : nullptr;
}

constexpr std::string_view kScrape = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

TEST(MetricsServer, ServesTheRenderedTextAndHeadGetsItsLengthOnly) {
  std::atomic<int> renders = 0;
  auto server = serve([&] {
    ++renders;
    return std::string("genomed_hits_total 3\n");
  });
  ASSERT_TRUE(server);
  const auto get = http_exchange(server->port(), kScrape);
  ASSERT_TRUE(get.well_formed);
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "genomed_hits_total 3\n");
  EXPECT_EQ(get.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto head = http_exchange(server->port(), "HEAD /metrics HTTP/1.1\r\n\r\n", true);
  ASSERT_TRUE(head.well_formed);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.content_length, get.body.size());
  EXPECT_EQ(renders, 2);
}

TEST(MetricsServer, ARenderThatThrowsIs500AndTheServerGoesOn) {
  std::atomic<bool> fail = true;
  auto server = serve([&]() -> std::string {
    if (fail) throw std::runtime_error("no stats");
    return "ok 1\n";
  });
  ASSERT_TRUE(server);
  const auto failed = http_exchange(server->port(), kScrape);
  EXPECT_TRUE(failed.well_formed);
  EXPECT_EQ(failed.status, 500);
  fail = false;  // the server's thread reads it after the next request arrives
  EXPECT_EQ(http_exchange(server->port(), kScrape).status, 200);
}

TEST(MetricsServer, ARequestCutShortGets400) {
  auto server = serve([] { return std::string(); });
  ASSERT_TRUE(server);
  HttpProbe probe(server->port());
  ASSERT_TRUE(probe.send("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  probe.shut_write();
  const auto got = probe.read_to_end();
  EXPECT_TRUE(got.closed);
  const auto answer = parse_answer(got.bytes);
  EXPECT_TRUE(answer.well_formed) << got.bytes;
  EXPECT_EQ(answer.status, 400);
}

TEST(MetricsServer, AtTheCapANewConnectionClosesTheOldestStillSending) {
  auto server = serve([] { return std::string("m 1\n"); }, {.max_connections = 4});
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<HttpProbe>> stalled;
  for (int i = 0; i < 4; ++i) {
    stalled.push_back(std::make_unique<HttpProbe>(server->port()));
    ASSERT_TRUE(stalled.back()->send("GET /metrics HTTP/1.1\r\n"));
  }
  // The scrape takes the oldest one's slot and is answered.
  EXPECT_EQ(http_exchange(server->port(), kScrape).status, 200);
  const auto got = stalled[0]->read_to_end();
  EXPECT_TRUE(got.closed);
  EXPECT_EQ(parse_answer(got.bytes).status, 503) << got.bytes;
  for (int i = 1; i < 4; ++i) EXPECT_TRUE(stalled[i]->quiet()) << i;
}

TEST(MetricsServer, AtTheCapWithNoOneSendingAScrapeClosesADrainingOneBeforeAWritingOne) {
  // Answers far larger than the socket buffers for the first two, which
  // stop reading; a small one for the two that then trickle a declared body.
  const std::string big(32 << 20, 'x');
  std::atomic<bool> answer_big = true;
  auto server = serve([&] { return answer_big ? big : std::string("m 1\n"); },
                      {.max_connections = 4});
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<HttpProbe>> stuck;
  std::string first(2, '\0');
  for (int i = 0; i < 2; ++i) {
    stuck.push_back(std::make_unique<HttpProbe>(server->port()));
    ASSERT_TRUE(stuck.back()->send(kScrape));
    // A first byte of the answer: the server is writing it, and cannot
    // finish while the probe reads no more.
    ASSERT_EQ(::recv(stuck.back()->fd(), &first[i], 1, 0), 1) << i;
  }
  answer_big = false;
  std::vector<std::unique_ptr<HttpProbe>> trickling;
  for (int i = 0; i < 2; ++i) {
    trickling.push_back(std::make_unique<HttpProbe>(server->port()));
    ASSERT_TRUE(trickling.back()->send(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\nabc"));
    // The whole answer and the server's end of sending: it is draining the
    // body, most of which never comes.
    const auto got = trickling.back()->read_to_end();
    ASSERT_TRUE(got.closed) << i;
    EXPECT_EQ(parse_answer(got.bytes).status, 200) << i;
  }
  // Every slot is taken and none is reading: the scrape takes the slot of
  // the draining one, though both writing ones are older.
  const auto scrape = http_exchange(server->port(), kScrape);
  EXPECT_EQ(scrape.status, 200);
  EXPECT_EQ(scrape.body, "m 1\n");
  for (int i = 0; i < 2; ++i) {
    const auto got = stuck[i]->read_to_end();  // whole: neither was cut
    EXPECT_TRUE(got.closed) << i;
    const auto answer = parse_answer(first[i] + got.bytes);
    EXPECT_TRUE(answer.well_formed) << i;
    EXPECT_EQ(answer.body.size(), big.size()) << i;
  }
}

TEST(MetricsServer, AClientThatDoesNotReadItsAnswerHoldsUpNoOneAndIsClosedAtItsDeadline) {
  // An answer far larger than the socket buffers: the server cannot hand it
  // over while the client does not read.
  const std::string big(32 << 20, 'x');
  auto server = serve([&] { return big; }, {.request_timeout = std::chrono::seconds(3)});
  ASSERT_TRUE(server);
  HttpProbe stuck(server->port());
  ASSERT_TRUE(stuck.send(kScrape));
  // Accepted after `stuck`, so its deadline (the 408) comes no earlier.
  HttpProbe later(server->port());
  ASSERT_TRUE(later.send("GET /metrics HTTP/1.1\r\n"));
  auto other = http_exchange(server->port(), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(other.well_formed);
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(parse_answer(later.read_to_end().bytes).status, 408);
  const auto got = stuck.read_to_end();  // it reads now: a part, then the close
  EXPECT_TRUE(got.closed);
  EXPECT_LT(got.bytes.size(), big.size());
  EXPECT_FALSE(parse_answer(got.bytes).well_formed);
}

TEST(MetricsServer, AnAddressThatCannotBeBoundIsAnEnvironmentError) {
  auto first = serve([] { return std::string(); });
  ASSERT_TRUE(first);
  auto second = MetricsServer::start("127.0.0.1:" + std::to_string(first->port()),
                                     [] { return std::string(); }, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Errc::environment);
  EXPECT_FALSE(MetricsServer::start("no.such.host.invalid:0", [] { return std::string(); }, {})
                   .ok());
}

}  // namespace
}  // namespace genomed::loader
