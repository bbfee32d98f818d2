// An adapter's source as the supervisor names it to a worker and the worker
// reports back: the two files of its directory (the supervisor resolves and
// confines the paths, the worker opens and parses them) and what a probe
// found. Part of the job protocol's vocabulary, so it lives beside the
// resident layout rather than with the parsers.
#pragma once

#include <cstdint>
#include <string>

#include "layout/resident_layout.h"

namespace genomed::format {

inline constexpr const char* kConfigFileName = "adapter_config.json";
inline constexpr const char* kWeightsFileName = "adapter_model.safetensors";

struct AdapterPaths {
  std::string config;   // .../adapter_config.json
  std::string weights;  // .../adapter_model.safetensors
};

// A probe's result: the planned layout and the identity of the weights file
// it was planned from (the supervisor keys quarantine on it).
struct ProbeResult {
  ResidentLayout layout;
  std::uint64_t weights_file_size = 0;
  std::int64_t weights_mtime_ns = 0;
};

}  // namespace genomed::format
