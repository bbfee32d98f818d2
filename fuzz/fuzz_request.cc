// A request frame body, as the daemon decodes it from any client.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ipc/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)genomed::ipc::decode_request(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
