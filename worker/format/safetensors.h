// Parsing and complete validation of a safetensors file's header. Runs only in
// worker processes: the input is untrusted.
//
// File layout: u64 little-endian N, then N bytes of UTF-8 JSON, then the data
// section. The JSON maps tensor names to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the data section) plus an optional
// "__metadata__" object of string values.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "layout/dtype.h"

namespace genomed::format {

// Limits of a header (docs/failure-model.md §10.1). Each is refused with
// Errc::limit_exceeded naming the limit, the value found and the file, as
// soon as the parse meets it: nothing is stored for an element over a limit.
// With kMaxNameBytes and kMaxDims (layout/resident_layout.h: what the
// resident table holds) they bound a worker's memory to a small multiple of
// the header's bytes.
//
// The header length of the reference implementation (100 MB), checked
// before the header is read.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// Tensors in one file. The largest real adapters (LoRA on every expert of a
// 128-expert MoE) hold about 75k; their contract must still fit
// kMaxContractBytes.
inline constexpr std::size_t kMaxTensors = 131'072;
// Entries of "__metadata__" (transformers writes one, training tools a few
// dozen).
inline constexpr std::size_t kMaxMetadataEntries = 4096;

struct TensorInfo {
  std::string name;
  layout::DType dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t data_begin;  // relative to the data section
  std::uint64_t data_end;    // exclusive
  std::uint64_t byte_size() const { return data_end - data_begin; }
};

struct SafetensorsHeader {
  std::uint64_t header_len = 0;     // N
  std::uint64_t data_offset = 0;    // 8 + N: where the data section starts in the file
  std::uint64_t data_size = 0;      // bytes of the data section
  std::vector<TensorInfo> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
};

// Validates everything: lengths, JSON, dtypes, shapes (no overflow), offsets in
// bounds, sizes equal to product(shape) x dtype size, no overlaps, no gaps, no
// trailing bytes, no duplicate names, and the limits above. Linear in the
// header's size (one SAX pass, header_json.h) plus a sort of the tensors.
// `header_json` is the N bytes after the length prefix; `file_size` is the
// whole file's size; `label` (the file path) is named in every error message.
Result<SafetensorsHeader> parse_safetensors_header(std::string_view header_json,
                                                   std::uint64_t header_len,
                                                   std::uint64_t file_size,
                                                   const std::string& label);

// Reads the length prefix and header from an open file and validates them.
Result<SafetensorsHeader> read_safetensors_header(int fd, const std::string& label);

}  // namespace genomed::format
