// Building, encoding and decoding the adapter contract. The rules mirror PEFT
// (src/peft/tuners/lora/layer.py, model.py, utils/other.py get_pattern_key,
// utils/save_and_load.py): they are proven against PEFT itself by the tests in
// python/tests/interop/, not by re-deriving them here.
#include "worker/format/adapter_contract.h"

#include <cmath>
#include <map>
#include <regex>
#include <set>

#include "ipc/wire.h"

namespace genomed {

std::string_view module_kind_name(ModuleKind kind) {
  switch (kind) {
    case ModuleKind::linear:
      return "linear";
    case ModuleKind::embedding:
      return "embedding";
    case ModuleKind::conv:
      return "conv";
  }
  return "unknown";
}

std::optional<ModuleKind> module_kind_from_name(std::string_view name) {
  for (ModuleKind k : {ModuleKind::linear, ModuleKind::embedding, ModuleKind::conv}) {
    if (module_kind_name(k) == name) return k;
  }
  return std::nullopt;
}

namespace format {
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
Result<std::optional<std::size_t>> first_match(const std::vector<CompiledPattern>& patterns,
                                               const std::string& path, const char* field,
                                               const std::string& label) {
  for (std::size_t i = 0; i < patterns.size(); ++i) {
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
  ContractBuilder(const AdapterConfig& config, const std::string& label)
      : config_(config), label_(label) {}

  Result<AdapterContract> build(const std::vector<TensorInfo>& tensors) {
    GENOMED_ASSIGN_OR_RETURN(rank_patterns_,
                             compile_patterns(config_.rank_pattern, "rank_pattern", label_));
    GENOMED_ASSIGN_OR_RETURN(alpha_patterns_,
                             compile_patterns(config_.alpha_pattern, "alpha_pattern", label_));
    AdapterContract out;
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
      GENOMED_ASSIGN_OR_RETURN(ContractModule m, check_module(prefix, parts));
      out.modules.push_back(std::move(m));
    }
    std::sort(out.modules.begin(), out.modules.end(),
              [](const ContractModule& x, const ContractModule& y) { return x.path < y.path; });
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

  Result<ContractModule> check_module(const std::string& prefix, const ModuleParts& p) {
    ContractModule m;
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

    GENOMED_ASSIGN_OR_RETURN(auto rank_key,
                             first_match(rank_patterns_, m.path, "rank_pattern", label_));
    GENOMED_ASSIGN_OR_RETURN(auto alpha_key,
                             first_match(alpha_patterns_, m.path, "alpha_pattern", label_));
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
};

// ---- encoding -----------------------------------------------------------------

std::string pack_rank_pattern(const std::vector<std::pair<std::string, std::uint32_t>>& p) {
  ipc::MapWriter w;
  for (const auto& [k, v] : p) w.put(k, v);
  return w.finish();
}

std::string pack_alpha_pattern(const std::vector<std::pair<std::string, double>>& p) {
  ipc::MapWriter w;
  for (const auto& [k, v] : p) w.put(k, v);
  return w.finish();
}

void put_optional(ipc::MapWriter& w, std::string_view key, const std::optional<std::string>& v) {
  if (v) {
    w.put(key, *v);
  } else {
    w.put_nil(key);
  }
}

// ---- decoding -----------------------------------------------------------------

// Contracts hold up to a 1 MiB config string and thousands of modules.
constexpr ipc::DecodeLimits kContractLimits{1u << 20, 1u << 16, 2u << 20, 8};

Status bad(const std::string& why) {
  return Status(Errc::layout_invalid, "adapter contract: " + why);
}

// The name of a key `map` repeats, or "". Decoders that take the first and
// the last of two values would read one contract two ways.
std::string repeated_key(const ipc::MapView& map) {
  const auto& m = map.raw();
  std::set<std::string_view> seen;
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const msgpack::object& k = m.ptr[i].key;
    if (k.type != msgpack::type::STR) continue;  // the typed reads refuse non-string keys
    const std::string_view key(k.via.str.ptr, k.via.str.size);
    if (!seen.insert(key).second) return std::string(key.substr(0, 64));
  }
  return "";
}

Result<std::optional<std::string>> optional_str(const ipc::MapView& m, std::string_view key) {
  if (m.is_nil(key)) return std::optional<std::string>();
  GENOMED_ASSIGN_OR_RETURN(std::string s, m.str(key));
  return std::optional<std::string>(std::move(s));
}

Result<std::vector<std::string>> str_list(const ipc::MapView& m, std::string_view key) {
  GENOMED_ASSIGN_OR_RETURN(ipc::ArrayView a, m.array(key));
  std::vector<std::string> out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    GENOMED_ASSIGN_OR_RETURN(std::string s, a.str_at(i));
    out.push_back(std::move(s));
  }
  return out;
}

Result<double> number(const msgpack::object& o, const std::string& field) {
  if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) return o.via.f64;
  if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(o.via.u64);
  return Status(Errc::bad_request, "field '" + field + "': expected a number");
}

template <class T>
Result<std::vector<std::pair<std::string, T>>> pattern(const ipc::MapView& m,
                                                       std::string_view key) {
  GENOMED_ASSIGN_OR_RETURN(ipc::MapView p, m.map(key));
  std::vector<std::pair<std::string, T>> out;
  for (std::uint32_t i = 0; i < p.raw().size; ++i) {
    const auto& kv = p.raw().ptr[i];
    if (kv.key.type != msgpack::type::STR) {
      return Status(Errc::bad_request, "field '" + std::string(key) + "': a key is not a string");
    }
    std::string k(kv.key.via.str.ptr, kv.key.via.str.size);
    const std::string field = std::string(key) + "[" + k + "]";
    if constexpr (std::is_same_v<T, std::uint32_t>) {
      if (kv.val.type != msgpack::type::POSITIVE_INTEGER || kv.val.via.u64 == 0 ||
          kv.val.via.u64 > UINT32_MAX) {
        return Status(Errc::bad_request, "field '" + field + "': expected a rank");
      }
      out.emplace_back(std::move(k), static_cast<std::uint32_t>(kv.val.via.u64));
    } else {
      GENOMED_ASSIGN_OR_RETURN(double v, number(kv.val, field));
      out.emplace_back(std::move(k), v);
    }
  }
  return out;
}

Result<AdapterConfig> decode_config(const ipc::MapView& m) {
  AdapterConfig c;
  GENOMED_ASSIGN_OR_RETURN(c.json, m.str("config"));
  GENOMED_ASSIGN_OR_RETURN(c.peft_type, m.str("peft_type"));
  GENOMED_ASSIGN_OR_RETURN(std::uint64_t r, m.u64("r"));
  if (r == 0 || r > UINT32_MAX) return Status(Errc::bad_request, "field 'r' is out of range");
  c.r = static_cast<std::uint32_t>(r);
  GENOMED_ASSIGN_OR_RETURN(c.lora_alpha, m.f64("lora_alpha"));
  GENOMED_ASSIGN_OR_RETURN(c.use_rslora, m.boolean("use_rslora"));
  GENOMED_ASSIGN_OR_RETURN(c.use_dora, m.boolean("use_dora"));
  GENOMED_ASSIGN_OR_RETURN(c.fan_in_fan_out, m.boolean("fan_in_fan_out"));
  GENOMED_ASSIGN_OR_RETURN(c.lora_bias, m.boolean("lora_bias"));
  GENOMED_ASSIGN_OR_RETURN(c.bias, m.str("bias"));
  GENOMED_ASSIGN_OR_RETURN(c.task_type, optional_str(m, "task_type"));
  GENOMED_ASSIGN_OR_RETURN(c.base_model_name_or_path, optional_str(m, "base_model_name_or_path"));
  const msgpack::object* tm = m.get("target_modules");
  if (tm != nullptr && tm->type == msgpack::type::STR) {
    GENOMED_ASSIGN_OR_RETURN(std::string regex, m.str("target_modules"));
    c.target_modules_regex = std::move(regex);
  } else {
    GENOMED_ASSIGN_OR_RETURN(c.target_modules, str_list(m, "target_modules"));
  }
  GENOMED_ASSIGN_OR_RETURN(c.modules_to_save, str_list(m, "modules_to_save"));
  GENOMED_ASSIGN_OR_RETURN(ipc::ArrayView layers, m.array("layers_to_transform"));
  for (std::size_t i = 0; i < layers.size(); ++i) {
    GENOMED_ASSIGN_OR_RETURN(std::uint64_t layer, layers.u64_at(i));
    c.layers_to_transform.push_back(layer);
  }
  GENOMED_ASSIGN_OR_RETURN(c.layers_pattern, str_list(m, "layers_pattern"));
  GENOMED_ASSIGN_OR_RETURN(c.rank_pattern, pattern<std::uint32_t>(m, "rank_pattern"));
  GENOMED_ASSIGN_OR_RETURN(c.alpha_pattern, pattern<double>(m, "alpha_pattern"));
  return c;
}

Result<ContractModule> decode_module(const ipc::MapView& m) {
  ContractModule out;
  GENOMED_ASSIGN_OR_RETURN(out.path, m.str("path"));
  GENOMED_ASSIGN_OR_RETURN(std::string kind, m.str("kind"));
  const auto k = module_kind_from_name(kind);
  if (!k) return Status(Errc::bad_request, "unknown module kind '" + kind.substr(0, 32) + "'");
  out.kind = *k;
  GENOMED_ASSIGN_OR_RETURN(out.a, m.str("a"));
  GENOMED_ASSIGN_OR_RETURN(out.b, m.str("b"));
  GENOMED_ASSIGN_OR_RETURN(out.magnitude, optional_str(m, "magnitude"));
  GENOMED_ASSIGN_OR_RETURN(out.lora_bias, optional_str(m, "lora_bias"));
  GENOMED_ASSIGN_OR_RETURN(std::uint64_t rank, m.u64("rank"));
  if (rank == 0 || rank > UINT32_MAX) return Status(Errc::bad_request, "rank out of range");
  out.rank = static_cast<std::uint32_t>(rank);
  GENOMED_ASSIGN_OR_RETURN(out.alpha, m.f64("alpha"));
  GENOMED_ASSIGN_OR_RETURN(out.scaling, m.f64("scaling"));
  if (!std::isfinite(out.alpha) || !std::isfinite(out.scaling)) {
    return Status(Errc::bad_request, "alpha or scaling is not finite");
  }
  return out;
}

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

Result<AdapterContract> build_contract(const AdapterConfig& config,
                                       const std::vector<TensorInfo>& tensors,
                                       const std::string& label) {
  return ContractBuilder(config, label).build(tensors);
}

std::string encode_contract(const AdapterContract& contract) {
  const AdapterConfig& c = contract.config;
  ipc::MapWriter w;
  w.put("config", c.json)
      .put("peft_type", c.peft_type)
      .put("r", c.r)
      .put("lora_alpha", c.lora_alpha)
      .put("use_rslora", c.use_rslora)
      .put("use_dora", c.use_dora)
      .put("fan_in_fan_out", c.fan_in_fan_out)
      .put("lora_bias", c.lora_bias)
      .put("bias", c.bias);
  put_optional(w, "task_type", c.task_type);
  put_optional(w, "base_model_name_or_path", c.base_model_name_or_path);
  if (c.target_modules_regex) {
    w.put("target_modules", *c.target_modules_regex);
  } else {
    w.put("target_modules", c.target_modules);
  }
  w.put("modules_to_save", c.modules_to_save)
      .put("layers_to_transform", c.layers_to_transform)
      .put("layers_pattern", c.layers_pattern)
      .put_packed("rank_pattern", pack_rank_pattern(c.rank_pattern))
      .put_packed("alpha_pattern", pack_alpha_pattern(c.alpha_pattern));
  std::vector<std::string> modules;
  modules.reserve(contract.modules.size());
  for (const ContractModule& m : contract.modules) {
    ipc::MapWriter mw;
    mw.put("path", m.path).put("kind", module_kind_name(m.kind)).put("a", m.a).put("b", m.b);
    put_optional(mw, "magnitude", m.magnitude);
    put_optional(mw, "lora_bias", m.lora_bias);
    mw.put("rank", m.rank).put("alpha", m.alpha).put("scaling", m.scaling);
    modules.push_back(mw.finish());
  }
  w.put_packed_array("modules", modules)
      .put("bias_tensors", contract.bias_tensors)
      .put("saved_module_tensors", contract.saved_module_tensors)
      .put("other_tensors", contract.other_tensors);
  return w.finish();
}

Result<AdapterContract> decode_contract(std::string_view bytes) {
  if (bytes.size() > kMaxContractBytes) {
    return bad(std::to_string(bytes.size()) + " bytes, more than the limit of " +
               std::to_string(kMaxContractBytes));
  }
  auto message = ipc::Message::parse(bytes, kContractLimits);
  if (!message) return bad(message.status().message());
  const ipc::MapView root = message->root();
  if (auto key = repeated_key(root); !key.empty()) return bad("key '" + key + "' appears twice");
  AdapterContract out;
  auto config = decode_config(root);
  if (!config) return bad(config.status().message());
  out.config = std::move(config).value();
  auto modules = root.array("modules");
  if (!modules) return bad(modules.status().message());
  out.modules.reserve(modules->size());
  for (std::size_t i = 0; i < modules->size(); ++i) {
    auto map = modules->map_at(i);
    if (!map) return bad(map.status().message());
    if (auto key = repeated_key(*map); !key.empty()) {
      return bad("modules[" + std::to_string(i) + "]: key '" + key + "' appears twice");
    }
    auto m = decode_module(*map);
    if (!m) return bad("modules[" + std::to_string(i) + "]: " + m.status().message());
    out.modules.push_back(std::move(m).value());
  }
  for (auto [key, list] : {std::pair{"bias_tensors", &out.bias_tensors},
                           std::pair{"saved_module_tensors", &out.saved_module_tensors},
                           std::pair{"other_tensors", &out.other_tensors}}) {
    auto names = str_list(root, key);
    if (!names) return bad(names.status().message());
    *list = std::move(names).value();
  }
  return out;
}

}  // namespace format
}  // namespace genomed
