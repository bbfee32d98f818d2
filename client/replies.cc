#include "client/replies.h"

#include "ipc/wire.h"

namespace genomed::client_detail {

bool is_daemon_error(std::string_view body, const Status& decoded) {
  auto m = ipc::Message::parse(body, ipc::kReplyLimits);
  if (!m) return false;
  auto ok = m->root().boolean("ok");
  auto code = m->root().u64("code");
  if (!ok || *ok || !code || !m->root().str("message")) return false;
  const auto errc = errc_from_int(*code);
  return errc && *errc != Errc::ok && *errc == decoded.code();
}

}  // namespace genomed::client_detail
