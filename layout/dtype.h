// The element types of the safetensors format and their sizes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace genomed::layout {

// Every dtype the safetensors format defines for byte-sized elements. The
// numeric values are stored in the resident layout and never change.
enum class DType : std::uint8_t {
  BOOL = 0,
  U8 = 1,
  I8 = 2,
  F8_E5M2 = 3,
  F8_E4M3 = 4,
  F8_E8M0 = 5,
  I16 = 6,
  U16 = 7,
  F16 = 8,
  BF16 = 9,
  I32 = 10,
  U32 = 11,
  F32 = 12,
  F64 = 13,
  I64 = 14,
  U64 = 15,
};

inline constexpr int kDTypeCount = 16;

// Bytes per element.
std::uint32_t dtype_size(DType t);
// "F16", as written in safetensors headers.
std::string_view dtype_name(DType t);
// Exact, case-sensitive match of a safetensors dtype string.
std::optional<DType> dtype_from_name(std::string_view name);
std::optional<DType> dtype_from_int(std::uint64_t value);

}  // namespace genomed::layout
