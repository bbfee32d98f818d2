// adapter_config.json as PEFT writes it for LoRA adapters. Runs only in
// worker processes: the input is untrusted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::format {

inline constexpr std::uint64_t kMaxConfigBytes = 1 << 20;

struct PeftConfig {
  std::string peft_type;                    // "LORA"
  std::uint32_t r = 0;                      // rank, >= 1
  double lora_alpha = 0;                    // > 0
  std::vector<std::string> target_modules;  // non-empty; PEFT also allows one string
  std::string base_model_name_or_path;      // optional, "" if absent or null
};

// Required: peft_type == "LORA", r (positive integer), lora_alpha (positive
// number), target_modules (non-empty list of non-empty strings, or one
// string). Unknown keys are ignored, as PEFT does. `label` names the file.
Result<PeftConfig> parse_peft_config(std::string_view json, const std::string& label);

}  // namespace genomed::format
