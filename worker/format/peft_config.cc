// Validation of adapter_config.json. Each field PEFT reads when it applies the
// weights is type- and range-checked here; unknown keys are kept untouched
// (they travel to clients in PeftConfig::json) and never cause a refusal.
//
// Everything here is linear in the file's size: one SAX pass bounds the
// nesting (serializing a deep value recurses) and records the order of the
// pattern keys, then a plain parse validates the fields (nlohmann's
// ordered_json inserts in linear time per key: 90k keys took 50 s), and the
// text clients see is the file minified, in its own order.
#include "worker/format/peft_config.h"

#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace genomed::format {
namespace {

using json = nlohmann::json;

// One pass over the text: refuses nesting deeper than kMaxConfigDepth, and
// records the keys of the top-level "rank_pattern" and "alpha_pattern"
// objects in file order (PEFT applies the first key that matches).
class ConfigScan : public nlohmann::json_sax<json> {
 public:
  bool too_deep = false;
  std::map<std::string, std::vector<std::string>> pattern_keys;  // field -> keys in order

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return enter(); }
  bool end_object() override { return leave(); }
  bool start_array(std::size_t) override { return enter(); }
  bool end_array() override { return leave(); }
  bool key(string_t& k) override {
    if (depth_ == 1) {
      top_key_ = k;
    } else if (depth_ == 2 && in_pattern_) {
      pattern_keys[top_key_].push_back(k);
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;  // the plain parse that follows reports it
  }

 private:
  bool enter() {
    if (++depth_ > kMaxConfigDepth) {
      too_deep = true;
      return false;
    }
    if (depth_ == 2) in_pattern_ = top_key_ == "rank_pattern" || top_key_ == "alpha_pattern";
    return true;
  }
  bool leave() {
    --depth_;
    return true;
  }
  std::size_t depth_ = 0;
  bool in_pattern_ = false;
  std::string top_key_;
};

// `text` without whitespace outside strings. REQUIRES: valid JSON.
std::string minified(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      out += c;
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (c == '"') in_string = true;
    out += c;
  }
  return out;
}

Status missing(const std::string& label, const char* key) {
  return Status(Errc::config_missing_field, label + ": required key '" + key + "' is missing");
}

Status invalid(const std::string& label, const std::string& key, const std::string& why) {
  return Status(Errc::config_invalid_field, label + ": '" + key + "' " + why);
}

// A short rendering of a JSON value for messages; never the whole of a large one.
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

// The value of an optional key, or nullptr when it is absent or null (PEFT's
// default then applies).
const json* optional_value(const json& root, const char* key) {
  auto it = root.find(key);
  return it == root.end() || it->is_null() ? nullptr : &*it;
}

Result<std::uint32_t> positive_int(const json& v, const std::string& label,
                                   const std::string& key) {
  if (v.is_number_unsigned()) {
    const auto n = v.get<std::uint64_t>();
    if (n == 0) return invalid(label, key, "must be at least 1, found 0");
    if (n > std::numeric_limits<std::uint32_t>::max()) return invalid(label, key, "is too large");
    return static_cast<std::uint32_t>(n);
  }
  if (v.is_number_integer()) return invalid(label, key, "must be at least 1, found " + shown(v));
  return invalid(
      label, key,
      std::string("must be a positive integer, found ") +
          (v.is_number_float() ? "non-integer " + shown(v) : std::string(v.type_name())));
}

Result<double> positive_number(const json& v, const std::string& label, const std::string& key) {
  if (!v.is_number()) {
    return invalid(label, key, std::string("must be a positive number, found ") + v.type_name());
  }
  const double d = v.get<double>();
  if (!(d > 0) || !std::isfinite(d)) {
    return invalid(label, key, "must be a positive number, found " + shown(v));
  }
  return d;
}

Status read_bool(const json& root, const char* key, const std::string& label, bool* out) {
  const json* v = optional_value(root, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) {
    return invalid(label, key, std::string("must be true or false, found ") + v->type_name());
  }
  *out = v->get<bool>();
  return Status::Ok();
}

Status read_optional_string(const json& root, const char* key, const std::string& label,
                            std::optional<std::string>* out) {
  const json* v = optional_value(root, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) {
    return invalid(label, key, std::string("must be a string or null, found ") + v->type_name());
  }
  *out = v->get<std::string>();
  return Status::Ok();
}

// A list of non-empty strings. `one_string_ok`: a lone string stands for a
// one-element list (layers_pattern accepts both).
Status read_string_list(const json& v, const std::string& label, const char* key,
                        bool one_string_ok, std::vector<std::string>* out) {
  if (one_string_ok && v.is_string()) {
    if (v.get_ref<const std::string&>().empty()) return invalid(label, key, "is an empty string");
    out->push_back(v.get<std::string>());
    return Status::Ok();
  }
  if (!v.is_array()) {
    return invalid(label, key, std::string("must be a list of strings, found ") + v.type_name());
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string() || v[i].get_ref<const std::string&>().empty()) {
      return invalid(label, key, "[" + std::to_string(i) + "] must be a non-empty string");
    }
    out->push_back(v[i].get<std::string>());
  }
  return Status::Ok();
}

Status parse_target_modules(const json& v, const std::string& label, PeftConfig& out) {
  constexpr const char* kKey = "target_modules";
  if (v.is_string()) {
    if (v.get_ref<const std::string&>().empty()) return invalid(label, kKey, "is an empty string");
    out.target_modules_regex = v.get<std::string>();
    return Status::Ok();
  }
  if (v.is_array() && v.empty()) return invalid(label, kKey, "is an empty list");
  return read_string_list(v, label, kKey, /*one_string_ok=*/false, &out.target_modules);
}

// A pattern object's entries in the file's order (`order`, from the scan;
// a repeated key keeps its first place and, as Python's json, its last value).
template <class T, class ReadValue>
Status read_pattern(const json& root, const char* key, const std::vector<std::string>& order,
                    const std::string& label, ReadValue read_value,
                    std::vector<std::pair<std::string, T>>* out) {
  const json* v = optional_value(root, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_object()) {
    return invalid(label, key, std::string("must be an object, found ") + v->type_name());
  }
  // The scan's order is a hint: a key it found that the parsed object lacks
  // (the scan saw another occurrence of `key` than the one the parser kept)
  // is skipped, and keys it missed follow in the object's own order. Never
  // v->at() on a hint: an absent key threw, and the worker died of it (found
  // by fuzz_peft_config; fuzz/regressions/fuzz_peft_config/).
  std::set<std::string> seen;
  const auto take = [&](const std::string& pattern) -> Status {
    if (!seen.insert(pattern).second) return Status::Ok();
    const auto it = v->find(pattern);
    if (it == v->end()) return Status::Ok();
    if (pattern.empty()) return invalid(label, key, "has an empty key");
    auto parsed = read_value(*it, label, std::string(key) + "[\"" + pattern + "\"]");
    if (!parsed) return parsed.status();
    out->emplace_back(pattern, *parsed);
    return Status::Ok();
  };
  for (const std::string& pattern : order) GENOMED_RETURN_IF_ERROR(take(pattern));
  for (const auto& [pattern, value] : v->items()) GENOMED_RETURN_IF_ERROR(take(pattern));
  return Status::Ok();
}

Status read_layers_to_transform(const json& root, const std::string& label, PeftConfig& out) {
  constexpr const char* kKey = "layers_to_transform";
  const json* v = optional_value(root, kKey);
  if (v == nullptr) return Status::Ok();
  if (v->is_number_unsigned()) {
    out.layers_to_transform.push_back(v->get<std::uint64_t>());
    return Status::Ok();
  }
  if (!v->is_array()) {
    return invalid(label, kKey,
                   std::string("must be a layer index or a list of them, found ") + v->type_name());
  }
  for (std::size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_number_unsigned()) {
      return invalid(
          label, kKey,
          "[" + std::to_string(i) + "] must be a non-negative integer, found " + shown((*v)[i]));
    }
    out.layers_to_transform.push_back((*v)[i].get<std::uint64_t>());
  }
  return Status::Ok();
}

Result<PeftConfig> from_object(const json& root, const ConfigScan& scan, const std::string& label) {
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

  GENOMED_ASSIGN_OR_RETURN(out.r, positive_int(root["r"], label, "r"));
  GENOMED_ASSIGN_OR_RETURN(out.lora_alpha,
                           positive_number(root["lora_alpha"], label, "lora_alpha"));
  GENOMED_RETURN_IF_ERROR(parse_target_modules(root["target_modules"], label, out));
  const auto order = [&](const char* field) {
    auto it = scan.pattern_keys.find(field);
    return it == scan.pattern_keys.end() ? std::vector<std::string>() : it->second;
  };
  GENOMED_RETURN_IF_ERROR(read_pattern<std::uint32_t>(root, "rank_pattern", order("rank_pattern"),
                                                      label, positive_int, &out.rank_pattern));
  GENOMED_RETURN_IF_ERROR(read_pattern<double>(root, "alpha_pattern", order("alpha_pattern"), label,
                                               positive_number, &out.alpha_pattern));
  GENOMED_RETURN_IF_ERROR(read_bool(root, "use_rslora", label, &out.use_rslora));
  GENOMED_RETURN_IF_ERROR(read_bool(root, "use_dora", label, &out.use_dora));
  GENOMED_RETURN_IF_ERROR(read_bool(root, "fan_in_fan_out", label, &out.fan_in_fan_out));
  GENOMED_RETURN_IF_ERROR(read_bool(root, "lora_bias", label, &out.lora_bias));

  if (const json* bias = optional_value(root, "bias")) {
    if (!bias->is_string() || (*bias != "none" && *bias != "all" && *bias != "lora_only")) {
      return invalid(label, "bias",
                     "must be \"none\", \"all\" or \"lora_only\", found " + shown(*bias));
    }
    out.bias = bias->get<std::string>();
  }
  if (const json* v = optional_value(root, "modules_to_save")) {
    GENOMED_RETURN_IF_ERROR(read_string_list(*v, label, "modules_to_save", /*one_string_ok=*/false,
                                             &out.modules_to_save));
  }
  GENOMED_RETURN_IF_ERROR(read_layers_to_transform(root, label, out));
  if (const json* v = optional_value(root, "layers_pattern")) {
    GENOMED_RETURN_IF_ERROR(
        read_string_list(*v, label, "layers_pattern", /*one_string_ok=*/true, &out.layers_pattern));
  }
  GENOMED_RETURN_IF_ERROR(
      read_optional_string(root, "base_model_name_or_path", label, &out.base_model_name_or_path));
  GENOMED_RETURN_IF_ERROR(read_optional_string(root, "task_type", label, &out.task_type));
  return out;
}

}  // namespace

Result<PeftConfig> parse_peft_config(std::string_view text, const std::string& label) {
  if (text.size() > kMaxConfigBytes) {
    return Result<PeftConfig>(Errc::limit_exceeded, label + ": " + std::to_string(text.size()) +
                                                        " bytes, more than the limit of " +
                                                        std::to_string(kMaxConfigBytes) +
                                                        " (kMaxConfigBytes)");
  }
  ConfigScan scan;
  json::sax_parse(text.begin(), text.end(), &scan);
  if (scan.too_deep) {
    return Result<PeftConfig>(Errc::limit_exceeded, label + ": nested deeper than " +
                                                        std::to_string(kMaxConfigDepth) +
                                                        " levels (kMaxConfigDepth)");
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
  auto config = from_object(root, scan, label);
  if (config.ok()) config->json = minified(text);
  return config;
}

}  // namespace genomed::format
