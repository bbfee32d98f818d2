#include "loader/handshake.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

#include "common/safe_text.h"
#include "loader/client_log.h"

namespace genomed::loader {

std::string peer_description(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "unknown peer";
  return "pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid);
}

Result<Handshake> accept_hello(std::string_view body, int fd, ConnectionId id,
                               const ConnectionContext& ctx, const WarnGate& may_warn) {
  auto req = ipc::decode_request(body);
  Status refused;
  if (!req || req->op != ipc::Op::hello) {
    refused = req ? Status(Errc::hello_required, "the first request must be HELLO") : req.status();
  } else if (req->version != ipc::kProtocolVersion) {
    refused = Status(Errc::unsupported_version,
                     "client speaks protocol version " + std::to_string(req->version) +
                         ", this daemon speaks " + std::to_string(ipc::kProtocolVersion));
  }
  if (!refused.ok()) {
    ctx.counters->bad_requests.fetch_add(1, std::memory_order_relaxed);
    client_log().warn("connection {}: {}", id, printable(refused.to_string()));
    return refused;
  }
  Handshake hello;
  hello.reply.server = ctx.server_version;
  hello.reply.arena_bytes = ctx.arena_bytes;
  hello.reply.pid = static_cast<std::uint64_t>(::getpid());
  if (req->lease_slots && ctx.limits.lease_slots > 0) {
    auto made = LeaseSlotPage::create(static_cast<std::uint32_t>(ctx.limits.lease_slots));
    if (made) {
      hello.slot_page = std::move(made).value();
      hello.reply.lease_slots = hello.slot_page->slots();
    } else if (std::string note; may_warn(&note)) {
      client_log().warn("connection {}: {}; its client takes every lease by request{}", id,
                        made.status().to_string(), note);
    }
  }
  hello.fds = {ctx.arena_ro_fd, hello.slot_page ? hello.slot_page->fd() : -1};
  client_log().info("connection {}: hello from {} ({}{})", id, quote(req->client),
                    peer_description(fd), hello.slot_page ? ", lease slots" : "");
  return hello;
}

}  // namespace genomed::loader
