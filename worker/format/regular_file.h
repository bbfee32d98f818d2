// Reading untrusted files safely: refusing anything but a regular file (a
// FIFO would block a reader for ever; O_NONBLOCK keeps even the open() from
// hanging), and reading small files whole under a size limit. An adapter's
// files arrive open (the supervisor opened them beneath its root); only the
// operator's --base-model, and tests and tools, open files by path here.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "common/fd.h"
#include "common/status.h"

namespace genomed::format {

struct OpenFile {
  Fd fd;
  struct stat st;
};

enum class Symlinks { refuse, follow };

// Errc::file_unreadable naming `path` and the cause. `refuse` refuses a
// symlink at the last component (tests and tools opening an adapter's files);
// the operator's --base-model follows them (a Hugging Face cache snapshot is
// made of symlinks into its blobs).
Result<OpenFile> open_regular(const std::string& path, Symlinks symlinks = Symlinks::refuse);

// The fstat of an open file, which must be a regular file: Errc::file_unreadable
// naming `label` otherwise.
Result<struct stat> regular_file_stat(int fd, const std::string& label);

// The whole open file, at most `limit` bytes (Errc::limit_exceeded beyond
// it), read with pread from offset 0: the descriptor may be shared with other
// processes reading it at once, so its file offset is neither used nor moved.
// `label` names the file in messages.
Result<std::string> read_small_fd(int fd, const std::string& label, std::uint64_t limit);

// open_regular + read_small_fd.
Result<std::string> read_small_file(const std::string& path, std::uint64_t limit,
                                    Symlinks symlinks = Symlinks::refuse);

// strerror text of an errno value.
std::string errno_text(int err);

}  // namespace genomed::format
