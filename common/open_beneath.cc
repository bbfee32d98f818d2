#include "common/open_beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

namespace genomed {
namespace {

// Set once openat2 answered ENOSYS: every later open walks.
std::atomic<bool> no_openat2{false};

// `path`'s components without empty and `.` ones; EXDEV for an absolute
// path or a `..` component (RESOLVE_BENEATH would refuse the ones that
// climb out; none is ever needed, so none is accepted).
int split(std::string_view path, std::vector<std::string>* parts) {
  if (path.empty()) return ENOENT;
  if (path.front() == '/') return EXDEV;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, end - start);
    if (part == "..") return EXDEV;
    if (!part.empty() && part != ".") parts->emplace_back(part);
    start = end + 1;
  }
  return parts->empty() ? ENOENT : 0;
}

BeneathOpen failed(int err) { return BeneathOpen{Fd(), err}; }

BeneathOpen by_openat2(int dirfd, const std::string& path, int flags) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  // EAGAIN: the kernel saw a rename race it could not rule out; asked again.
  for (int attempt = 0;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return BeneathOpen{Fd(static_cast<int>(fd)), 0};
    const int err = errno;
    if (err == EINTR || (err == EAGAIN && attempt < 16)) continue;
    return failed(err);
  }
}

// Opens `name` (one component) relative to `at` without following a
// symlink; O_PATH opens of a symlink succeed on the link itself (and with
// O_DIRECTORY fail as ENOTDIR), so O_DIRECTORY is left to the type check:
// ELOOP for a link, as openat2 says, and ENOTDIR when a directory is needed.
BeneathOpen open_component(int at, const std::string& name, int flags, bool need_dir) {
  int fd;
  do {
    fd = ::openat(at, name.c_str(), (flags & ~O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return failed(errno);
  BeneathOpen out{Fd(fd), 0};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return failed(errno);
  if (S_ISLNK(st.st_mode)) return failed(ELOOP);
  if (need_dir && !S_ISDIR(st.st_mode)) return failed(ENOTDIR);
  return out;
}

BeneathOpen by_walk(int dirfd, const std::vector<std::string>& parts, int flags) {
  Fd here;  // the directory reached so far; dirfd itself at first
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    BeneathOpen next =
        open_component(here.valid() ? here.get() : dirfd, parts[i], O_PATH | O_DIRECTORY, true);
    if (next.error != 0) return next;
    here = std::move(next.fd);
  }
  return open_component(here.valid() ? here.get() : dirfd, parts.back(), flags,
                        (flags & O_DIRECTORY) != 0);
}

}  // namespace

BeneathOpen open_beneath(int dirfd, std::string_view path, int flags, BeneathResolution how) {
  std::vector<std::string> parts;
  if (const int err = split(path, &parts); err != 0) return failed(err);
  if (how == BeneathResolution::walk ||
      (how == BeneathResolution::automatic && no_openat2.load(std::memory_order_relaxed))) {
    return by_walk(dirfd, parts, flags);
  }
  std::string joined;
  for (const auto& p : parts) joined += (joined.empty() ? "" : "/") + p;
  BeneathOpen opened = by_openat2(dirfd, joined, flags);
  if (opened.error == ENOSYS && how == BeneathResolution::automatic) {
    no_openat2.store(true, std::memory_order_relaxed);
    return by_walk(dirfd, parts, flags);
  }
  return opened;
}

}  // namespace genomed
