#include "layout/tensor_checksum.h"

// Header-only use of libxxhash-dev: nothing to link, for the worker, the
// supervisor and the client library alike.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdio>
#include <string>

namespace genomed::layout {

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

std::string checksum_text(std::uint64_t checksum) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(checksum));
  return buf;
}

Status verify_checksums(const ResidentLayout& layout, std::span<const std::byte> range,
                        TensorMismatch* mismatch) {
  for (std::size_t i = 0; i < layout.tensors.size(); ++i) {
    const ResidentTensor& t = layout.tensors[i];
    const std::uint64_t actual = tensor_checksum(range.subspan(t.offset, t.length));
    if (actual == t.checksum) continue;
    if (mismatch != nullptr) *mismatch = {i, actual};
    return Status(Errc::layout_invalid,
                  "tensor '" + t.name.substr(0, 200) + "' no longer matches its checksum (" +
                      checksum_text(t.checksum) + " when loaded, " + checksum_text(actual) +
                      " now): the resident copy is corrupt");
  }
  return Status::Ok();
}

}  // namespace genomed::layout
