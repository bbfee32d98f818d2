// Which version of a file a load read. A load opens the adapter's files once
// and reads only through those descriptors, so a file replaced by rename
// cannot mix into it; a file rewritten in place (or truncated and written
// again) can. That is caught by the file's read lease (file_lease.h) where
// the kernel grants one, and otherwise only by comparing the identity of the
// open file before the first job and after the last one. (A file replaced by rename
// during the load changes too: it lost its name, which changes its ctime.
// The load read one version only, but one already superseded: it fails as
// well, and the next load reads the new one.) The weights file's identity
// is also what quarantine strikes are counted against.
//
// An in-place write changes mtime and ctime when it starts, not when its
// bytes land: a write call under way at the first fstat is not seen. Two
// writes within one tick of the kernel's coarse clock may leave equal
// timestamps; since Linux 6.13 ext4, xfs, btrfs and tmpfs give a write that
// follows an fstat a fine-grained timestamp (multigrain timestamps).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace genomed::loader {

struct FileIdentity {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::int64_t ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

FileIdentity identity_of(const struct stat& st);

// The identity of the open file `fd`; Errc::file_unreadable naming `label`
// if fstat fails.
Result<FileIdentity> identity_of_fd(int fd, const std::string& label);

// Errc::file_changed naming `label` and what differs (size, mtime, ctime,
// or the file itself) unless the open file `fd` still has identity `before`.
Status unchanged_since(int fd, const FileIdentity& before, const std::string& label);

}  // namespace genomed::loader
