// The dtype table: names and sizes as the safetensors format defines them.
#include "layout/dtype.h"

#include <gtest/gtest.h>

#include <set>

namespace genomed::layout {
namespace {

struct Expected {
  const char* name;
  std::uint32_t size;
};

// The format's own table (safetensors/src/tensor.rs), in enum order.
constexpr Expected kExpected[kDTypeCount] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
    {"F32", 4},  {"F64", 8}, {"I64", 8}, {"U64", 8},
};

TEST(DType, EveryDtypeHasItsFormatNameAndSize) {
  for (int i = 0; i < kDTypeCount; ++i) {
    const auto t = dtype_from_int(static_cast<std::uint64_t>(i));
    ASSERT_TRUE(t.has_value()) << i;
    EXPECT_EQ(dtype_name(*t), kExpected[i].name);
    EXPECT_EQ(dtype_size(*t), kExpected[i].size) << kExpected[i].name;
    EXPECT_EQ(dtype_from_name(kExpected[i].name), t);
  }
}

TEST(DType, NamesAreDistinct) {
  std::set<std::string_view> names;
  for (int i = 0; i < kDTypeCount; ++i) {
    names.insert(dtype_name(*dtype_from_int(static_cast<std::uint64_t>(i))));
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kDTypeCount));
}

TEST(DType, NameMatchIsExactAndCaseSensitive) {
  EXPECT_FALSE(dtype_from_name("f16"));
  EXPECT_FALSE(dtype_from_name("F16 "));
  EXPECT_FALSE(dtype_from_name(""));
  EXPECT_FALSE(dtype_from_name("F128"));
  EXPECT_FALSE(dtype_from_name("C64"));
}

TEST(DType, OutOfRangeIntegersAreRejected) {
  EXPECT_FALSE(dtype_from_int(kDTypeCount));
  EXPECT_FALSE(dtype_from_int(255));
  EXPECT_FALSE(dtype_from_int(~0ull));
}

}  // namespace
}  // namespace genomed::layout
