#include "loader/lease_table.h"

#include "cache/check.h"

namespace genomed::loader {

LeaseId LeaseTable::grant(const std::string& name, ConnectionId conn) {
  const bool leased = cache_.lease(name);
  GENOMED_CHECK(leased, "a lease of an adapter that is not in the cache");
  const LeaseId id = next_++;
  leases_.emplace(id, Record{name, conn});
  by_conn_[conn].insert(id);
  ++per_name_[name];
  ++granted_;
  return id;
}

std::optional<LeaseTable::Ended> LeaseTable::end(LeaseId id, std::optional<ConnectionId> conn) {
  ++visited_;
  auto it = leases_.find(id);
  if (it == leases_.end() || (conn && it->second.conn != *conn)) return std::nullopt;
  Ended ended{std::move(it->second.name), false};
  auto owner = by_conn_.find(it->second.conn);
  owner->second.erase(id);
  if (owner->second.empty()) by_conn_.erase(owner);
  leases_.erase(it);
  auto named = per_name_.find(ended.name);
  if (--named->second == 0) per_name_.erase(named);
  cache_.release(ended.name);
  const auto view = cache_.find(ended.name);
  ended.last = view && view->leases == 0;
  return ended;
}

void LeaseTable::rename(const std::string& from, const std::string& to) {
  auto named = per_name_.extract(from);
  if (named.empty()) return;
  GENOMED_CHECK(!per_name_.contains(to), "leases renamed onto an adapter with leases");
  named.key() = to;
  per_name_.insert(std::move(named));
  visited_ += leases_.size();
  for (auto& [id, record] : leases_) {
    if (record.name == from) record.name = to;
  }
}

std::vector<LeaseId> LeaseTable::of(ConnectionId conn) const {
  auto it = by_conn_.find(conn);
  if (it == by_conn_.end()) return {};
  visited_ += it->second.size();
  return {it->second.begin(), it->second.end()};
}

std::size_t LeaseTable::count_of(ConnectionId conn) const {
  auto it = by_conn_.find(conn);
  return it == by_conn_.end() ? 0 : it->second.size();
}

void LeaseTable::check_invariants() const {
  std::size_t indexed = 0;
  for (const auto& [conn, ids] : by_conn_) {
    GENOMED_CHECK(!ids.empty(), "an empty connection index entry");
    indexed += ids.size();
  }
  GENOMED_CHECK(indexed == leases_.size(), "a lease missing from the connection index");
  std::size_t named = 0;
  for (const auto& [name, count] : per_name_) {
    GENOMED_CHECK(count > 0, "a zero count per adapter");
    const auto view = cache_.find(name);
    GENOMED_CHECK(view.has_value(), "a lease of an adapter not in the cache");
    GENOMED_CHECK(view->leases == count, "the cache's lease count differs from the table");
    named += count;
  }
  GENOMED_CHECK(named == leases_.size(), "a lease missing from the counts per adapter");
  for (const std::string& name : cache_.names()) {
    GENOMED_CHECK(cache_.find(name)->leases == 0 || per_name_.contains(name),
                  "the cache counts leases the table does not hold");
  }
}

void LeaseTable::check_records() const {
  check_invariants();
  std::unordered_map<std::string, std::uint32_t> per_name;
  for (const auto& [id, rec] : leases_) {
    ++visited_;
    const auto owner = by_conn_.find(rec.conn);
    GENOMED_CHECK(owner != by_conn_.end() && owner->second.contains(id),
                  "a lease missing from its connection's index");
    ++per_name[rec.name];
  }
  GENOMED_CHECK(per_name == per_name_, "the counts per adapter differ from the records");
}

}  // namespace genomed::loader
