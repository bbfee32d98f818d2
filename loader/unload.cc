#include "loader/unload.h"

#include <algorithm>

#include "cache/check.h"
#include "common/safe_text.h"
#include "loader/client_log.h"
#include "loader/request_path.h"

namespace genomed::loader {

Result<ipc::UnloadReply> Unloads::unload(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    GENOMED_RETURN_IF_ERROR(validate_name(name));
    if (resilience_.lift(name)) {
      client_log().info("unload {}: quarantine lifted", quote(name));
      return ipc::UnloadReply{name, "unquarantined", 0};
    }
    return Status(Errc::not_loaded, "adapter " + quote(name) + " is not resident or loading");
  }
  resilience_.lift(name);
  switch (it->second.state) {
    case AdapterState::loading: {
      client_log().info("unload {}: load generation {} cancelled", quote(name),
                        it->second.generation);
      flights_.cancel_loading(it, unloaded_while_loading(name));
      hooks_.settle(admission_.pump());
      return ipc::UnloadReply{name, "cancelled", 0};
    }
    case AdapterState::ready: {
      auto view = cache_.find(name);
      if (view->pinned) {
        return Status(Errc::pinned, "adapter " + quote(name) +
                                        " is pinned: unpin it first ('genomectl unpin " +
                                        printable(name) + "'), then unload it");
      }
      if (leases_.has_slots(name)) {
        leases_.revoke(name);
        it = entries_.find(name);
        if (it == entries_.end()) return ipc::UnloadReply{name, "freed", 0};  // evicted meanwhile
        view = cache_.find(name);
      }
      if (view->leases > 0) {
        it->second.state = AdapterState::draining;
        hooks_.settle(admission_.unavailable(name));
        const std::uint64_t held = leases_.held(name);
        client_log().info("unload {}: draining, {} lease(s) still held", quote(name), held);
        return ipc::UnloadReply{name, "draining", held};
      }
      erase_resident(it);
      if (view->names_on_copy > 1) {
        // The name is gone; its bytes stay for the names that share them.
        client_log().info("unloaded {}; its copy stays, shared with {} other name(s)", quote(name),
                          view->names_on_copy - 1);
      } else {
        client_log().info("unloaded {}", quote(name));
      }
      return ipc::UnloadReply{name, "freed", 0};
    }
    case AdapterState::draining:
      return ipc::UnloadReply{name, "draining", leases_.held(name)};
  }
  return Status(Errc::internal, "unknown state of " + quote(name));
}

void Unloads::erase_resident(AdapterTable::iterator it) {
  const std::string name = it->first;
  const bool erased = cache_.erase(name);
  GENOMED_CHECK(erased, "erase of a leased or absent adapter");
  entries_.erase(it);
  hooks_.settle(admission_.unavailable(name));
}

std::vector<std::string> Unloads::cancel_orphans(ConnectionId conn) {
  // A load whose waiters have all gone this way, this connection among
  // them, is wanted by nobody: stop it as an unload would.
  std::vector<std::string> cancelled;
  for (auto it = entries_.begin(); it != entries_.end();) {
    const AdapterEntry& e = it->second;
    const auto& waiters =
        e.state == AdapterState::loading ? e.flight->waiters : std::vector<Request*>{};
    const bool orphaned =
        std::any_of(waiters.begin(), waiters.end(), [&](Request* w) { return w->conn == conn; }) &&
        std::all_of(waiters.begin(), waiters.end(),
                    [&](Request* w) { return hooks_.abandoned(w->conn); });
    if (!orphaned) {
      ++it;
      continue;
    }
    cancelled.push_back(it->first);
    it = flights_.cancel_loading(
        it, Status(Errc::cancelled,
                   "every client waiting for the load of " + quote(it->first) + " disconnected"));
  }
  return cancelled;
}

}  // namespace genomed::loader
