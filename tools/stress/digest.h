// The harness's own hash of tensor bytes: XXH3-64 computed here, over the
// file's bytes once and over every view a client sees. (The daemon's
// recorded checksum is never trusted: a view is right only if its bytes
// hash to what the file's bytes hash to.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace genomed::stress {

std::uint64_t digest(std::span<const std::byte> bytes);

}  // namespace genomed::stress
