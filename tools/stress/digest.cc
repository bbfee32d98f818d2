#include "tools/stress/digest.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace genomed::stress {

std::uint64_t digest(std::span<const std::byte> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

}  // namespace genomed::stress
