// The fork guard: which process a connection belongs to.
//
// A child of fork() inherits every Connection: the socket (shared with the
// parent: one byte it writes or reads mixes with the parent's requests and
// replies), the lease-slot page (MAP_SHARED: a give-back would lower the
// parent's counts) and every Lease (whose destructor would end the parent's
// lease). So a Connection belongs to the process that connected it, told
// apart by a generation counter: every child of fork() adds 1 to its copy
// (pthread_atfork, registered before the first connect), so a ForkGuard made
// in an earlier generation is a parent's. One relaxed load per check, no
// system call (getpid() is one): the slot path stays free of them.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace genomed::client_detail {

// This process's fork generation: 0 in the process that loaded the library,
// +1 in each child of fork() (its parent's value plus one). Written only by
// the atfork handler; defined in fork_guard.cc.
extern std::atomic<std::uint64_t> fork_generation;

// The generation now; registers the atfork handler on the first call.
std::uint64_t current_fork_generation();

class ForkGuard {
 public:
  // Belongs to this process (registers the handler if nobody has yet).
  ForkGuard();

  // Whether this process is a child of fork() of the one that made this
  // guard: then nothing may be sent, read, shut down or given back.
  bool foreign() const { return fork_generation.load(std::memory_order_relaxed) != generation_; }

  // The error text of a request `op` refused because foreign().
  std::string forked_text(std::string_view op) const;

  pid_t owner_pid() const { return owner_pid_; }

 private:
  std::uint64_t generation_;  // fork_generation when made; constant
  pid_t owner_pid_;           // the process that made it (for messages); constant
};

}  // namespace genomed::client_detail
