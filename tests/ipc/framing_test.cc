#include "ipc/framing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace genomed::ipc {
namespace {

using namespace std::chrono_literals;

// A connected AF_UNIX stream pair, closed at the end of the test.
class SocketPair {
 public:
  SocketPair() {
    int fds[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0) << std::strerror(errno);
    a_ = fds[0];
    b_ = fds[1];
  }
  ~SocketPair() {
    close_a();
    close_b();
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;

  int a() const { return a_; }
  int b() const { return b_; }
  void close_a() {
    if (a_ >= 0) ::close(a_);
    a_ = -1;
  }
  void close_b() {
    if (b_ >= 0) ::close(b_);
    b_ = -1;
  }

 private:
  int a_ = -1;
  int b_ = -1;
};

// A temporary regular file, unlinked at once; the descriptor is what tests pass.
class TempFile {
 public:
  TempFile() {
    char templ[] = "/tmp/genomed-framing-test-XXXXXX";
    fd_ = ::mkstemp(templ);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    if (fd_ >= 0) ::unlink(templ);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

std::string header(std::uint32_t len) {
  return std::string{static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                     static_cast<char>(len >> 8), static_cast<char>(len)};
}

void write_raw(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()))
      << std::strerror(errno);
}

// Sends `bytes` with several descriptors in one SCM_RIGHTS message.
void send_with_fds(int sock, const std::string& bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()), 0);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  ASSERT_EQ(::sendmsg(sock, &msg, MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()))
      << std::strerror(errno);
}

std::size_t unread_bytes(int fd) {
  int n = -1;
  EXPECT_EQ(::ioctl(fd, FIONREAD, &n), 0);
  return static_cast<std::size_t>(n);
}

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  return s;
}

// ---- round trips ----------------------------------------------------------

TEST(Framing, EmptyFrameRoundTrips) {
  SocketPair sp;
  ASSERT_TRUE(write_frame(sp.a(), "").ok());
  EXPECT_EQ(unread_bytes(sp.b()), 4u);  // just the length prefix
  auto got = read_frame(sp.b(), kMaxRequestFrame);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "");
  EXPECT_TRUE(got->fds.empty());
}

TEST(Framing, SmallFrameRoundTripsWithBigEndianPrefix) {
  SocketPair sp;
  ASSERT_TRUE(write_frame(sp.a(), "hello").ok());
  char raw[9];
  ASSERT_EQ(::recv(sp.b(), raw, sizeof raw, MSG_PEEK), 9);
  EXPECT_EQ(std::string(raw, 4), header(5));
  auto got = read_frame(sp.b(), kMaxRequestFrame);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "hello");
  EXPECT_TRUE(got->fds.empty());
}

TEST(Framing, BackToBackFramesKeepTheirBoundaries) {
  SocketPair sp;
  const std::string with_nul("a\0b", 3);
  ASSERT_TRUE(write_frame(sp.a(), "first").ok());
  ASSERT_TRUE(write_frame(sp.a(), "").ok());
  ASSERT_TRUE(write_frame(sp.a(), with_nul).ok());
  for (const std::string& want : {std::string("first"), std::string(), with_nul}) {
    auto got = read_frame(sp.b(), kMaxRequestFrame);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(got->body, want);
  }
  EXPECT_EQ(unread_bytes(sp.b()), 0u);
}

TEST(Framing, MultiMebibyteFrameRoundTripsThroughShortWrites) {
  SocketPair sp;
  const std::string body = pattern(6 * 1024 * 1024 + 17);  // far larger than the socket buffer
  Status write_status(Errc::internal, "writer did not run");
  std::thread writer([&] { write_status = write_frame(sp.a(), body); });
  auto got = read_frame(sp.b(), kMaxReplyFrame);
  writer.join();
  ASSERT_TRUE(write_status.ok()) << write_status.to_string();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  ASSERT_EQ(got->body.size(), body.size());
  EXPECT_TRUE(got->body == body);
}

TEST(Framing, FrameOfExactlyMaxBodyIsAccepted) {
  SocketPair sp;
  const std::string body = pattern(1000);
  ASSERT_TRUE(write_frame(sp.a(), body).ok());
  auto got = read_frame(sp.b(), 1000);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, body);
}

// ---- descriptor passing ---------------------------------------------------

void expect_same_file(int a, int b) {
  struct stat sa {
  }, sb{};
  ASSERT_EQ(::fstat(a, &sa), 0);
  ASSERT_EQ(::fstat(b, &sb), 0);
  EXPECT_EQ(sa.st_ino, sb.st_ino);
  EXPECT_EQ(sa.st_dev, sb.st_dev);
}

TEST(Framing, PassedDescriptorArrivesAsANewCloexecDescriptorOfTheSameFile) {
  SocketPair sp;
  TempFile file;
  ASSERT_TRUE(write_frame(sp.a(), "with fd", file.fd()).ok());
  auto got = read_frame(sp.b(), kMaxRequestFrame, std::nullopt, /*max_fds=*/1);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "with fd");
  ASSERT_EQ(got->fds.size(), 1u);
  const int fd = got->fds[0];
  EXPECT_NE(fd, file.fd());
  expect_same_file(fd, file.fd());
  const int flags = ::fcntl(fd, F_GETFD);
  ASSERT_GE(flags, 0);
  EXPECT_TRUE(flags & FD_CLOEXEC);
  // The descriptor is live: writes through one are visible through the other.
  ASSERT_EQ(::pwrite(file.fd(), "xyz", 3, 0), 3);
  char buf[3];
  ASSERT_EQ(::pread(fd, buf, 3, 0), 3);
  EXPECT_EQ(std::string(buf, 3), "xyz");
  ::close(fd);
}

TEST(Framing, DescriptorRidesAlongWithAMultiMebibyteFrame) {
  SocketPair sp;
  TempFile file;
  const std::string body = pattern(3 * 1024 * 1024);
  Status write_status(Errc::internal, "writer did not run");
  std::thread writer([&] { write_status = write_frame(sp.a(), body, file.fd()); });
  auto got = read_frame(sp.b(), kMaxReplyFrame, std::nullopt, 1);
  writer.join();
  ASSERT_TRUE(write_status.ok()) << write_status.to_string();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_TRUE(got->body == body);
  ASSERT_EQ(got->fds.size(), 1u);
  expect_same_file(got->fds[0], file.fd());
  ::close(got->fds[0]);
}

TEST(Framing, DescriptorSentToAReaderThatDoesNotAcceptOneIsClosed) {
  SocketPair sp;
  TempFile file;
  const std::size_t before = open_fd_count();
  ASSERT_TRUE(write_frame(sp.a(), "unwanted fd", file.fd()).ok());
  auto got = read_frame(sp.b(), kMaxRequestFrame, std::nullopt, /*max_fds=*/0);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "unwanted fd");
  EXPECT_TRUE(got->fds.empty());
  EXPECT_EQ(open_fd_count(), before);
}

TEST(Framing, DescriptorWithARefusedFrameIsClosed) {
  SocketPair sp;
  TempFile file;
  const std::size_t before = open_fd_count();
  ASSERT_TRUE(write_frame(sp.a(), pattern(200), file.fd()).ok());
  auto got = read_frame(sp.b(), 100, std::nullopt, /*max_fds=*/1);
  EXPECT_EQ(got.code(), Errc::frame_too_large);
  EXPECT_EQ(open_fd_count(), before);
}

TEST(Framing, DescriptorsBeyondWhatTheReaderTakesAreClosed) {
  SocketPair sp;
  TempFile f1, f2, f3;
  const std::size_t before = open_fd_count();
  send_with_fds(sp.a(), header(3) + "abc", {f1.fd(), f2.fd(), f3.fd()});
  auto got = read_frame(sp.b(), kMaxRequestFrame, std::nullopt, 2);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "abc");
  ASSERT_EQ(got->fds.size(), 2u);
  expect_same_file(got->fds[0], f1.fd());
  expect_same_file(got->fds[1], f2.fd());
  EXPECT_EQ(open_fd_count(), before + 2);  // only the returned ones
  for (int fd : got->fds) ::close(fd);
  EXPECT_EQ(open_fd_count(), before);
}

TEST(Framing, SeveralDescriptorsRideWithOneFrameInOrder) {
  SocketPair sp;
  TempFile f1, f2;
  const int fds[] = {f1.fd(), f2.fd()};
  const std::string frame = header(3) + "two";
  auto sent = send_bytes_now(sp.a(), frame, fds);
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  ASSERT_EQ(*sent, frame.size());
  auto got = read_frame(sp.b(), kMaxRequestFrame, std::nullopt, 2);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "two");
  ASSERT_EQ(got->fds.size(), 2u);
  expect_same_file(got->fds[0], f1.fd());
  expect_same_file(got->fds[1], f2.fd());
  for (int fd : got->fds) ::close(fd);
}

// ---- refusals and errors --------------------------------------------------

TEST(Framing, LengthPrefixOverMaxBodyIsRefusedWithoutReadingTheBody) {
  SocketPair sp;
  const std::string body = pattern(1000);
  write_raw(sp.a(), header(1000) + body);
  auto got = read_frame(sp.b(), 999, Clock::now() + 5s);
  ASSERT_EQ(got.code(), Errc::frame_too_large) << got.status().to_string();
  EXPECT_NE(got.status().message().find("1000"), std::string::npos) << got.status().message();
  EXPECT_NE(got.status().message().find("999"), std::string::npos) << got.status().message();
  EXPECT_EQ(unread_bytes(sp.b()), body.size());  // the body is still in the socket
}

TEST(Framing, HostileLengthPrefixFailsAtOnceWithoutWaitingForABody) {
  SocketPair sp;
  write_raw(sp.a(), header(0xffffffffu));
  // Had it tried to read the 4 GiB body it would hit the deadline instead.
  auto got = read_frame(sp.b(), kMaxRequestFrame, Clock::now() + 10s);
  EXPECT_EQ(got.code(), Errc::frame_too_large) << got.status().to_string();
}

TEST(Framing, EofBeforeAnyByteIsNotConnectedPeerClosed) {
  SocketPair sp;
  sp.close_a();
  auto got = read_frame(sp.b(), kMaxRequestFrame);
  ASSERT_EQ(got.code(), Errc::not_connected);
  EXPECT_EQ(got.status().message(), "peer closed the connection");
}

TEST(Framing, EofInsideTheBodyIsNotConnectedMidFrame) {
  SocketPair sp;
  write_raw(sp.a(), header(10) + "abc");
  sp.close_a();
  auto got = read_frame(sp.b(), kMaxRequestFrame);
  ASSERT_EQ(got.code(), Errc::not_connected);
  EXPECT_NE(got.status().message().find("mid-frame"), std::string::npos) << got.status().message();
}

TEST(Framing, EofInsideTheLengthPrefixIsNotConnectedMidFrame) {
  SocketPair sp;
  write_raw(sp.a(), std::string("\0\0", 2));
  sp.close_a();
  auto got = read_frame(sp.b(), kMaxRequestFrame);
  ASSERT_EQ(got.code(), Errc::not_connected);
  EXPECT_NE(got.status().message().find("mid-frame"), std::string::npos) << got.status().message();
}

TEST(Framing, DeadlineWithNoDataIsTimeout) {
  SocketPair sp;
  const auto start = Clock::now();
  auto got = read_frame(sp.b(), kMaxRequestFrame, start + 50ms);
  EXPECT_EQ(got.code(), Errc::timeout) << got.status().to_string();
  EXPECT_GE(Clock::now() - start, 50ms);  // it waited for the deadline, not less
}

TEST(Framing, DeadlineInsideTheBodyIsTimeout) {
  SocketPair sp;
  write_raw(sp.a(), header(10) + "abc");
  auto got = read_frame(sp.b(), kMaxRequestFrame, Clock::now() + 30ms);
  EXPECT_EQ(got.code(), Errc::timeout) << got.status().to_string();
}

TEST(Framing, DataAlreadyQueuedIsReadBeforeAFutureDeadline) {
  SocketPair sp;
  ASSERT_TRUE(write_frame(sp.a(), "ready").ok());
  auto got = read_frame(sp.b(), kMaxRequestFrame, Clock::now() + 10s);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->body, "ready");
}

// A peer that stops reading: a write with a deadline waits for room in the
// socket buffer only until then.
TEST(Framing, WriteToAPeerThatDoesNotReadTimesOutAtTheDeadline) {
  SocketPair sp;
  const std::string body(1 << 20, 'x');  // larger than the socket buffers
  const auto start = Clock::now();
  const Status s = write_frame(sp.a(), body, -1, start + 100ms);
  EXPECT_EQ(s.code(), Errc::timeout) << s.to_string();
  EXPECT_GE(Clock::now() - start, 100ms);
}

TEST(Framing, WriteToAClosedPeerIsNotConnectedAndRaisesNoSigpipe) {
  SocketPair sp;
  sp.close_b();
  // Block SIGPIPE in this thread so that, were one raised, it stays pending
  // (instead of killing the test binary) and can be detected.
  sigset_t pipe_set, old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask), 0);
  const Status s = write_frame(sp.a(), "anyone there?");
  sigset_t pending;
  sigemptyset(&pending);
  ASSERT_EQ(::sigpending(&pending), 0);
  const bool raised = sigismember(&pending, SIGPIPE) == 1;
  if (raised) {
    const timespec zero{0, 0};
    ::sigtimedwait(&pipe_set, nullptr, &zero);  // consume it before unblocking
  }
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr), 0);
  EXPECT_EQ(s.code(), Errc::not_connected) << s.to_string();
  EXPECT_FALSE(raised) << "write_frame raised SIGPIPE";
}

TEST(Framing, ReadFromAnInvalidDescriptorIsNotConnected) {
  auto got = read_frame(-1, kMaxRequestFrame);
  EXPECT_EQ(got.code(), Errc::not_connected);
}

// ---- without waiting (the daemon's event loop) -------------------------------------

TEST(FramingNow, SplitFrameWaitsForTheWholeFrameAndChecksThePrefixFirst) {
  const std::string frame = encode_frame("hello");
  for (std::size_t n = 0; n < frame.size(); ++n) {
    auto part = split_frame(std::string_view(frame).substr(0, n), 64);
    ASSERT_TRUE(part.ok());
    EXPECT_FALSE(part->has_value()) << n << " bytes";
  }
  auto whole = split_frame(frame + "next", 64);
  ASSERT_TRUE(whole.ok() && whole->has_value());
  EXPECT_EQ((*whole)->body, "hello");
  EXPECT_EQ((*whole)->consumed, frame.size());
  // The prefix alone is enough to refuse a frame over the limit.
  auto huge = split_frame(std::string_view(encode_frame(std::string(65, 'x'))).substr(0, 4), 64);
  EXPECT_EQ(huge.code(), Errc::frame_too_large);
}

TEST(FramingNow, AFrameTheSocketCannotTakeIsSentInPartsWithoutWaiting) {
  SocketPair p;
  int small = 4096;
  ::setsockopt(p.a(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const std::string body(1 << 20, 'z');
  auto first = send_frame_now(p.a(), body);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  ASSERT_GT(*first, 0u);
  ASSERT_LT(*first, body.size() + 4) << "a 1 MiB frame fits no 4 KiB buffer";
  // The rest goes out as the reader makes room; nothing ever blocks.
  std::string rest = encode_frame(body).substr(*first);
  std::thread reader([&] {
    auto got = read_frame(p.b(), 2u << 20);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(got->body, body);
  });
  while (!rest.empty()) {
    auto sent = send_bytes_now(p.a(), rest);
    ASSERT_TRUE(sent.ok()) << sent.status().to_string();
    rest.erase(0, *sent);
    if (*sent == 0) std::this_thread::yield();  // the reader has not made room yet
  }
  reader.join();
}

TEST(FramingNow, SendingToAClosedPeerIsNotConnected) {
  SocketPair p;
  p.close_b();
  EXPECT_EQ(send_frame_now(p.a(), "x").code(), Errc::not_connected);
}

}  // namespace
}  // namespace genomed::ipc
