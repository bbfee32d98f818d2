// An adapter directory on disk, as PEFT writes it: adapter_config.json and
// adapter_model.safetensors. The two jobs of a worker live here:
//   probe: validate both files completely and plan the resident layout;
//   fill:  re-validate, then copy every tensor into the assigned range.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "layout/adapter_source.h"
#include "layout/fill_parts.h"
#include "layout/resident_layout.h"
#include "worker/format/base_model.h"

namespace genomed::format {

// Opens files with O_NOFOLLOW; refuses anything but regular files
// (Errc::file_unreadable names the file and the cause). Validates both files,
// builds the adapter contract (a config its tensors contradict is refused),
// and with `base_model` checks every module against the base model's shapes.
Result<ProbeResult> probe_adapter(const AdapterPaths& paths, const BaseModel* base_model = nullptr);

// Re-reads and re-validates the files; if the planned layout differs from
// `expected` (the file changed since the probe) fails with Errc::file_changed.
// Otherwise fills the part's region of `dest`: the header (for the part with
// tensor 0), the part's tensors, and zeroes in the alignment padding. Writes
// nothing outside that region. REQUIRES: dest.size() >= expected.total_bytes.
Status fill_adapter(const AdapterPaths& paths, const ResidentLayout& expected,
                    std::span<std::byte> dest, FillPart part = {});

}  // namespace genomed::format
