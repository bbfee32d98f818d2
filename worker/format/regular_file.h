// Opening untrusted files safely: without following a symlink at the last
// component, refusing anything but a regular file (a FIFO would block a
// reader for ever; O_NONBLOCK keeps even the open() from hanging), and
// reading small files to EOF under a size limit.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace genomed::format {

// Owns one descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
  ~Fd();
  int get() const { return fd_; }

 private:
  int fd_;
};

struct OpenFile {
  Fd fd;
  struct stat st;
};

enum class Symlinks { refuse, follow };

// Errc::file_unreadable naming `path` and the cause. Adapter files refuse a
// symlink at the last component (the name resolver checked the path); the
// operator's --base-model follows them (a Hugging Face cache snapshot is
// made of symlinks into its blobs).
Result<OpenFile> open_regular(const std::string& path, Symlinks symlinks = Symlinks::refuse);

// The whole file, at most `limit` bytes (Errc::limit_exceeded beyond it).
Result<std::string> read_small_file(const std::string& path, std::uint64_t limit,
                                    Symlinks symlinks = Symlinks::refuse);

// strerror text of an errno value.
std::string errno_text(int err);

}  // namespace genomed::format
