#include "loader/access_control.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/fd.h"
#include "tools/testkit/scratch_dir.h"

namespace genomed::loader {
namespace {

constexpr uid_t kDaemon = 500;

PeerCredentials peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  return {.pid = 42, .uid = uid, .gid = gid, .groups = std::move(groups)};
}

// A Unix socket bound at `path`, created owner-only as Server::listen does.
Fd bound_socket(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const mode_t old_mask = ::umask(0177);
  const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::umask(old_mask);
  EXPECT_EQ(rc, 0) << path << ": " << std::strerror(errno);
  return fd;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(AccessControl, TheSocketGetsItsModeAndGroup) {
  const testkit::ScratchDir dir("genomed-access");
  const std::string path = dir / "genomed.sock";
  const Fd sock = bound_socket(path);
  ASSERT_EQ(mode_of(path), 0600u);
  AccessControl ac(AccessOptions{.socket_mode = 0660, .socket_group = ::getegid()});
  ASSERT_TRUE(ac.apply_to_socket(path).ok());
  EXPECT_EQ(mode_of(path), 0660u);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, ::getegid());
}

// Anyone who can write to the socket's directory could replace the socket
// with a symlink between bind() and the chmod: the mode must never reach the
// symlink's target (nor any other file put there).
TEST(AccessControl, ASocketReplacedBySymlinkOrFileIsRefusedAndTheTargetUntouched) {
  const testkit::ScratchDir dir("genomed-access");
  const std::string secret = dir / "secret";
  { Fd f(::open(secret.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)); ASSERT_TRUE(f.valid()); }
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  AccessControl ac(AccessOptions{.socket_mode = 0666});

  const std::string link = dir / "link.sock";
  ASSERT_EQ(::symlink(secret.c_str(), link.c_str()), 0);
  const Status via_link = ac.apply_to_socket(link);
  EXPECT_EQ(via_link.code(), Errc::environment) << via_link.to_string();
  EXPECT_EQ(mode_of(secret), 0600u) << "the mode followed the symlink";

  const Status on_file = ac.apply_to_socket(secret);
  EXPECT_EQ(on_file.code(), Errc::environment) << on_file.to_string();
  EXPECT_NE(on_file.message().find("no longer the socket"), std::string::npos)
      << on_file.to_string();
  EXPECT_EQ(mode_of(secret), 0600u) << "a regular file in the socket's place was widened";
}

TEST(AccessControl, WithoutAllowListsEveryPeerIsServed) {
  AccessControl ac(AccessOptions{}, kDaemon);
  EXPECT_FALSE(ac.checks_peers());
  EXPECT_TRUE(ac.admits(peer(1234, 1234)));
}

TEST(AccessControl, ListedUidPrimaryGidOrSupplementaryGroupIsServed) {
  AccessControl ac(AccessOptions{.allow_uids = {1000}, .allow_gids = {77}}, kDaemon);
  EXPECT_TRUE(ac.checks_peers());
  EXPECT_TRUE(ac.admits(peer(1000, 1000)));
  EXPECT_TRUE(ac.admits(peer(2000, 77)));
  EXPECT_TRUE(ac.admits(peer(2000, 2000, {5, 77})));
  EXPECT_FALSE(ac.admits(peer(2000, 2000, {5, 6})));
  EXPECT_FALSE(ac.admits(peer(0, 0)));       // root is not implied...
  EXPECT_TRUE(ac.admits(peer(kDaemon, 9)));  // ...the daemon's own user is
}

TEST(AccessControl, ParsersTakeNumbersNamesAndCommaLists) {
  EXPECT_EQ(parse_socket_mode("0660").value(), 0660u);
  EXPECT_EQ(parse_socket_mode("600").value(), 0600u);
  EXPECT_EQ(parse_socket_mode("0o666").value(), 0666u);
  EXPECT_FALSE(parse_socket_mode("0460").ok());  // the owner must keep read and write
  EXPECT_FALSE(parse_socket_mode("u+rw").ok());
  EXPECT_EQ(parse_group("root").value(), 0u);
  EXPECT_EQ(parse_group("4242").value(), 4242u);
  std::vector<uid_t> uids;
  ASSERT_TRUE(parse_uid_list("root,1000", uids).ok());
  EXPECT_EQ(uids, (std::vector<uid_t>{0, 1000}));
  std::vector<gid_t> gids;
  const Status s = parse_gid_list("1,no-such-group-here", gids);
  EXPECT_EQ(s.code(), Errc::bad_request);
  EXPECT_NE(s.message().find("no-such-group-here"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace genomed::loader
