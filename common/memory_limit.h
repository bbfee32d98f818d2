// A cap on the address space a process may add to what it maps now. The
// genome-worker sets it at start-up (genomed --worker-memory-limit), so that
// a hostile file which makes it allocate ends in std::bad_alloc (answered as
// Errc::limit_exceeded, the worker lives on) instead of taking the host's
// memory or drawing the OOM killer. Tests use it to prove a parse's memory
// bounded.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace genomed {

// Sets RLIMIT_AS (soft and hard) to the address space mapped now (code,
// libraries, the arena mapping, the stack) plus `bytes`. Call once at
// start-up, after mapping the arena and before reading any file.
// Errc::environment if /proc/self/statm cannot be read or setrlimit fails.
Status limit_memory(std::uint64_t bytes);

}  // namespace genomed
