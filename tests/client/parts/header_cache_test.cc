// The client's parsed headers: parse_adapter over a resident header written
// into ordinary memory, and the cache of parsed copies by (generation,
// offset, length).
#include "client/header_cache.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "worker/format/layout_plan.h"

namespace genomed::client_detail {
namespace {

// An arena holding a one-module adapter (r 2, F32 A and B) at `offset`, its
// layout planned and its header written as a worker does; `length` receives
// the size of its range.
std::vector<std::byte> arena_with_adapter(std::uint64_t offset, std::uint64_t* length) {
  layout::AdapterContract contract;
  contract.config.peft_type = "LORA";
  contract.config.r = 2;
  contract.config.lora_alpha = 4;
  contract.config.target_modules = {"q"};
  contract.config.json = R"({"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":["q"]})";
  contract.modules.push_back({"m.q", ModuleKind::linear, "m.q.lora_A.weight", "m.q.lora_B.weight",
                              std::nullopt, std::nullopt, 2, 4.0, 2.0});
  format::SafetensorsHeader st;  // the tensors as the worker plans them into a range
  st.tensors = {{"m.q.lora_A.weight", layout::DType::F32, {2, 3}, 0, 24},
                {"m.q.lora_B.weight", layout::DType::F32, {3, 2}, 24, 48}};
  st.data_size = 48;
  auto planned = format::plan_layout(st, contract);
  EXPECT_TRUE(planned.ok()) << planned.status().message();
  const layout::ResidentLayout& l = *planned;
  *length = l.total_bytes;
  std::vector<std::byte> arena(offset + l.total_bytes + 64);
  layout::write_layout_header(l, std::span<std::byte>(arena).subspan(offset, l.total_bytes));
  return arena;
}

TEST(ParseAdapter, BuildsTheViewsAndModulesOfAGoodHeader) {
  std::uint64_t length = 0;
  const auto arena = arena_with_adapter(128, &length);
  auto parsed = parse_adapter(arena, 128, length);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const ParsedAdapter& a = **parsed;
  EXPECT_EQ(a.bytes.data(), arena.data() + 128);
  ASSERT_EQ(a.views.size(), 2u);
  EXPECT_EQ(a.views[0].name, "m.q.lora_A.weight");
  EXPECT_EQ(a.views[0].dtype, "F32");
  EXPECT_EQ(a.views[0].element_size, 4u);
  EXPECT_EQ(a.views[0].data.data(), a.bytes.data() + a.layout.tensors[0].offset);
  ASSERT_EQ(a.modules.size(), 1u);
  EXPECT_EQ(a.modules[0].a, &a.views[0]);
  EXPECT_EQ(a.modules[0].b, &a.views[1]);
  EXPECT_EQ(a.modules[0].magnitude, nullptr);
  EXPECT_EQ(a.modules[0].scaling, 2.0);
}

TEST(ParseAdapter, ARangeOutsideTheArenaIsRefusedBeforeAnyRead) {
  std::vector<std::byte> arena(4096);
  EXPECT_EQ(parse_adapter(arena, 4096, 1).code(), Errc::layout_invalid);
  EXPECT_EQ(parse_adapter(arena, 1, 4096).code(), Errc::layout_invalid);
  EXPECT_EQ(parse_adapter(arena, 8, ~std::uint64_t{0}).code(), Errc::layout_invalid);  // wraps
}

TEST(ParseAdapter, BytesThatAreNoHeaderAreLayoutInvalid) {
  std::vector<std::byte> arena(4096, std::byte{0x5a});
  auto parsed = parse_adapter(arena, 0, 4096);
  EXPECT_EQ(parsed.code(), Errc::layout_invalid);
  EXPECT_FALSE(parsed.status().message().empty());
}

std::shared_ptr<const ParsedAdapter> adapter() { return std::make_shared<ParsedAdapter>(); }

TEST(HeaderCache, AHitNeedsTheSameGenerationOffsetAndLength) {
  HeaderCache cache;
  const auto a = adapter();
  EXPECT_EQ(cache.find({1, 0, 64}), nullptr);
  cache.remember({1, 0, 64}, a);
  EXPECT_EQ(cache.find({1, 0, 64}), a);
  EXPECT_EQ(cache.find({2, 0, 64}), nullptr);  // another load of the adapter
  EXPECT_EQ(cache.find({1, 64, 64}), nullptr);
  EXPECT_EQ(cache.find({1, 0, 128}), nullptr);
}

TEST(HeaderCache, KeepsTheMostRecentlyUsedCopies) {
  HeaderCache cache;
  std::vector<std::shared_ptr<const ParsedAdapter>> kept;
  for (std::uint64_t g = 0; g < HeaderCache::kEntries; ++g) {
    kept.push_back(adapter());
    cache.remember({g, 0, 64}, kept.back());
  }
  EXPECT_EQ(cache.find({0, 0, 64}), kept[0]);  // now the most recent
  cache.remember({HeaderCache::kEntries, 0, 64}, adapter());
  EXPECT_EQ(cache.find({0, 0, 64}), kept[0]);
  EXPECT_EQ(cache.find({1, 0, 64}), nullptr);  // the least recent went
  EXPECT_EQ(cache.find({2, 0, 64}), kept[2]);
}

}  // namespace
}  // namespace genomed::client_detail
