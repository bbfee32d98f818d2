// The parts of one fill: the supervisor splits a planned layout into parts
// (split_fill) and gives each to a worker; each worker writes only the bytes
// its part owns (part_region). Shared by both sides of the job protocol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "layout/resident_layout.h"

namespace genomed::layout {

// A part of a fill: the tensors [begin, end) of the layout, and with them the
// byte region they own in the resident form: from the first one's offset (0
// for the part holding tensor 0, which also writes the header) to the next
// part's first tensor (or total_bytes). Parts of one layout own disjoint
// regions, so several workers can fill one adapter at once.
struct FillPart {
  std::size_t begin = 0;
  std::size_t end = SIZE_MAX;  // clamped to the tensor count
};

// The byte region [first, second) a part owns in the resident form.
std::pair<std::uint64_t, std::uint64_t> part_region(const ResidentLayout& layout, FillPart part);

// Splits a layout into at most `parts` parts of similar byte size.
std::vector<FillPart> split_fill(const ResidentLayout& layout, std::size_t parts);

}  // namespace genomed::layout
