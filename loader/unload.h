// Unloads: what takes an adapter out of the budget on purpose. UNLOAD of a
// name (cancel its load, drain its leases, or free it), the loads that only
// abandoned connections waited for, and the one way a resident entry leaves
// the cache and the table (erase_resident), which the idle unloader, a
// drained adapter's last lease and UNLOAD share.
//
// Threads and locks: every method runs under the coordinator's mutex (the
// coordinator owns this part as a member guarded by it), as do the parts it
// is given; Resilience has its own lock, a leaf. What needs the request loop
// goes through Hooks, called under the mutex.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cache/resident_cache.h"
#include "common/status.h"
#include "ipc/protocol.h"
#include "loader/adapter_table.h"
#include "loader/admission_queue.h"
#include "loader/flights.h"
#include "loader/leases.h"
#include "loader/resilience.h"

namespace genomed::loader {

class Unloads {
 public:
  struct Hooks {
    std::function<void(const std::vector<TicketPtr>&)> settle;  // tickets that left the queue
    std::function<bool(ConnectionId)> abandoned;                // its client hung up
  };

  Unloads(AdapterTable& entries, cache::ResidentCache& cache, Leases& leases,
          AdmissionQueue& admission, Resilience& resilience, Flights& flights, Hooks hooks)
      : entries_(entries),
        cache_(cache),
        leases_(leases),
        admission_(admission),
        resilience_(resilience),
        flights_(flights),
        hooks_(std::move(hooks)) {}

  // UNLOAD of `name`: a LOADING entry is cancelled, a leased READY one
  // drains, an unleased one is freed; a pinned one is refused. An absent
  // name's quarantine is lifted.
  Result<ipc::UnloadReply> unload(const std::string& name);
  // `conn` was abandoned: cancels every load whose waiters all belong to
  // abandoned connections, `conn` among them; returns their names.
  std::vector<std::string> cancel_orphans(ConnectionId conn);
  // Erases a READY or DRAINING entry with no lease from the cache and the table.
  void erase_resident(AdapterTable::iterator it);

 private:
  AdapterTable& entries_;
  cache::ResidentCache& cache_;
  Leases& leases_;
  AdmissionQueue& admission_;
  Resilience& resilience_;
  Flights& flights_;
  const Hooks hooks_;
};

}  // namespace genomed::loader
