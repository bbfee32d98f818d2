#include "loader/connection.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"

namespace genomed::loader {
namespace {

using ipc::Clock;

std::string peer_description(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "unknown peer";
  return "pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid);
}

// Has the connection watched for a hang-up from the moment its request is
// about to block inside the coordinator until the request returns. A cache
// hit never blocks, so it never pays for this.
class WatchWhileWaiting final : public WaitHook {
 public:
  WatchWhileWaiting(HangupWatcher* watcher, int fd, ConnectionId id)
      : watcher_(watcher), fd_(fd), id_(id) {}
  ~WatchWhileWaiting() { (void)finish(); }
  WatchWhileWaiting(const WatchWhileWaiting&) = delete;
  WatchWhileWaiting& operator=(const WatchWhileWaiting&) = delete;

  void before_wait() override {  // under the coordinator's lock
    if (watcher_ == nullptr || watching_) return;
    watcher_->watch(fd_, id_);
    watching_ = true;
  }
  // Stops watching; true if the client hung up meanwhile.
  bool finish() {
    if (!watching_) return false;
    watching_ = false;
    return watcher_->unwatch(id_);
  }

 private:
  HangupWatcher* const watcher_;
  const int fd_;
  const ConnectionId id_;
  bool watching_ = false;
};

// Handles one decoded request; returns the reply body, or "" for one-way
// messages (RELEASE). `hung_up`: the client hung up while the request waited
// (the coordinator abandoned the connection; the reply is to be discarded).
std::string handle(const ipc::Request& req, int fd, ConnectionId id, const ConnectionContext& ctx,
                   bool* hung_up) {
  Coordinator& c = *ctx.coordinator;
  WatchWhileWaiting watch(ctx.watcher, fd, id);
  auto finish = [&](std::string reply) {
    *hung_up = watch.finish();
    return reply;
  };
  auto reply = [](const auto& result) {
    return result.ok() ? ipc::encode_reply(result.value()) : ipc::encode_error(result.status());
  };
  switch (req.op) {
    case ipc::Op::hello:
      return ipc::encode_error(
          Status(Errc::bad_request, "HELLO was already exchanged on this connection"));
    case ipc::Op::load:
      return finish(reply(c.load(req.names.front(), id, &watch)));
    case ipc::Op::acquire:
      return finish(reply(c.acquire(req.names, id, &watch)));
    case ipc::Op::release:
      for (auto lease : req.leases) c.release(lease, id);
      return {};
    case ipc::Op::unload:
      return reply(c.unload(req.names.front()));
    case ipc::Op::list:
      return ipc::encode_reply(c.list());
    case ipc::Op::stats:
      return ipc::encode_reply(c.stats());
    case ipc::Op::health:
      return ipc::encode_reply(c.health());
  }
  return ipc::encode_error(Status(Errc::internal, "unhandled operation"));
}

// Reads and answers the HELLO. False if the connection must close.
bool exchange_hello(int fd, ipc::FrameReader& reader, ConnectionId id,
                    const ConnectionContext& ctx) {
  auto frame = reader.read(ipc::kMaxRequestFrame, Clock::now() + ctx.limits.handshake_timeout);
  if (!frame) {
    if (frame.code() == Errc::timeout) {
      spdlog::warn("connection {} ({}): no HELLO within {} ms; closing it", id,
                   peer_description(fd), ctx.limits.handshake_timeout.count());
    } else if (frame.code() != Errc::not_connected) {
      (void)ipc::write_frame(fd, ipc::encode_error(frame.status()));
      spdlog::warn("connection {}: {}; closing it", id, frame.status().to_string());
    }
    return false;
  }
  auto req = ipc::decode_request(frame->body);
  if (!req || req->op != ipc::Op::hello) {
    const Status s =
        req ? Status(Errc::hello_required, "the first request must be HELLO") : req.status();
    (void)ipc::write_frame(fd, ipc::encode_error(s));
    spdlog::warn("connection {}: {}", id, s.to_string());
    return false;
  }
  if (req->version != ipc::kProtocolVersion) {
    const Status s(Errc::unsupported_version,
                   "client speaks protocol version " + std::to_string(req->version) +
                       ", this daemon speaks " + std::to_string(ipc::kProtocolVersion));
    (void)ipc::write_frame(fd, ipc::encode_error(s));
    spdlog::warn("connection {}: {}", id, s.to_string());
    return false;
  }
  ipc::HelloReply hello;
  hello.server = ctx.server_version;
  hello.arena_bytes = ctx.arena_bytes;
  hello.pid = static_cast<std::uint64_t>(::getpid());
  spdlog::info("connection {}: hello from '{}' ({})", id, req->client, peer_description(fd));
  return ipc::write_frame(fd, ipc::encode_reply(hello), ctx.arena_ro_fd,
                          Clock::now() + ctx.limits.write_timeout)
      .ok();
}

// True if an undecodable request still names the one-way RELEASE op.
bool is_release(std::string_view body) {
  auto m = ipc::Message::parse(body, ipc::kRequestLimits);
  if (!m) return false;
  auto op = m->root().str("op");
  return op.ok() && *op == ipc::op_name(ipc::Op::release);
}

}  // namespace

void serve_connection(int fd, ConnectionId id, const ConnectionContext& ctx) {
  ipc::FrameReader reader(fd);
  if (exchange_hello(fd, reader, id, ctx)) {
    const auto idle = ctx.limits.idle_timeout;
    for (;;) {
      auto frame =
          reader.read(ipc::kMaxRequestFrame,
                      idle.count() > 0 ? std::optional(Clock::now() + idle) : std::nullopt);
      if (!frame) {
        if (frame.code() == Errc::timeout && ctx.coordinator->holds_leases(id)) {
          // Its client may be reading tensors through those leases right
          // now: closing would let the daemon reuse memory under its views.
          continue;
        }
        if (frame.code() == Errc::timeout) {
          spdlog::info("connection {}: idle for {} ms holding no lease; closing it", id,
                       idle.count());
        } else if (frame.code() != Errc::not_connected) {
          (void)ipc::write_frame(fd, ipc::encode_error(frame.status()));
          spdlog::warn("connection {}: {}; closing it", id, frame.status().to_string());
        }
        break;
      }
      auto req = ipc::decode_request(frame->body);
      if (!req && is_release(frame->body)) {
        // RELEASE has no reply: answering it would be read as the reply to
        // the client's next request. The stream can no longer be trusted.
        spdlog::warn("connection {}: malformed RELEASE ({}); closing it", id,
                     req.status().to_string());
        break;
      }
      if (!req) {
        // Unknown ops and missing fields are answered and the connection
        // stays; a body that is not msgpack means the stream is unusable.
        (void)ipc::write_frame(fd, ipc::encode_error(req.status()));
        if (req.code() == Errc::malformed_frame) {
          spdlog::warn("connection {}: {}; closing it", id, req.status().to_string());
          break;
        }
        continue;
      }
      bool hung_up = false;
      const std::string reply = handle(*req, fd, id, ctx, &hung_up);
      if (hung_up) {
        spdlog::info("connection {}: the client hung up while its request waited; closing it", id);
        break;
      }
      if (reply.empty()) continue;
      Status sent = ipc::write_frame(fd, reply, -1, Clock::now() + ctx.limits.write_timeout);
      if (!sent.ok()) {
        if (sent.code() == Errc::timeout) {
          spdlog::warn("connection {}: the client did not read its reply within {} ms; closing it",
                       id, ctx.limits.write_timeout.count());
        }
        break;
      }
    }
  }
  ctx.coordinator->release_all(id);
  spdlog::debug("connection {}: closed", id);
}

}  // namespace genomed::loader
