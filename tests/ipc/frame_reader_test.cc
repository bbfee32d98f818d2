#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
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
  auto a = reader.read(1024, std::nullopt, /*accept_fd=*/true);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->body, "with-fd");
  ASSERT_GE(a->fd, 0);
  EXPECT_NE(::fcntl(a->fd, F_GETFD) & FD_CLOEXEC, 0);
  ::close(a->fd);
  ASSERT_TRUE(write_frame(p.fds[1], "plain").ok());
  auto b = reader.read(1024, std::nullopt, true);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->fd, -1);
  ASSERT_TRUE(write_frame(p.fds[1], "refused", file).ok());
  ::close(file);
  auto c = reader.read(1024, std::nullopt, /*accept_fd=*/false);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->body, "refused");
  EXPECT_EQ(c->fd, -1);  // closed by the reader, not leaked
}

TEST(FrameReader, DeadlineWithoutDataIsTimeout) {
  Pair p;
  FrameReader reader(p.fds[0]);
  auto r = reader.read(1024, Clock::now() + std::chrono::milliseconds(20));
  EXPECT_EQ(r.code(), Errc::timeout);
}

}  // namespace
}  // namespace genomed::ipc
