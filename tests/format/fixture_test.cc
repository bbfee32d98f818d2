// The fixture writer's own promises: sizes it predicts are the sizes it
// writes, and impossible specs are refused instead of producing garbage.
#include "tools/fixture/fixture.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/format/test_support.h"
#include "worker/format/adapter_files.h"

namespace genomed::fixture {
namespace {

TEST(Fixture, PredictedWeightsSizeMatchesTheFileForManyShapes) {
  format::testing::TempDir tmp;
  int n = 0;
  for (std::uint32_t rank : {1u, 4u, 16u}) {
    for (std::uint32_t layers : {1u, 3u}) {
      for (auto dtype : {layout::DType::U8, layout::DType::BF16, layout::DType::F64}) {
        AdapterSpec s;
        s.rank = rank;
        s.layers = layers;
        s.hidden = 33;
        s.dtype = dtype;
        const std::string dir = tmp / std::to_string(n++);
        ASSERT_TRUE(write_adapter(dir, s).ok());
        EXPECT_EQ(std::filesystem::file_size(dir + "/" + layout::kWeightsFileName),
                  weights_file_size(s));
      }
    }
  }
}

TEST(Fixture, ZeroRankOrHiddenIsRefused) {
  format::testing::TempDir tmp;
  AdapterSpec s;
  s.rank = 0;
  EXPECT_EQ(write_adapter(tmp / "a", s).code(), Errc::bad_request);
  s.rank = 8;
  s.hidden = 0;
  EXPECT_EQ(write_adapter(tmp / "b", s).code(), Errc::bad_request);
}

TEST(Fixture, RawWriterPutsTheLengthPrefixFirst) {
  format::testing::TempDir tmp;
  ASSERT_TRUE(write_raw_safetensors(tmp / "r", "{}", "xy").ok());
  EXPECT_EQ(format::testing::read_file(tmp / "r"), std::string("\x02\0\0\0\0\0\0\0{}xy", 12));
}

}  // namespace
}  // namespace genomed::fixture
