// Encoding and strict decoding of the adapter contract as the resident header
// carries it (docs/protocol.md section 8.1). The decoder runs in the
// supervisor's verify step and in every client, on bytes a worker wrote, so
// it type-checks every field and bounds every size.
#include "layout/contract.h"

#include <cmath>
#include <optional>
#include <string>
#include <utility>

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

namespace layout {
namespace {

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
  return a.strings();
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

}  // namespace layout
}  // namespace genomed
