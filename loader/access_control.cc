#include "loader/access_control.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>

#include "common/fd.h"
#include "common/safe_text.h"
#include "loader/client_log.h"

namespace genomed::loader {
namespace {

Status bad(const std::string& what) { return Status(Errc::bad_request, what); }

// A decimal id, or nothing if `text` is not all digits (or overflows).
std::optional<unsigned long> decimal_id(const std::string& text) {
  if (text.empty() || text.size() > 10 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const unsigned long v = std::stoul(text);
  // (uid_t)-1 means "no change" to chown and is nobody's id.
  if (v >= 0xffffffffUL) return std::nullopt;
  return v;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  if (text.empty()) return {""};  // refused as a name like any other empty entry
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  if (!text.empty() && text.back() == ',') parts.emplace_back();
  return parts;
}

Result<uid_t> resolve_user(const std::string& text) {
  if (auto id = decimal_id(text)) return static_cast<uid_t>(*id);
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (text.empty() || ::getpwnam_r(text.c_str(), &pw, buf, sizeof buf, &found) != 0 || !found) {
    return bad("no user " + quote(text) + " on this host (give a name or a numeric uid)");
  }
  return found->pw_uid;
}

}  // namespace

Result<mode_t> parse_socket_mode(const std::string& text) {
  std::string digits = text;
  if (digits.rfind("0o", 0) == 0) digits = digits.substr(2);
  const bool octal =
      !digits.empty() && digits.size() <= 4 &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; });
  if (!octal) return bad("expected octal permission bits such as 0660, got " + quote(text));
  const auto mode = static_cast<mode_t>(std::stoul(digits, nullptr, 8));
  if (mode > 0777) return bad("expected permission bits of at most 0777, got " + quote(text));
  if ((mode & 0600) != 0600) {
    // The daemon's own user (genomectl as the service user) must keep access.
    return bad("the owner needs read and write (0600 at least), got " + quote(text));
  }
  return mode;
}

Result<gid_t> parse_group(const std::string& text) {
  if (auto id = decimal_id(text)) return static_cast<gid_t>(*id);
  group gr{};
  group* found = nullptr;
  char buf[16384];
  if (text.empty() || ::getgrnam_r(text.c_str(), &gr, buf, sizeof buf, &found) != 0 || !found) {
    return bad("no group " + quote(text) + " on this host (give a name or a numeric gid)");
  }
  return found->gr_gid;
}

Status parse_uid_list(const std::string& text, std::vector<uid_t>& out) {
  for (const auto& part : split_commas(text)) {
    GENOMED_ASSIGN_OR_RETURN(uid_t uid, resolve_user(part));
    out.push_back(uid);
  }
  return Status::Ok();
}

Status parse_gid_list(const std::string& text, std::vector<gid_t>& out) {
  for (const auto& part : split_commas(text)) {
    GENOMED_ASSIGN_OR_RETURN(gid_t gid, parse_group(part));
    out.push_back(gid);
  }
  return Status::Ok();
}

Result<PeerCredentials> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status(Errc::environment, std::string("SO_PEERCRED: ") + std::strerror(errno));
  }
  PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};
  // Supplementary groups (Linux 4.13+); without them only the primary gid counts.
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      peer.groups = std::move(groups);
      break;
    }
    if (errno != ERANGE) break;
    groups.resize(bytes / sizeof(gid_t) + 1);  // the kernel said how many it needs
  }
  return peer;
}

AccessControl::AccessControl(AccessOptions options, uid_t daemon_uid)
    : options_(std::move(options)),
      daemon_uid_(daemon_uid),
      // Refusals come from many connections, so one shared budget of lines.
      log_(LogLimiter::Options{}) {}

bool AccessControl::admits(const PeerCredentials& peer) const {
  if (!checks_peers() || peer.uid == daemon_uid_) return true;
  const auto listed = [](const auto& list, auto id) {
    return std::find(list.begin(), list.end(), id) != list.end();
  };
  if (listed(options_.allow_uids, peer.uid) || listed(options_.allow_gids, peer.gid)) return true;
  return std::any_of(peer.groups.begin(), peer.groups.end(),
                     [&](gid_t g) { return listed(options_.allow_gids, g); });
}

bool AccessControl::may_publish(const PeerCredentials& peer) const {
  if (peer.uid == daemon_uid_) return true;
  const auto listed = [](const auto& list, auto id) {
    return std::find(list.begin(), list.end(), id) != list.end();
  };
  if (listed(options_.publish_uids, peer.uid) || listed(options_.publish_gids, peer.gid))
    return true;
  return std::any_of(peer.groups.begin(), peer.groups.end(),
                     [&](gid_t g) { return listed(options_.publish_gids, g); });
}

Status AccessControl::check_publisher(const AccessControl* access, int fd) {
  static const AccessControl kOwnerOnly{AccessOptions{}};
  if (access == nullptr) access = &kOwnerOnly;
  auto peer = peer_credentials(fd);
  if (!peer) {
    return Status(Errc::permission_denied,
                  "publish refused: the client's credentials cannot be read (" +
                      peer.status().message() + ")");
  }
  if (access->may_publish(*peer)) return Status::Ok();
  return Status(Errc::permission_denied,
                "publish refused to uid " + std::to_string(peer->uid) + " gid " +
                    std::to_string(peer->gid) +
                    ": only genomed's own user may publish adapters, and users or groups "
                    "given with --publish-uid / --publish-gid");
}

Status AccessControl::apply_to_socket(const std::string& path) const {
  // By descriptor, never by path: whoever can write to the socket's directory
  // could swap the path for a symlink (or another file) between bind() and
  // here, and a chmod by path would then widen that file instead. O_PATH |
  // O_NOFOLLOW opens the node itself; it must still be a socket of ours.
  const Fd node(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!node.valid() || ::fstat(node.get(), &st) != 0) {
    return Status(Errc::environment, "cannot open socket '" + path + "' to set its mode: " +
                                         std::strerror(errno) + " (--socket-mode)");
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
    return Status(Errc::environment,
                  "'" + path +
                      "' is no longer the socket genomed created (it was replaced right after "
                      "bind); refusing to change its mode or group. Put the socket in a "
                      "directory only genomed's user can write to");
  }
  // The group first: once the mode opens the socket to its group, that group
  // is already the intended one.
  if (options_.socket_group != static_cast<gid_t>(-1) &&
      ::fchownat(node.get(), "", static_cast<uid_t>(-1), options_.socket_group, AT_EMPTY_PATH) !=
          0) {
    return Status(Errc::environment,
                  "cannot give socket '" + path + "' group " +
                      std::to_string(options_.socket_group) + ": " + std::strerror(errno) +
                      " (--socket-group: the daemon must run as root or be a member of it)");
  }
  // fchmod() refuses O_PATH descriptors; the descriptor's /proc link names
  // the same node (how glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does it).
  const std::string by_fd = "/proc/self/fd/" + std::to_string(node.get());
  if (::chmod(by_fd.c_str(), options_.socket_mode) != 0) {
    return Status(Errc::environment, "cannot set mode of socket '" + path +
                                         "': " + std::strerror(errno) + " (--socket-mode)");
  }
  return Status::Ok();
}

Status AccessControl::check_peer(int fd, std::uint64_t connection, ConnectionCounters& counters) {
  if (!checks_peers()) return Status::Ok();
  auto peer = peer_credentials(fd);
  if (peer && admits(*peer)) return Status::Ok();
  counters.permission_denied.fetch_add(1, std::memory_order_relaxed);
  LogLimiter::Verdict verdict;
  {
    MutexLock lock(mu_);
    verdict = log_.admit(LogLimiter::Clock::now());
  }
  if (!verdict.write) {
    counters.log_lines_suppressed.fetch_add(1, std::memory_order_relaxed);
  } else if (!peer) {
    client_log().warn("connection {}: refused: its credentials cannot be read ({})", connection,
                 peer.status().message());
  } else {
    client_log().warn(
        "connection {}: permission denied to uid {} gid {} pid {}: not in --allow-uid / "
        "--allow-gid{}",
        connection, peer->uid, peer->gid, peer->pid,
        verdict.held_back == 0 ? std::string()
                               : " (" + std::to_string(verdict.held_back) +
                                     " more refusal(s) were held back before this one)");
  }
  const std::string who =
      peer ? "uid " + std::to_string(peer->uid) + " (gid " + std::to_string(peer->gid) + ")"
           : std::string("this client");
  return Status(Errc::permission_denied,
                who +
                    " may not use this genomed; the operator allows users and groups with "
                    "--allow-uid / --allow-gid");
}

}  // namespace genomed::loader
