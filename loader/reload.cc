// The coordinator's entry point of RELOAD (loader/generations.h): the new
// generation loads through the ordinary request path under its hidden key,
// and the swap happens in the step that finds it READY, while this request
// still holds the lease that publish gave it (so nothing evicts it between
// publish and swap).
#include "common/safe_text.h"
#include "loader/coordinator.h"
#include "loader/flights.h"

namespace genomed::loader {

Result<ipc::ReloadReply> Coordinator::reload(const std::string& name, ConnectionId conn,
                                             WaitHook* hook, const RequestOptions& options,
                                             std::shared_ptr<const OpenedAdapter> content) {
  MutexLock lock(mu_);
  GENOMED_RETURN_IF_ERROR(validate_name(name));
  if (shutting_down_) return shutting_down_status();
  const auto old = entries_.find(name);
  if (content && old != entries_.end() && old->second.state == State::loading) {
    // Joining that load would answer with whatever it loads, not the bytes
    // given; waiting behind it here would hold a request thread.
    return Status(Errc::overloaded, "adapter " + quote(name) +
                                        " is loading; publish again once that load has returned");
  }
  if (content && old == entries_.end()) {
    // Nothing resident: the published bytes load under the name itself
    // (acquires of it meanwhile join that load).
    flights_.start(name, {}, std::move(content));
  }
  if (old == entries_.end() || old->second.state == State::loading) {
    // Nothing resident to replace: a load (of the current files, or of the
    // published bytes started above) is the reload.
    GENOMED_RETURN_IF_ERROR(path_.make_resident(lock, name, conn, hook, options).status());
    const AdapterEntry& e = entries_.at(name);
    return ipc::ReloadReply{name, cache_.find(name)->length, e.generation, e.digest.hex()};
  }
  if (old->second.state == State::draining) {
    return Status(Errc::draining, "adapter " + quote(name) +
                                      " is being unloaded; reload it once its " +
                                      std::to_string(leases_.held(name)) + " lease(s) end");
  }
  const std::string next = next_key(name);
  if (entries_.find(next) != entries_.end()) {
    return Status(Errc::overloaded, "a reload of " + quote(name) +
                                        " is in progress; retry once it has returned");
  }
  flights_.start(next, name, std::move(content));
  // Both generations live until the swap: the old is held for the reload,
  // so its own load never evicts it (no acquire of the name waits for a
  // cold load meanwhile). A swap needs room for both; none is no_space.
  const LeaseId hold_old = leases_.grant(name, conn);
  auto held_new = path_.make_resident_leased(lock, next, conn, hook, options);
  if (!held_new.ok()) {
    // The old generation was never touched: it serves on.
    leases_.end(hold_old);
    generations_.discard(next);
    check_invariants();
    return held_new.status();
  }
  // Let go of the old without a settle (which could evict it before the
  // swap, and leave the name absent for a moment): the swap frees it or
  // retires it in this same step, then the queue is pumped.
  leases_.end(hold_old, std::nullopt, /*settle_now=*/false);
  auto reply = generations_.swap(name);
  // By id: on `name` now, or still on `next` when the swap failed.
  for (const LeaseId id : *held_new) leases_.end(id, std::nullopt, /*settle_now=*/false);
  if (!reply.ok()) generations_.discard(next);
  path_.settle(admission_.pump());
  check_invariants();
  return reply;
}

void Coordinator::cancel_reload(const std::string& name) {
  auto it = entries_.find(next_key(name));
  if (it == entries_.end() || it->second.state != State::loading) return;
  flights_.cancel_loading(it, unloaded_while_loading(name));
  path_.settle(admission_.pump());
}

}  // namespace genomed::loader
