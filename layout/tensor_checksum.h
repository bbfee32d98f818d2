// The checksum of a tensor's resident bytes: XXH3-64 (seed 0, xxHash 0.8),
// a fast, well-known 64-bit hash any client can compute (Python's `xxhash`
// package: xxh3_64_intdigest). The fill computes it over the bytes as it
// wrote them into the arena and records it in the resident header, so a
// client can check its copy at any time (Lease::verify, genomectl verify).
// It detects corruption and stray writes, not forgery: it is no MAC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "common/status.h"
#include "layout/resident_layout.h"

namespace genomed::layout {

std::uint64_t tensor_checksum(std::span<const std::byte> bytes);

// The same checksum over bytes that come in pieces: update() with each in
// order, then digest(); equal to tensor_checksum() of their concatenation.
class ChecksumStream {
 public:
  ChecksumStream();
  ~ChecksumStream();
  ChecksumStream(const ChecksumStream&) = delete;
  ChecksumStream& operator=(const ChecksumStream&) = delete;

  void reset();  // starts over for another tensor
  void update(std::span<const std::byte> bytes);
  std::uint64_t digest() const;

 private:
  struct State;  // xxHash's state, kept out of this header
  std::unique_ptr<State> state_;
};

// A tensor whose resident bytes differ from their recorded checksum.
struct TensorMismatch {
  std::size_t index = 0;  // into layout.tensors
  std::uint64_t actual = 0;
};

// Hashes every tensor of `layout` in `range` (the adapter's resident bytes,
// which `layout` was read from) and compares each with its recorded
// checksum: Status::Ok(), or Errc::layout_invalid naming the first tensor
// that differs and both checksums; `mismatch` (if given) receives which.
Status verify_checksums(const ResidentLayout& layout, std::span<const std::byte> range,
                        TensorMismatch* mismatch = nullptr);

// "0x" and 16 hex digits.
std::string checksum_text(std::uint64_t checksum);

}  // namespace genomed::layout
