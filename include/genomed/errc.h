// The one error vocabulary of genomed: every module boundary, every wire reply
// and every genomectl message uses these codes. The numeric values are part of
// the wire protocol (docs/protocol.md) and never change; new codes get new
// numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace genomed {

enum class Errc : std::uint16_t {
  ok = 0,

  // --- requests and the wire -------------------------------------------------
  bad_request = 1,          // A frame decoded but a field is missing or has the wrong type.
  unsupported_version = 2,  // The client's protocol version is not served by this daemon.
  unknown_op = 3,           // The request names an operation the daemon does not know.
  frame_too_large = 4,      // A length prefix exceeds the protocol's maximum frame size.
  malformed_frame = 5,      // The frame body is not a valid msgpack map within limits.
  not_connected = 6,        // The client could not reach the daemon or lost the connection.
  hello_required = 7,       // A request arrived before the HELLO exchange.
  protocol_error = 8,       // Client side: the daemon's reply does not follow the protocol.

  // --- adapter names -----------------------------------------------------------
  invalid_name = 10,       // The name is empty, absolute, contains '..', '.', NUL or '\'.
  path_escapes_root = 11,  // A symlink on the name's path or at its files (never followed), or
                           // a path that leads outside its root.
  not_found = 12,          // No configured root holds a directory of that name.

  // --- adapter files: I/O and adapter_config.json -----------------------------------
  file_unreadable = 20,      // A file is missing, not regular, or a read failed.
  config_invalid_json = 21,  // adapter_config.json is not a JSON object.
  config_missing_field =
      22,  // A required key (r, lora_alpha, target_modules, peft_type) is absent.
  config_invalid_field = 23,          // A key has the wrong type or an out-of-range value.
  config_unsupported_peft_type = 24,  // peft_type is not LORA.

  // --- adapter files: adapter_model.safetensors ---------------------------------------
  st_file_too_short = 30,        // Fewer than 8 bytes, or shorter than 8 + header length.
  st_header_too_large = 31,      // The header length exceeds the 100 MB limit of the format.
  st_header_invalid_json = 32,   // The header is not valid UTF-8 JSON.
  st_header_not_object = 33,     // The header JSON is not an object.
  st_tensor_entry_invalid = 34,  // A tensor entry lacks dtype/shape/data_offsets or has extra keys.
  st_dtype_unknown = 35,         // A dtype string is not one the format defines.
  st_shape_invalid = 36,         // A shape is not a list of non-negative integers, or overflows.
  st_offsets_invalid = 37,       // data_offsets is not [begin, end] with begin <= end.
  st_offsets_out_of_bounds = 38,  // A tensor's bytes extend past the end of the file.
  st_tensors_overlap = 39,        // Two tensors share bytes.
  st_size_mismatch = 40,          // end - begin differs from product(shape) x dtype size.
  st_trailing_bytes = 41,         // Bytes follow the last tensor.
  st_data_gap = 42,               // Bytes between tensors belong to no tensor.
  st_metadata_invalid = 43,       // __metadata__ is not an object of string values.
  st_duplicate_tensor = 44,       // A tensor name appears twice in the header.
  adapter_empty = 45,             // The adapter holds no tensors.
  file_changed = 46,              // The files changed while the adapter was loading.
  layout_invalid = 47,            // The resident header in the arena fails validation.

  // --- the adapter contract: config against tensors, adapter against base model ------------
  module_incomplete = 70,        // A LoRA module has lora_A without lora_B, or the reverse.
  rank_mismatch = 71,            // A's or B's rank dimension is not the module's effective rank.
  shape_mismatch = 72,           // A, B, magnitude or lora bias shapes do not fit together.
  dora_mismatch = 73,            // A magnitude vector without use_dora, or none under use_dora.
  lora_bias_mismatch = 74,       // A lora_B.bias without lora_bias, or none under lora_bias.
  incompatible_base_model = 75,  // A module is absent from --base-model or its shapes differ.
  base_model_invalid = 76,       // The --base-model directory cannot be read as a base model.

  // --- capacity and lifecycle -----------------------------------------------------------
  too_large = 50,   // The adapter needs more bytes than the whole budget.
  no_space = 51,    // Everything resident is leased; no room freed within the admission timeout.
  cancelled = 52,   // The load was cancelled by an unload of the same name.
  not_loaded = 53,  // Unload of a name that is not resident or loading.
  draining = 54,    // The adapter is being unloaded and waits for its leases to end.
  // A documented limit was exceeded: of an adapter file (tensors in a header,
  // name length, dimensions, header size), of a connection (leases, requests in
  // flight, request size) or of a reply. The message names the limit, its value
  // and the flag that sets it, if any. Retrying the same thing fails again.
  limit_exceeded = 55,
  // The client's credentials (SO_PEERCRED: uid, gid, groups) are not in the
  // daemon's --allow-uid / --allow-gid lists: answered to HELLO, then the
  // connection closes. The operator grants access; retrying does not help.
  permission_denied = 56,
  // PIN would make the pinned adapters together pass the pin budget
  // (--pin-budget, default half the budget). Unpin another first.
  pin_budget_exceeded = 57,
  // UNLOAD of a pinned adapter: pins are never undone implicitly. Unpin it first.
  pinned = 58,
  // A prefetch found no free room: it never evicts a leased, pinned or used
  // adapter, never waits for room, and never jumps the admission queue.
  prefetch_dropped = 59,

  // --- workers and the pool ---------------------------------------------------------------
  worker_crashed = 60,  // The loader worker died during the job.
  timeout = 61,         // The load did not finish within its deadline.
  quarantined = 62,    // The adapter crashed or hung workers repeatedly and is refused for a while.
  circuit_open = 63,   // The pool's circuit breaker is open: loads fail fast until it cools down.
  overloaded = 64,     // The queue of pending loads is full.
  unhealthy = 65,      // Workers restart too often; the pool stopped spawning for a while.
  shutting_down = 66,  // The daemon is stopping.
  worker_protocol = 67,  // A worker sent a reply that does not follow the job protocol.
  // The host refused a resource genomed needs: shared memory (create, size,
  // map), a descriptor, a socket (bind, listen), a process (the worker binary
  // cannot be started: check --worker-path). Not a bug; the message names the
  // call and the OS error, and the operator fixes the host or the flags.
  environment = 68,

  internal = 99,  // A bug: an impossible state was reached. Please report it. Failures of
                  // the host are `environment`, never this.
};

// Stable lower_snake name of a code ("st_dtype_unknown"); "unknown" for values
// this build does not know.
std::string_view errc_name(Errc code);

// Inverse of errc_name, for codes arriving as text.
std::optional<Errc> errc_from_name(std::string_view name);

// Inverse of the numeric cast, for codes arriving on the wire.
std::optional<Errc> errc_from_int(std::uint64_t value);

}  // namespace genomed
