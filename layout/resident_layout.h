// The resident form of an adapter inside the shared-memory arena: a small
// self-describing header followed by the tensors, each aligned to 64 bytes.
// The worker writes it, the supervisor verifies it after a fill, and clients
// read their zero-copy views from it. Readers validate every field against the
// span they were given, so a corrupt header cannot make them read outside it.
//
// Binary format (little-endian), at the start of the adapter's range
// (docs/protocol.md section 8):
//   magic "GNMDADP1" (8 bytes)
//   u32 version (=3), u32 tensor_count
//   u64 header_bytes (offset of the first tensor, multiple of 64)
//   u64 total_bytes  (header + tensors + padding)
//   u32 lora_r, f64 lora_alpha
//   u32 contract_bytes
//   per tensor:
//     u16 name_len, name bytes, u8 dtype, u8 ndim, u64 dims[ndim],
//     u64 offset (from the adapter's start, multiple of 64), u64 length,
//     u64 checksum (XXH3-64 of the tensor's bytes, layout/tensor_checksum.h)
//   the adapter contract (layout/contract.h), contract_bytes of msgpack
//
// Shared by the worker (which plans the layout, worker/format/layout_plan.h,
// and writes it), the supervisor (which verifies it) and the clients: this is
// the contract between them, so it depends on no parser of untrusted files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "layout/contract.h"
#include "layout/dtype.h"

namespace genomed::layout {

inline constexpr std::uint64_t kTensorAlignment = 64;
inline constexpr std::uint32_t kLayoutVersion = 3;
inline constexpr std::size_t kMaxNameBytes = 1024;
inline constexpr std::size_t kMaxDims = 16;

struct ResidentTensor {
  std::string name;
  DType dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t offset;  // from the start of the adapter's range
  std::uint64_t length;  // bytes
  // XXH3-64 of the tensor's bytes as the fill wrote them into the arena; 0
  // in a probe's plan, which has not read them.
  std::uint64_t checksum = 0;
};

struct ResidentLayout {
  std::uint32_t lora_r = 0;
  double lora_alpha = 0;
  std::uint64_t header_bytes = 0;
  std::uint64_t total_bytes = 0;
  std::vector<ResidentTensor> tensors;  // sorted by name, as in the header
  std::string contract;                 // encode_contract() of the adapter's contract
};

// magic, version, tensor_count, header_bytes, total_bytes, lora_r, lora_alpha,
// contract_bytes: the bytes before the tensor table.
inline constexpr std::uint64_t kFixedHeaderBytes = 8 + 4 + 4 + 8 + 8 + 4 + 8 + 4;

// `v` rounded up to kTensorAlignment.
constexpr std::uint64_t align_to_tensor(std::uint64_t v) {
  return (v + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
}

// Bytes of `t`'s entry in the header's tensor table.
std::uint64_t table_entry_bytes(const ResidentTensor& t);

// Writes the header of `layout` into dest[0, layout.header_bytes).
// REQUIRES: dest.size() >= layout.header_bytes.
void write_layout_header(const ResidentLayout& layout, std::span<std::byte> dest);

// Reads and validates a header from `src` (the adapter's whole range):
// magic, version, counts, every offset/length inside src, alignment, dtype
// sizes times shapes equal to lengths, and the contract: it decodes, and
// every tensor it names is in the table. Errc::layout_invalid otherwise.
// `contract` (optional) receives the decoded contract.
Result<ResidentLayout> read_layout_header(std::span<const std::byte> src,
                                          AdapterContract* contract = nullptr);

// True when two layouts describe the same tensors at the same places, with
// the same contract (checksums aside: a probe's plan has none).
bool same_layout(const ResidentLayout& a, const ResidentLayout& b);

}  // namespace genomed::layout
