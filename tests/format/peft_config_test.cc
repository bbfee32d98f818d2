// adapter_config.json: what PEFT writes is accepted, and each kind of bad
// config is refused with its own code and a message naming file and key.
#include "worker/format/peft_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace genomed::format {
namespace {

const std::string kLabel = "/adapters/demo/adapter_config.json";

nlohmann::json valid() {
  return {{"peft_type", "LORA"},
          {"r", 16},
          {"lora_alpha", 32},
          {"target_modules", {"q_proj", "v_proj"}},
          {"base_model_name_or_path", "meta-llama/Llama-2-7b-hf"},
          {"lora_dropout", 0.05},
          {"task_type", "CAUSAL_LM"}};
}

void expect_error(const nlohmann::json& config, Errc code, const std::string& needle) {
  auto r = parse_peft_config(config.dump(), kLabel);
  ASSERT_FALSE(r.ok()) << config.dump();
  EXPECT_EQ(r.code(), code) << errc_name(r.code()) << ": " << r.status().message();
  EXPECT_NE(r.status().message().find(kLabel), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "message lacks '" << needle << "': " << r.status().message();
}

TEST(PeftConfig, ValidConfigIsParsedAndUnknownKeysIgnored) {
  auto r = parse_peft_config(valid().dump(), kLabel);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->peft_type, "LORA");
  EXPECT_EQ(r->r, 16u);
  EXPECT_EQ(r->lora_alpha, 32.0);
  EXPECT_EQ(r->target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(r->base_model_name_or_path, "meta-llama/Llama-2-7b-hf");
}

TEST(PeftConfig, FractionalAlphaAndNullOrAbsentBaseModelAreAccepted) {
  auto c = valid();
  c["lora_alpha"] = 0.5;
  c["base_model_name_or_path"] = nullptr;
  auto r = parse_peft_config(c.dump(), kLabel);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->lora_alpha, 0.5);
  EXPECT_EQ(r->base_model_name_or_path, "");
  c.erase("base_model_name_or_path");
  EXPECT_TRUE(parse_peft_config(c.dump(), kLabel).ok());
}

TEST(PeftConfig, EachMissingRequiredFieldIsReported) {
  for (const char* key : {"peft_type", "r", "lora_alpha", "target_modules"}) {
    auto c = valid();
    c.erase(key);
    expect_error(c, Errc::config_missing_field, std::string("'") + key + "'");
  }
}

TEST(PeftConfig, FieldsOfTheWrongTypeAreInvalid) {
  const std::vector<std::pair<const char*, nlohmann::json>> cases = {
      {"peft_type", 1},
      {"r", "8"},
      {"r", 8.5},
      {"r", nullptr},
      {"lora_alpha", "16"},
      {"lora_alpha", nullptr},
      {"target_modules", 3},
      {"target_modules", {{"a", "b"}}},
      {"target_modules", {"q_proj", 7}},
      {"target_modules", {"q_proj", ""}},
      {"base_model_name_or_path", 5},
  };
  for (const auto& [key, value] : cases) {
    auto c = valid();
    c[key] = value;
    SCOPED_TRACE(c.dump());
    expect_error(c, Errc::config_invalid_field, std::string("'") + key + "'");
  }
}

TEST(PeftConfig, RankMustBePositive) {
  for (int r : {0, -1}) {
    auto c = valid();
    c["r"] = r;
    expect_error(c, Errc::config_invalid_field, "'r' must be at least 1");
  }
  auto c = valid();
  c["r"] = 1ull << 33;
  expect_error(c, Errc::config_invalid_field, "'r' is too large");
}

TEST(PeftConfig, AlphaMustBePositive) {
  for (double a : {0.0, -8.0}) {
    auto c = valid();
    c["lora_alpha"] = a;
    expect_error(c, Errc::config_invalid_field, "'lora_alpha' must be a positive number");
  }
}

TEST(PeftConfig, EmptyTargetModulesAreInvalid) {
  auto c = valid();
  c["target_modules"] = nlohmann::json::array();
  expect_error(c, Errc::config_invalid_field, "'target_modules' is an empty list");
  c["target_modules"] = "";
  expect_error(c, Errc::config_invalid_field, "'target_modules' is an empty string");
}

TEST(PeftConfig, TargetModulesAsOneStringIsAccepted) {
  auto c = valid();
  c["target_modules"] = "all-linear";
  auto r = parse_peft_config(c.dump(), kLabel);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->target_modules, std::vector<std::string>{"all-linear"});
}

TEST(PeftConfig, PeftTypeOtherThanLoraIsUnsupported) {
  for (const char* type : {"IA3", "PREFIX_TUNING", "lora", ""}) {
    auto c = valid();
    c["peft_type"] = type;
    expect_error(c, Errc::config_unsupported_peft_type, "only LORA");
  }
}

TEST(PeftConfig, InvalidJsonIsRejected) {
  for (const char* text : {"", "{", R"({"r": 8,})", "{\"r\": 8} trailing", "\xff"}) {
    auto r = parse_peft_config(text, kLabel);
    EXPECT_EQ(r.code(), Errc::config_invalid_json) << text;
    EXPECT_NE(r.status().message().find(kLabel), std::string::npos);
  }
}

TEST(PeftConfig, JsonThatIsNotAnObjectIsRejected) {
  for (const char* text : {"[]", "null", "16", R"("LORA")"}) {
    auto r = parse_peft_config(text, kLabel);
    EXPECT_EQ(r.code(), Errc::config_invalid_json) << text;
    EXPECT_NE(r.status().message().find("must be a JSON object"), std::string::npos)
        << r.status().message();
  }
}

TEST(PeftConfig, TextOverTheSizeLimitIsRejected) {
  const std::string big = "{\"pad\":\"" + std::string(kMaxConfigBytes, 'x') + "\"}";
  EXPECT_EQ(parse_peft_config(big, kLabel).code(), Errc::config_invalid_json);
}

}  // namespace
}  // namespace genomed::format
