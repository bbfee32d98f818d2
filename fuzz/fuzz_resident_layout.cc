// A resident header, as the supervisor verifies it after a fill and every
// client reads it: it must never make a reader look outside its span.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "layout/resident_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size copy, so ASan sees any read past the span.
  auto copy = std::make_unique<std::byte[]>(size);
  if (size > 0) std::memcpy(copy.get(), data, size);
  genomed::layout::AdapterContract contract;
  (void)genomed::layout::read_layout_header(std::span<const std::byte>(copy.get(), size),
                                            &contract);
  return 0;
}
