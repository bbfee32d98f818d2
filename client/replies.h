// The client's reading of a reply: the daemon's own error reply passes as it
// is; any other failure to decode means the daemon broke the protocol.
#pragma once

#include <string>
#include <string_view>

#include "genomed/result.h"

namespace genomed::client_detail {

// Whether a failed decode is the daemon's own error reply ("ok": false with
// a known code), which the caller gets as it is; anything else means the
// reply does not follow the protocol.
bool is_daemon_error(std::string_view body, const Status& decoded);

// A reply decoder's result, with failures that are not the daemon's own error
// reply turned into Errc::protocol_error.
template <class T>
Result<T> checked(Result<T> decoded, std::string_view body, std::string_view what) {
  if (decoded.ok() || is_daemon_error(body, decoded.status())) return decoded;
  return Status(Errc::protocol_error, std::string(what) +
                                          ": genomed's reply does not follow the protocol: " +
                                          decoded.status().message());
}

}  // namespace genomed::client_detail
