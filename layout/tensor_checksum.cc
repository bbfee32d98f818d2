#include "layout/tensor_checksum.h"

// Header-only use of libxxhash-dev: nothing to link, for the worker, the
// supervisor and the client library alike.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace genomed::format {

struct ChecksumStream::State {
  XXH3_state_t xxh;
};

std::uint64_t tensor_checksum(std::span<const std::byte> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

ChecksumStream::ChecksumStream() : state_(std::make_unique<State>()) { reset(); }
ChecksumStream::~ChecksumStream() = default;

void ChecksumStream::reset() { XXH3_64bits_reset(&state_->xxh); }

void ChecksumStream::update(std::span<const std::byte> bytes) {
  XXH3_64bits_update(&state_->xxh, bytes.data(), bytes.size());
}

std::uint64_t ChecksumStream::digest() const { return XXH3_64bits_digest(&state_->xxh); }

}  // namespace genomed::format
