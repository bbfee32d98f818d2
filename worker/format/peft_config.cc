// Validation of adapter_config.json. Only the fields genomed relies on are
// checked; every other key is ignored, as PEFT itself does, so configs written
// by newer PEFT versions keep loading.
#include "worker/format/peft_config.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace genomed::format {
namespace {

using json = nlohmann::json;

Status missing(const std::string& label, const char* key) {
  return Status(Errc::config_missing_field, label + ": required key '" + key + "' is missing");
}

Status invalid(const std::string& label, const char* key, const std::string& why) {
  return Status(Errc::config_invalid_field, label + ": '" + key + "' " + why);
}

Status parse_target_modules(const json& v, const std::string& label, PeftConfig& out) {
  constexpr const char* kKey = "target_modules";
  if (v.is_string()) {
    if (v.get_ref<const std::string&>().empty()) return invalid(label, kKey, "is an empty string");
    out.target_modules.push_back(v.get<std::string>());
    return Status::Ok();
  }
  if (!v.is_array()) {
    return invalid(label, kKey, std::string("must be a list of strings, found ") + v.type_name());
  }
  if (v.empty()) return invalid(label, kKey, "is an empty list");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string() || v[i].get_ref<const std::string&>().empty()) {
      return invalid(label, kKey, "[" + std::to_string(i) + "] must be a non-empty string");
    }
    out.target_modules.push_back(v[i].get<std::string>());
  }
  return Status::Ok();
}

Result<PeftConfig> from_object(const json& root, const std::string& label) {
  PeftConfig out;
  for (const char* key : {"peft_type", "r", "lora_alpha", "target_modules"}) {
    if (!root.contains(key)) return missing(label, key);
  }

  const json& type = root["peft_type"];
  if (!type.is_string()) {
    return invalid(label, "peft_type", std::string("must be a string, found ") + type.type_name());
  }
  out.peft_type = type.get<std::string>();
  if (out.peft_type != "LORA") {
    return Result<PeftConfig>(Errc::config_unsupported_peft_type,
                              label + ": peft_type is '" + out.peft_type.substr(0, 64) +
                                  "'; only LORA adapters are supported");
  }

  const json& r = root["r"];
  if (r.is_number_unsigned()) {
    const auto v = r.get<std::uint64_t>();
    if (v == 0) return invalid(label, "r", "must be at least 1, found 0");
    if (v > std::numeric_limits<std::uint32_t>::max()) return invalid(label, "r", "is too large");
    out.r = static_cast<std::uint32_t>(v);
  } else if (r.is_number_integer()) {
    return invalid(label, "r", "must be at least 1, found " + r.dump());
  } else {
    return invalid(
        label, "r",
        std::string("must be a positive integer, found ") +
            (r.is_number_float() ? "non-integer " + r.dump() : std::string(r.type_name())));
  }

  const json& alpha = root["lora_alpha"];
  if (!alpha.is_number()) {
    return invalid(label, "lora_alpha",
                   std::string("must be a positive number, found ") + alpha.type_name());
  }
  out.lora_alpha = alpha.get<double>();
  if (!(out.lora_alpha > 0) || !std::isfinite(out.lora_alpha)) {
    return invalid(label, "lora_alpha", "must be a positive number, found " + alpha.dump());
  }

  if (Status s = parse_target_modules(root["target_modules"], label, out); !s.ok()) return s;

  if (auto it = root.find("base_model_name_or_path"); it != root.end() && !it->is_null()) {
    if (!it->is_string()) {
      return invalid(label, "base_model_name_or_path",
                     std::string("must be a string or null, found ") + it->type_name());
    }
    out.base_model_name_or_path = it->get<std::string>();
  }
  return out;
}

}  // namespace

Result<PeftConfig> parse_peft_config(std::string_view text, const std::string& label) {
  if (text.size() > kMaxConfigBytes) {
    return Result<PeftConfig>(Errc::config_invalid_json, label + ": " +
                                                             std::to_string(text.size()) +
                                                             " bytes, more than the limit of " +
                                                             std::to_string(kMaxConfigBytes));
  }
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return Result<PeftConfig>(Errc::config_invalid_json, label + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) {
    return Result<PeftConfig>(Errc::config_invalid_json,
                              label + ": must be a JSON object, found " + root.type_name());
  }
  return from_object(root, label);
}

}  // namespace genomed::format
