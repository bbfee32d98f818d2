#include "loader/lease_table.h"

#include <map>

#include "cache/check.h"

namespace genomed::loader {

LeaseId LeaseTable::grant(const std::string& name, ConnectionId conn) {
  const bool leased = cache_.lease(name);
  GENOMED_CHECK(leased, "a lease of an adapter that is not in the cache");
  const LeaseId id = next_++;
  leases_.emplace(id, Record{name, conn});
  by_conn_[conn].insert(id);
  ++granted_;
  return id;
}

std::optional<LeaseTable::Ended> LeaseTable::end(LeaseId id, std::optional<ConnectionId> conn) {
  auto it = leases_.find(id);
  if (it == leases_.end() || (conn && it->second.conn != *conn)) return std::nullopt;
  Ended ended{std::move(it->second.name), false};
  auto owner = by_conn_.find(it->second.conn);
  owner->second.erase(id);
  if (owner->second.empty()) by_conn_.erase(owner);
  leases_.erase(it);
  cache_.release(ended.name);
  const auto view = cache_.find(ended.name);
  ended.last = view && view->leases == 0;
  return ended;
}

std::vector<LeaseId> LeaseTable::of(ConnectionId conn) const {
  auto it = by_conn_.find(conn);
  if (it == by_conn_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

void LeaseTable::check_invariants() const {
  std::map<std::string, std::uint32_t> per_name;
  std::size_t indexed = 0;
  for (const auto& [conn, ids] : by_conn_) {
    GENOMED_CHECK(!ids.empty(), "an empty connection index entry");
    for (LeaseId id : ids) {
      auto it = leases_.find(id);
      GENOMED_CHECK(it != leases_.end() && it->second.conn == conn, "a stale connection index");
    }
    indexed += ids.size();
  }
  GENOMED_CHECK(indexed == leases_.size(), "a lease missing from the connection index");
  for (const auto& [id, rec] : leases_) ++per_name[rec.name];
  for (const std::string& name : cache_.names()) {
    const auto it = per_name.find(name);
    GENOMED_CHECK(cache_.find(name)->leases == (it == per_name.end() ? 0 : it->second),
                  "the cache's lease count differs from the table");
  }
  for (const auto& [name, count] : per_name)
    GENOMED_CHECK(cache_.find(name).has_value(), "a lease of an adapter not in the cache");
}

}  // namespace genomed::loader
