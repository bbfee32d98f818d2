// adapter_config.json, as the worker parses it from an untrusted file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "worker/format/peft_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)genomed::format::parse_peft_config(
      std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
