// Helpers the multi-process tests share: the file's bytes against a lease's
// the pid a once-fault wrote, and the daemon's arena reopened writable.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "genomed/client.h"
#include "tools/testkit/proc.h"

namespace genomed::testing {

std::string bytes_of(std::span<const std::byte> b);

// Every tensor of `lease` holds the bytes the safetensors file `weights` holds.
void expect_file_bytes(const Lease& lease, const std::string& weights);

// The name the daemon's arena (a memfd) shows in /proc/PID/maps and as the
// target of its descriptors in /proc/PID/fd: "/memfd:genomed-123 (deleted)";
// empty if `genomed` maps none (or is gone).
std::string arena_path_of(pid_t genomed);

// Processes of this uid that map the arena or hold a descriptor of it.
std::vector<pid_t> holders_of(const std::string& arena);

// The pid a once-fault wrote into its marker file, once it is complete; -1 before.
pid_t pid_in(const std::string& marker);

// /proc/<daemon>/fd/N of the daemon's read-write arena descriptor (a
// memfd), as root sees it; empty if it holds none.
std::string arena_rw_fd_path(pid_t daemon);

// The daemon's read-write arena descriptor (a memfd), reopened writable
// through /proc/<daemon>/fd as a stray writer would (the tests run as root,
// which passes the arena's 0400 mode); -1 if it holds none.
int open_arena_writable(pid_t daemon);

// Where this process mapped the daemon's arena (from /proc/self/maps), or
// null: with open_arena_writable, the file offset of a byte a view shows.
const std::byte* arena_mapping();

// LIST's lease count of `name` over `client` (0 if it is not listed).
std::uint64_t listed_leases(Client& client, const std::string& name);

// Runs `body` in a child of fork() and returns what it returned (its exit
// code; 128 + the signal if it died of one). The child leaves with _exit:
// nothing of the test's own (the daemon fixture, gtest) is torn down there.
int in_child(const std::function<int()>& body);

// What /proc says about a process (children_of, process_state, thread_count,
// open_fds, ProcessRef, alive, ...) lives in tools/testkit/proc.h, shared
// with genome-bench.
using namespace ::genomed::testkit;  // NOLINT(google-build-using-namespace): one vocabulary

}  // namespace genomed::testing
