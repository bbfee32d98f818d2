// What /proc says about a process: its children, state, threads, open
// descriptors and status fields. Shared by the integration tests and
// genome-bench (their leak and thread checks read the same facts the same
// way). Linux only; every function tolerates a process that is gone.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace genomed::testkit {

// The children of every thread of `pid` (its workers, for genomed).
std::vector<pid_t> children_of(pid_t pid);

// Fields of /proc/PID/stat after the command name: [0] is the state (field
// 3), [19] the start time (field 22). Empty if the process is gone.
std::vector<std::string> stat_fields(pid_t pid);

// The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...); '?' if gone.
char process_state(pid_t pid);

// A numeric field of /proc/PID/status ("Threads", "VmRSS" in kB, ...); -1
// if the process is gone or has no such field.
std::int64_t status_field(pid_t pid, const std::string& field);
inline int thread_count(pid_t pid) { return static_cast<int>(status_field(pid, "Threads")); }

// Entries of /proc/PID/fd; 0 if the process is gone.
std::size_t open_fds(pid_t pid);

// A process, told apart from a later one that reuses its pid.
struct ProcessRef {
  pid_t pid = -1;
  std::string start_time;
};
ProcessRef ref_of(pid_t pid);

// Alive: it exists, is the same process, and is not a zombie (a zombie has
// released its memory, mappings and descriptors).
bool alive(const ProcessRef& p);

}  // namespace genomed::testkit
