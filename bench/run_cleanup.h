// What genome-bench must undo when it fails half-way: the daemons it started
// and its scratch directories. Every part of the bench reports a fatal error
// through die(), which undoes them and exits 1; used from the main thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace genomed::bench {

using Clock = std::chrono::steady_clock;
inline constexpr double kGB = 1e9;  // GB/s are decimal, as in docs/physics

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Prints "genome-bench: <what>", stops every tracked daemon (SIGTERM, then
// SIGKILL after 5 s), removes the scratch directories, exits 1.
[[noreturn]] void die(const std::string& what);

// A daemon die() must stop: tracked from its start until it was stopped.
void track_daemon(pid_t pid);
void untrack_daemon(pid_t pid);

// The scratch directories die() removes ("" = none): the run's temporary
// directory, and the cold-from-disk adapters' directory on a real disk.
enum class Scratch { tmp, cold };
void remove_on_failure(Scratch which, std::string dir);

}  // namespace genomed::bench
