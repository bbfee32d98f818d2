// Helpers the multi-process tests share: the file's bytes against a lease's,
// the pid a once-fault wrote, and what /proc says about a process.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "genomed/client.h"

namespace genomed::testing {

std::string bytes_of(std::span<const std::byte> b);

// Every tensor of `lease` holds the bytes the safetensors file `weights` holds.
void expect_file_bytes(const Lease& lease, const std::string& weights);

// The pid a once-fault wrote into its marker file, once it is complete; -1 before.
pid_t pid_in(const std::string& marker);

// The children of every thread of `pid` (its workers, for genomed).
std::vector<pid_t> children_of(pid_t pid);

// Fields of /proc/PID/stat after the command name: [0] is the state (field
// 3), [19] the start time (field 22). Empty if the process is gone.
std::vector<std::string> stat_fields(pid_t pid);

// The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...); '?' if gone.
char process_state(pid_t pid);

// The "Threads:" line of /proc/PID/status; -1 if the process is gone.
int thread_count(pid_t pid);

// A process, told apart from a later one that reuses its pid.
struct ProcessRef {
  pid_t pid = -1;
  std::string start_time;
};
ProcessRef ref_of(pid_t pid);

// Alive: it exists, is the same process, and is not a zombie (a zombie has
// released its memory, mappings and descriptors).
bool alive(const ProcessRef& p);

}  // namespace genomed::testing
