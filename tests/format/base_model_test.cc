// --base-model: a base model directory is read from its headers (one file or
// an index of shards), a broken one is base_model_invalid, and adapters are
// checked module by module against its weight shapes.
#include "worker/format/base_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tools/fixture/fixture.h"

namespace genomed::format {
namespace {

namespace fs = std::filesystem;

// Writes a safetensors file holding F32 tensors of the given shapes (zeros).
void write_weights(const fs::path& path,
                   const std::vector<std::pair<std::string, std::vector<std::uint64_t>>>& shapes) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t cursor = 0;
  for (const auto& [name, shape] : shapes) {
    std::uint64_t bytes = 4;
    for (auto d : shape) bytes *= d;
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {cursor, cursor + bytes}}};
    cursor += bytes;
  }
  ASSERT_TRUE(
      fixture::write_raw_safetensors(path.string(), header.dump(), std::string(cursor, '\0')).ok());
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

class BaseModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("genomed-base-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A 2-layer LLaMA-like model: hidden 32, k/v projections to 16.
  fs::path llama() {
    write_text(dir_ / "config.json", R"({"model_type": "llama", "hidden_size": 32})");
    write_weights(dir_ / "model.safetensors", {{"model.embed_tokens.weight", {100, 32}},
                                               {"model.layers.0.self_attn.q_proj.weight", {32, 32}},
                                               {"model.layers.0.self_attn.v_proj.weight", {16, 32}},
                                               {"transformer.h.0.attn.c_attn.weight", {32, 96}},
                                               {"classifier.weight", {3, 32}}});
    return dir_;
  }

  fs::path dir_;
};

// Tensors of an adapter, as the contract builder sees them.
std::vector<TensorInfo> tensors(
    const std::vector<std::pair<std::string, std::vector<std::uint64_t>>>& shapes) {
  std::vector<TensorInfo> out;
  for (const auto& [name, shape] : shapes) out.push_back({name, layout::DType::F32, shape, 0, 0});
  std::sort(out.begin(), out.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return out;
}

AdapterConfig lora_config() {
  AdapterConfig c;
  c.peft_type = "LORA";
  c.r = 4;
  c.lora_alpha = 8;
  c.target_modules = {"q_proj"};
  c.modules_to_save = {"classifier"};
  return c;
}

Status check(const BaseModel& base, const std::vector<TensorInfo>& t,
             AdapterConfig c = lora_config()) {
  auto contract = build_contract(c, t, "adapter.safetensors");
  EXPECT_TRUE(contract.ok()) << contract.status().message();
  if (!contract.ok()) return contract.status();
  return check_compatible(base, *contract, t, "adapter.safetensors");
}

const std::string kQ = "base_model.model.model.layers.0.self_attn.q_proj";

TEST_F(BaseModelTest, OneFileModelIsReadFromItsHeader) {
  auto base = read_base_model(llama().string());
  ASSERT_TRUE(base.ok()) << base.status().message();
  EXPECT_EQ(base->model_type, "llama");
  EXPECT_EQ(base->files, 1u);
  EXPECT_EQ(base->shapes.size(), 5u);
  EXPECT_EQ(base->shapes.at("model.layers.0.self_attn.v_proj.weight"),
            (std::vector<std::uint64_t>{16, 32}));
}

TEST_F(BaseModelTest, ShardedModelIsReadThroughItsIndex) {
  write_text(dir_ / "config.json", "{}");
  write_weights(dir_ / "model-00001-of-00002.safetensors", {{"a.weight", {2, 3}}});
  write_weights(dir_ / "model-00002-of-00002.safetensors", {{"b.weight", {4}}});
  write_text(dir_ / "model.safetensors.index.json",
             R"({"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                 "b.weight": "model-00002-of-00002.safetensors"}})");
  auto base = read_base_model(dir_.string());
  ASSERT_TRUE(base.ok()) << base.status().message();
  EXPECT_EQ(base->files, 2u);
  EXPECT_EQ(base->shapes.at("b.weight"), std::vector<std::uint64_t>{4});
}

TEST_F(BaseModelTest, BrokenDirectoriesAreBaseModelInvalidNamingTheProblem) {
  auto expect_invalid = [&](const std::string& needle) {
    auto r = read_base_model(dir_.string());
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.code(), Errc::base_model_invalid) << r.status().message();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  expect_invalid("config.json");  // empty directory
  write_text(dir_ / "config.json", "{}");
  expect_invalid("neither model.safetensors nor model.safetensors.index.json");
  write_text(dir_ / "model.safetensors.index.json",
             R"({"weight_map": {"a.weight": "../outside.safetensors"}})");
  expect_invalid("not a file name inside the directory");
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {"a.weight": "gone"}})");
  expect_invalid("gone");
  write_text(dir_ / "model.safetensors", "not safetensors");
  expect_invalid("model.safetensors");
}

TEST_F(BaseModelTest, MatchingModulesAndSavedModulesAreCompatible) {
  auto base = read_base_model(llama().string());
  ASSERT_TRUE(base.ok());
  EXPECT_TRUE(check(*base, tensors({{kQ + ".lora_A.weight", {4, 32}},
                                    {kQ + ".lora_B.weight", {32, 4}},
                                    {"base_model.model.classifier.weight", {3, 32}}}))
                  .ok());
}

TEST_F(BaseModelTest, AModuleTheBaseModelLacksIsIncompatible) {
  auto base = read_base_model(llama().string());
  ASSERT_TRUE(base.ok());
  const std::string k = "base_model.model.model.layers.7.self_attn.k_proj";
  Status s =
      check(*base, tensors({{k + ".lora_A.weight", {4, 32}}, {k + ".lora_B.weight", {32, 4}}}));
  EXPECT_EQ(s.code(), Errc::incompatible_base_model);
  EXPECT_NE(s.message().find("module 'model.layers.7.self_attn.k_proj' is not in the base model"),
            std::string::npos)
      << s.message();
}

TEST_F(BaseModelTest, ShapesThatDifferAreIncompatibleNamingBoth) {
  auto base = read_base_model(llama().string());
  ASSERT_TRUE(base.ok());
  Status s =
      check(*base, tensors({{kQ + ".lora_A.weight", {4, 64}}, {kQ + ".lora_B.weight", {64, 4}}}));
  EXPECT_EQ(s.code(), Errc::incompatible_base_model);
  for (const char* needle : {"model.layers.0.self_attn.q_proj", "A [4, 64]", "B [64, 4]",
                             "[64, 64] ([out, in])", "is [32, 32]"}) {
    EXPECT_NE(s.message().find(needle), std::string::npos) << needle << ": " << s.message();
  }
  s = check(*base, tensors({{kQ + ".lora_A.weight", {4, 32}},
                            {kQ + ".lora_B.weight", {32, 4}},
                            {"base_model.model.classifier.weight", {5, 32}}}));
  EXPECT_EQ(s.code(), Errc::incompatible_base_model);
  EXPECT_NE(s.message().find("classifier.weight' is [3, 32]"), std::string::npos) << s.message();
}

TEST_F(BaseModelTest, Conv1DWeightsStoredInOutMatchWithFanInFanOut) {
  auto base = read_base_model(llama().string());
  ASSERT_TRUE(base.ok());
  const std::string m = "base_model.model.transformer.h.0.attn.c_attn";
  AdapterConfig c = lora_config();
  c.fan_in_fan_out = true;
  // GPT-2's Conv1D stores [in, out] = [32, 96]; LoRA A [r, in], B [out, r].
  EXPECT_TRUE(
      check(*base, tensors({{m + ".lora_A.weight", {4, 32}}, {m + ".lora_B.weight", {96, 4}}}), c)
          .ok());
  Status s =
      check(*base, tensors({{m + ".lora_A.weight", {4, 96}}, {m + ".lora_B.weight", {96, 4}}}), c);
  EXPECT_EQ(s.code(), Errc::incompatible_base_model);
  EXPECT_NE(s.message().find("[96, 96] ([in, out], fan_in_fan_out)"), std::string::npos)
      << s.message();
}

TEST_F(BaseModelTest, EmbeddingModulesMatchNumEmbeddingsByDim) {
  auto base = read_base_model(llama().string());
  ASSERT_TRUE(base.ok());
  const std::string e = "base_model.model.model.embed_tokens";
  EXPECT_TRUE(check(*base, tensors({{e + ".lora_embedding_A", {4, 100}},
                                    {e + ".lora_embedding_B", {32, 4}}}))
                  .ok());
  EXPECT_EQ(check(*base, tensors({{e + ".lora_embedding_A", {4, 32}},
                                  {e + ".lora_embedding_B", {100, 4}}}))
                .code(),
            Errc::incompatible_base_model);
}

TEST_F(BaseModelTest, AHeadlessCheckpointServesThePathsOfTheModelWithAHead) {
  // The hub's gpt2 is saved from GPT2Model: "h.0.attn.c_attn.weight", while
  // PEFT's paths (GPT2LMHeadModel) say "transformer.h.0.attn.c_attn".
  write_text(dir_ / "config.json", R"({"model_type": "gpt2"})");
  write_weights(dir_ / "model.safetensors", {{"h.0.attn.c_attn.weight", {32, 96}}});
  auto base = read_base_model(dir_.string());
  ASSERT_TRUE(base.ok());
  const std::string m = "base_model.model.transformer.h.0.attn.c_attn";
  AdapterConfig c = lora_config();
  c.fan_in_fan_out = true;
  EXPECT_TRUE(
      check(*base, tensors({{m + ".lora_A.weight", {4, 32}}, {m + ".lora_B.weight", {96, 4}}}), c)
          .ok());
}

TEST_F(BaseModelTest, ATiedLmHeadIsTheInputEmbeddingUnlessTheConfigUntiesThem) {
  write_text(dir_ / "config.json", R"({"model_type": "llama", "tie_word_embeddings": true})");
  write_weights(dir_ / "model.safetensors", {{"model.embed_tokens.weight", {100, 32}}});
  auto base = read_base_model(dir_.string());
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->tied_embedding, "model.embed_tokens.weight");
  const std::string m = "base_model.model.lm_head";
  const auto lm_head = tensors({{m + ".lora_A.weight", {4, 32}}, {m + ".lora_B.weight", {100, 4}}});
  EXPECT_TRUE(check(*base, lm_head).ok());

  write_text(dir_ / "config.json", R"({"model_type": "llama", "tie_word_embeddings": false})");
  base = read_base_model(dir_.string());
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(check(*base, lm_head).code(), Errc::incompatible_base_model);
}

}  // namespace
}  // namespace genomed::format
