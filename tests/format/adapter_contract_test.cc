// The adapter contract: every tensor classified, effective rank/alpha and
// scaling as PEFT computes them, each contradiction between config and
// tensors refused with its own code naming file, module and field, and the
// encoding round-trips. (Agreement with PEFT itself is proven in
// python/tests/interop/.)
#include "worker/format/adapter_contract.h"

#include <gtest/gtest.h>

#include <cmath>

namespace genomed::format {
namespace {

const std::string kLabel = "/adapters/x/adapter_model.safetensors";
const std::string kQ = "base_model.model.model.layers.0.self_attn.q_proj";
const std::string kV = "base_model.model.model.layers.0.self_attn.v_proj";
const std::string kQ1 = "base_model.model.model.layers.1.self_attn.q_proj";

class Tensors {
 public:
  Tensors& add(const std::string& name, std::vector<std::uint64_t> shape) {
    std::uint64_t bytes = 2;
    for (auto d : shape) bytes *= d;
    list_.push_back({name, layout::DType::F16, std::move(shape), cursor_, cursor_ + bytes});
    cursor_ += bytes;
    return *this;
  }
  // A linear module: A [rank, in], B [out, rank].
  Tensors& lora(const std::string& module, std::uint64_t rank, std::uint64_t in = 32,
                std::uint64_t out = 32) {
    return add(module + ".lora_A.weight", {rank, in}).add(module + ".lora_B.weight", {out, rank});
  }
  std::vector<TensorInfo> sorted() const {
    auto out = list_;
    std::sort(out.begin(), out.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
    return out;
  }

 private:
  std::vector<TensorInfo> list_;
  std::uint64_t cursor_ = 0;
};

AdapterConfig config(std::uint32_t r = 4, double alpha = 8) {
  AdapterConfig c;
  c.peft_type = "LORA";
  c.r = r;
  c.lora_alpha = alpha;
  c.target_modules = {"q_proj", "v_proj"};
  c.json = "{}";
  return c;
}

Result<layout::AdapterContract> build(const AdapterConfig& c, const Tensors& t) {
  return build_contract(c, t.sorted(), kLabel);
}

void expect_refused(const Result<layout::AdapterContract>& r, Errc code,
                    const std::vector<std::string>& needles) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), code) << errc_name(r.code()) << ": " << r.status().message();
  EXPECT_NE(r.status().message().find(kLabel), std::string::npos) << r.status().message();
  for (const auto& n : needles) {
    EXPECT_NE(r.status().message().find(n), std::string::npos)
        << "message lacks '" << n << "': " << r.status().message();
  }
}

TEST(AdapterContract, LinearModulesAreFoundWithPathsRelativeToTheBaseModel) {
  auto r = build(config(), Tensors().lora(kV, 4, 32, 16).lora(kQ, 4));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->modules.size(), 2u);
  const layout::ContractModule& q = r->modules[0];  // sorted by path
  EXPECT_EQ(q.path, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(q.kind, ModuleKind::linear);
  EXPECT_EQ(q.a, kQ + ".lora_A.weight");
  EXPECT_EQ(q.b, kQ + ".lora_B.weight");
  EXPECT_EQ(q.magnitude, std::nullopt);
  EXPECT_EQ(q.rank, 4u);
  EXPECT_EQ(q.alpha, 8.0);
  EXPECT_EQ(q.scaling, 2.0);
  EXPECT_EQ(r->modules[1].path, "model.layers.0.self_attn.v_proj");
  EXPECT_TRUE(r->other_tensors.empty());
}

TEST(AdapterContract, PatternsApplyTheFirstMatchingKeyInFileOrderToWholeComponents) {
  AdapterConfig c = config(8, 16);
  // PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", path), first key wins.
  c.rank_pattern = {{"model.layers.1.self_attn.q_proj", 2}, {"q_proj", 6}, {"v_proj", 3}};
  c.alpha_pattern = {{"layers.0.self_attn.q_proj", 5}, {"proj", 99}};
  auto r = build(c, Tensors().lora(kQ, 6).lora(kQ1, 2).lora(kV, 3));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->modules.size(), 3u);
  EXPECT_EQ(r->modules[0].rank, 6u);  // layers.0 q_proj: "q_proj"
  EXPECT_EQ(r->modules[0].alpha, 5.0);
  EXPECT_EQ(r->modules[1].rank, 3u);  // layers.0 v_proj: "v_proj"
  // "proj" must match a whole component after a dot: "v_proj" is not "proj".
  EXPECT_EQ(r->modules[1].alpha, 16.0);
  EXPECT_EQ(r->modules[2].rank, 2u);  // layers.1 q_proj: the dotted key comes first
  EXPECT_EQ(r->modules[2].scaling, 16.0 / 2);
}

TEST(AdapterContract, RsLoraScalesByTheSquareRootOfTheRank) {
  AdapterConfig c = config(16, 8);
  c.use_rslora = true;
  auto r = build(c, Tensors().lora(kQ, 16));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->modules[0].scaling, 8 / std::sqrt(16.0));
}

TEST(AdapterContract, EmbeddingAndConvolutionModulesGetTheirKinds) {
  const std::string emb = "base_model.model.model.embed_tokens";
  const std::string conv = "base_model.model.unet.conv_in";
  auto r = build(config(), Tensors()
                               .add(emb + ".lora_embedding_A", {4, 100})
                               .add(emb + ".lora_embedding_B", {32, 4})
                               .add(conv + ".lora_A.weight", {4, 3, 3, 3})
                               .add(conv + ".lora_B.weight", {8, 4, 1, 1}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->modules.size(), 2u);
  EXPECT_EQ(r->modules[0].path, "model.embed_tokens");
  EXPECT_EQ(r->modules[0].kind, ModuleKind::embedding);
  EXPECT_EQ(r->modules[1].kind, ModuleKind::conv);
}

TEST(AdapterContract, NamesTooLongTogetherForTheContractAreRefusedBeforeItIsBuilt) {
  // The contract names every tensor once: 8,250 modules of 1,000-byte names
  // (24 MiB in the module table) cannot fit its 4 MiB.
  Tensors many;
  for (int i = 0; i < 8'250; ++i) {
    const std::string module =
        "base_model.model.layers." + std::to_string(i) + "." + std::string(960, 'm') + ".q_proj";
    many.lora(module, 4);
  }
  expect_refused(build(config(), many), Errc::limit_exceeded, {"kMaxContractBytes"});
}

TEST(AdapterContract, PatternMatchingPastItsSearchLimitIsRefused) {
  // Every module tries every key (PEFT takes the first that matches): keys x
  // modules regex searches, some 2.5 us each. 3 modules x 4 keys that never
  // match need 12 searches.
  AdapterConfig c = config();
  for (int i = 0; i < 4; ++i) c.rank_pattern.emplace_back("nomatch" + std::to_string(i), 2u);
  Tensors three = Tensors().lora(kQ, 4).lora(kV, 4).lora(kQ1, 4);
  EXPECT_TRUE(build_contract(c, three.sorted(), kLabel, 12).ok());
  expect_refused(build_contract(c, three.sorted(), kLabel, 11), Errc::limit_exceeded,
                 {"kMaxPatternSearches", "rank_pattern"});
}

TEST(AdapterContract, TensorsOutsideModulesAreClassifiedNeverRefused) {
  AdapterConfig c = config();
  c.modules_to_save = {"classifier"};
  c.bias = "all";
  auto r = build(c, Tensors()
                        .lora(kQ, 4)
                        .add("base_model.model.classifier.weight", {3, 32})
                        .add("base_model.model.classifier.bias", {3})
                        .add(kQ + ".base_layer.bias", {32})
                        .add("base_model.model.model.embed_tokens.base_layer.weight", {100, 32})
                        .add("base_model.model.pre_classifier.weight", {32, 32})
                        .add("base_model.model.classifier_head.weight", {3}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  // PEFT wraps every module whose name ends with an entry (a plain suffix):
  // "pre_classifier" is saved too, "classifier_head" is not.
  EXPECT_EQ(r->saved_module_tensors,
            (std::vector<std::string>{"base_model.model.classifier.bias",
                                      "base_model.model.classifier.weight",
                                      "base_model.model.pre_classifier.weight"}));
  EXPECT_EQ(r->bias_tensors, std::vector<std::string>{kQ + ".base_layer.bias"});
  EXPECT_EQ(r->other_tensors,
            (std::vector<std::string>{"base_model.model.classifier_head.weight",
                                      "base_model.model.model.embed_tokens.base_layer.weight"}));

  c.bias = "none";  // then a saved bias fits no rule: listed as other
  r = build(c, Tensors().lora(kQ, 4).add(kQ + ".base_layer.bias", {32}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->other_tensors, std::vector<std::string>{kQ + ".base_layer.bias"});
}

TEST(AdapterContract, AModuleWithOnlyOneOfAAndBIsIncomplete) {
  expect_refused(build(config(), Tensors().add(kQ + ".lora_A.weight", {4, 32})),
                 Errc::module_incomplete,
                 {"model.layers.0.self_attn.q_proj", "lora_A.weight", "no lora_B.weight"});
  expect_refused(build(config(), Tensors().add(kQ + ".lora_B.weight", {32, 4})),
                 Errc::module_incomplete, {"no lora_A.weight"});
  expect_refused(build(config(), Tensors().add("base_model.model.e.lora_embedding_A", {4, 10})),
                 Errc::module_incomplete, {"no lora_embedding_B"});
  AdapterConfig dora = config();
  dora.use_dora = true;
  expect_refused(build(dora, Tensors().add(kQ + ".lora_magnitude_vector", {32})),
                 Errc::module_incomplete, {"neither lora_A nor lora_B"});
}

TEST(AdapterContract, ARankDimensionOtherThanTheEffectiveRankIsRefusedNamingItsSource) {
  expect_refused(build(config(8), Tensors().lora(kQ, 4)), Errc::rank_mismatch,
                 {"module 'model.layers.0.self_attn.q_proj'", "lora_A.weight", "[4, 32]",
                  "effective rank is 8", "'r'"});
  AdapterConfig c = config(4);
  c.rank_pattern = {{"q_proj", 2}};
  expect_refused(build(c, Tensors().lora(kQ, 4)), Errc::rank_mismatch,
                 {"effective rank is 2", "rank_pattern key 'q_proj'"});
  expect_refused(
      build(config(4),
            Tensors().add(kQ + ".lora_A.weight", {4, 32}).add(kQ + ".lora_B.weight", {32, 5})),
      Errc::rank_mismatch, {"lora_B.weight", "[32, 5]", "second dimension"});
}

TEST(AdapterContract, ShapesThatDoNotFitTogetherAreRefused) {
  expect_refused(
      build(config(),
            Tensors().add(kQ + ".lora_A.weight", {4, 32}).add(kQ + ".lora_B.weight", {32, 4, 1})),
      Errc::shape_mismatch, {"[4, 32]", "[32, 4, 1]"});
  expect_refused(
      build(config(), Tensors().add(kQ + ".lora_A.weight", {4}).add(kQ + ".lora_B.weight", {32})),
      Errc::shape_mismatch, {"q_proj"});
  expect_refused(build(config(), Tensors().lora(kQ, 4).add(kQ + ".lora_embedding_A", {4, 9})),
                 Errc::shape_mismatch, {"both lora_A/lora_B and lora_embedding"});
}

TEST(AdapterContract, AMagnitudeVectorExistsExactlyUnderDora) {
  AdapterConfig dora = config();
  dora.use_dora = true;
  auto ok = build(dora, Tensors().lora(kQ, 4, 32, 16).add(kQ + ".lora_magnitude_vector", {16}));
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->modules[0].magnitude, kQ + ".lora_magnitude_vector");

  expect_refused(build(dora, Tensors().lora(kQ, 4)), Errc::dora_mismatch,
                 {"q_proj", "no lora_magnitude_vector", "use_dora true"});
  expect_refused(build(config(), Tensors().lora(kQ, 4).add(kQ + ".lora_magnitude_vector", {32})),
                 Errc::dora_mismatch, {"use_dora false"});
  expect_refused(
      build(dora, Tensors().lora(kQ, 4, 32, 16).add(kQ + ".lora_magnitude_vector", {32})),
      Errc::shape_mismatch, {"lora_magnitude_vector has shape [32]", "16 output"});
}

TEST(AdapterContract, ALoraBiasExistsExactlyUnderLoraBias) {
  AdapterConfig with = config();
  with.lora_bias = true;
  auto ok = build(with, Tensors().lora(kQ, 4, 32, 96).add(kQ + ".lora_B.bias", {96}));
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->modules[0].lora_bias, kQ + ".lora_B.bias");

  expect_refused(build(with, Tensors().lora(kQ, 4)), Errc::lora_bias_mismatch,
                 {"no lora_B.bias", "lora_bias true"});
  expect_refused(build(config(), Tensors().lora(kQ, 4).add(kQ + ".lora_B.bias", {32})),
                 Errc::lora_bias_mismatch, {"lora_bias false"});
  expect_refused(build(with, Tensors().lora(kQ, 4, 32, 96).add(kQ + ".lora_B.bias", {32})),
                 Errc::shape_mismatch, {"lora_B.bias has shape [32]"});
}

TEST(AdapterContract, APatternKeyThatIsNoRegularExpressionIsAConfigError) {
  AdapterConfig c = config();
  c.rank_pattern = {{"q_proj(", 2}};
  expect_refused(build(c, Tensors().lora(kQ, 4)), Errc::config_invalid_field,
                 {"rank_pattern", "q_proj("});
}

TEST(AdapterContract, PatternKeysMatchAsPythonsReMatchWithTheDollarInsideThePattern) {
  // PEFT: re.match(rf"(.*\.)?({key})$", path). With a top-level "|" in the
  // key the "$" binds to the last alternative, so "q)|(zzz" matches the
  // prefix "...self_attn.q" of a q_proj path.
  AdapterConfig c = config(4, 8);
  c.alpha_pattern = {{"q)|(zzz", 32}};
  auto r = build(c, Tensors().lora(kQ, 4));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->modules[0].alpha, 32.0);
}

TEST(AdapterContract, ABacktrackingPatternKeyCostsPolynomialTime) {
  // "(a|aa)*c" against a run of a's backtracks exponentially in a
  // backtracking matcher (a worker sat out its 30 s deadline).
  AdapterConfig c = config(4, 8);
  c.rank_pattern = {{"(a|aa)*c", 2}};
  const std::string module = "base_model.model." + std::string(60, 'a');
  auto r = build(c, Tensors().lora(module, 4));  // the ctest timeout bounds it
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->modules[0].rank, 4u);
}

TEST(AdapterContract, EncodingRoundTripsEveryField) {
  AdapterConfig c = config(4, 8);
  c.use_dora = true;
  c.fan_in_fan_out = true;
  c.bias = "all";
  c.task_type = "CAUSAL_LM";
  c.target_modules.clear();
  c.target_modules_regex = R"(.*\.(q|v)_proj)";
  c.modules_to_save = {"lm_head"};
  c.layers_to_transform = {0, 1};
  c.layers_pattern = {"layers"};
  c.rank_pattern = {{"zz", 4}, {"aa", 4}};
  c.alpha_pattern = {{"q_proj", 2.5}};
  c.json = R"({"r":4,"unknown":[1,2]})";
  auto built = build(c, Tensors()
                            .lora(kQ, 4)
                            .add(kQ + ".lora_magnitude_vector", {32})
                            .add("base_model.model.lm_head.weight", {10, 32})
                            .add("stray", {1}));
  ASSERT_TRUE(built.ok()) << built.status().message();
  const std::string bytes = layout::encode_contract(*built);
  EXPECT_EQ(bytes, layout::encode_contract(*built)) << "deterministic";
  auto back = layout::decode_contract(bytes);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(layout::encode_contract(*back), bytes);
  EXPECT_EQ(back->config.json, c.json);
  EXPECT_EQ(back->config.target_modules_regex, c.target_modules_regex);
  EXPECT_EQ(back->config.task_type, "CAUSAL_LM");
  EXPECT_EQ(back->config.base_model_name_or_path, std::nullopt);
  EXPECT_EQ(back->config.rank_pattern, c.rank_pattern);
  EXPECT_EQ(back->config.alpha_pattern, c.alpha_pattern);
  ASSERT_EQ(back->modules.size(), 1u);
  EXPECT_EQ(back->modules[0].magnitude, kQ + ".lora_magnitude_vector");
  EXPECT_EQ(back->modules[0].lora_bias, std::nullopt);
  EXPECT_EQ(back->saved_module_tensors,
            std::vector<std::string>{"base_model.model.lm_head.weight"});
  EXPECT_EQ(back->other_tensors, std::vector<std::string>{"stray"});
}

TEST(AdapterContract, ARepeatedKeyIsLayoutInvalid) {
  // {"modules": [], "modules": []}: which one counts would depend on the decoder.
  const std::string twice("\x82\xa7modules\x90\xa7modules\x90", 19);
  auto r = layout::decode_contract(twice);
  EXPECT_EQ(r.code(), Errc::layout_invalid);
  EXPECT_NE(r.status().message().find("'modules' appears twice"), std::string::npos)
      << r.status().message();
}

TEST(AdapterContract, UndecodableBytesAreLayoutInvalid) {
  for (const std::string& bytes :
       {std::string(), std::string("\xc1"), std::string("\x80"), std::string("\x91\x01")}) {
    auto r = layout::decode_contract(bytes);
    EXPECT_EQ(r.code(), Errc::layout_invalid) << r.status().message();
  }
}

}  // namespace
}  // namespace genomed::format
