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
  EXPECT_EQ(r->base_model_name_or_path, std::nullopt);
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
  EXPECT_TRUE(r->target_modules.empty());
  EXPECT_EQ(r->target_modules_regex, "all-linear");
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
  auto r = parse_peft_config(big, kLabel);
  EXPECT_EQ(r.code(), Errc::limit_exceeded);
  EXPECT_NE(r.status().message().find("kMaxConfigBytes"), std::string::npos)
      << r.status().message();
}

TEST(PeftConfig, EveryFieldPeftAppliesIsReadWithItsDefaultsWhenAbsentOrNull) {
  auto absent = parse_peft_config(valid().dump(), kLabel);
  ASSERT_TRUE(absent.ok()) << absent.status().message();
  EXPECT_FALSE(absent->use_rslora);
  EXPECT_FALSE(absent->use_dora);
  EXPECT_FALSE(absent->fan_in_fan_out);
  EXPECT_FALSE(absent->lora_bias);
  EXPECT_EQ(absent->bias, "none");
  EXPECT_TRUE(absent->rank_pattern.empty());
  EXPECT_TRUE(absent->modules_to_save.empty());

  auto c = valid();
  c["use_rslora"] = true;
  c["use_dora"] = true;
  c["fan_in_fan_out"] = true;
  c["lora_bias"] = true;
  c["bias"] = "lora_only";
  c["modules_to_save"] = {"classifier", "score"};
  c["layers_to_transform"] = {0, 3};
  c["layers_pattern"] = "layers";
  c["rank_pattern"] = {{"v_proj", 2}, {"model.layers.1.self_attn.q_proj", 8}};
  c["alpha_pattern"] = {{"q_proj", 3.5}};
  c["task_type"] = nullptr;
  auto r = parse_peft_config(c.dump(), kLabel);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->use_rslora && r->use_dora && r->fan_in_fan_out && r->lora_bias);
  EXPECT_EQ(r->bias, "lora_only");
  EXPECT_EQ(r->modules_to_save, (std::vector<std::string>{"classifier", "score"}));
  EXPECT_EQ(r->layers_to_transform, (std::vector<std::uint64_t>{0, 3}));
  EXPECT_EQ(r->layers_pattern, std::vector<std::string>{"layers"});
  ASSERT_EQ(r->rank_pattern.size(), 2u);
  EXPECT_EQ(r->alpha_pattern[0].second, 3.5);
  EXPECT_EQ(r->task_type, std::nullopt);

  for (const char* key : {"use_rslora", "use_dora", "fan_in_fan_out", "lora_bias"}) {
    c = valid();
    c[key] = nullptr;  // null means PEFT's default
    EXPECT_TRUE(parse_peft_config(c.dump(), kLabel).ok()) << key;
  }
}

TEST(PeftConfig, RankPatternKeepsTheFilesOrderBecausePeftTakesTheFirstMatch) {
  const std::string text =
      R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],)"
      R"("rank_pattern":{"zz":1,"aa":2,"mm":3}})";
  auto r = parse_peft_config(text, kLabel);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->rank_pattern.size(), 3u);
  EXPECT_EQ(r->rank_pattern[0].first, "zz");
  EXPECT_EQ(r->rank_pattern[1].first, "aa");
  EXPECT_EQ(r->rank_pattern[2].first, "mm");
}

TEST(PeftConfig, TheWholeFileIsKeptAsCompactJsonInItsOrderWithUnknownKeys) {
  const std::string text =
      "{\n  \"zeta_future_key\": {\"nested\": [1, 2.5, null]},\n  \"peft_type\": \"LORA\",\n"
      "  \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"note\": \"caf\u00e9\"\n}";
  auto r = parse_peft_config(text, kLabel);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->json,
            "{\"zeta_future_key\":{\"nested\":[1,2.5,null]},\"peft_type\":\"LORA\",\"r\":4,"
            "\"lora_alpha\":8,\"target_modules\":[\"q_proj\"],\"note\":\"caf\u00e9\"}");
}

TEST(PeftConfig, EachNewFieldOfTheWrongTypeOrValueIsRefusedNamingIt) {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"use_rslora", "yes"},
      {"use_dora", 1},
      {"fan_in_fan_out", "false"},
      {"lora_bias", 0},
      {"bias", "some"},
      {"bias", 3},
      {"modules_to_save", "classifier"},
      {"modules_to_save", {"classifier", 1}},
      {"layers_to_transform", {0, -1}},
      {"layers_to_transform", "0"},
      {"layers_pattern", {"layers", ""}},
      {"rank_pattern", {1, 2}},
      {"rank_pattern", {{"v_proj", 0}}},
      {"rank_pattern", {{"v_proj", 2.5}}},
      {"alpha_pattern", {{"v_proj", -1}}},
      {"alpha_pattern", {{"v_proj", "8"}}},
      {"task_type", 7},
  };
  for (const auto& [key, value] : cases) {
    auto c = valid();
    c[key] = value;
    expect_error(c, Errc::config_invalid_field, "'" + key);
  }
}

TEST(PeftConfig, DeepNestingIsRefusedBeforeAnythingRecursesIntoIt) {
  // Serializing a 60k-deep value crashed the worker (recursive dump).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string text =
      R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q"],"x":)" + deep + "}";
  auto r = parse_peft_config(text, kLabel);
  EXPECT_EQ(r.code(), Errc::limit_exceeded) << r.status().message();
  EXPECT_NE(r.status().message().find("nested deeper than 64"), std::string::npos);
}

TEST(PeftConfig, ManyUnknownKeysAreKeptAndParsedInLinearTime) {
  // 90k unknown keys took 50 s with an insertion-ordered map; 60k fit the 1 MiB limit.
  std::string text = R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q"])";
  for (int i = 0; i < 60000; ++i) text += ",\"k" + std::to_string(i) + "\":" + std::to_string(i);
  text += "}";
  auto r = parse_peft_config(text, kLabel);  // the ctest timeout bounds it
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->json, text);  // already minified: kept byte for byte, in order
}

}  // namespace
}  // namespace genomed::format
