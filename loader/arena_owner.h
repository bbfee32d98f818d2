// Whether a client of genomed's own uid can make the arena writable, and
// genomed's one use of CAP_CHOWN to prevent it.
//
// Clients get an O_RDONLY descriptor of the arena at HELLO and its inode's
// mode is 0400, but a client of genomed's uid owns that inode: it may
// fchmod it through the descriptor and reopen /proc/self/fd/N read-write.
// No seal refuses that without also refusing the writable mappings workers
// make after start-up (F_SEAL_WRITE, F_SEAL_FUTURE_WRITE). An inode owned
// by someone else does: with CAP_CHOWN (the systemd unit grants it) genomed
// gives the arena to root and then lets go of CAP_CHOWN for good. Without
// it, genomed says once at start-up who can still do it and what to change.
#pragma once

#include <string>

#include "cache/arena.h"

namespace genomed::loader {

struct ArenaOwnership {
  // True if no process of genomed's uid can make the arena writable: root
  // owns it (given, or genomed runs as root, whose processes can do
  // anything anyway).
  bool protected_from_own_uid = false;
  // What to log: info when protected, a warning otherwise; empty when
  // there is nothing to say (genomed runs as root).
  std::string message;
};

// Gives `arena` to root if genomed may (CAP_CHOWN in its permitted set),
// then drops CAP_CHOWN from the effective, permitted and inheritable sets
// (and from the bounding set where CAP_SETPCAP allows). Genomed running as
// root keeps its capabilities (--socket-group may need CAP_CHOWN) and
// changes nothing. Capabilities belong to a thread: call it once, before
// genomed starts any thread, so that none keeps CAP_CHOWN.
ArenaOwnership protect_arena_from_own_uid(const cache::Arena& arena);

}  // namespace genomed::loader
