// The adapter contract: what a server needs to apply an adapter exactly as
// PEFT does, beyond the raw tensors. The worker builds it from the validated
// files (worker/format/adapter_contract.h); the resident header carries it,
// encoded as one msgpack map (docs/protocol.md section 8.1); the supervisor
// compares it byte for byte after a fill, and clients decode it. So the types
// and the codec live here, shared by all three, while the code that builds a
// contract from untrusted files stays in the worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "genomed/adapter.h"

namespace genomed::layout {

// Upper bound of an encoded contract (the config alone may be 1 MiB).
inline constexpr std::uint64_t kMaxContractBytes = 4u << 20;

// One LoRA module: the tensors that make it and the factors PEFT applies.
struct ContractModule {
  std::string path;  // in the base model: tensor prefix without "base_model.model."
  ModuleKind kind = ModuleKind::linear;
  std::string a;                         // tensor name of A (lora_A.weight / lora_embedding_A)
  std::string b;                         // tensor name of B
  std::optional<std::string> magnitude;  // DoRA's lora_magnitude_vector
  std::optional<std::string> lora_bias;  // lora_B.bias
  std::uint32_t rank = 0;                // effective: rank_pattern's first match, else r
  double alpha = 0;                      // effective: alpha_pattern's first match, else lora_alpha
  double scaling = 0;                    // alpha / rank, or alpha / sqrt(rank) with use_rslora
};

struct AdapterContract {
  AdapterConfig config;
  std::vector<ContractModule> modules;            // sorted by path
  std::vector<std::string> bias_tensors;          // base-layer biases (bias != "none")
  std::vector<std::string> saved_module_tensors;  // weights of modules_to_save
  std::vector<std::string> other_tensors;         // fit no rule: listed, never refused
};

// One msgpack map (docs/protocol.md section 8.1). Deterministic: the same
// contract always encodes to the same bytes.
std::string encode_contract(const AdapterContract& contract);

// Strict decode of bytes another process wrote: every field type-checked,
// sizes bounded. Errc::layout_invalid with the reason otherwise.
Result<AdapterContract> decode_contract(std::string_view bytes);

}  // namespace genomed::layout
