// An adapter directory on disk, as PEFT writes it: adapter_config.json and
// adapter_model.safetensors. The two jobs of a worker live here:
//   probe: validate both files completely and plan the resident layout;
//   fill:  re-validate, then copy every tensor into the assigned range.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/format/base_model.h"
#include "worker/format/resident_layout.h"

namespace genomed::format {

inline constexpr const char* kConfigFileName = "adapter_config.json";
inline constexpr const char* kWeightsFileName = "adapter_model.safetensors";

struct AdapterPaths {
  std::string config;   // .../adapter_config.json
  std::string weights;  // .../adapter_model.safetensors
};

struct ProbeResult {
  ResidentLayout layout;
  std::uint64_t weights_file_size = 0;
  std::int64_t weights_mtime_ns = 0;
};

// Opens files with O_NOFOLLOW; refuses anything but regular files
// (Errc::file_unreadable names the file and the cause). Validates both files,
// builds the adapter contract (a config its tensors contradict is refused),
// and with `base_model` checks every module against the base model's shapes.
Result<ProbeResult> probe_adapter(const AdapterPaths& paths, const BaseModel* base_model = nullptr);

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

// Re-reads and re-validates the files; if the planned layout differs from
// `expected` (the file changed since the probe) fails with Errc::file_changed.
// Otherwise fills the part's region of `dest`: the header (for the part with
// tensor 0), the part's tensors, and zeroes in the alignment padding. Writes
// nothing outside that region. REQUIRES: dest.size() >= expected.total_bytes.
Status fill_adapter(const AdapterPaths& paths, const ResidentLayout& expected,
                    std::span<std::byte> dest, FillPart part = {});

}  // namespace genomed::format
