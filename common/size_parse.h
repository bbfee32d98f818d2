// Human byte sizes ("512M", "8G", "1.5G", "4096") for flags and config files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace genomed {

// Accepts a non-negative number with an optional binary suffix K, M, G, T
// (powers of 1024, case-insensitive, optional trailing "B" or "iB").
Result<std::uint64_t> parse_size(std::string_view text);

// 536870912 -> "512.0 MiB"
std::string format_size(std::uint64_t bytes);

}  // namespace genomed
