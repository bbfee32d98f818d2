// adapter_config.json as PEFT writes it for LoRA adapters. Runs only in
// worker processes: the input is untrusted.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "genomed/adapter.h"

namespace genomed::format {

inline constexpr std::uint64_t kMaxConfigBytes = 1 << 20;

// The validated config: every LoraConfig field that changes how the weights
// apply (include/genomed/adapter.h), the one definition clients see too.
using PeftConfig = AdapterConfig;

// Required: peft_type == "LORA", r, lora_alpha, target_modules. Every other
// field above is optional; a present one must have PEFT's type and range
// (config_invalid_field names the key and what was found). `label` names the
// file in messages.
Result<PeftConfig> parse_peft_config(std::string_view json, const std::string& label);

}  // namespace genomed::format
