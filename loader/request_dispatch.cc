#include "loader/request_dispatch.h"

#include <chrono>

#include "ipc/framing.h"
#include "loader/client_log.h"
#include "loader/generations.h"
#include "loader/name_resolver.h"
#include "loader/published_adapter.h"

namespace genomed::loader {
namespace {

// What a LOAD, ACQUIRE or PIN asks of the coordinator beyond its names.
RequestOptions request_options(const ipc::Request& req) {
  RequestOptions o;
  if (req.keep_alive_ms) o.keep_alive = std::chrono::milliseconds(*req.keep_alive_ms);
  o.priority = req.priority;
  o.prefetch = req.prefetch;
  return o;
}

// PUBLISH (loader/published_adapter.h): who asks, then the name, then the
// descriptors; each refusal is typed and the daemon serves on.
Result<ipc::ReloadReply> publish(const ipc::Request& req, const ConnectionContext& ctx,
                                 const RequestSource& from) {
  FrameFds fds = from.fds != nullptr ? std::move(*from.fds) : FrameFds{};
  if (Status denied = AccessControl::check_publisher(ctx.access.get(), from.socket);
      !denied.ok()) {
    ctx.counters->permission_denied.fetch_add(1, std::memory_order_relaxed);
    if (std::string note; from.may_warn && from.may_warn(&note))
      client_log().warn("connection {}: {}{}", from.id, denied.message(), note);
    return denied;
  }
  const std::string& name = req.names.front();
  GENOMED_RETURN_IF_ERROR(validate_name(name));
  GENOMED_ASSIGN_OR_RETURN(
      OpenedAdapter adapter,
      adopt_published(name, std::move(fds), {.max_weights_bytes = ctx.arena_bytes}));
  return ctx.coordinator->reload(name, from.id, from.wait, request_options(req),
                                 std::make_shared<const OpenedAdapter>(std::move(adapter)));
}

}  // namespace

std::string dispatch(const ipc::Request& req, const ConnectionContext& ctx,
                     const RequestSource& from) {
  Coordinator& c = *ctx.coordinator;
  const ConnectionId id = from.id;
  auto reply = [](const auto& result) {
    return result.ok() ? ipc::encode_reply(result.value()) : ipc::encode_error(result.status());
  };
  const bool draining = ctx.drain && ctx.drain->active();
  std::string out = [&]() -> std::string {
    // PIN is refused with them: it starts loads as LOAD does, and a pin
    // would not outlive the stop anyway.
    if (draining &&
        (req.op == ipc::Op::load || req.op == ipc::Op::acquire || req.op == ipc::Op::pin ||
         req.op == ipc::Op::reload || req.op == ipc::Op::publish)) {
      return ipc::encode_error(ctx.drain->refusal());
    }
    // A key with a NUL names a generation beside the one a name serves
    // (loader/generations.h): never a client's to name.
    for (const std::string& name : req.names) {
      if (is_hidden_key(name)) return ipc::encode_error(validate_name(name));
    }
    switch (req.op) {
      case ipc::Op::hello:
        ctx.counters->bad_requests.fetch_add(1, std::memory_order_relaxed);
        return ipc::encode_error(
            Status(Errc::bad_request, "HELLO was already exchanged on this connection"));
      case ipc::Op::load:
        return reply(c.load(req.names.front(), id, from.wait, request_options(req)));
      case ipc::Op::acquire: {
        const auto started = std::chrono::steady_clock::now();
        auto acquired = c.acquire(req.names, id, from.wait, request_options(req), from.slot_page);
        if (ctx.histograms) {
          ctx.histograms->acquire_seconds.observe(std::chrono::steady_clock::now() - started);
        }
        if (acquired.code() == Errc::limit_exceeded) {
          ctx.counters->limits_exceeded.fetch_add(1, std::memory_order_relaxed);
          if (std::string note; from.may_warn && from.may_warn(&note))
            client_log().warn("connection {}: ACQUIRE refused: {}{}", id,
                              acquired.status().message(), note);
        }
        return reply(acquired);
      }
      case ipc::Op::release:  // taken when read (take_frame); never queued
        c.release(req.leases, id);
        return {};
      case ipc::Op::unload:
        return reply(c.unload(req.names.front()));
      case ipc::Op::pin:
        return reply(c.pin(req.names.front(), id, from.wait, request_options(req)));
      case ipc::Op::unpin:
        return reply(c.unpin(req.names.front()));
      case ipc::Op::reload:
        return reply(c.reload(req.names.front(), id, from.wait, request_options(req)));
      case ipc::Op::publish:
        return reply(publish(req, ctx, from));
      case ipc::Op::list:
        return ipc::encode_reply(c.list(req.after, req.limit == 0 ? ipc::kMaxListPage : req.limit));
      case ipc::Op::stats:
        return ipc::encode_reply(stats_reply(ctx));
      case ipc::Op::health: {
        ipc::HealthReply health = c.health();
        if (draining) {
          health.healthy = false;
          health.reason = ctx.drain->health_reason();
        }
        return ipc::encode_reply(health);
      }
    }
    return ipc::encode_error(Status(Errc::internal, "unhandled operation"));
  }();
  if (out.size() > ipc::kMaxReplyFrame) {
    // Never sent: the client would refuse it and lose the connection. Every
    // reply is bounded by design (docs/protocol.md §7); this is the backstop.
    ctx.counters->limits_exceeded.fetch_add(1, std::memory_order_relaxed);
    client_log().error(
        "connection {}: a {} reply of {} bytes exceeds the protocol's limit of {}; "
        "answered limit_exceeded instead (a bug: please report it)",
        id, ipc::op_name(req.op), out.size(), ipc::kMaxReplyFrame);
    out = ipc::encode_error(Status(
        Errc::limit_exceeded, "the reply of " + std::to_string(out.size()) +
                                  " bytes exceeds the protocol's limit of " +
                                  std::to_string(ipc::kMaxReplyFrame) + " bytes (kMaxReplyFrame)"));
  }
  return out;
}

ipc::StatsReply stats_reply(const ConnectionContext& ctx) {
  ipc::StatsReply r = ctx.coordinator->stats();
  ctx.counters->append_to(r);
  return r;
}

}  // namespace genomed::loader
