// Building the adapter contract (layout/contract.h) from untrusted files: the
// worker classifies every tensor of the validated safetensors header and
// refuses adapters whose tensors contradict their config. Worker-only: the
// supervisor and clients only ever decode a contract a worker built.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "layout/contract.h"
#include "worker/format/safetensors.h"

namespace genomed::format {

// Classifies every tensor and cross-checks the config against the tensors.
// `tensors` is the validated safetensors table; `label` names the weights
// file in messages, which also name the module and the config field. Errors:
// module_incomplete, rank_mismatch, shape_mismatch, dora_mismatch,
// lora_bias_mismatch, config_invalid_field for a rank_pattern or
// alpha_pattern key that is not a regular expression genomed can evaluate,
// and limit_exceeded for names longer together than kMaxContractBytes.
Result<AdapterContract> build_contract(const AdapterConfig& config,
                                       const std::vector<TensorInfo>& tensors,
                                       const std::string& label);

// The module path PEFT's tensor names encode: `name` without the
// "base_model.model." prefix PeftModel adds.
std::string_view base_model_path(std::string_view tensor_name);

// "[4, 32]": a shape as messages print it.
std::string shape_text(const std::vector<std::uint64_t>& shape);

}  // namespace genomed::format
