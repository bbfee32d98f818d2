// Who holds which lease. The resident cache counts leases per adapter (that
// count decides what may be evicted); this table knows which connection holds
// each one, so a closing connection's leases end with it. Every lease goes
// through grant() and end(), which keep the two in step: the cache's count of
// an adapter is always the number of records naming it.
//
// Costs: every operation on one lease is O(1); the leases of one connection
// are found through its own index (of(), count_of()), so ending them costs
// O(its leases), however many other connections hold: one client hoarding
// leases never slows another's disconnect. Nothing but check_records() (unit
// tests) walks every lease.
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
  // Every lease on `from` is a lease on `to` from now on (after the cache's
  // own rename of the adapter). O(all leases): only a RELOAD's swap does it.
  void rename(const std::string& from, const std::string& to);
  // The leases of a connection, in no particular order. O(its leases).
  std::vector<LeaseId> of(ConnectionId conn) const;
  bool holds_any(ConnectionId conn) const { return by_conn_.contains(conn); }
  bool contains(LeaseId id) const { return leases_.contains(id); }
  // How many leases `conn` holds. O(1).
  std::size_t count_of(ConnectionId conn) const;

  std::size_t active() const { return leases_.size(); }
  std::uint64_t granted() const { return granted_; }

  // Lease records looked at so far by of(), end() and check_records(): a
  // probe of the costs above for tests (ending one connection's leases must
  // look at those alone). Never decreases.
  std::uint64_t records_visited() const { return visited_; }

  // Aborts unless the cache's lease count of every adapter equals this
  // table's, and the records, the per-adapter counts and the per-connection
  // index hold the same number of leases. O(adapters + connections), never
  // O(leases): the coordinator runs it after every change in test builds.
  void check_invariants() const;
  // check_invariants(), and every record against both indexes. O(leases).
  void check_records() const;

 private:
  struct Record {
    std::string name;
    ConnectionId conn = 0;
  };

  cache::ResidentCache& cache_;
  std::unordered_map<LeaseId, Record> leases_;
  // conn -> its lease ids; no empty sets (holds_any is a lookup).
  std::unordered_map<ConnectionId, std::unordered_set<LeaseId>> by_conn_;
  // adapter name -> records naming it; no zero counts. Equals the cache's
  // lease count of that adapter.
  std::unordered_map<std::string, std::uint32_t> per_name_;
  LeaseId next_ = 1;  // ids are never reused, so a stale RELEASE cannot end a newer lease
  std::uint64_t granted_ = 0;
  mutable std::uint64_t visited_ = 0;
};

}  // namespace genomed::loader
