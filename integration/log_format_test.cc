// --log-format json with the real daemon: every line of its log, from start
// to a clean stop, is one JSON object with time, level and msg, including
// lines that carry what a client sent (quotes, backslashes, control bytes,
// bytes that are not UTF-8) and a flood of bad requests.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "integration/daemon_fixture.h"
#include "integration/raw_socket.h"

namespace genomed::testing {
namespace {

std::vector<nlohmann::json> parse_lines(const std::string& log) {
  std::vector<nlohmann::json> events;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    auto event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(event.is_discarded()) << "not a JSON line: " << line;
    if (event.is_discarded()) continue;
    EXPECT_TRUE(event.is_object()) << line;
    for (const char* key : {"time", "level", "msg"}) {
      EXPECT_TRUE(event.contains(key) && event[key].is_string()) << key << " in " << line;
    }
    EXPECT_TRUE(event.contains("pid") && event["pid"].is_number_integer()) << line;
    events.push_back(std::move(event));
  }
  return events;
}

TEST(LogFormat, JsonWritesOneParsableObjectPerLineWithClientTextEscaped) {
  Daemon d({.extra_args = {"--log-format", "json"}});
  const std::string hostile = "evil\"\\\n{\"level\":\"forged\"}\x01\xff tail";
  {
    auto c = Client::connect(d.socket_path(), hostile);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    EXPECT_FALSE(c->acquire("no-such-adapter").ok());
  }
  {
    RawSocket raw(d.socket_path());
    raw.hello();
    // Frames that are not msgpack: one warning, then the connection closes.
    ASSERT_TRUE(ipc::write_frame(raw.fd(), std::string("\xc1\xc1\"\n", 4)).ok());
    EXPECT_TRUE(raw.closed_by_peer());
  }
  EXPECT_EQ(d.stop(), 0) << d.log();

  const auto events = parse_lines(d.log());
  ASSERT_GE(events.size(), 3u) << d.log();
  bool hello_seen = false, serving_seen = false, stopped_seen = false, warning_seen = false;
  for (const auto& e : events) {
    const std::string msg = e["msg"];
    EXPECT_NE(e["level"], "forged");
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    if (msg.find("hello from") != std::string::npos && msg.find("evil") != std::string::npos) {
      hello_seen = true;
      // The name as common/safe_text quotes it: quote, backslash, control
      // and invalid bytes as \xNN, so the forged object stays inside msg.
      EXPECT_NE(msg.find(R"('evil\x22\x5c\x0a{\x22level\x22)"), std::string::npos) << msg;
      EXPECT_NE(msg.find(R"(\x01\xff tail')"), std::string::npos) << msg;
    }
    serving_seen |= msg.find(" serving on ") != std::string::npos;
    stopped_seen |= msg == "stopped cleanly";
    warning_seen |= e["level"] == "warning" || e["level"] == "warn";
    const std::string time = e["time"];
    EXPECT_EQ(time.size(), 24u) << time;  // 2026-01-02T03:04:05.678Z
    EXPECT_EQ(time.back(), 'Z') << time;
  }
  EXPECT_TRUE(hello_seen) << d.log();
  EXPECT_TRUE(serving_seen) << d.log();
  EXPECT_TRUE(stopped_seen) << d.log();
  EXPECT_TRUE(warning_seen) << d.log();
}

TEST(LogFormat, TextIsTheDefaultAndUnknownFormatsAreRefused) {
  Daemon d;
  EXPECT_EQ(d.stop(), 0);
  EXPECT_NE(d.log().find(" info "), std::string::npos) << d.log();
  EXPECT_NE(d.log().front(), '{') << d.log();
  const auto r = run_command({binary("genomed"), "--socket", "/tmp/unused.sock", "--root",
                              "/nonexistent-genomed-root", "--log-format", "xml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--log-format: expected text or json, got 'xml'"), std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace genomed::testing
