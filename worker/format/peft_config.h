// adapter_config.json as PEFT writes it for LoRA adapters. Runs only in
// worker processes: the input is untrusted.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "genomed/adapter.h"

namespace genomed::format {

// Limits of adapter_config.json, each refused with Errc::limit_exceeded
// naming it and the file: its size (PEFT writes a few KiB; a rank_pattern per
// module a few hundred), and its nesting (PEFT's is 3 levels; the limit keeps
// every later recursion, serializing and destroying, shallow).
inline constexpr std::uint64_t kMaxConfigBytes = 1 << 20;
inline constexpr std::size_t kMaxConfigDepth = 64;

// The validated config: every LoraConfig field that changes how the weights
// apply (include/genomed/adapter.h), the one definition clients see too.
using PeftConfig = AdapterConfig;

// Required: peft_type == "LORA", r, lora_alpha, target_modules. Every other
// field above is optional; a present one must have PEFT's type and range
// (config_invalid_field names the key and what was found). `label` names the
// file in messages. Linear in the text's size.
Result<PeftConfig> parse_peft_config(std::string_view json, const std::string& label);

}  // namespace genomed::format
