// Who may use the daemon: the socket file's mode and group (the first gate,
// enforced by the kernel at connect), and the peer's credentials, read with
// SO_PEERCRED / SO_PEERGROUPS and checked when it is accepted (Server::admit) against --allow-uid and
// --allow-gid (the second gate, for sockets the file mode cannot narrow
// enough, e.g. a group shared with users that must not load adapters).
//
// With neither list given every peer that can open the socket is served (the
// behaviour before these flags). With either given a peer is served if its
// uid is listed, or its gid or one of its supplementary groups is, or it runs
// as the daemon's own effective uid (so genomectl as the service user always
// works). A refused peer gets `permission_denied` and one log line naming its
// uid, gid and pid; those lines pass one LogLimiter shared by every
// connection (a client can reconnect in a loop), and what is held back is
// counted in STATS (log_lines_suppressed), as every refusal is
// (permission_denied).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "loader/connection_counters.h"
#include "loader/log_limiter.h"

namespace genomed::loader {

struct AccessOptions {
  // The socket file's permission bits. 0600 (owner only) unless given.
  mode_t socket_mode = 0600;
  // The socket file's group (--socket-group, resolved from a name or a
  // number); -1: left as created (the daemon's effective gid).
  gid_t socket_group = static_cast<gid_t>(-1);
  std::vector<uid_t> allow_uids;  // --allow-uid
  std::vector<gid_t> allow_gids;  // --allow-gid
  // Who may PUBLISH (hand the daemon an adapter's bytes, which every client
  // then serves): the daemon's own uid always; these besides.
  std::vector<uid_t> publish_uids;  // --publish-uid
  std::vector<gid_t> publish_gids;  // --publish-gid (also supplementary groups)
};

// "0660", "660", "0o660": octal permission bits (at most 0777).
Result<mode_t> parse_socket_mode(const std::string& text);
// "genomed" or "1234": a group of this host.
Result<gid_t> parse_group(const std::string& text);
// "1000,alice" (numbers or user names), appended to `out`.
Status parse_uid_list(const std::string& text, std::vector<uid_t>& out);
// "1000,render" (numbers or group names), appended to `out`.
Status parse_gid_list(const std::string& text, std::vector<gid_t>& out);

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (SO_PEERGROUPS)
};
// The credentials of the process that connected `fd` (as of its connect()).
Result<PeerCredentials> peer_credentials(int fd);

class AccessControl {
 public:
  explicit AccessControl(AccessOptions options, uid_t daemon_uid = ::geteuid());

  const AccessOptions& options() const { return options_; }
  // Whether --allow-uid or --allow-gid was given (peers are checked at all).
  bool checks_peers() const { return !options_.allow_uids.empty() || !options_.allow_gids.empty(); }
  // Whether these credentials may use the daemon.
  bool admits(const PeerCredentials& peer) const;

  // Whether these credentials may PUBLISH: the daemon's own uid, or a uid,
  // gid or supplementary group in --publish-uid / --publish-gid. Nobody
  // else by default, whatever --allow-uid admits.
  bool may_publish(const PeerCredentials& peer) const;
  // may_publish() of the peer of socket `fd`: Ok, or permission_denied
  // naming its uid and the flags (unreadable credentials are refused).
  // `access` null (no AccessControl configured): the daemon's own uid only.
  static Status check_publisher(const AccessControl* access, int fd);

  // Gives the socket file at `path` its mode and group.
  Status apply_to_socket(const std::string& path) const;

  // Checks the peer of connection `connection` (socket `fd`) at accept:
  // Ok, or permission_denied after counting it in `counters` and logging it
  // (or counting the line as suppressed).
  Status check_peer(int fd, std::uint64_t connection, ConnectionCounters& counters) EXCLUDES(mu_);

 private:
  const AccessOptions options_;
  const uid_t daemon_uid_;
  Mutex mu_;
  LogLimiter log_ GUARDED_BY(mu_);
};

}  // namespace genomed::loader
