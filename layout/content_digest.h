// Content identity of a resident adapter: one 128-bit digest of everything a
// server's behaviour depends on, so it can key its own caches by content
// rather than by name (issue 23). Two loads of the same files, under any
// names and in any generation, have the same digest; any change to a
// tensor's bytes, dtype, shape or name, or to the validated config, changes
// it.
//
// It costs no pass over the tensor bytes: it is XXH3-128 (seed 0, xxHash
// 0.8) over a small canonical manifest built from the resident header,
// whose per-tensor XXH3-64 checksums the fill computed while it copied
// (layout/tensor_checksum.h). The manifest (all integers little-endian):
//
//   "GNMDDIG1"                         8 bytes
//   u32 contract_bytes | contract      the encoded adapter contract (its
//                                      `config` is adapter_config.json as
//                                      validated: compact, in the file's key
//                                      order, unknown keys kept)
//   u32 tensor_count
//   per tensor, in table order (sorted by name):
//     u16 name_len | name | u8 dtype | u8 ndim | u64 dims[ndim]
//     | u64 length | u64 checksum
//
// Offsets, header_bytes and total_bytes are left out: they are where the
// layout put the bytes, not what they are. Like the checksums it rests on,
// the digest identifies content against accident, not against forgery.
#pragma once

#include <cstdint>
#include <string>

#include "layout/resident_layout.h"

namespace genomed::layout {

struct ContentDigest {
  std::uint64_t high = 0;  // XXH128_hash_t's high64
  std::uint64_t low = 0;
  bool operator==(const ContentDigest&) const = default;
  // 32 lowercase hex digits, high half first: xxHash's canonical form, as
  // Python's xxhash.xxh3_128_hexdigest() prints it.
  std::string hex() const;
};

// The manifest above for `layout` (a verified resident header, checksums
// included).
std::string digest_manifest(const ResidentLayout& layout);

// XXH3-128 of digest_manifest(layout).
ContentDigest content_digest(const ResidentLayout& layout);

}  // namespace genomed::layout
