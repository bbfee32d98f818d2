// PUBLISH: an adapter handed to genomed as bytes a client owns in memory
// (a trainer's new version), not as files under a root (issue 23).
//
// The client sends two memfds with the request's frame (SCM_RIGHTS, in
// this order: adapter_config.json's bytes, then adapter_model.safetensors'),
// each sealed against any change (F_SEAL_WRITE | F_SEAL_SHRINK |
// F_SEAL_GROW; seals can never be removed). adopt_published() checks that,
// and the sizes, and makes them an OpenedAdapter: from there the load is a
// file load's, step for step (loader/load_pipeline.h): the workers read
// the same descriptors with the same parsers, limits, contract,
// --base-model check, checksums and digest, and the result is swapped in
// as RELOAD swaps (loader/generations.h). Because the bytes are sealed, no
// lease and no identity check is needed to know that every job read one
// version: nobody, the client included, can change them.
//
// The workers get read-only descriptors of their own (reopened through
// /proc/self/fd), never the client's read-write ones.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"
#include "loader/frame_io.h"
#include "loader/name_resolver.h"

namespace genomed::loader {

// The seals a published memfd must carry.
int required_publish_seals();

// Limits on what a client may publish, checked before any worker runs.
struct PublishLimits {
  std::uint64_t max_config_bytes = 1 << 20;  // the worker's own limit (kMaxConfigBytes)
  std::uint64_t max_weights_bytes = 0;       // the arena: nothing larger can be resident
};

// The two descriptors of a PUBLISH of `name` as the adapter a load reads;
// takes them (closed on every error). Errors: bad_request (not exactly two
// descriptors, one that is not a memfd, not sealed, not readable),
// limit_exceeded (a size past `limits`), file_unreadable (fstat fails).
Result<OpenedAdapter> adopt_published(std::string_view name, FrameFds fds,
                                      const PublishLimits& limits);

}  // namespace genomed::loader
