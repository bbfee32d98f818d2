// A worker's reply frame body, as the supervisor decodes it: a worker runs
// the parsers of untrusted files, so its replies are not trusted either.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "jobs/job_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)genomed::jobs::decode_probe_reply(body);
  (void)genomed::jobs::decode_fill_reply(body);
  (void)genomed::jobs::decode_base_model_reply(body);
  return 0;
}
