// An adapter's source as the supervisor hands it to a worker and the worker
// reports back: the two files of its directory, opened once per load by the
// supervisor beneath its root and read by the worker only through those
// descriptors (passed with each job), the paths that name them in messages,
// and what a probe found. Part of the job protocol's vocabulary, so it lives
// beside the resident layout rather than with the parsers.
#pragma once

#include <cstdint>
#include <string>

#include "common/fd.h"
#include "layout/resident_layout.h"

namespace genomed::layout {

inline constexpr const char* kConfigFileName = "adapter_config.json";
inline constexpr const char* kWeightsFileName = "adapter_model.safetensors";

// ROOT/NAME/adapter_config.json and ROOT/NAME/adapter_model.safetensors:
// what messages call the files. Never opened again by these names: a path
// can be swapped for a symlink between two opens.
struct AdapterPaths {
  std::string config;   // .../adapter_config.json
  std::string weights;  // .../adapter_model.safetensors
};

// The two files, open (read-only regular files). Every job of one load
// reads through the same open files, so the probe and each part of the fill
// see one file each, whatever is renamed or swapped in the directory.
struct AdapterFds {
  Fd config;
  Fd weights;
};

// A probe's result: the planned layout and the identity of the weights file
// it was planned from.
struct ProbeResult {
  ResidentLayout layout;
  std::uint64_t weights_file_size = 0;
  std::int64_t weights_mtime_ns = 0;
};

}  // namespace genomed::layout
