#include "worker/format/regular_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace genomed::format {

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

std::string errno_text(int err) { return std::generic_category().message(err); }

Result<OpenFile> open_regular(const std::string& path, Symlinks symlinks) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK |
                                          (symlinks == Symlinks::refuse ? O_NOFOLLOW : 0));
  if (fd < 0) {
    const int err = errno;
    std::string why =
        err == ELOOP ? "is a symbolic link (refused)" : "cannot be opened: " + errno_text(err);
    return Result<OpenFile>(Errc::file_unreadable, path + " " + why);
  }
  OpenFile f{Fd(fd), {}};
  if (::fstat(fd, &f.st) != 0) {
    return Result<OpenFile>(Errc::file_unreadable, path + ": fstat failed: " + errno_text(errno));
  }
  if (!S_ISREG(f.st.st_mode)) {
    return Result<OpenFile>(Errc::file_unreadable, path + " is not a regular file");
  }
  return f;
}

Result<std::string> read_small_file(const std::string& path, std::uint64_t limit,
                                    Symlinks symlinks) {
  auto file = open_regular(path, symlinks);
  if (!file) return file.status();
  // Read to EOF rather than trusting st_size, but never past the limit.
  std::string text;
  text.resize(static_cast<std::size_t>(
      std::min<std::uint64_t>(static_cast<std::uint64_t>(file->st.st_size), limit) + 1));
  std::size_t used = 0;
  for (;;) {
    if (used == text.size()) {
      if (text.size() > limit) {
        return Result<std::string>(Errc::limit_exceeded, path + " is larger than the limit of " +
                                                             std::to_string(limit) + " bytes");
      }
      text.resize(static_cast<std::size_t>(std::min<std::uint64_t>(text.size() * 2, limit + 1)));
    }
    const ssize_t got = ::read(file->fd.get(), text.data() + used, text.size() - used);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Result<std::string>(Errc::file_unreadable,
                                 path + ": read failed: " + errno_text(errno));
    }
    if (got == 0) break;
    used += static_cast<std::size_t>(got);
  }
  text.resize(used);
  return text;
}

}  // namespace genomed::format
