#include "loader/cancel_token.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace genomed::loader {

CancelToken::CancelToken() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

CancelToken::~CancelToken() {
  if (fd_ >= 0) ::close(fd_);
}

void CancelToken::fire() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  const std::uint64_t one = 1;
  if (fd_ >= 0) (void)!::write(fd_, &one, sizeof one);  // never read: stays readable
}

}  // namespace genomed::loader
