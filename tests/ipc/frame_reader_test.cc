#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "ipc/framing.h"

namespace genomed::ipc {
namespace {

struct Pair {
  Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0); }
  ~Pair() {
    if (fds[0] >= 0) ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
  int fds[2] = {-1, -1};
};

std::string framed(const std::string& body) {
  const auto n = static_cast<std::uint32_t>(body.size());
  std::string out = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  return out + body;
}

TEST(FrameReader, ReturnsSeveralFramesThatArrivedInOneWrite) {
  Pair p;
  const std::string bytes = framed("first") + framed("") + framed("third");
  ASSERT_EQ(::write(p.fds[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(p.fds[1]);
  p.fds[1] = -1;
  FrameReader reader(p.fds[0]);
  EXPECT_EQ(reader.read(1024)->body, "first");
  EXPECT_EQ(reader.read(1024)->body, "");
  EXPECT_EQ(reader.read(1024)->body, "third");
  auto eof = reader.read(1024);
  EXPECT_EQ(eof.code(), Errc::not_connected);
  EXPECT_EQ(eof.status().message(), "peer closed the connection");
}

TEST(FrameReader, ReassemblesAFrameSplitAcrossWrites) {
  Pair p;
  const std::string bytes = framed(std::string(200'000, 'x'));
  FrameReader reader(p.fds[0]);
  ASSERT_EQ(::write(p.fds[1], bytes.data(), 3), 3);  // part of the prefix only
  std::thread writer([&] { (void)!::write(p.fds[1], bytes.data() + 3, bytes.size() - 3); });
  auto frame = reader.read(1 << 20);
  writer.join();
  ASSERT_TRUE(frame.ok()) << frame.status().to_string();
  EXPECT_EQ(frame->body.size(), 200'000u);
}

TEST(FrameReader, OversizedPrefixFailsBeforeReadingTheBody) {
  Pair p;
  const std::string bytes = framed(std::string(100, 'x'));
  ASSERT_EQ(::write(p.fds[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  FrameReader reader(p.fds[0]);
  EXPECT_EQ(reader.read(99).code(), Errc::frame_too_large);
}

TEST(FrameReader, EofMidFrameSaysSo) {
  Pair p;
  const std::string bytes = framed("0123456789").substr(0, 8);
  ASSERT_EQ(::write(p.fds[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(p.fds[1]);
  p.fds[1] = -1;
  FrameReader reader(p.fds[0]);
  auto r = reader.read(1024);
  EXPECT_EQ(r.code(), Errc::not_connected);
  EXPECT_EQ(r.status().message(), "peer closed the connection mid-frame");
}

TEST(FrameReader, AttachesAPassedDescriptorOrClosesIt) {
  Pair p;
  const int file = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // As in the protocol, each frame is read before the next one is sent (the
  // kernel may glue a plain message to a following one that carries a
  // descriptor into one read, so the reader cannot tell them apart).
  FrameReader reader(p.fds[0]);
  ASSERT_TRUE(write_frame(p.fds[1], "with-fd", file).ok());
  auto a = reader.read(1024, std::nullopt, /*max_fds=*/1);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->body, "with-fd");
  ASSERT_EQ(a->fds.size(), 1u);
  EXPECT_NE(::fcntl(a->fds[0], F_GETFD) & FD_CLOEXEC, 0);
  ::close(a->fds[0]);
  ASSERT_TRUE(write_frame(p.fds[1], "plain").ok());
  auto b = reader.read(1024, std::nullopt, 1);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->fds.empty());
  ASSERT_TRUE(write_frame(p.fds[1], "refused", file).ok());
  ::close(file);
  auto c = reader.read(1024, std::nullopt, /*max_fds=*/0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->body, "refused");
  EXPECT_TRUE(c->fds.empty());  // closed by the reader, not leaked
}

TEST(FrameReader, DeadlineWithoutDataIsTimeout) {
  Pair p;
  FrameReader reader(p.fds[0]);
  auto r = reader.read(1024, Clock::now() + std::chrono::milliseconds(20));
  EXPECT_EQ(r.code(), Errc::timeout);
}

// A client's reply deadline: a frame cut short at the deadline (in its length
// prefix or in its body) is a timeout, not a wait for the rest.
TEST(FrameReader, PartialFrameAtTheDeadlineIsTimeout) {
  for (const std::string partial : {framed("abcdef").substr(0, 2), framed("abcdef").substr(0, 7)}) {
    Pair p;
    ASSERT_EQ(::write(p.fds[1], partial.data(), partial.size()),
              static_cast<ssize_t>(partial.size()));
    FrameReader reader(p.fds[0]);
    const auto start = Clock::now();
    auto r = reader.read(1024, start + std::chrono::milliseconds(50));
    EXPECT_EQ(r.code(), Errc::timeout) << partial.size() << ": " << r.status().to_string();
    EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(50));
  }
}

// A frame that completes before the deadline is returned, even when it
// arrives in pieces after the read began.
TEST(FrameReader, FrameCompletedBeforeTheDeadlineIsReturned) {
  Pair p;
  const std::string whole = framed("late but in time");
  ASSERT_EQ(::write(p.fds[1], whole.data(), 3), 3);
  std::thread rest([&] {
    ASSERT_EQ(::write(p.fds[1], whole.data() + 3, whole.size() - 3),
              static_cast<ssize_t>(whole.size() - 3));
  });
  FrameReader reader(p.fds[0]);
  auto r = reader.read(1024, Clock::now() + std::chrono::seconds(30));
  rest.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->body, "late but in time");
}

// The client's mode: the first recvmsg blocks, bounded by SO_RCVTIMEO; when
// that expires the deadline decides, as in the default mode.
TEST(FrameReader, BlockingFirstReceiveStillEndsAtTheDeadline) {
  Pair p;
  const timeval tv{0, 50 * 1000};
  ASSERT_EQ(::setsockopt(p.fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  FrameReader reader(p.fds[0]);
  reader.set_blocking_first_receive(true);
  const auto start = Clock::now();
  auto r = reader.read(1024, start + std::chrono::milliseconds(100));
  EXPECT_EQ(r.code(), Errc::timeout) << r.status().to_string();
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(100));
  // A frame that is there is returned.
  Pair q;
  ASSERT_EQ(::setsockopt(q.fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  FrameReader second(q.fds[0]);
  second.set_blocking_first_receive(true);
  const std::string whole = framed("in time");
  ASSERT_EQ(::write(q.fds[1], whole.data(), whole.size()), static_cast<ssize_t>(whole.size()));
  auto got = second.read(1024, Clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "in time");
}

}  // namespace
}  // namespace genomed::ipc
