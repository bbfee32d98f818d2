// A base model as transformers saves it (config.json and model.safetensors,
// or model.safetensors.index.json and its shards), read for the shapes of its
// weights only: just the safetensors headers, never the weights. With
// `genomed --base-model DIR` every adapter is checked against it, so an
// adapter trained for another model is refused before a server applies it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/format/adapter_contract.h"
#include "worker/format/safetensors.h"

namespace genomed::format {

inline constexpr const char* kBaseConfigFileName = "config.json";
inline constexpr const char* kBaseWeightsFileName = "model.safetensors";
inline constexpr const char* kBaseIndexFileName = "model.safetensors.index.json";
// An index lists one entry per weight; 16 MiB is far beyond any real model's.
inline constexpr std::uint64_t kMaxBaseIndexBytes = 16u << 20;

struct BaseModel {
  std::string dir;
  std::string model_type;  // config.json's "model_type", "" if absent
  std::size_t files = 0;   // safetensors files read
  std::map<std::string, std::vector<std::uint64_t>> shapes;  // weight name -> shape
  // With tied word embeddings (config.json's tie_word_embeddings, true unless
  // it says false) and no lm_head weight saved: the input embedding's weight
  // name, which lm_head shares.
  std::string tied_embedding;
};

// Reads `dir`. Errc::base_model_invalid names the file and what is wrong.
Result<BaseModel> read_base_model(const std::string& dir);

// Checks every LoRA module (and saved module, and trained bias) of an adapter
// against the base model: the base weight `path.weight` exists (in a
// checkpoint saved from the headless model, as the hub's gpt2 is, without
// the path's first component; for a tied lm_head, as the embedding), and A and B
// match its in/out sizes (Linear [out, in]; Conv1D [in, out], which PEFT
// accepts either way round and picks by layer type; Embedding [num, dim];
// convolutions [out, in, k...]). Errc::incompatible_base_model names the
// module and both shapes. `label` names the adapter's weights file.
Status check_compatible(const BaseModel& base, const layout::AdapterContract& contract,
                        const std::vector<TensorInfo>& tensors, const std::string& label);

}  // namespace genomed::format
