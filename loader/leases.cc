#include "loader/leases.h"

#include <unordered_set>

#include "loader/client_log.h"

namespace genomed::loader {

bool Leases::end(LeaseId id, std::optional<ConnectionId> conn, bool settle_now) {
  const auto ended = table_.end(id, conn);
  if (!ended) return false;
  slots_.detach(id);
  if (ended->last) on_last_end_(ended->name, settle_now);
  return true;
}

std::size_t Leases::release(std::span<const LeaseId> ids, ConnectionId conn) {
  std::size_t ignored = 0;
  for (LeaseId id : ids) ignored += end(id, conn) ? 0 : 1;
  return ignored;
}

std::size_t Leases::end_all_of(ConnectionId conn) {
  const auto ids = table_.of(conn);
  for (LeaseId id : ids) end(id);
  return ids.size();
}

Status Leases::check_limit(ConnectionId conn, std::size_t more) {
  if (table_.count_of(conn) + more > max_per_connection_) {
    // Idle slots count as leases here only if they cannot be given back.
    for (const auto& [id, name] : slots_.revoke_of(conn)) end(id);
  }
  if (const std::size_t held = table_.count_of(conn); held + more > max_per_connection_) {
    return Status(Errc::limit_exceeded,
                  "this connection holds " + std::to_string(held) + " lease(s); " +
                      std::to_string(more) + " more would pass the limit of " +
                      std::to_string(max_per_connection_) +
                      " leases per connection (--max-leases-per-connection): release some first");
  }
  return Status::Ok();
}

bool Leases::active(ConnectionId conn) {
  // Slot traffic sends nothing: its uses are the connection's activity.
  if (slots_.used_by_since_last_look(conn) || slots_.busy(conn)) return true;
  // Idle slots hold leases nobody uses. Revoked, they take nothing more (a
  // take that got in first makes its slot busy: revoke_slot wants it back).
  for (const auto& [id, name] : slots_.revoke_of(conn)) end(id);
  return table_.holds_any(conn);
}

void Leases::attach(ipc::AcquireReply& reply, ConnectionId conn,
                    const std::shared_ptr<LeaseSlotPage>& page,
                    const std::function<bool(const std::string&)>& ready) {
  if (!page || slots_closed_) return;
  for (ipc::LeaseGrant& g : reply.grants) {
    if (!ready(g.name)) continue;
    if (const auto slot = slots_.attach(g.lease, g.name, conn, page)) {
      g.slot = slot->index;
      g.slot_tag = slot->tag;
    }
  }
}

bool Leases::reclaim() {
  if (slots_.size() == 0) return false;
  const auto used_list = slots_.used_names();
  const std::unordered_set<std::string> used(used_list.begin(), used_list.end());
  const auto revoked = slots_.revoke(nullptr);
  for (const auto& [id, name] : revoked) end(id, std::nullopt, /*settle_now=*/false);
  for (const auto& [id, name] : revoked) {
    if (used.contains(name))
      cache_.touch(name);
    else
      cache_.make_least_recent(name);
  }
  return true;
}

void Leases::revoke(const std::string& name) {
  for (const auto& [id, ended] : slots_.revoke(&name)) end(id);
}

void Leases::close_slots() {
  slots_closed_ = true;
  const std::size_t before = slots_.size();
  for (const auto& [id, name] : slots_.revoke(nullptr)) end(id);
  if (before > 0) {
    client_log().info(
        "lease slots wanted back: {} idle one(s) ended, {} end with their client's release",
        before - slots_.size(), slots_.size());
  }
}

std::uint32_t Leases::records(const std::string& name) const {
  const auto view = cache_.find(name);
  return view ? view->leases : 0;
}

std::uint64_t Leases::held(const std::string& name) const {
  return ordinary(name) + slots_.held(name);
}

std::uint64_t Leases::held_total() const {
  return table_.active() - slots_.size() + slots_.held_total();
}

std::uint64_t Leases::ordinary(const std::string& name) const {
  return records(name) - slots_.count(name);
}

void Leases::check_invariants() const {
  table_.check_invariants();
  slots_.check_invariants(table_);
}

}  // namespace genomed::loader
