// Client processes the chaos kills (kill-clients): this same binary run as
// `genome-stress --victim SOCKET ADAPTER`, which connects (writes "C\n"),
// acquires ADAPTER, writes "H\n" on stdout once it holds the lease ("E <code>\n" if the acquire
// failed), then waits to be killed. The daemon must release what a killed
// client held and forget what it waited for.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "common/status.h"
#include "tools/stress/options.h"

namespace genomed::stress {

// The victim's main (never returns normally while it holds a lease).
int victim_main(const Options& options);

struct Victim {
  pid_t pid = -1;
  int out = -1;  // its stdout, non-blocking
  bool connected = false;
  bool held = false;
  bool ended = false;  // it wrote "E" (the acquire failed) and exits on its own
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point kill_at;  // kill-while-waiting: when (moved by the connect time)
  bool kill_when_held = false;
};

// Starts a victim (posix_spawn: safe from a threaded process).
Result<Victim> spawn_victim(const std::string& self_exe, const std::string& socket,
                            const std::string& adapter);
// Reads what it wrote so far (held / ended).
void poll_victim(Victim& v);
// SIGKILLs and reaps it.
void kill_victim(Victim& v);

}  // namespace genomed::stress
