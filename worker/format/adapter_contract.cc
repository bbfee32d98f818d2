// Building the adapter contract from untrusted files: classifying every tensor
// and cross-checking the config against the tensors (its encoding lives in
// layout/contract.cc, which clients and the supervisor share). The rules mirror PEFT
// (src/peft/tuners/lora/layer.py, model.py, utils/other.py get_pattern_key,
// utils/save_and_load.py): they are proven against PEFT itself by the tests in
// python/tests/interop/, not by re-deriving them here.
#include "worker/format/adapter_contract.h"

#include <cmath>
#include <map>
#include <regex>
#include <set>

namespace genomed::format {
namespace {

constexpr std::string_view kPeftPrefix = "base_model.model.";

// The role a tensor plays in its LoRA module, read from its name's suffix as
// PEFT's get_peft_model_state_dict writes it (adapter name removed).
enum class Part { a, b, lora_bias, embedding_a, embedding_b, magnitude };

struct Suffix {
  std::string_view text;
  Part part;
};
// Older PEFT versions wrote the magnitude as "lora_magnitude_vector.weight".
constexpr Suffix kSuffixes[] = {
    {".lora_A.weight", Part::a},
    {".lora_B.weight", Part::b},
    {".lora_B.bias", Part::lora_bias},
    {".lora_embedding_A", Part::embedding_a},
    {".lora_embedding_B", Part::embedding_b},
    {".lora_magnitude_vector", Part::magnitude},
    {".lora_magnitude_vector.weight", Part::magnitude},
};

struct ModuleParts {
  const TensorInfo* a = nullptr;
  const TensorInfo* b = nullptr;
  const TensorInfo* lora_bias = nullptr;
  const TensorInfo* embedding_a = nullptr;
  const TensorInfo* embedding_b = nullptr;
  const TensorInfo* magnitude = nullptr;
};

std::uint64_t element_count(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;  // the safetensors parser ruled out overflow
  return n;
}

// A rank_pattern / alpha_pattern key compiled as PEFT uses it:
// re.match(rf"(.*\.)?({key})$", module_path), i.e. anchored at the start,
// with the "$" inside the pattern (a key with a top-level "|" can match a
// prefix, as in PEFT). libstdc++'s polynomial (breadth-first) executor: the
// default one recurses once per input character and backtracks
// exponentially on keys like "(a|aa)*c", and the keys are untrusted.
constexpr auto kPatternSyntax = std::regex::ECMAScript | std::regex_constants::__polynomial;
struct CompiledPattern {
  std::string key;
  std::regex re;
};

template <class T>
Result<std::vector<CompiledPattern>> compile_patterns(
    const std::vector<std::pair<std::string, T>>& patterns, const char* field,
    const std::string& label) {
  std::vector<CompiledPattern> out;
  for (const auto& [key, value] : patterns) {
    try {
      out.push_back({key, std::regex("(.*\\.)?(" + key + ")$", kPatternSyntax)});
    } catch (const std::regex_error& e) {
      return Status(Errc::config_invalid_field,
                    label + ": '" + field + "' key '" + key.substr(0, 200) +
                        "' is not a regular expression genomed can evaluate: " + e.what());
    }
  }
  return out;
}

// Index of the first pattern matching `path`, as PEFT's get_pattern_key.
// Each search spends one of `searches_left` (kMaxPatternSearches per adapter).
Result<std::optional<std::size_t>> first_match(const std::vector<CompiledPattern>& patterns,
                                               const std::string& path, const char* field,
                                               const std::string& label,
                                               std::uint64_t& searches_left) {
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    if (searches_left == 0) {
      return Status(Errc::limit_exceeded,
                    label + ": matching the modules against rank_pattern and alpha_pattern " +
                        "takes more than the limit of " + std::to_string(kMaxPatternSearches) +
                        " regular-expression searches (kMaxPatternSearches; about patterns x " +
                        "modules): give fewer pattern keys");
    }
    --searches_left;
    try {
      if (std::regex_search(path, patterns[i].re, std::regex_constants::match_continuous)) {
        return std::optional<std::size_t>(i);
      }
    } catch (const std::regex_error& e) {
      return Status(Errc::config_invalid_field, label + ": '" + field + "' key '" +
                                                    patterns[i].key.substr(0, 200) +
                                                    "' cannot be evaluated: " + e.what());
    }
  }
  return std::optional<std::size_t>();
}

// True when a tensor belongs to a module PEFT trains in full. PEFT wraps
// every module whose name ends with an entry of modules_to_save, as a plain
// string suffix (utils/other.py, _set_trainable: key.endswith(target_key)),
// so "classifier" also takes DistilBERT's "pre_classifier". `path` is the
// tensor's; its modules are the prefixes that end before a '.'.
bool in_saved_module(std::string_view path, const std::vector<std::string>& modules_to_save) {
  for (std::size_t dot = path.find('.'); dot != std::string_view::npos;
       dot = path.find('.', dot + 1)) {
    const std::string_view module = path.substr(0, dot);
    for (const std::string& m : modules_to_save) {
      if (module.ends_with(m)) return true;
    }
  }
  return false;
}

class ContractBuilder {
 public:
  ContractBuilder(const AdapterConfig& config, const std::string& label,
                  std::uint64_t max_pattern_searches)
      : config_(config), label_(label), searches_left_(max_pattern_searches) {}

  Result<layout::AdapterContract> build(const std::vector<TensorInfo>& tensors) {
    GENOMED_ASSIGN_OR_RETURN(rank_patterns_,
                             compile_patterns(config_.rank_pattern, "rank_pattern", label_));
    GENOMED_ASSIGN_OR_RETURN(alpha_patterns_,
                             compile_patterns(config_.alpha_pattern, "alpha_pattern", label_));
    layout::AdapterContract out;
    out.config = config_;
    std::map<std::string, ModuleParts> modules;  // by tensor-name prefix: sorted, deterministic
    for (const TensorInfo& t : tensors) {
      if (classify_lora_part(t, modules)) continue;
      const std::string_view path = base_model_path(t.name);
      if (in_saved_module(path, config_.modules_to_save)) {
        out.saved_module_tensors.push_back(t.name);
      } else if (config_.bias != "none" && path.ends_with(".bias")) {
        out.bias_tensors.push_back(t.name);
      } else {
        out.other_tensors.push_back(t.name);
      }
    }
    for (const auto& [prefix, parts] : modules) {
      GENOMED_ASSIGN_OR_RETURN(layout::ContractModule m, check_module(prefix, parts));
      out.modules.push_back(std::move(m));
    }
    std::sort(out.modules.begin(), out.modules.end(),
              [](const layout::ContractModule& x, const layout::ContractModule& y) { return x.path < y.path; });
    return out;
  }

 private:
  bool classify_lora_part(const TensorInfo& t, std::map<std::string, ModuleParts>& modules) {
    for (const Suffix& s : kSuffixes) {
      if (t.name.size() <= s.text.size() || !std::string_view(t.name).ends_with(s.text)) continue;
      ModuleParts& parts = modules[t.name.substr(0, t.name.size() - s.text.size())];
      switch (s.part) {
        case Part::a:
          parts.a = &t;
          break;
        case Part::b:
          parts.b = &t;
          break;
        case Part::lora_bias:
          parts.lora_bias = &t;
          break;
        case Part::embedding_a:
          parts.embedding_a = &t;
          break;
        case Part::embedding_b:
          parts.embedding_b = &t;
          break;
        case Part::magnitude:
          parts.magnitude = &t;
          break;
      }
      return true;
    }
    return false;
  }

  Status fail(Errc code, const std::string& path, const std::string& why) const {
    return Status(code, label_ + ": module '" + path + "': " + why);
  }

  Result<layout::ContractModule> check_module(const std::string& prefix, const ModuleParts& p) {
    layout::ContractModule m;
    m.path = std::string(base_model_path(prefix));
    const bool linear = p.a != nullptr || p.b != nullptr;
    const bool embedding = p.embedding_a != nullptr || p.embedding_b != nullptr;
    if (linear && embedding) {
      return fail(Errc::shape_mismatch, m.path,
                  "has both lora_A/lora_B and lora_embedding_A/lora_embedding_B tensors");
    }
    const TensorInfo* a = embedding ? p.embedding_a : p.a;
    const TensorInfo* b = embedding ? p.embedding_b : p.b;
    const char* a_field = embedding ? "lora_embedding_A" : "lora_A.weight";
    const char* b_field = embedding ? "lora_embedding_B" : "lora_B.weight";
    if (a == nullptr || b == nullptr) {
      if (a == nullptr && b == nullptr) {
        return fail(Errc::module_incomplete, m.path,
                    std::string("has ") + (p.magnitude ? "lora_magnitude_vector" : "lora_B.bias") +
                        " but neither lora_A nor lora_B");
      }
      return fail(
          Errc::module_incomplete, m.path,
          std::string("has ") + (a ? a_field : b_field) + " but no " + (a ? b_field : a_field));
    }
    m.a = a->name;
    m.b = b->name;

    GENOMED_ASSIGN_OR_RETURN(
        auto rank_key, first_match(rank_patterns_, m.path, "rank_pattern", label_, searches_left_));
    GENOMED_ASSIGN_OR_RETURN(auto alpha_key, first_match(alpha_patterns_, m.path, "alpha_pattern",
                                                         label_, searches_left_));
    m.rank = rank_key ? config_.rank_pattern[*rank_key].second : config_.r;
    m.alpha = alpha_key ? config_.alpha_pattern[*alpha_key].second : config_.lora_alpha;
    const std::string rank_source =
        rank_key ? "rank_pattern key '" + config_.rank_pattern[*rank_key].first + "'" : "'r'";

    // Shapes: A [rank, in, k...], B [out, rank, 1...]; an embedding's are 2-D.
    if (a->shape.size() < 2 || a->shape.size() != b->shape.size() ||
        (embedding && a->shape.size() != 2)) {
      return fail(
          Errc::shape_mismatch, m.path,
          std::string(a_field) + " has shape " + shape_text(a->shape) + " and " + b_field +
              " has shape " + shape_text(b->shape) + "; expected two " +
              (embedding ? "2-D tensors"
                         : "tensors of 2 (or, for a convolution, equally many) dimensions"));
    }
    m.kind = embedding ? ModuleKind::embedding
                       : (a->shape.size() == 2 ? ModuleKind::linear : ModuleKind::conv);
    if (a->shape[0] != m.rank) {
      return fail(Errc::rank_mismatch, m.path,
                  std::string(a_field) + " has shape " + shape_text(a->shape) +
                      ", whose first dimension is the rank, but the effective rank is " +
                      std::to_string(m.rank) + " (from " + rank_source +
                      " in adapter_config.json)");
    }
    if (b->shape[1] != m.rank) {
      return fail(Errc::rank_mismatch, m.path,
                  std::string(b_field) + " has shape " + shape_text(b->shape) +
                      ", whose second dimension is the rank, but the effective rank is " +
                      std::to_string(m.rank) + " (from " + rank_source +
                      " in adapter_config.json)");
    }
    const std::uint64_t out_features = b->shape[0];

    if (p.magnitude != nullptr && !config_.use_dora) {
      return fail(Errc::dora_mismatch, m.path,
                  "has a lora_magnitude_vector but adapter_config.json has use_dora false");
    }
    if (p.magnitude == nullptr && config_.use_dora) {
      return fail(Errc::dora_mismatch, m.path,
                  "has no lora_magnitude_vector but adapter_config.json has use_dora true");
    }
    if (p.magnitude != nullptr) {
      if (element_count(p.magnitude->shape) != out_features) {
        return fail(Errc::shape_mismatch, m.path,
                    "lora_magnitude_vector has shape " + shape_text(p.magnitude->shape) +
                        " but B has " + std::to_string(out_features) + " output features");
      }
      m.magnitude = p.magnitude->name;
    }

    // PEFT supports lora_bias for every layer type except embeddings.
    if (p.lora_bias != nullptr && (!config_.lora_bias || embedding)) {
      return fail(Errc::lora_bias_mismatch, m.path,
                  embedding ? "is an embedding with a lora_B.bias, which PEFT does not support"
                            : "has a lora_B.bias but adapter_config.json has lora_bias false");
    }
    if (p.lora_bias == nullptr && config_.lora_bias && !embedding) {
      return fail(Errc::lora_bias_mismatch, m.path,
                  "has no lora_B.bias but adapter_config.json has lora_bias true");
    }
    if (p.lora_bias != nullptr) {
      if (p.lora_bias->shape.size() != 1 || p.lora_bias->shape[0] != out_features) {
        return fail(Errc::shape_mismatch, m.path,
                    "lora_B.bias has shape " + shape_text(p.lora_bias->shape) + " but B has " +
                        std::to_string(out_features) + " output features");
      }
      m.lora_bias = p.lora_bias->name;
    }

    m.scaling = config_.use_rslora ? m.alpha / std::sqrt(static_cast<double>(m.rank))
                                   : m.alpha / static_cast<double>(m.rank);
    return m;
  }

  const AdapterConfig& config_;
  const std::string& label_;
  std::vector<CompiledPattern> rank_patterns_;
  std::vector<CompiledPattern> alpha_patterns_;
  std::uint64_t searches_left_;  // of max_pattern_searches
};

}  // namespace

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string_view base_model_path(std::string_view tensor_name) {
  return tensor_name.starts_with(kPeftPrefix) ? tensor_name.substr(kPeftPrefix.size())
                                              : tensor_name;
}

Result<layout::AdapterContract> build_contract(const AdapterConfig& config,
                                       const std::vector<TensorInfo>& tensors,
                                       const std::string& label,
                                       std::uint64_t max_pattern_searches) {
  // The contract names every tensor once (as a module part or in a list), so
  // names that together pass its limit can never fit: refused before the
  // module table copies them (three copies of each name before the encoded
  // size could be checked).
  std::uint64_t name_bytes = 0;
  for (const TensorInfo& t : tensors) name_bytes += t.name.size();
  if (name_bytes > layout::kMaxContractBytes) {
    return Status(Errc::limit_exceeded,
                  label + ": the tensor names take " + std::to_string(name_bytes) +
                      " bytes together, more than the adapter contract that lists them may hold (" +
                      std::to_string(layout::kMaxContractBytes) + " bytes, kMaxContractBytes)");
  }
  return ContractBuilder(config, label, max_pattern_searches).build(tensors);
}

}  // namespace genomed::format
