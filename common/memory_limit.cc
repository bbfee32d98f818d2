#include "common/memory_limit.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

namespace genomed {
namespace {

// Bytes of address space mapped now: the first field of /proc/self/statm
// (pages of VmSize).
Result<std::uint64_t> mapped_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) {
    return Status(Errc::environment,
                  std::string("cannot read /proc/self/statm: ") + std::strerror(errno));
  }
  unsigned long long pages = 0;
  const int got = std::fscanf(f, "%llu", &pages);
  std::fclose(f);
  if (got != 1) return Status(Errc::environment, "cannot parse /proc/self/statm");
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

Status limit_memory(std::uint64_t bytes) {
  GENOMED_ASSIGN_OR_RETURN(std::uint64_t mapped, mapped_bytes());
  const std::uint64_t cap = bytes > std::numeric_limits<rlim_t>::max() - mapped
                                ? std::numeric_limits<rlim_t>::max()
                                : mapped + bytes;
  rlimit lim{};
  if (::getrlimit(RLIMIT_AS, &lim) != 0) {
    return Status(Errc::environment,
                  std::string("getrlimit(RLIMIT_AS) failed: ") + std::strerror(errno));
  }
  // Never above a hard limit set from outside (raising it needs privilege).
  lim.rlim_cur = lim.rlim_max = std::min<rlim_t>(static_cast<rlim_t>(cap), lim.rlim_max);
  if (::setrlimit(RLIMIT_AS, &lim) != 0) {
    return Status(Errc::environment, "setrlimit(RLIMIT_AS, " + std::to_string(lim.rlim_cur) +
                                         ") failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace genomed
