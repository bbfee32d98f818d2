// An adapter directory as PEFT writes it: adapter_config.json and
// adapter_model.safetensors. The two jobs of a worker live here:
//   probe: validate both files completely and plan the resident layout;
//   fill:  re-validate, then copy the tensors (all, or one part's) into the
//          assigned range, with each tensor's checksum.
// Both read the files only through descriptors (AdapterFds: the supervisor
// opened them beneath its root and passed them with the job), never by
// path; `paths` only name the files in messages.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "layout/adapter_source.h"
#include "layout/fill_parts.h"
#include "layout/resident_layout.h"
#include "worker/format/base_model.h"
#include "worker/format/read_into.h"

namespace genomed::format {

// Refuses anything but regular files (Errc::file_unreadable names the file
// and the cause). Validates both files, builds the adapter contract (a config
// its tensors contradict is refused), and with `base_model` checks every
// module against the base model's shapes.
Result<layout::ProbeResult> probe_adapter(const layout::AdapterPaths& paths, const layout::AdapterFds& files,
                                  const BaseModel* base_model = nullptr);

// Re-reads and re-validates the files; if the planned layout differs from
// `expected` (the file changed since the probe) fails with Errc::file_changed.
// Otherwise fills the part's region of `dest`: the part's tensors and zeroes
// in the alignment padding, and, when the part holds every tensor, the
// header too (with the checksums). A part of a split fill leaves the header
// bytes [0, header_bytes) alone: the seal writes them once every part is
// done. `checksums` receives the XXH3-64 of each of the part's tensors, in
// order, computed over the bytes as written into `dest`. Writes nothing
// outside the part's region. `read` says how the weights are read
// (read_into.h: buffered from the page cache, direct I/O when the file is
// not cached). REQUIRES: dest.size() >= expected.total_bytes.
Status fill_adapter(const layout::AdapterPaths& paths, const layout::AdapterFds& files,
                    const layout::ResidentLayout& expected, std::span<std::byte> dest, layout::FillPart part,
                    std::vector<std::uint64_t>* checksums, const ReadOptions& read = {});

// Tests and tools: opens both files by path (no symlink at the last
// component, regular files only), as the supervisor does beneath its root.
Result<layout::AdapterFds> open_adapter_files(const layout::AdapterPaths& paths);

}  // namespace genomed::format
