// The metrics endpoint's request-head parser, routing and answers
// (loader/metrics_http.h): what each request shape gets, byte by byte.
#include "loader/metrics_http.h"

#include <gtest/gtest.h>

#include <string>

namespace genomed::loader::http {
namespace {

HeadParse parse(std::string_view in, Limits limits = {}) { return parse_request_head(in, limits); }

void expect_rejected(std::string_view in, int status, Limits limits = {}) {
  const HeadParse p = parse(in, limits);
  EXPECT_EQ(p.state, HeadState::rejected) << testing::PrintToString(std::string(in));
  EXPECT_EQ(p.status, status) << testing::PrintToString(std::string(in));
  EXPECT_FALSE(p.reason.empty());
}

TEST(MetricsHttp, AScrapeIsCompleteWithItsMethodPathAndLength) {
  const std::string req =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nAccept: text/plain\r\n"
      "User-Agent: Prometheus/2.45.0\r\n\r\n";
  const std::string received = req + "trailing bytes";  // the views point into it
  const HeadParse p = parse(received);
  ASSERT_EQ(p.state, HeadState::complete);
  EXPECT_EQ(p.head.method, "GET");
  EXPECT_EQ(p.head.path, "/metrics");
  EXPECT_EQ(p.head.minor_version, 1);
  EXPECT_FALSE(p.head.has_body);
  EXPECT_EQ(p.head_bytes, req.size());
}

TEST(MetricsHttp, EveryPrefixOfAGoodRequestAsksForMore) {
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  for (std::size_t n = 0; n < req.size(); ++n) {
    EXPECT_EQ(parse(req.substr(0, n)).state, HeadState::incomplete) << n;
  }
  EXPECT_EQ(parse(req).state, HeadState::complete);
}

TEST(MetricsHttp, TargetsInEveryFormFindTheirPath) {
  for (const auto& [target, path] : std::vector<std::pair<std::string, std::string>>{
           {"/metrics?x=1", "/metrics"},
           {"/metrics#frag", "/metrics"},
           {"http://127.0.0.1:9464/metrics", "/metrics"},
           {"HTTP://host/metrics?a=b", "/metrics"},
           {"https://host", "/"},
           {"http://host?q", "/"},
           {"*", "*"},
           {"host:443", "host:443"},
           {"/", "/"},
           {"/metrics/", "/metrics/"}}) {
    const std::string request = "GET " + target + " HTTP/1.1\r\n\r\n";
    const HeadParse p = parse(request);
    ASSERT_EQ(p.state, HeadState::complete) << target;
    EXPECT_EQ(p.head.path, path) << target;
  }
}

TEST(MetricsHttp, BareLineFeedsHttp10AndLeadingEmptyLinesAreAccepted) {
  EXPECT_EQ(parse("GET /metrics HTTP/1.1\nHost: x\n\n").state, HeadState::complete);
  const HeadParse old = parse("GET /metrics HTTP/1.0\r\n\r\n");
  ASSERT_EQ(old.state, HeadState::complete);
  EXPECT_EQ(old.head.minor_version, 0);
  EXPECT_EQ(parse("\r\n\nGET /metrics HTTP/1.1\r\n\r\n").state, HeadState::complete);
  expect_rejected("\r\n\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n", 400);
}

TEST(MetricsHttp, WhatIsNoHttpIsRejectedBeforeItEnds) {
  expect_rejected(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400);  // TLS
  expect_rejected(std::string("GET /\0metrics", 13), 400);
  expect_rejected("GET /m\xc3\xa9trics", 400);
  expect_rejected("GET /metrics HTTP/1.1\r\nHost: a\x01", 400);
  expect_rejected("GET /metrics\rHTTP/1.1", 400);  // a bare CR
  expect_rejected("GET /metrics HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);
}

TEST(MetricsHttp, MalformedRequestLinesAre400AndOtherMajorVersions505) {
  for (const char* line : {"GET /metrics", "GET  /metrics HTTP/1.1", "GET /metrics HTTP/1.1 ",
                           " GET /metrics HTTP/1.1", "GET /metrics http/1.1",
                           "GET /metrics HTTP/1", "GET /metrics HTTP/1.10", "G(T /metrics HTTP/1.1",
                           "garbage", "GET /metrics HTTP/x.1"}) {
    expect_rejected(std::string(line) + "\r\n\r\n", 400);
  }
  expect_rejected("GET /metrics HTTP/2.0\r\n\r\n", 505);
  expect_rejected("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);  // HTTP/2 with prior knowledge
  expect_rejected("GET /metrics HTTP/0.9\r\n\r\n", 505);
}

TEST(MetricsHttp, MalformedHeaderLinesAre400) {
  for (const char* header : {" folded: value", "\tfolded", "Host : x", "no colon", ": empty name",
                             "Ho(st: x", "Host: a\x7f"}) {
    expect_rejected("GET /metrics HTTP/1.1\r\nA: b\r\n" + std::string(header) + "\r\n\r\n", 400);
  }
  // obs-text in a value and empty values are fine.
  EXPECT_EQ(parse("GET /metrics HTTP/1.1\r\nX: caf\xc3\xa9\r\nY:\r\n\r\n").state,
            HeadState::complete);
}

TEST(MetricsHttp, HeadsOverTheLimitAre414Or431) {
  const Limits limits{.max_head_bytes = 64};
  expect_rejected("GET /" + std::string(100, 'a'), 414, limits);
  expect_rejected("GET /metrics HTTP/1.1\r\nX: " + std::string(100, 'a'), 431, limits);
  // A head that ends right at the limit is served; one byte more is not.
  std::string exact = "GET /metrics HTTP/1.1\r\nX: ";
  exact += std::string(64 - exact.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 64u);
  EXPECT_EQ(parse(exact, limits).state, HeadState::complete);
  exact.insert(exact.size() - 4, "a");
  expect_rejected(exact, 431, limits);
  // The default limit takes a plausible head of many headers.
  std::string many = "GET /metrics HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) many += "X-Header-" + std::to_string(i) + ": value\r\n";
  EXPECT_EQ(parse(many + "\r\n").state, HeadState::complete);
}

TEST(MetricsHttp, BodiesAreFramedStrictlyAndLimited) {
  const HeadParse sized = parse("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(sized.state, HeadState::complete);
  EXPECT_EQ(sized.head.content_length, 5u);
  EXPECT_TRUE(sized.head.has_body);
  const HeadParse chunked =
      parse("POST /metrics HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  ASSERT_EQ(chunked.state, HeadState::complete);
  EXPECT_TRUE(chunked.head.has_body);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n").state,
            HeadState::complete);
  expect_rejected("GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                  400);
  for (const char* bad : {"-1", "5, 5", "0x10", "", "1 2"}) {
    expect_rejected("GET / HTTP/1.1\r\nContent-Length: " + std::string(bad) + "\r\n\r\n", 400);
  }
  expect_rejected("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413);
  expect_rejected("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n").state, HeadState::complete);
}

TEST(MetricsHttp, RoutesGetAndHeadOfMetricsAnd405Or404ForTheRest) {
  auto route_of = [](const std::string& line) {
    const std::string request = line + "\r\n\r\n";
    const HeadParse p = parse_request_head(request);
    EXPECT_EQ(p.state, HeadState::complete) << line;
    return route(p.head);
  };
  const Route get = route_of("GET /metrics?x=1 HTTP/1.1");
  EXPECT_TRUE(get.status == 200 && get.send_body && get.metrics);
  const Route head = route_of("HEAD http://h/metrics HTTP/1.0");
  EXPECT_TRUE(head.status == 200 && !head.send_body && head.metrics);
  for (const char* other : {"POST /metrics HTTP/1.1", "OPTIONS /metrics HTTP/1.1",
                            "get /metrics HTTP/1.1", "DELETE /metrics HTTP/1.1"}) {
    const Route r = route_of(other);
    EXPECT_TRUE(r.status == 405 && r.send_body && !r.metrics) << other;
  }
  for (const char* other : {"GET / HTTP/1.1", "POST / HTTP/1.1", "OPTIONS * HTTP/1.1",
                            "CONNECT host:443 HTTP/1.1", "GET /metrics/ HTTP/1.1",
                            "GET /%6detrics HTTP/1.1"}) {
    const Route r = route_of(other);
    EXPECT_TRUE(r.status == 404 && r.send_body && !r.metrics) << other;
  }
  const Route head404 = route_of("HEAD / HTTP/1.1");
  EXPECT_TRUE(head404.status == 404 && !head404.send_body);
}

TEST(MetricsHttp, AnswersAreWellFormedAndHeadKeepsTheLength) {
  EXPECT_EQ(render_answer(200, kMetricsContentType, "a 1\n", true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 4\r\nConnection: close\r\n\r\na 1\n");
  EXPECT_EQ(render_answer(200, "text/plain", "a 1\n", false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
            "Connection: close\r\n\r\n");
  const std::string not_allowed = render_error(405, "/metrics answers GET and HEAD");
  EXPECT_TRUE(not_allowed.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << not_allowed;
  EXPECT_NE(not_allowed.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_TRUE(
      not_allowed.ends_with("\r\n\r\n405 Method Not Allowed: /metrics answers GET and HEAD\n"));
  for (int status : {400, 404, 408, 413, 414, 431, 500, 503, 505}) {
    const std::string a = render_error(status, "why");
    EXPECT_TRUE(a.starts_with("HTTP/1.1 " + std::to_string(status) + " ")) << a;
    EXPECT_EQ(a.find("Allow:"), std::string::npos);
    const std::string body = a.substr(a.find("\r\n\r\n") + 4);
    EXPECT_NE(a.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  }
}

TEST(MetricsHttp, HeadMayEndLooksOnlyNearTheNewBytes) {
  EXPECT_FALSE(head_may_end("GET / HTTP/1.1\r\nHost: x\r\n", 0));
  EXPECT_TRUE(head_may_end("GET / HTTP/1.1\r\n\r\n", 0));
  EXPECT_TRUE(head_may_end("GET / HTTP/1.1\n\n", 15));   // the second LF is new
  EXPECT_TRUE(head_may_end("GET / HTTP/1.1\r\n\r\n", 17));  // the last LF is new
  EXPECT_FALSE(head_may_end("\n\nGET / HTTP/1.1\r\nHost", 18));
}

}  // namespace
}  // namespace genomed::loader::http
