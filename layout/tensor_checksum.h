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

namespace genomed::format {

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

}  // namespace genomed::format
