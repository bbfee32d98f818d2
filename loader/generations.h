// Generations side by side: RELOAD swaps in an adapter's current files
// under load (issue 23).
//
// A name serves one generation to new acquires; older ones live on, under
// hidden keys, only as long as leases hold them:
//
//   RELOAD name   ->  a flight loads `name`'s files under next_key(name)
//                     (an ordinary LOADING entry: probe, admission, fill,
//                     verify, publish; its bytes count in the budget like
//                     any load's, and it waits for room or fails like one)
//   swap (one step under the coordinator's mutex, once it is READY and
//   leased to the RELOAD):
//     the old entry of `name`: freed if unleased, else renamed
//       retired_key(name, generation), DRAINING: its leases (ordinary and
//       through slots, which are wanted back) keep its bytes until they end
//     next_key(name) renamed `name`, READY: every acquire from now on
//
// Invariants: a hidden key holds '\0', which no adapter name may (so no
// client can name one); at most one next_key entry per name (a second
// RELOAD while one runs is `overloaded`); a retired entry is always
// DRAINING, never leased anew, and freed with its last lease by the path of
// any drained adapter; LIST shows no hidden key (a retired generation's
// bytes are in STATS bytes_resident until freed). An acquire never waits
// for or fails because of a swap: the name is READY before and after the
// step. A RELOAD that fails before the swap leaves the old generation as
// it was and returns the load's error.
//
// Threads and locks: not thread-safe; the coordinator owns it as a member
// guarded by its mutex.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "cache/resident_cache.h"
#include "common/status.h"
#include "ipc/protocol.h"
#include "loader/adapter_table.h"
#include "loader/leases.h"
#include "loader/pin_policy.h"

namespace genomed::loader {

// Where a RELOAD loads `name`'s new generation.
std::string next_key(const std::string& name);
// Where a replaced, still leased generation lives until its leases end.
std::string retired_key(const std::string& name, std::uint64_t generation);
// A key of a generation beside the one a name serves (no client can name it).
bool is_hidden_key(std::string_view key);

class Generations {
 public:
  struct Hooks {
    std::function<void(AdapterTable::iterator)> erase_resident;  // Unloads::erase_resident
  };

  Generations(AdapterTable& entries, cache::ResidentCache& cache, Leases& leases, PinPolicy& pins,
              Hooks hooks)
      : entries_(entries), cache_(cache), leases_(leases), pins_(pins), hooks_(std::move(hooks)) {}

  // The swap described above. REQUIRES: next_key(name) is READY. Fails
  // (leaving both as they are) with `cancelled` when `name` was unloaded or
  // began another load meanwhile; the caller then discards the new one.
  Result<ipc::ReloadReply> swap(const std::string& name);
  // A new generation that will not be swapped in: freed now, or drained
  // once the leases on it end.
  void discard(const std::string& key);

 private:
  AdapterTable& entries_;
  cache::ResidentCache& cache_;
  Leases& leases_;
  PinPolicy& pins_;
  const Hooks hooks_;
};

}  // namespace genomed::loader
