#include "loader/access_control.h"

#include <gtest/gtest.h>

namespace genomed::loader {
namespace {

constexpr uid_t kDaemon = 500;

PeerCredentials peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  return {.pid = 42, .uid = uid, .gid = gid, .groups = std::move(groups)};
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
