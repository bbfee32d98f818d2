// Who holds which lease. The resident cache counts leases per adapter (that
// count decides what may be evicted); this table knows which connection holds
// each one, so a closing connection's leases end with it. Every lease goes
// through grant() and end(), which keep the two in step: the cache's count of
// an adapter is always the number of records naming it.
//
// Not thread-safe: the coordinator calls it under its mutex.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache/resident_cache.h"

namespace genomed::loader {

using ConnectionId = std::uint64_t;
using LeaseId = std::uint64_t;

class LeaseTable {
 public:
  explicit LeaseTable(cache::ResidentCache& cache) : cache_(cache) {}

  // Leases the resident adapter `name` to `conn`. REQUIRES: it is in the cache.
  LeaseId grant(const std::string& name, ConnectionId conn);

  struct Ended {
    std::string name;
    bool last = false;  // the adapter has no lease left (it may be evicted now)
  };
  // Ends a lease; nullopt if there is no such lease (already ended, or never
  // granted). With `conn`, only a lease of that connection is ended.
  std::optional<Ended> end(LeaseId id, std::optional<ConnectionId> conn = std::nullopt);
  // The leases of a connection, in no particular order.
  std::vector<LeaseId> of(ConnectionId conn) const;
  bool holds_any(ConnectionId conn) const { return by_conn_.contains(conn); }

  std::size_t active() const { return leases_.size(); }
  std::uint64_t granted() const { return granted_; }

  // Aborts unless every connection index entry matches a record and the
  // cache's lease counts equal the records per name. O(n): tests and debug.
  void check_invariants() const;

 private:
  struct Record {
    std::string name;
    ConnectionId conn = 0;
  };

  cache::ResidentCache& cache_;
  std::unordered_map<LeaseId, Record> leases_;
  // conn -> its lease ids; no empty sets (holds_any is a lookup).
  std::unordered_map<ConnectionId, std::unordered_set<LeaseId>> by_conn_;
  LeaseId next_ = 1;  // ids are never reused, so a stale RELEASE cannot end a newer lease
  std::uint64_t granted_ = 0;
};

}  // namespace genomed::loader
