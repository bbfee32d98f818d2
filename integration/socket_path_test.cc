// A --socket that names something other than a socket is said to be what it
// is, by every client: the C++ client, genomectl (through it), the C
// interface and the Python client (python/tests/test_client.py). connect()
// fails with ECONNREFUSED for a regular file, a directory or a FIFO alike,
// which read as "is the daemon running?" sent operators after the wrong
// cause. A missing path and a socket nobody listens on keep that question.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "genomed/genomed.h"
#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

// The C++ client's, genomectl's and the C interface's message for `path`;
// each must fail with not_connected.
std::vector<std::string> messages_for(const std::string& path) {
  std::vector<std::string> out;
  auto cpp = Client::connect(path);
  EXPECT_EQ(cpp.code(), Errc::not_connected) << cpp.status().to_string();
  out.push_back(cpp.status().message());

  const auto ctl = run_command({binary("genomectl"), "--socket", path, "stats"});
  EXPECT_NE(ctl.exit_code, 0) << ctl.out;
  out.push_back(ctl.err);

  genomed_client* client = nullptr;
  genomed_error error;
  EXPECT_EQ(genomed_connect(path.c_str(), nullptr, &client, &error), GENOMED_ERRC_NOT_CONNECTED);
  EXPECT_EQ(client, nullptr);
  out.push_back(error.message);
  return out;
}

void expect_not_a_socket(const std::string& path, const std::string& kind) {
  for (const auto& m : messages_for(path)) {
    const std::string said = "'" + path + "' is " + kind + ", not a socket: give the path";
    EXPECT_NE(m.find(said + " genomed listens on (its --socket)"), std::string::npos) << m;
    EXPECT_EQ(m.find("is the daemon running"), std::string::npos) << m;
  }
}

TEST(SocketPath, ARegularFileIsSaidToBeOne) {
  const ScratchDir dir("socket-path");
  const std::string path = dir / "genomed.sock";
  std::ofstream(path) << "not a socket\n";
  expect_not_a_socket(path, "a regular file");
}

TEST(SocketPath, ADirectoryIsSaidToBeOne) {
  const ScratchDir dir("socket-path");
  expect_not_a_socket(dir.path(), "a directory");
}

TEST(SocketPath, AFifoIsSaidToBeOne) {
  const ScratchDir dir("socket-path");
  const std::string path = dir / "genomed.fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  expect_not_a_socket(path, "a FIFO");
}

TEST(SocketPath, AMissingPathAsksWhetherTheDaemonRuns) {
  const ScratchDir dir("socket-path");
  for (const auto& m : messages_for(dir / "absent.sock")) {
    EXPECT_NE(m.find("No such file or directory (is the daemon running? it creates its socket "
                     "when it starts)"),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find("not a socket"), std::string::npos) << m;
  }
}

// A socket file left by a daemon that stopped: a socket, refused.
TEST(SocketPath, ASocketNobodyListensOnIsRefused) {
  const ScratchDir dir("socket-path");
  const std::string path = dir / "stale.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);  // bound, never listened: connect() is refused
  for (const auto& m : messages_for(path)) {
    EXPECT_NE(m.find("Connection refused (is the daemon running?)"), std::string::npos) << m;
    EXPECT_EQ(m.find("not a socket"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace genomed::testing
