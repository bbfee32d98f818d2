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

// Regular-expression searches one adapter's modules may cost against its
// rank_pattern and alpha_pattern keys (about keys x modules; PEFT takes the
// first key that matches, so every module may try every key). A search
// costs some 2.5 us: 2,000 keys x 2,000 modules took 11.5 s, and a 1 MiB
// config against a large adapter would take hours. 2^21 (about 5 s at most)
// still fits a key per module, in module order, for 2,000 modules.
inline constexpr std::uint64_t kMaxPatternSearches = 1ull << 21;

// Classifies every tensor and cross-checks the config against the tensors.
// `tensors` is the validated safetensors table; `label` names the weights
// file in messages, which also name the module and the config field. Errors:
// module_incomplete, rank_mismatch, shape_mismatch, dora_mismatch,
// lora_bias_mismatch, config_invalid_field for a rank_pattern or
// alpha_pattern key that is not a regular expression genomed can evaluate,
// and limit_exceeded for names longer together than kMaxContractBytes or
// pattern matching past kMaxPatternSearches.
// `max_pattern_searches` is kMaxPatternSearches but in tests.
Result<layout::AdapterContract> build_contract(const AdapterConfig& config,
                                       const std::vector<TensorInfo>& tensors,
                                       const std::string& label,
                                       std::uint64_t max_pattern_searches = kMaxPatternSearches);

// The module path PEFT's tensor names encode: `name` without the
// "base_model.model." prefix PeftModel adds.
std::string_view base_model_path(std::string_view tensor_name);

// "[4, 32]": a shape as messages print it.
std::string shape_text(const std::vector<std::uint64_t>& shape);

}  // namespace genomed::format
