// What an adapter means, as PEFT defines it: the validated adapter_config.json
// and the kinds of LoRA module. The worker fills AdapterConfig when it
// validates a file; every lease carries it to clients unchanged, so servers
// apply adapters without re-reading files or re-implementing PEFT's rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace genomed {

// Every LoraConfig field that changes how the weights apply, with PEFT's
// defaults where the file leaves a key out or null. Meanings are PEFT's
// (src/peft/tuners/lora/config.py).
struct AdapterConfig {
  std::string peft_type;  // "LORA"
  std::uint32_t r = 0;    // default rank, >= 1
  double lora_alpha = 0;  // default alpha, finite and > 0
  // target_modules is either a list of module names (PEFT suffix-matches
  // them) or one regular expression PEFT full-matches: exactly one is set.
  std::vector<std::string> target_modules;
  std::optional<std::string> target_modules_regex;
  // Pattern -> rank / alpha in the file's order: PEFT takes the first key
  // that matches a module, so the order is part of the meaning.
  std::vector<std::pair<std::string, std::uint32_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  bool use_rslora = false;      // scaling = alpha / sqrt(rank) instead of alpha / rank
  bool use_dora = false;        // modules carry a magnitude vector
  bool fan_in_fan_out = false;  // base weights stored [in, out] (GPT-2's Conv1D)
  bool lora_bias = false;       // B has a bias
  std::string bias = "none";    // "none" | "all" | "lora_only"
  std::vector<std::string> modules_to_save;
  std::vector<std::uint64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
  std::optional<std::string> base_model_name_or_path;
  std::optional<std::string> task_type;
  // The whole file re-serialized: compact JSON in the file's key order, every
  // key kept, including ones genomed does not know (newer PEFT versions add
  // keys; they are never a reason to refuse).
  std::string json;
};

// The shape family of a LoRA module's A and B.
enum class ModuleKind : std::uint8_t {
  linear,     // A [rank, in], B [out, rank]; also GPT-2's Conv1D (fan_in_fan_out)
  embedding,  // lora_embedding_A [rank, num_embeddings], lora_embedding_B [embedding_dim, rank]
  conv,       // A [rank, in, k...], B [out, rank, 1...]
};

// "linear", "embedding", "conv".
std::string_view module_kind_name(ModuleKind kind);
std::optional<ModuleKind> module_kind_from_name(std::string_view name);

}  // namespace genomed
