// The safetensors header JSON, as the worker parses it from an untrusted
// file: any bytes must give a header or a typed error, within the limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "worker/format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  // A file whose data section is 1 MiB: offsets inside and outside it.
  (void)genomed::format::parse_safetensors_header(json, size, 8 + size + (1u << 20), "fuzz");
  return 0;
}
