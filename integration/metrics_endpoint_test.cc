// The real genomed with --metrics-listen against whatever reaches its port:
// every request shape gets a well-formed answer of its own and the daemon
// keeps serving (genomed under prometheus-cpp's civetweb died of SIGSEGV on
// `GET /`, `HEAD /metrics`, any POST, ...), and clients that trickle their
// request neither hold up a scrape nor stay connected past their deadline.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"
#include "tools/testkit/http_probe.h"

namespace genomed::testing {
namespace {

using testkit::http_exchange;
using testkit::HttpProbe;
using testkit::parse_answer;

constexpr std::string_view kScrape = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

std::uint16_t metrics_port(const Daemon& d) {
  std::smatch m;
  const std::string log = d.log();
  static const std::regex kLine(R"(Prometheus metrics on http://127\.0\.0\.1:(\d+)/metrics)");
  if (!std::regex_search(log, m, kLine)) {
    ADD_FAILURE() << "no metrics line in the log:\n" << log;
    return 0;
  }
  return static_cast<std::uint16_t>(std::stoi(m[1]));
}

DaemonOptions with_metrics(std::vector<std::string> more = {}) {
  DaemonOptions o;
  o.workers = 1;
  o.extra_args = {"--metrics-listen", "127.0.0.1:0"};
  o.extra_args.insert(o.extra_args.end(), more.begin(), more.end());
  return o;
}

void expect_scraped(std::uint16_t port) {
  const auto scrape = http_exchange(port, kScrape);
  EXPECT_TRUE(scrape.well_formed);
  EXPECT_EQ(scrape.status, 200);
  EXPECT_NE(scrape.body.find("genomed_hits_total"), std::string::npos);
}

// The daemon still serves both of its doors: a scrape and a client's STATS.
void expect_serving(const Daemon& d, std::uint16_t port) {
  EXPECT_EQ(::waitpid(d.pid(), nullptr, WNOHANG), 0) << "genomed exited:\n" << d.log();
  expect_scraped(port);
  EXPECT_NO_THROW((void)d.stat("hits"));
}

// `n` connections that each sent `start` of a request and nothing more.
std::vector<std::unique_ptr<HttpProbe>> started_requests(std::uint16_t port, int n,
                                                         std::string_view start) {
  std::vector<std::unique_ptr<HttpProbe>> probes;
  for (int i = 0; i < n; ++i) {
    probes.push_back(std::make_unique<HttpProbe>(port));
    EXPECT_TRUE(probes.back()->send(start)) << i;
  }
  return probes;
}

struct Shape {
  const char* name;
  std::string request;
  int status;
  bool head = false;       // a HEAD: headers only
  bool shut_write = true;  // end the request with EOF (else the client keeps sending nothing)
};

// A literal with its NUL bytes, without the terminating one.
template <std::size_t N>
std::string bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::vector<Shape> request_shapes() {
  const std::string big_body(60'000, 'b');
  return {
      {"scrape", std::string(kScrape), 200, false, false},
      {"root", "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", 404,
       false, false},
      {"head metrics", "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, true, false},
      {"head root", "HEAD / HTTP/1.1\r\n\r\n", 404, true},
      {"post", "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\na=b", 405, false, false},
      {"post root",
       "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 404},
      {"put", "PUT /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405},
      {"delete", "DELETE /metrics HTTP/1.1\r\n\r\n", 405},
      {"patch", "PATCH /metrics HTTP/1.1\r\n\r\n", 405},
      {"trace", "TRACE /metrics HTTP/1.1\r\n\r\n", 405},
      {"options", "OPTIONS /metrics HTTP/1.1\r\n\r\n", 405},
      {"options star", "OPTIONS * HTTP/1.1\r\n\r\n", 404},
      {"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 404},
      {"lowercase method", "get /metrics HTTP/1.1\r\n\r\n", 405},
      {"unknown method", "BREW /metrics HTTP/1.1\r\n\r\n", 405},
      {"get with body", "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 200, false,
       false},
      {"big body", "POST /upload HTTP/1.1\r\nContent-Length: 60000\r\n\r\n" + big_body, 404, false,
       false},
      {"body over the limit", "POST /metrics HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n", 413,
       false, false},
      {"chunked body",
       "POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 405,
       false, false},
      {"chunked and length",
       "POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
       400},
      {"http/1.0", "GET /metrics HTTP/1.0\r\n\r\n", 200},
      {"http/1.0 no target", "GET / HTTP/1.0\r\n\r\n", 404},
      {"http/0.9", "GET /metrics\r\n", 400},
      {"http/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
      {"absolute uri", "GET http://127.0.0.1:9464/metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200},
      {"query string", "GET /metrics?x=1&name[]=2 HTTP/1.1\r\n\r\n", 200},
      {"bare line feeds", "GET /metrics HTTP/1.1\nHost: x\n\n", 200},
      {"no CRLF at all", "GET /metrics HTTP/1.1", 400},
      {"half a header", "GET /metrics HTTP/1.1\r\nHost: x\r\n", 400},
      {"nothing", "", 400},
      {"empty lines", "\r\n\r\n\r\n\r\n", 400},
      {"garbage", bytes("\x00\xff\x13\x37garbage\x01\x02\r\n\r\n"), 400},
      {"tls client hello", bytes("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"), 400},
      {"ssh banner", "SSH-2.0-OpenSSH_9.2\r\n", 400},
      {"header without colon", "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n", 400},
      {"folded header", "GET /metrics HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400},
      {"space before colon", "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400},
      {"NUL in header", bytes("GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n"), 400},
      {"bare CR", "GET /metrics HTTP/1.1\rHost: x\r\n\r\n", 400},
      {"huge header", "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20'000, 'a') + "\r\n\r\n",
       431, false, false},
      {"many headers",
       [] {
         std::string r = "GET /metrics HTTP/1.1\r\n";
         for (int i = 0; i < 2000; ++i) r += "X-" + std::to_string(i) + ": v\r\n";
         return r + "\r\n";
       }(),
       431, false, false},
      {"huge uri", "GET /" + std::string(20'000, 'u') + " HTTP/1.1\r\n\r\n", 414, false, false},
      {"pipelined", std::string(kScrape) + "GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\n\r\n", 200,
       false, false},
      {"pipelined error first", "GET / HTTP/1.1\r\n\r\n" + std::string(kScrape), 404, false, false},
      {"path traversal", "GET /../../etc/passwd HTTP/1.1\r\n\r\n", 404},
      {"encoded path", "GET /%6detrics HTTP/1.1\r\n\r\n", 404},
      {"trailing slash", "GET /metrics/ HTTP/1.1\r\n\r\n", 404},
      {"utf-8 target", "GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n", 400},
  };
}

TEST(MetricsEndpoint, EveryRequestShapeGetsAWellFormedAnswerAndTheDaemonServesOn) {
  Daemon d(with_metrics());
  const std::uint16_t port = metrics_port(d);
  ASSERT_NE(port, 0);
  for (const Shape& shape : request_shapes()) {
    SCOPED_TRACE(shape.name);
    HttpProbe probe(port);
    ASSERT_GE(probe.fd(), 0) << "the endpoint is gone:\n" << d.log();
    // A send may fail once the server answered and closed (a request over a
    // limit): the answer is still there to read.
    (void)probe.send(shape.request);
    if (shape.shut_write) probe.shut_write();
    const auto got = probe.read_to_end();
    EXPECT_TRUE(got.closed);
    const auto answer = parse_answer(got.bytes, shape.head);
    EXPECT_TRUE(answer.well_formed) << got.bytes.substr(0, 300);
    EXPECT_EQ(answer.status, shape.status) << got.bytes.substr(0, 300);
    EXPECT_EQ(answer.header("Connection"), "close");
    if (answer.status == 405) {
      EXPECT_EQ(answer.header("Allow"), "GET, HEAD");
    }
    if (shape.head && answer.status == 200) {
      EXPECT_GT(answer.content_length, 100u);
    }
  }
  expect_serving(d, port);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

// Sends the next byte of a header line that never ends.
bool trickle(HttpProbe& p) { return p.send("a"); }

TEST(MetricsEndpoint, AScrapeIsAnsweredWhileClientsTrickleTheirRequests) {
  // Twice as many as civetweb had threads (6): each held one, and the scrape
  // waited for their timeout. The default deadline (10s) is far away.
  Daemon d(with_metrics());
  const std::uint16_t port = metrics_port(d);
  ASSERT_NE(port, 0);
  const auto slow = started_requests(port, 12, "GET /metrics HTTP/1.1\r\nX-Slow: ");
  for (auto& s : slow) ASSERT_TRUE(trickle(*s));
  expect_scraped(port);
  // Answered while every slow one was still connected and unanswered: the
  // scrape did not wait for them to be cut.
  for (std::size_t i = 0; i < slow.size(); ++i) EXPECT_TRUE(slow[i]->quiet()) << i;
  for (auto& s : slow) EXPECT_TRUE(trickle(*s));
  expect_serving(d, port);
}

TEST(MetricsEndpoint, AClientThatTricklesIsCutAtItsDeadlineAnd408) {
  Daemon d(with_metrics({"--metrics-request-timeout", "3s"}));
  const std::uint16_t port = metrics_port(d);
  ASSERT_NE(port, 0);
  HttpProbe slow(port);
  ASSERT_TRUE(slow.send("GET /metrics HTTP/1.1\r\nX-Slow: "));
  // One byte, then wait up to 50 ms for the server to answer or close (the
  // pace of the trickle, not a synchronisation), and again: a deadline that
  // each byte pushed back would never cut it. Far fewer bytes than the
  // header limit (8 KiB) are sent before the cut.
  int sent = 0;
  for (; sent < 4000; ++sent) {
    pollfd p{slow.fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) break;
    if (!trickle(slow)) break;
  }
  EXPECT_LT(sent, 4000) << "still connected after 4000 bytes of trickle";
  const auto got = slow.read_to_end();
  EXPECT_TRUE(got.closed);
  const auto answer = parse_answer(got.bytes);
  EXPECT_TRUE(answer.well_formed) << got.bytes;
  EXPECT_EQ(answer.status, 408);
  expect_serving(d, port);
}

TEST(MetricsEndpoint, AFloodOfHalfRequestsDoesNotLockOutAScrape) {
  // More than the endpoint's 64 connections: each new one closes the oldest
  // still sending its request (503), so the newest are served.
  Daemon d(with_metrics());
  const std::uint16_t port = metrics_port(d);
  ASSERT_NE(port, 0);
  const auto half = started_requests(port, 100, "GET /metrics HTTP/1.1\r\n");
  expect_scraped(port);
  for (int i = 0; i < 36; ++i) {
    const auto got = half[i]->read_to_end();
    EXPECT_TRUE(got.closed) << i;
    EXPECT_EQ(parse_answer(got.bytes).status, 503) << i;
  }
  for (int i = 50; i < 100; ++i) EXPECT_TRUE(half[i]->quiet()) << i;
  expect_serving(d, port);
}

}  // namespace
}  // namespace genomed::testing
