#include "client/sealed_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace genomed::client_detail {
namespace {

Status failed(const std::string& name, const char* call) {
  return Status(Errc::environment, "memfd for " + name + ": " + call + ": " + std::strerror(errno));
}

}  // namespace

Status seal_memfd(int fd, const std::string& name) {
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return failed(name, "F_ADD_SEALS");
  return Status::Ok();
}

Result<Fd> sealed_memfd(const std::string& name, std::span<const std::byte> bytes) {
  Fd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return failed(name, "memfd_create");
  // Sized first: one allocation of the whole, then filled by write (no
  // mapping is left behind, which F_SEAL_WRITE would refuse).
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes.size())) != 0)
    return failed(name, "ftruncate");
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd.get(), bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return failed(name, "pwrite");
    done += static_cast<std::size_t>(n);
  }
  GENOMED_RETURN_IF_ERROR(seal_memfd(fd.get(), name));
  return fd;
}

}  // namespace genomed::client_detail
