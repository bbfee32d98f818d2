// pread that does not stop at the first short read: regular files may return
// fewer bytes than asked (signals, very large requests), and callers need to
// tell "the file ended" apart from "the read failed".
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace genomed::format {

// Reads up to `n` bytes at `offset` into `buf`. Returns the count read, which is
// less than `n` only at end of file, or -1 with errno set on a read error.
inline long long pread_full(int fd, void* buf, std::size_t n, std::uint64_t offset) {
  auto* out = static_cast<unsigned char*>(buf);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return static_cast<long long>(done);
}

}  // namespace genomed::format
