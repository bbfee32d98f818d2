// The daemon's footprint as /proc shows it on the same host: open
// descriptors, threads, anonymous resident memory (RssAnon: the heap; the
// arena is shared memory and counts in RssShmem, which follows what is
// resident, not leaks), and its genome-worker children.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace genomed::stress {

struct Footprint {
  std::size_t fds = 0;
  int threads = 0;
  std::int64_t rss_anon_kb = 0;
  std::vector<std::string> fd_targets;  // readlink of each /proc/PID/fd entry, sorted
  // The daemon runs under ASan or TSan (their runtime is mapped): its RSS
  // holds the sanitizer's quarantine and shadow, so RSS says nothing about
  // leaks and is not compared (LeakSanitizer checks leaks at its exit).
  bool sanitized = false;
  std::string to_string() const;
  // The descriptors `after` holds that this footprint did not (by target).
  std::string new_fds(const Footprint& after) const;
};

// False if `pid` is not a genomed this harness can inspect (another host or
// pid namespace, another user).
bool inspectable_genomed(pid_t pid);
Footprint footprint_of(pid_t pid);
// The daemon's genome-worker children (by /proc/PID/comm, so nothing else
// the daemon might start is ever signalled).
std::vector<pid_t> workers_of(pid_t daemon);

// How far after may exceed before and still count as "back to baseline".
// Descriptors and threads: exact (a connection, a worker pipe or a thread
// per job left behind is a leak). RssAnon: the allocator keeps freed pages
// and per-thread arenas, so 25 % + 16 MiB above the baseline is growth that
// says nothing; a leak per operation over a long run exceeds it.
bool back_to_baseline(const Footprint& before, const Footprint& after, std::string* why);

}  // namespace genomed::stress
