// A reply frame body, as the client library decodes it: a daemon that
// breaks the protocol gets a typed error, never a crash of its client.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ipc/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace ipc = genomed::ipc;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)ipc::decode_hello_reply(body);
  (void)ipc::decode_acquire_reply(body);
  (void)ipc::decode_load_reply(body);
  (void)ipc::decode_unload_reply(body);
  (void)ipc::decode_list_reply(body);
  (void)ipc::decode_stats_reply(body);
  (void)ipc::decode_health_reply(body);
  return 0;
}
