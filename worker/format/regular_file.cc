#include "worker/format/regular_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "worker/format/pread_full.h"

namespace genomed::format {

std::string errno_text(int err) { return std::generic_category().message(err); }

Result<OpenFile> open_regular(const std::string& path, Symlinks symlinks) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK |
                                 (symlinks == Symlinks::refuse ? O_NOFOLLOW : 0)));
  if (!fd.valid()) {
    const int err = errno;
    std::string why =
        err == ELOOP ? "is a symbolic link (refused)" : "cannot be opened: " + errno_text(err);
    return Result<OpenFile>(Errc::file_unreadable, path + " " + why);
  }
  GENOMED_ASSIGN_OR_RETURN(const struct stat st, regular_file_stat(fd.get(), path));
  return OpenFile{std::move(fd), st};
}

Result<struct stat> regular_file_stat(int fd, const std::string& label) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Result<struct stat>(Errc::file_unreadable,
                               label + ": fstat failed: " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Result<struct stat>(Errc::file_unreadable, label + " is not a regular file");
  }
  return st;
}

Result<std::string> read_small_fd(int fd, const std::string& label, std::uint64_t limit) {
  GENOMED_ASSIGN_OR_RETURN(const struct stat st, regular_file_stat(fd, label));
  // Read to EOF rather than trusting st_size, but never past the limit.
  std::string text;
  text.resize(static_cast<std::size_t>(
      std::min<std::uint64_t>(static_cast<std::uint64_t>(st.st_size), limit) + 1));
  std::size_t used = 0;
  for (;;) {
    if (used == text.size()) {
      if (text.size() > limit) {
        return Result<std::string>(Errc::limit_exceeded, label + " is larger than the limit of " +
                                                              std::to_string(limit) + " bytes");
      }
      text.resize(static_cast<std::size_t>(std::min<std::uint64_t>(text.size() * 2, limit + 1)));
    }
    const long long got = pread_full(fd, text.data() + used, text.size() - used, used);
    if (got < 0) {
      return Result<std::string>(Errc::file_unreadable,
                                 label + ": read failed: " + errno_text(errno));
    }
    used += static_cast<std::size_t>(got);
    if (used < text.size()) break;  // end of file
  }
  text.resize(used);
  return text;
}

Result<std::string> read_small_file(const std::string& path, std::uint64_t limit,
                                    Symlinks symlinks) {
  GENOMED_ASSIGN_OR_RETURN(OpenFile file, open_regular(path, symlinks));
  return read_small_fd(file.fd.get(), path, limit);
}

}  // namespace genomed::format
