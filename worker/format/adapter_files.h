// An adapter directory on disk, as PEFT writes it: adapter_config.json and
// adapter_model.safetensors. The two jobs of a worker live here:
//   probe: validate both files completely and plan the resident layout;
//   fill:  re-validate, then copy every tensor into the assigned range.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
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
// (Errc::file_unreadable names the file and the cause).
Result<ProbeResult> probe_adapter(const AdapterPaths& paths);

// Re-reads and re-validates the files; if the planned layout differs from
// `expected` (the file changed since the probe) fails with Errc::file_changed.
// Otherwise writes the header and copies every tensor's bytes into `dest`, and
// zeroes the alignment padding. REQUIRES: dest.size() >= expected.total_bytes.
Status fill_adapter(const AdapterPaths& paths, const ResidentLayout& expected,
                    std::span<std::byte> dest);

}  // namespace genomed::format
