// The JSON of a safetensors header, read in one SAX pass that checks every
// entry against the format and the limits as it goes (worker-only: the input
// is untrusted).
//
// Why a SAX pass: nlohmann's DOM parse with a callback rescans the parent
// object at every end_object, O(n^2) in the number of tensors (60k tensors
// took past a 30 s deadline), and a DOM stores every element before anything
// can look at it (50M zero dimensions cost 2.27 GiB before the 16-dimension
// limit was checked). Here the work is linear in the header's size, and
// nothing is stored for an element before its limit is checked, so memory is
// the header's bytes plus a bounded factor of it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "worker/format/safetensors.h"

namespace genomed::format {

struct HeaderEntries {
  std::vector<TensorInfo> tensors;  // in file order, each entry valid on its own
  std::map<std::string, std::string> metadata;
};

// Reads `json` (the header text, valid UTF-8) whose data section holds
// `data_size` bytes. Each tensor entry is checked on its own: its keys, dtype,
// shape (no overflow, clients index with int64), data_offsets within the data
// section and sized as shape x dtype. Duplicate names and the tiling of the
// data section are the caller's (they need every entry).
//
// The limits of safetensors.h (kMaxTensors, kMaxMetadataEntries,
// kMaxNameBytes, kMaxDims) fail at once with Errc::limit_exceeded naming the
// limit, the value found and `label`. A JSON syntax error anywhere is
// st_header_invalid_json even when a format error comes before it (the rest
// is then scanned without storing anything). Nesting is bounded by the format
// itself: a list or object where the format has none is refused, with the code
// of the field it appears in, as it opens. std::bad_alloc propagates (the
// worker answers it as its memory limit).
Result<HeaderEntries> read_header_json(std::string_view json, std::uint64_t data_size,
                                       const std::string& label);

// A tensor name for a message: quoted, and cut to 120 bytes (names are
// untrusted and may be long).
std::string quoted_name(std::string_view name);

}  // namespace genomed::format
