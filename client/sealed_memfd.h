// Bytes as a sealed memfd: what PUBLISH sends (docs/protocol.md "publish").
// The seals (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW, then F_SEAL_SEAL)
// make the bytes immutable for everyone, the creator included, so the daemon
// can read them while the client goes on; genomed refuses a memfd without
// them.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "common/fd.h"
#include "common/status.h"

namespace genomed::client_detail {

// A memfd named `name` (shown in /proc/PID/fd only) holding `bytes`, sealed.
// Errors: environment naming the system call that failed.
Result<Fd> sealed_memfd(const std::string& name, std::span<const std::byte> bytes);

// Seals an open memfd (created with MFD_ALLOW_SEALING) against any change.
Status seal_memfd(int fd, const std::string& name);

}  // namespace genomed::client_detail
