// Opening a path beneath a directory descriptor so that nothing the path
// names can lead outside that directory, whatever is renamed or swapped for
// a symlink meanwhile. Resolving a name with realpath() and reopening the
// resulting string is a race: a directory swapped for a symlink in between
// leads the reopen anywhere. Here the kernel resolves every component
// relative to the descriptor, in the same call that opens the file:
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS).
// On a kernel without openat2 (before Linux 5.6: ENOSYS) the same rules hold
// through a walk: one component at a time, each opened with O_NOFOLLOW
// relative to the previous one's descriptor.
//
// The rules: `path` is relative; no component is `..`; no component is a
// symbolic link (not even one that would stay inside). Empty and `.`
// components are skipped.
#pragma once

#include <string_view>

#include "common/fd.h"

namespace genomed {

// How open_beneath resolves: openat2 when the kernel has it, else the walk;
// tests force either.
enum class BeneathResolution { automatic, openat2, walk };

struct BeneathOpen {
  Fd fd;
  // 0, or the errno value of the failure: ELOOP (a symbolic link on the
  // way), EXDEV (an absolute path or a `..` component), ENOENT, ENOTDIR (a
  // component before the last is not a directory, or O_DIRECTORY was asked
  // for and the last is not one), EACCES, ... ENOSYS only when `openat2`
  // was forced on a kernel without it.
  int error = 0;
};

// Opens `path` beneath `dirfd` with `flags` (O_CLOEXEC is always added;
// O_PATH, O_DIRECTORY, O_RDONLY, O_NONBLOCK ... as the caller needs).
BeneathOpen open_beneath(int dirfd, std::string_view path, int flags,
                         BeneathResolution how = BeneathResolution::automatic);

}  // namespace genomed
