// Names of the error codes: the strings genomectl prints and clients may match.
#include <array>
#include <utility>

#include "common/status.h"

namespace genomed {
namespace {

constexpr std::array<std::pair<Errc, std::string_view>, 62> kNames{{
    {Errc::ok, "ok"},
    {Errc::bad_request, "bad_request"},
    {Errc::unsupported_version, "unsupported_version"},
    {Errc::unknown_op, "unknown_op"},
    {Errc::frame_too_large, "frame_too_large"},
    {Errc::malformed_frame, "malformed_frame"},
    {Errc::not_connected, "not_connected"},
    {Errc::hello_required, "hello_required"},
    {Errc::protocol_error, "protocol_error"},
    {Errc::invalid_name, "invalid_name"},
    {Errc::path_escapes_root, "path_escapes_root"},
    {Errc::not_found, "not_found"},
    {Errc::file_unreadable, "file_unreadable"},
    {Errc::config_invalid_json, "config_invalid_json"},
    {Errc::config_missing_field, "config_missing_field"},
    {Errc::config_invalid_field, "config_invalid_field"},
    {Errc::config_unsupported_peft_type, "config_unsupported_peft_type"},
    {Errc::st_file_too_short, "st_file_too_short"},
    {Errc::st_header_too_large, "st_header_too_large"},
    {Errc::st_header_invalid_json, "st_header_invalid_json"},
    {Errc::st_header_not_object, "st_header_not_object"},
    {Errc::st_tensor_entry_invalid, "st_tensor_entry_invalid"},
    {Errc::st_dtype_unknown, "st_dtype_unknown"},
    {Errc::st_shape_invalid, "st_shape_invalid"},
    {Errc::st_offsets_invalid, "st_offsets_invalid"},
    {Errc::st_offsets_out_of_bounds, "st_offsets_out_of_bounds"},
    {Errc::st_tensors_overlap, "st_tensors_overlap"},
    {Errc::st_size_mismatch, "st_size_mismatch"},
    {Errc::st_trailing_bytes, "st_trailing_bytes"},
    {Errc::st_data_gap, "st_data_gap"},
    {Errc::st_metadata_invalid, "st_metadata_invalid"},
    {Errc::st_duplicate_tensor, "st_duplicate_tensor"},
    {Errc::adapter_empty, "adapter_empty"},
    {Errc::file_changed, "file_changed"},
    {Errc::layout_invalid, "layout_invalid"},
    {Errc::module_incomplete, "module_incomplete"},
    {Errc::rank_mismatch, "rank_mismatch"},
    {Errc::shape_mismatch, "shape_mismatch"},
    {Errc::dora_mismatch, "dora_mismatch"},
    {Errc::lora_bias_mismatch, "lora_bias_mismatch"},
    {Errc::incompatible_base_model, "incompatible_base_model"},
    {Errc::base_model_invalid, "base_model_invalid"},
    {Errc::too_large, "too_large"},
    {Errc::no_space, "no_space"},
    {Errc::cancelled, "cancelled"},
    {Errc::not_loaded, "not_loaded"},
    {Errc::draining, "draining"},
    {Errc::limit_exceeded, "limit_exceeded"},
    {Errc::permission_denied, "permission_denied"},
    {Errc::pin_budget_exceeded, "pin_budget_exceeded"},
    {Errc::pinned, "pinned"},
    {Errc::prefetch_dropped, "prefetch_dropped"},
    {Errc::worker_crashed, "worker_crashed"},
    {Errc::timeout, "timeout"},
    {Errc::quarantined, "quarantined"},
    {Errc::circuit_open, "circuit_open"},
    {Errc::overloaded, "overloaded"},
    {Errc::unhealthy, "unhealthy"},
    {Errc::shutting_down, "shutting_down"},
    {Errc::worker_protocol, "worker_protocol"},
    {Errc::environment, "environment"},
    {Errc::internal, "internal"},
}};

}  // namespace

std::string_view errc_name(Errc code) {
  for (const auto& [c, name] : kNames) {
    if (c == code) return name;
  }
  return "unknown";
}

std::optional<Errc> errc_from_name(std::string_view name) {
  for (const auto& [c, n] : kNames) {
    if (n == name) return c;
  }
  return std::nullopt;
}

std::optional<Errc> errc_from_int(std::uint64_t value) {
  for (const auto& [c, name] : kNames) {
    if (static_cast<std::uint64_t>(c) == value) return c;
  }
  return std::nullopt;
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(errc_name(code_)) + ": " + message_;
}

}  // namespace genomed
