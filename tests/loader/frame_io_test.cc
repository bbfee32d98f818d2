// The connection's byte-level I/O: request frames assembled from whatever
// each read brings, and replies kept while the client's socket is full.
// FrameAssembler::take is fed bytes directly; read() and ReplyBuffer run on
// a socketpair, the client's end read and written by the test.
#include "loader/frame_io.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ipc/framing.h"

namespace genomed::loader {
namespace {

constexpr std::uint32_t kMax = 1024;

// Collects the frames an assembler hands out.
struct Frames {
  std::vector<std::string> bodies;
  std::size_t accept = static_cast<std::size_t>(-1);  // frames taken before refusing one
  bool operator()(std::string_view body) {
    bodies.emplace_back(body);
    return bodies.size() <= accept;
  }
};

// A connected pair of non-blocking stream sockets: [0] the daemon's, [1] the client's.
class SocketPair {
 public:
  SocketPair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_), 0);
  }
  ~SocketPair() {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  int daemon() const { return fds_[0]; }
  int client() const { return fds_[1]; }
  void close_client() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }
  // Writes to the daemon's end until the socket takes no more: bytes written.
  std::size_t fill_daemon_side() {
    const std::string chunk(4096, 'x');
    std::size_t total = 0;
    for (;;) {
      const ssize_t n = ::send(fds_[0], chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n <= 0) return total;
      total += static_cast<std::size_t>(n);
    }
  }
  // Everything waiting on the client's end.
  std::string drain_client() {
    std::string got;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fds_[1], buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) return got;
      got.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(FrameAssembler, AFrameSplitOverReadsIsTakenWhole) {
  FrameAssembler in(kMax);
  Frames frames;
  const std::string wire = ipc::encode_frame("hello") + ipc::encode_frame("world!");
  // One byte per read, the length prefixes split too.
  for (char c : wire) ASSERT_TRUE(in.take(std::string_view(&c, 1), frames).ok());
  EXPECT_EQ(frames.bodies, (std::vector<std::string>{"hello", "world!"}));
  EXPECT_EQ(in.buffered(), 0u);
}

TEST(FrameAssembler, KeepsAPartialFrameAfterWholeOnes) {
  FrameAssembler in(kMax);
  Frames frames;
  const std::string second = ipc::encode_frame("second");
  ASSERT_TRUE(in.take(ipc::encode_frame("first") + second.substr(0, 6), frames).ok());
  EXPECT_EQ(frames.bodies, std::vector<std::string>{"first"});
  EXPECT_EQ(in.buffered(), 6u);
  ASSERT_TRUE(in.take(second.substr(6), frames).ok());
  EXPECT_EQ(frames.bodies, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(in.buffered(), 0u);
}

TEST(FrameAssembler, AnOversizedLengthPrefixIsRefusedAndNothingAfterItTaken) {
  FrameAssembler in(kMax);
  Frames frames;
  std::string too_long = ipc::encode_frame(std::string(kMax + 1, 'a'));
  // Refused from its prefix alone, before its body arrived.
  const Status s = in.take(ipc::encode_frame("ok") + too_long.substr(0, 4) + "more", frames);
  EXPECT_EQ(s.code(), Errc::frame_too_large) << s.to_string();
  EXPECT_EQ(frames.bodies, std::vector<std::string>{"ok"});
  EXPECT_EQ(in.buffered(), 0u);
  // A frame of exactly the limit is taken.
  ASSERT_TRUE(in.take(ipc::encode_frame(std::string(kMax, 'b')), frames).ok());
  EXPECT_EQ(frames.bodies.size(), 2u);
}

TEST(FrameAssembler, StopsAtTheFrameItsConsumerRefuses) {
  FrameAssembler in(kMax);
  Frames frames;
  frames.accept = 1;
  const std::string wire =
      ipc::encode_frame("a") + ipc::encode_frame("b") + ipc::encode_frame("c");
  ASSERT_TRUE(in.take(wire.substr(0, wire.size() - 1), frames).ok());
  // "b" was refused: "c" (incomplete) is dropped, not kept for the next read.
  EXPECT_EQ(frames.bodies, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(in.buffered(), 0u);
}

TEST(FrameAssembler, ReadsTheSocketUntilDrainedThenSeesItsEnd) {
  SocketPair s;
  FrameAssembler in(kMax);
  Frames frames;
  Status bad;
  EXPECT_EQ(in.read(s.daemon(), frames, &bad), FrameAssembler::Read::drained);  // nothing yet
  const std::string wire = ipc::encode_frame("request");
  ASSERT_EQ(::send(s.client(), wire.data(), 5, 0), 5);
  EXPECT_EQ(in.read(s.daemon(), frames, &bad), FrameAssembler::Read::drained);
  EXPECT_TRUE(frames.bodies.empty());
  ASSERT_EQ(::send(s.client(), wire.data() + 5, wire.size() - 5, 0),
            static_cast<ssize_t>(wire.size() - 5));
  EXPECT_EQ(in.read(s.daemon(), frames, &bad), FrameAssembler::Read::drained);
  EXPECT_TRUE(bad.ok());
  EXPECT_EQ(frames.bodies, std::vector<std::string>{"request"});
  s.close_client();
  EXPECT_EQ(in.read(s.daemon(), frames, &bad), FrameAssembler::Read::closed);
}

TEST(FrameAssembler, AFullChunkSaysMoreMayWait) {
  SocketPair s;
  FrameAssembler in(FrameAssembler::kReadChunk * 2);
  Frames frames;
  Status bad;
  // A frame one chunk long: the prefix makes it 4 bytes more than one read takes.
  const std::string wire = ipc::encode_frame(std::string(FrameAssembler::kReadChunk, 'z'));
  ASSERT_EQ(::send(s.client(), wire.data(), wire.size(), 0), static_cast<ssize_t>(wire.size()));
  EXPECT_EQ(in.read(s.daemon(), frames, &bad), FrameAssembler::Read::more);
  EXPECT_TRUE(frames.bodies.empty());
  EXPECT_EQ(in.read(s.daemon(), frames, &bad), FrameAssembler::Read::drained);
  ASSERT_EQ(frames.bodies.size(), 1u);
  EXPECT_EQ(frames.bodies[0].size(), FrameAssembler::kReadChunk);
}

TEST(FrameAssembler, DescriptorsGoToTheFrameTheyWereSentWithNotToTheOnesAroundIt) {
  SocketPair s;
  FrameAssembler in(kMax);
  std::vector<std::pair<std::string, std::size_t>> got;  // body, descriptors with it
  const auto take = [&](std::string_view body) {
    got.emplace_back(body, in.take_frame_fds().fds.size());
    return true;
  };
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  // "before" and half of "with" first; the rest of "with" carries two
  // descriptors (they ride with its first byte in the real client: here
  // they ride in the middle of the frame), then "after", all in one read.
  const std::string before = ipc::encode_frame("before");
  const std::string with = ipc::encode_frame("with-fds");
  const std::string after = ipc::encode_frame("after");
  ASSERT_TRUE(ipc::send_bytes_now(s.client(), before + with.substr(0, 6)).ok());
  ASSERT_TRUE(ipc::send_bytes_now(s.client(), with.substr(6), std::span<const int>(pipe_fds, 2)).ok());
  ASSERT_TRUE(ipc::send_bytes_now(s.client(), after).ok());
  Status bad;
  while (in.read(s.daemon(), take, &bad) == FrameAssembler::Read::more) {
  }
  while (got.size() < 3 && in.read(s.daemon(), take, &bad) != FrameAssembler::Read::closed) {
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], std::make_pair(std::string("before"), std::size_t{0}));
  EXPECT_EQ(got[1], std::make_pair(std::string("with-fds"), std::size_t{2}));
  EXPECT_EQ(got[2], std::make_pair(std::string("after"), std::size_t{0}));
  // What no frame took is closed: the pipe's read end has no writer left.
  ::close(pipe_fds[1]);
  char c;
  EXPECT_EQ(::read(pipe_fds[0], &c, 1), 0);
  ::close(pipe_fds[0]);
}

TEST(FrameAssembler, DescriptorsOfAFrameThatNeverCompletesAreClosedWithTheAssembler) {
  SocketPair s;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  {
    FrameAssembler in(kMax);
    Frames frames;
    const std::string wire = ipc::encode_frame("never-complete");
    ASSERT_TRUE(
        ipc::send_bytes_now(s.client(), wire.substr(0, 7), std::span<const int>(&pipe_fds[1], 1))
            .ok());
    Status bad;
    EXPECT_EQ(in.read(s.daemon(), frames, &bad), FrameAssembler::Read::drained);
    EXPECT_TRUE(frames.bodies.empty());
  }
  ::close(pipe_fds[1]);
  char c;
  EXPECT_EQ(::read(pipe_fds[0], &c, 1), 0) << "the assembler kept a write end open";
  ::close(pipe_fds[0]);
}

TEST(ReplyBuffer, KeepsWhatAFullSocketDoesNotTakeAndSendsItInOrder) {
  SocketPair s;
  int small = 4096;
  ASSERT_EQ(::setsockopt(s.daemon(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  const std::size_t filler = s.fill_daemon_side();  // the client reads nothing yet
  ASSERT_GT(filler, 0u);

  ReplyBuffer out;
  const std::string first(10000, 'f'), second = "second";
  EXPECT_EQ(out.send(s.daemon(), first), ReplyBuffer::Sent::partial);
  EXPECT_FALSE(out.empty());
  EXPECT_EQ(out.send(s.daemon(), second), ReplyBuffer::Sent::behind);
  EXPECT_TRUE(out.flush(s.daemon()));  // still full: nothing lost, nothing sent
  EXPECT_FALSE(out.empty());

  // The client reads; the rest goes out as room appears, in order.
  std::string got;
  while (!out.empty()) {
    got += s.drain_client();
    ASSERT_TRUE(out.flush(s.daemon()));
  }
  got += s.drain_client();
  EXPECT_EQ(got, std::string(filler, 'x') + ipc::encode_frame(first) + ipc::encode_frame(second));
  // Empty again: the next reply goes straight out.
  EXPECT_EQ(out.send(s.daemon(), "third"), ReplyBuffer::Sent::whole);
  EXPECT_EQ(s.drain_client(), ipc::encode_frame("third"));
}

TEST(ReplyBuffer, AGonePeerFailsTheSendAndTheFlush) {
  SocketPair s;
  int small = 4096;
  ASSERT_EQ(::setsockopt(s.daemon(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  s.fill_daemon_side();
  ReplyBuffer out;
  ASSERT_EQ(out.send(s.daemon(), std::string(10000, 'f')), ReplyBuffer::Sent::partial);
  s.close_client();
  EXPECT_FALSE(out.flush(s.daemon()));

  SocketPair t;
  t.close_client();
  ReplyBuffer fresh;
  EXPECT_EQ(fresh.send(t.daemon(), "reply"), ReplyBuffer::Sent::failed);
}

}  // namespace
}  // namespace genomed::loader
