// Splitting a fill among workers. Pure arithmetic on a layout: the
// supervisor plans the parts, each worker writes only its part's region.
#include "layout/fill_parts.h"

#include <algorithm>

namespace genomed::layout {

std::pair<std::uint64_t, std::uint64_t> part_region(const ResidentLayout& layout, FillPart part) {
  const std::size_t n = layout.tensors.size();
  const std::size_t begin = std::min(part.begin, n);
  const std::size_t end = std::min(part.end, n);
  const std::uint64_t first = begin == 0 ? 0 : layout.tensors[begin].offset;
  const std::uint64_t last = end >= n ? layout.total_bytes : layout.tensors[end].offset;
  return {first, std::max(first, last)};
}

std::vector<FillPart> split_fill(const ResidentLayout& layout, std::size_t parts) {
  const std::size_t n = layout.tensors.size();
  parts = std::max<std::size_t>(1, std::min(parts, n));
  std::vector<FillPart> out;
  std::size_t begin = 0;
  for (std::size_t p = 1; p < parts; ++p) {
    // The first tensor at or past p/parts of the bytes starts the next part.
    const std::uint64_t target = layout.total_bytes / parts * p;
    std::size_t cut = begin + 1;
    while (cut < n && layout.tensors[cut].offset < target) ++cut;
    if (cut >= n) break;
    out.push_back({begin, cut});
    begin = cut;
  }
  out.push_back({begin, n});
  return out;
}

}  // namespace genomed::layout
