// Client: the facade of the client library (include/genomed/client.h). Each
// request is one call on the connection's transport; acquire() first tries
// the lease-slot cache (no message), and builds Leases on the parsed-header
// cache.
#include "genomed/client.h"

#include <iterator>

#include "client/connection.h"
#include "client/replies.h"
#include "client/sealed_memfd.h"
#include "ipc/protocol.h"

namespace genomed {

using client_detail::checked;
using client_detail::Connection;
using client_detail::deadline_after;
using client_detail::LeaseState;
using client_detail::Millis;
using client_detail::Transport;

Client::Client(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

std::uint64_t Client::arena_bytes() const { return conn_->arena_bytes; }
std::uint64_t Client::daemon_pid() const { return conn_->daemon_pid; }
const std::string& Client::server() const { return conn_->server; }
std::span<const std::byte> Client::arena() const {
  return {conn_->arena, static_cast<std::size_t>(conn_->arena_bytes)};
}

bool Client::broken() const { return conn_->foreign() || !conn_->transport->usable(); }

namespace {

// Builds a Lease from a grant on the copy it names, parsed once per copy
// (HeaderCache); a grant whose range or header is wrong is given back.
Result<std::unique_ptr<LeaseState>> make_lease(const std::shared_ptr<Connection>& conn,
                                               const ipc::LeaseGrant& g) {
  auto state = std::make_unique<LeaseState>();
  state->conn = conn;
  state->name = g.name;
  state->id = g.lease;
  state->generation = g.generation;
  const client_detail::CopyKey key{g.generation, g.offset, g.length};
  std::shared_ptr<const client_detail::ParsedAdapter> adapter = conn->headers.find(key);
  if (adapter == nullptr) {
    auto parsed = client_detail::parse_adapter(
        std::span<const std::byte>(conn->arena, conn->arena_bytes), g.offset, g.length);
    if (!parsed) {
      conn->release(g.lease);
      return Status(Errc::layout_invalid, "adapter '" + g.name + "': " + parsed.status().message());
    }
    adapter = std::move(parsed).value();
    conn->headers.remember(key, adapter);
  }
  // The daemon computed the digest from the header it verified; a header
  // that says otherwise is not the copy the grant names.
  if (!g.digest.empty() && g.digest != adapter->digest) {
    conn->release(g.lease);
    return Status(Errc::layout_invalid, "adapter '" + g.name + "': genomed granted content " +
                                            g.digest + " but the resident header holds " +
                                            adapter->digest);
  }
  state->adapter = std::move(adapter);
  return state;
}

// The optional fields of a LOAD, ACQUIRE or PIN. A negative keep_alive is
// refused: sent as 0 it would mean "never unload", the opposite of short.
Status apply(const LoadOptions& options, ipc::Request* req) {
  if (options.keep_alive) {
    if (options.keep_alive->count() < 0) {
      return Status(Errc::bad_request,
                    "keep_alive: expected 0 (never) or a positive duration, got " +
                        std::to_string(options.keep_alive->count()) + " ms");
    }
    req->keep_alive_ms = static_cast<std::uint64_t>(options.keep_alive->count());
  }
  req->priority = options.priority;
  return Status::Ok();
}

// One request on `conn` within the call's own timeout, else the client's
// default for its kind.
Result<std::string> call(Connection& conn, const ipc::Request& req,
                         const Client::Timeout& timeout, bool long_op) {
  const Millis budget =
      timeout ? *timeout : (long_op ? conn.options.load_timeout : conn.options.request_timeout);
  return conn.transport->call(req, budget);
}

}  // namespace

Result<std::vector<Lease>> Client::acquire(const std::vector<std::string>& names, Timeout timeout) {
  return acquire(names, LoadOptions{}, timeout);
}

Result<std::vector<Lease>> Client::acquire(const std::vector<std::string>& names,
                                           const LoadOptions& options, Timeout timeout) {
  if (conn_->slots != nullptr && !options.keep_alive && !names.empty() &&
      names.size() <= ipc::kMaxBatch && conn_->transport->usable() && !conn_->foreign() &&
      conn_->transport->daemon_alive()) {
    std::vector<std::uint64_t> to_release;
    auto taken = conn_->slots->take(names, &to_release);
    for (const std::uint64_t lease : to_release) conn_->release(lease);
    if (taken) {
      std::vector<Lease> leases;
      leases.reserve(taken->size());
      for (auto& [name, grant] : *taken) {
        auto state = std::make_unique<LeaseState>();
        state->conn = conn_;
        state->name = name;
        state->id = grant.lease;
        state->generation = grant.generation;
        state->adapter = grant.adapter;
        state->slot = grant.index;
        state->slot_tag = grant.tag;
        leases.push_back(Lease(std::move(state)));
      }
      // Broken meanwhile by another thread, with no lease left then: the
      // socket may be closed, so the daemon no longer keeps these (they
      // give themselves back as they go). Else they keep the socket open.
      if (!conn_->transport->usable()) {
        return Status(Errc::not_connected, "acquire: the connection broke while taking leases "
                                           "through its lease slots; connect again");
      }
      return leases;
    }
  }
  ipc::Request req;
  req.op = ipc::Op::acquire;
  req.names = names;
  GENOMED_RETURN_IF_ERROR(apply(options, &req));
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, true));
  GENOMED_ASSIGN_OR_RETURN(ipc::AcquireReply reply,
                           checked(ipc::decode_acquire_reply(body), body, "acquire"));
  std::vector<Lease> leases;
  leases.reserve(reply.grants.size());
  Status first_error;
  for (std::size_t i = 0; i < reply.grants.size(); ++i) {
    const ipc::LeaseGrant& g = reply.grants[i];
    // Grants come in the order of the names. One for another name is no
    // answer to this request (a reply meant for another one): given back.
    if (i < names.size() && g.name != names[i]) {
      if (first_error.ok()) {
        first_error = Status(Errc::protocol_error,
                             "acquire: genomed's reply does not follow the protocol: grant #" +
                                 std::to_string(i) + " is for '" + g.name + "', but '" + names[i] +
                                 "' was asked for");
      }
      conn_->release(g.lease);
      continue;
    }
    if (g.slot && (conn_->slots == nullptr || *g.slot >= conn_->slots->count())) {
      if (first_error.ok()) {
        const std::uint32_t count = conn_->slots == nullptr ? 0 : conn_->slots->count();
        first_error = Status(Errc::protocol_error, "acquire: genomed granted lease slot " +
                                                       std::to_string(*g.slot) + " of a page of " +
                                                       std::to_string(count));
      }
      conn_->release(g.lease);  // not a lease this client can hold: give it back
      continue;
    }
    auto state = make_lease(conn_, g);
    if (!state) {
      if (first_error.ok()) first_error = state.status();
      continue;
    }
    if (g.slot) {
      (*state)->slot = g.slot;
      (*state)->slot_tag = g.slot_tag;
      conn_->slots->remember(g.name,
                             {*g.slot, g.slot_tag, g.lease, g.generation, (*state)->adapter});
    }
    leases.push_back(Lease(std::move(state).value()));
  }
  if (!first_error.ok()) return first_error;  // the leases built so far release themselves
  if (leases.size() != names.size()) {
    return Status(Errc::protocol_error, "acquire: genomed granted " +
                                            std::to_string(leases.size()) + " leases for " +
                                            std::to_string(names.size()) + " names");
  }
  return leases;
}

Result<Lease> Client::acquire(std::string_view name, Timeout timeout) {
  GENOMED_ASSIGN_OR_RETURN(std::vector<Lease> leases,
                           acquire(std::vector<std::string>{std::string(name)}, timeout));
  return std::move(leases.front());
}

Result<LoadInfo> Client::load(std::string_view name, Timeout timeout) {
  return load(name, LoadOptions{}, timeout);
}

Result<LoadInfo> Client::load(std::string_view name, const LoadOptions& options,
                              Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::load;
  req.names = {std::string(name)};
  GENOMED_RETURN_IF_ERROR(apply(options, &req));
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, true));
  return checked(ipc::decode_load_reply(body), body, "load");
}

Result<UnloadInfo> Client::unload(std::string_view name, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::unload;
  req.names = {std::string(name)};
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, false));
  return checked(ipc::decode_unload_reply(body), body, "unload");
}

Result<ReloadInfo> Client::reload(std::string_view name, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::reload;
  req.names = {std::string(name)};
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, true));
  return checked(ipc::decode_reload_reply(body), body, "reload");
}

Result<ReloadInfo> Client::publish(std::string_view name, std::span<const std::byte> config,
                                   std::span<const std::byte> weights, Timeout timeout) {
  GENOMED_ASSIGN_OR_RETURN(Fd config_fd, client_detail::sealed_memfd("genomed-publish-config", config));
  GENOMED_ASSIGN_OR_RETURN(Fd weights_fd,
                           client_detail::sealed_memfd("genomed-publish-weights", weights));
  return publish_fds(name, config_fd.get(), weights_fd.get(), timeout);
}

Result<ReloadInfo> Client::publish_fds(std::string_view name, int config_fd, int weights_fd,
                                       Timeout timeout) {
  if (config_fd < 0 || weights_fd < 0) {
    // sendmsg would fail, and take the connection with it.
    return Status(Errc::bad_request, "publish: a descriptor is not open (" +
                                         std::to_string(config_fd) + ", " +
                                         std::to_string(weights_fd) + ")");
  }
  ipc::Request req;
  req.op = ipc::Op::publish;
  req.names = {std::string(name)};
  const int fds[2] = {config_fd, weights_fd};
  const Millis budget = timeout ? *timeout : conn_->options.load_timeout;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->transport->call(req, budget, fds));
  return checked(ipc::decode_reload_reply(body), body, "publish");
}

Result<LoadInfo> Client::prefetch(std::string_view name, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::load;
  req.names = {std::string(name)};
  req.prefetch = true;
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, true));
  return checked(ipc::decode_load_reply(body), body, "prefetch");
}

Result<PinInfo> Client::pin(std::string_view name, Timeout timeout) {
  return pin(name, LoadOptions{}, timeout);
}

Result<PinInfo> Client::pin(std::string_view name, const LoadOptions& options, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::pin;
  req.names = {std::string(name)};
  GENOMED_RETURN_IF_ERROR(apply(options, &req));
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, true));
  return checked(ipc::decode_pin_reply(body), body, "pin");
}

Result<PinInfo> Client::unpin(std::string_view name, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::unpin;
  req.names = {std::string(name)};
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, false));
  return checked(ipc::decode_pin_reply(body), body, "unpin");
}

Result<std::vector<AdapterInfo>> Client::list(Timeout timeout) {
  // The daemon answers in pages (ipc::kMaxListPage entries each); this
  // follows them, every page within the one deadline of the call. Pages
  // start after the previous page's last name, so no name comes twice.
  const Millis budget = timeout ? *timeout : conn_->options.request_timeout;
  const auto deadline = deadline_after(budget);
  std::vector<AdapterInfo> all;
  ipc::Request req;
  req.op = ipc::Op::list;
  for (;;) {
    GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->transport->call_until(req, budget, deadline));
    GENOMED_ASSIGN_OR_RETURN(ipc::ListReply r, checked(ipc::decode_list_reply(body), body, "list"));
    std::move(r.adapters.begin(), r.adapters.end(), std::back_inserter(all));
    if (!r.next) return all;
    if (*r.next <= req.after) {  // a daemon that does not advance would loop for ever
      return Status(Errc::protocol_error,
                    "list: genomed's reply does not follow the protocol: its page does not "
                    "advance past the cursor");
    }
    req.after = std::move(*r.next);
  }
}

Result<Stats> Client::stats(Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::stats;
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, false));
  GENOMED_ASSIGN_OR_RETURN(ipc::StatsReply r,
                           checked(ipc::decode_stats_reply(body), body, "stats"));
  return std::move(r.values);
}

Result<Health> Client::health(Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::health;
  GENOMED_ASSIGN_OR_RETURN(std::string body, call(*conn_, req, timeout, false));
  return checked(ipc::decode_health_reply(body), body, "health");
}

}  // namespace genomed
