#include "loader/arena_owner.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace genomed::loader {
namespace {

// The calling thread's capability sets (raw system calls: Debian's libcap
// is not a dependency of genomed).
struct Capabilities {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};

  bool read() { return ::syscall(SYS_capget, &header, data) == 0; }
  bool write() { return ::syscall(SYS_capset, &header, data) == 0; }
  static constexpr unsigned kWord = CAP_CHOWN / 32;
  static constexpr std::uint32_t kBit = 1u << (CAP_CHOWN % 32);
  bool chown_permitted() const { return (data[kWord].permitted & kBit) != 0; }
};

std::string exposed(uid_t uid, const std::string& why) {
  const std::string who = "uid " + std::to_string(uid);
  return "the arena's inode belongs to " + who + ", genomed's own (" + why +
         "): any process of " + who +
         " that connects can make the arena writable (fchmod of the read-only descriptor HELLO "
         "gives it, then a reopen of /proc/self/fd/N) and change adapters other clients hold "
         "leases on. Run genomed as a user no client runs as (the systemd unit's own user), or "
         "grant it CAP_CHOWN (AmbientCapabilities=CAP_CHOWN, as dist/systemd/genomed.service "
         "does): genomed then gives the arena to root at start and drops the capability";
}

}  // namespace

ArenaOwnership protect_arena_from_own_uid(const cache::Arena& arena) {
  const uid_t uid = ::geteuid();
  if (uid == 0) return {.protected_from_own_uid = true, .message = ""};
  Capabilities caps;
  if (!caps.read()) {
    return {.protected_from_own_uid = false,
            .message = exposed(uid, std::string("its capabilities cannot be read: ") +
                                        std::strerror(errno))};
  }
  if (!caps.chown_permitted()) {
    return {.protected_from_own_uid = false, .message = exposed(uid, "genomed has no CAP_CHOWN")};
  }
  caps.data[Capabilities::kWord].effective |= Capabilities::kBit;  // permitted: it may raise it
  Status given = caps.write()
                     ? arena.give_to_root()
                     : Status(Errc::environment, std::string("capset: ") + std::strerror(errno));
  // Nothing else in genomed needs it: gone from every set, so that no bug
  // of genomed's can use it later and no worker can inherit it (its exec
  // gains nothing without ambient capabilities or file capabilities). The
  // bounding set needs CAP_SETPCAP, which the unit does not grant: EPERM
  // is expected and harmless then.
  caps.data[Capabilities::kWord].effective &= ~Capabilities::kBit;
  caps.data[Capabilities::kWord].permitted &= ~Capabilities::kBit;
  caps.data[Capabilities::kWord].inheritable &= ~Capabilities::kBit;
  const bool dropped = caps.write();
  const std::string drop_failure =
      dropped ? "" : std::string("; CAP_CHOWN could not be dropped: ") + std::strerror(errno);
  (void)::prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0);
  if (!given.ok()) {
    return {.protected_from_own_uid = false,
            .message = exposed(uid, given.message()) + drop_failure};
  }
  return {.protected_from_own_uid = true,
          .message = "arena given to root (mode 0400): processes of uid " + std::to_string(uid) +
                     " cannot make it writable; CAP_CHOWN dropped" + drop_failure};
}

}  // namespace genomed::loader
