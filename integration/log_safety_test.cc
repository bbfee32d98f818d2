// What a client sends cannot forge or flood the daemon's log: every
// client-controlled string is logged escaped and cut (common/safe_text.h),
// paths holding a client's name included; repeated warnings about one
// connection are rate-limited (loader/log_limiter.h); all lines clients
// cause share one allowance of bytes per second (loader/client_log.h); what
// is held back is counted in STATS; and a name that is not UTF-8 is refused
// before any reply could echo it.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "common/safe_text.h"
#include "integration/daemon_fixture.h"
#include "integration/raw_socket.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"

namespace genomed::testing {
namespace {

std::size_t count_lines_with(const std::string& log, const std::string& needle) {
  std::istringstream in(log);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

std::size_t longest_line(const std::string& log) {
  std::istringstream in(log);
  std::size_t longest = 0;
  for (std::string line; std::getline(in, line);) longest = std::max(longest, line.size());
  return longest;
}

// A log line the daemon wrote is never longer than this, whatever a client sent.
constexpr std::size_t kLongestLogLine = 2 * kMaxMessageBytes;

std::uint64_t stat_of(const ipc::StatsReply& stats, const std::string& key) {
  for (const auto& [k, v] : stats.values) {
    if (k == key) return std::get<std::uint64_t>(v);
  }
  ADD_FAILURE() << "no stat named " << key;
  return 0;
}

TEST(LogSafety, AReleaseFloodOfUnknownLeasesWritesABoundedLogAndIsCounted) {
  Daemon daemon;
  RawSocket flooder(daemon.socket_path());
  flooder.hello();
  constexpr int kFrames = 500;
  ipc::Request release;
  release.op = ipc::Op::release;
  for (std::uint64_t id = 0; id < ipc::kMaxBatch; ++id) release.leases.push_back(1'000'000 + id);
  for (int i = 0; i < kFrames; ++i) flooder.send(release);
  // RELEASEs are applied as they are read, so the reply to a request sent
  // after them reflects every one.
  flooder.send(ipc::Request{.op = ipc::Op::stats});
  auto frame = flooder.reply();
  ASSERT_TRUE(frame.ok()) << frame.status().to_string();
  auto stats = ipc::decode_stats_reply(frame->body);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stat_of(*stats, "releases_ignored"), kFrames * ipc::kMaxBatch);

  const std::size_t written = count_lines_with(daemon.log(), "it does not hold");
  // The first 10, then one per 10 s (ConnectionLimits::warnings): the flood
  // takes a few seconds at most, and a slow machine adds a line per 10 s.
  EXPECT_GE(written, 10u);
  EXPECT_LE(written, 20u) << "one line per unknown lease was the old behaviour";
  EXPECT_EQ(stat_of(*stats, "log_lines_suppressed") + written, std::size_t{kFrames});

  // What was held back is reported once, when the connection ends.
  ::shutdown(flooder.fd(), SHUT_WR);
  EXPECT_TRUE(flooder.closed_by_peer());
  EXPECT_TRUE(eventually(
      [&] { return daemon.log().find("were held back (at most 10") != std::string::npos; }, 10000))
      << daemon.log();
}

TEST(LogSafety, ANameWithControlCharactersIsLoggedEscaped) {
  Daemon daemon;
  const std::string forged = "2026-01-01T00:00:00.000 critical forged by a client";
  const std::string name = "evil\n" + forged + "\x1b[2J\r'";
  Client client = daemon.connect();
  auto loaded = client.load(name);
  ASSERT_EQ(loaded.code(), Errc::not_found) << loaded.status().to_string();
  EXPECT_EQ(loaded.status().message().find('\n'), std::string::npos) << "the message is escaped";
  ASSERT_TRUE(eventually(
      [&] { return daemon.log().find("failed: not_found") != std::string::npos; }, 10000));
  const std::string log = daemon.log();
  EXPECT_NE(log.find("'evil\\x0a" + forged + "\\x1b[2J\\x0d\\x27'"), std::string::npos) << log;
  EXPECT_EQ(log.find("\n" + forged), std::string::npos) << "a client forged a log line:\n" << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << "an escape sequence reached the log";
  EXPECT_EQ(log.find('\r'), std::string::npos);
}

TEST(LogSafety, AHugeHelloClientStringIsLoggedCut) {
  Daemon daemon;
  RawSocket raw(daemon.socket_path());
  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = ipc::kProtocolVersion;
  hello.client = std::string(65'000, 'A');  // as large as a request frame allows
  raw.send(hello);
  auto reply = ipc::read_frame(raw.fd(), ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/1);
  ASSERT_TRUE(reply.ok()) << reply.status().to_string();
  for (int fd : reply->fds) ::close(fd);
  const std::string log = daemon.log();
  EXPECT_NE(log.find("hello from '" + std::string(kMaxQuotedBytes, 'A') +
                     "'... (65000 bytes, 200 shown)"),
            std::string::npos)
      << log.substr(0, 4000);
  EXPECT_LT(longest_line(log), kLongestLogLine);
}

// The default allowance of the lines clients cause (--client-log-rate 64K,
// a burst of 4 s of it) and the one summary line per 10 s beside it.
constexpr double kClientLogBytesPerSecond = 64 * 1024;
constexpr double kClientLogBurstBytes = 4 * kClientLogBytesPerSecond;
constexpr double kSummaryLineBytes = 512;

void hello_as(RawSocket& raw, const std::string& client) {
  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = ipc::kProtocolVersion;
  hello.client = client;
  raw.send(hello);
  auto reply = ipc::read_frame(raw.fd(), ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/2);
  ASSERT_TRUE(reply.ok()) << reply.status().to_string();
  for (int fd : reply->fds) ::close(fd);
}

TEST(LogSafety, ReconnectLoopsAndFailedAcquiresStayWithinOneAllowanceForAllClients) {
  // Measured before: a reconnect loop wrote a hello line and a malformed
  // frame line per connection (1.4-1.85 MiB/s from one client), and each
  // failed ACQUIRE of a 500-byte name a 1 KiB warning with the whole name
  // in a file path. Now every line a client causes passes one allowance of
  // bytes per second, and no client value shows more than 200 bytes.
  const auto started = std::chrono::steady_clock::now();  // before the daemon's allowance exists
  Daemon daemon;
  // 500 bytes that name a directory without adapter files: each ACQUIRE of
  // it fails with a message naming a file under it. Beyond its first 200
  // bytes come only b and c, which must never reach the log.
  const std::string name =
      std::string(199, 'a') + "/" + std::string(199, 'b') + "/" + std::string(100, 'c');
  std::filesystem::create_directories(daemon.root() + "/" + name);
  const std::string client = std::string(200, 'h') + std::string(300, 'Z');
  const std::size_t before = daemon.log().size();

  constexpr int kRounds = 3000;
  for (int i = 0; i < kRounds; ++i) {
    RawSocket raw(daemon.socket_path());
    hello_as(raw, client);
    ASSERT_TRUE(ipc::write_frame(raw.fd(), std::string("\xc1\xc1\xc1\xc1", 4)).ok());
    auto refused = raw.reply();
    ASSERT_TRUE(refused.ok()) << refused.status().to_string();
    ASSERT_EQ(ipc::decode_stats_reply(refused->body).code(), Errc::malformed_frame);
  }
  RawSocket acquirer(daemon.socket_path());
  hello_as(acquirer, "acquirer");
  Errc failed_with = Errc::ok;
  for (int i = 0; i < kRounds; ++i) {
    acquirer.send(ipc::Request{.op = ipc::Op::acquire, .names = {name}});
    auto frame = acquirer.reply();
    ASSERT_TRUE(frame.ok()) << frame.status().to_string();
    failed_with = ipc::decode_acquire_reply(frame->body).code();
    ASSERT_NE(failed_with, Errc::ok);
  }
  const std::string log = daemon.log();
  // Every line read was written before now: the allowance up to now bounds them.
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double allowance = kClientLogBurstBytes + kClientLogBytesPerSecond * elapsed +
                           kSummaryLineBytes * (elapsed / 10 + 1);
  const std::size_t logged = log.size() - before;
  const std::string tail = log.substr(log.size() - std::min<std::size_t>(log.size(), 4000));
  RecordProperty("log_bytes", static_cast<int>(logged));
  RecordProperty("seconds", std::to_string(elapsed));
  EXPECT_LE(static_cast<double>(logged), allowance)
      << logged << " bytes in " << elapsed << " s\n"
      << tail;

  // Lines of each kind were written, none with more than 200 bytes of a client value.
  EXPECT_GT(count_lines_with(log, "hello from '" + std::string(200, 'h') + "'..."), 0u)
      << log.substr(0, 4000);
  EXPECT_GT(count_lines_with(log, "load of '" + std::string(199, 'a') + "/'..."), 0u)
      << errc_name(failed_with) << "\n"
      << tail;
  EXPECT_EQ(log.find("ZZZZ"), std::string::npos) << "more than 200 bytes of a HELLO client string";
  EXPECT_EQ(log.find("bbbb"), std::string::npos) << "more than 200 bytes of a name (in a path?)";
  EXPECT_LT(longest_line(log), kLongestLogLine);

  // What was held back is counted, and summed up (at the latest when genomed stops).
  const std::size_t hellos_written = count_lines_with(log, "hello from '");
  ASSERT_LT(hellos_written, std::size_t{kRounds});
  EXPECT_GE(daemon.stat("log_lines_suppressed"), kRounds - hellos_written);
  EXPECT_EQ(daemon.stop(), 0);
  const std::string final_log = daemon.log();
  EXPECT_NE(final_log.find("caused by clients were held back"), std::string::npos);
  // Lines about the daemon itself are outside the clients' allowance.
  EXPECT_NE(final_log.find("stopped cleanly"), std::string::npos);
}

// Names are echoed in msgpack str fields: one that is not UTF-8 is refused at
// decode with a typed error whose message is UTF-8 (no raw byte echoed).
TEST(LogSafety, ANameThatIsNotUtf8IsRefusedAndNothingEchoesIt) {
  Daemon daemon;
  RawSocket raw(daemon.socket_path());
  raw.hello();
  const std::string bad = "bad\xff\xfe\n";
  for (const ipc::Request& req : {ipc::Request{.op = ipc::Op::load, .names = {bad}},
                                  ipc::Request{.op = ipc::Op::acquire, .names = {"x", bad}},
                                  ipc::Request{.op = ipc::Op::unload, .names = {bad}}}) {
    SCOPED_TRACE(ipc::op_name(req.op));
    raw.send(req);
    auto frame = raw.reply();
    ASSERT_TRUE(frame.ok()) << frame.status().to_string();
    const Status s = ipc::decode_load_reply(frame->body).status();
    EXPECT_EQ(s.code(), Errc::invalid_name) << s.to_string();
    EXPECT_TRUE(is_utf8(s.message())) << "the reply echoes a byte that is not UTF-8";
    EXPECT_NE(s.message().find("'bad\\xff\\xfe\\x0a'"), std::string::npos) << s.message();
  }
  EXPECT_EQ(daemon.stat("bad_requests"), 3u);
  EXPECT_TRUE(daemon.connect().health().ok());
  const std::string log = daemon.log();
  EXPECT_TRUE(is_utf8(log)) << "the log holds a byte that is not UTF-8";
}

}  // namespace
}  // namespace genomed::testing
