// The safetensors dtype table: one row per DType, so name, size and numeric
// value can never disagree.
#include "layout/dtype.h"

#include <array>

namespace genomed::layout {
namespace {

struct Row {
  DType type;
  std::string_view name;
  std::uint32_t size;
};

// Indexed by the enum's numeric value.
constexpr std::array<Row, kDTypeCount> kRows{{
    {DType::BOOL, "BOOL", 1},
    {DType::U8, "U8", 1},
    {DType::I8, "I8", 1},
    {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E8M0, "F8_E8M0", 1},
    {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},
    {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},
    {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},
}};

constexpr bool rows_match_enum() {
  for (std::size_t i = 0; i < kRows.size(); ++i) {
    if (static_cast<std::size_t>(kRows[i].type) != i) return false;
  }
  return true;
}
static_assert(rows_match_enum(), "kRows must be indexed by the DType value");

}  // namespace

std::uint32_t dtype_size(DType t) {
  const auto i = static_cast<std::size_t>(t);
  return i < kRows.size() ? kRows[i].size : 0;
}

std::string_view dtype_name(DType t) {
  const auto i = static_cast<std::size_t>(t);
  return i < kRows.size() ? kRows[i].name : std::string_view("?");
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const Row& row : kRows) {
    if (row.name == name) return row.type;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_int(std::uint64_t value) {
  if (value >= kRows.size()) return std::nullopt;
  return kRows[value].type;
}

}  // namespace genomed::layout
