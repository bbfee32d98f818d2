#include "loader/flights.h"

#include <utility>

#include "cache/check.h"
#include "common/safe_text.h"
#include "common/size_parse.h"
#include "loader/client_log.h"
#include "loader/request_path.h"

namespace genomed::loader {
namespace {

double ms_between(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

}  // namespace

Status unloaded_while_loading(const std::string& name) {
  return Status(Errc::cancelled, "adapter " + quote(name) + " was unloaded while it was loading");
}

Status shutting_down_status() { return Status(Errc::shutting_down, "genomed is stopping"); }

Flights::Flights(Mutex& mu, const CoordinatorOptions& options, WaitClock& clock,
                 std::uint64_t arena_size, LoadPipeline& pipeline, AdapterTable& entries,
                 cache::ResidentCache& cache, Leases& leases, AdmissionQueue& admission,
                 IdleUnloader& idle, CoordinatorCounters& counters, Hooks hooks)
    : mu_(mu),
      options_(options),
      clock_(clock),
      arena_size_(arena_size),
      pipeline_(pipeline),
      entries_(entries),
      cache_(cache),
      leases_(leases),
      admission_(admission),
      idle_(idle),
      counters_(counters),
      hooks_(std::move(hooks)),
      threads_(mu) {}

Clock::time_point Flights::waiter_deadline() const {
  // A flight ends by itself within probe + admission + fill deadlines; this
  // is only a backstop so that no waiter can hang on a lost flight.
  const auto fill_allowance = std::chrono::milliseconds(
      static_cast<long long>(static_cast<double>(options_.timeout_per_gib.count()) *
                             static_cast<double>(arena_size_) / static_cast<double>(1ull << 30)));
  return clock_.now() + 2 * options_.load_timeout + fill_allowance + options_.admission_timeout +
         std::chrono::seconds(5);
}

void Flights::start(const std::string& name, const std::string& source,
                    std::shared_ptr<const OpenedAdapter> content) {
  threads_.reap();
  auto flight = std::make_shared<Flight>();
  flight->name = name;
  flight->source = source.empty() ? name : source;
  flight->content = std::move(content);
  entries_.start_loading(name, flight);
  ++counters_.loads_started;
  threads_.start(flight, [this, flight] { run(flight); });
}

bool Flights::superseded(const std::string& name, const Flight& flight) const {
  if (flight.decided()) return true;  // cancelled by an unload
  auto it = entries_.find(name);
  return it == entries_.end() || it->second.generation != flight.generation;
}

void Flights::run(const std::shared_ptr<Flight>& flight) {
  const std::string& name = flight->name;
  const auto start = clock_.now();
  Status s = pipeline_.load(flight, *this);
  MutexLock lock(mu_);
  if (s.ok()) {
    const auto view = cache_.find(name);
    client_log().info("loaded {} generation {}: {} in {:.1f} ms", quote(name), flight->generation,
                      format_size(view ? view->length : 0), ms_between(start, clock_.now()));
    if (options_.histograms) options_.histograms->load_seconds.observe(clock_.now() - start);
  } else if (s.code() == Errc::cancelled) {
    client_log().info("load of {} generation {} cancelled: {}", quote(name), flight->generation,
                      printable(s.message()));
  } else {
    client_log().warn("load of {} failed: {}", quote(name), printable(s.to_string()));
  }
  finish(name, flight, std::move(s));
}

Status Flights::await_predecessors(Flight& flight) {
  const std::string& name = flight.name;
  MutexLock lock(mu_);
  if (flight.predecessors_ended()) return Status::Ok();
  client_log().info("load of {} generation {} waits for the previous load of that name to stop",
                    quote(name), flight.generation);
  // The previous flight was cancelled (that is how its entry went away):
  // it ends within about 100 ms plus the kill grace. load_timeout is only
  // a backstop for a flight that does not.
  const bool ended = wait_until(
      clock_, flight.cv, lock, clock_.now() + options_.load_timeout,
      [&]() REQUIRES(mu_) {
        return hooks_.stopping() || superseded(name, flight) || flight.predecessors_ended();
      });
  if (hooks_.stopping()) return shutting_down_status();
  if (superseded(name, flight)) return unloaded_while_loading(name);
  if (!ended) {
    return Status(Errc::timeout, "the previous load of " + quote(name) + " did not stop within " +
                                     std::to_string(options_.load_timeout.count()) +
                                     " ms of its cancellation; retry later");
  }
  return Status::Ok();
}

Result<cache::ResidentCache::Range> Flights::await_range(const std::shared_ptr<Flight>& flight,
                                                             std::uint64_t length) {
  const std::string& name = flight->name;
  MutexLock lock(mu_);
  if (hooks_.stopping()) return shutting_down_status();
  if (superseded(name, *flight)) return unloaded_while_loading(name);
  if (length > cache_.budget()) {
    return Status(Errc::too_large, "adapter " + quote(name) + " needs " + format_size(length) +
                                       " (" + std::to_string(length) +
                                       " bytes) but the whole budget is " +
                                       format_size(cache_.budget()) + ": raise --budget");
  }
  auto claim = std::make_shared<RangeClaim>();
  claim->length = length;
  flight->claim = claim;
  claimant_[claim.get()] = flight.get();
  flight->notify_waiters();  // they can take an admission ticket now
  // Requests that want this load give it its range through their tickets,
  // each within its own admission timeout, which starts only when all the
  // loads of its batch have probed (a sibling's probe may take much longer
  // than this one's). So the load waits as long as some request waits for
  // it: when the last one leaves while the claim is pending, leave() or
  // abandon() cancels it. With none left already (all gone while it probed)
  // it gives up at once. The waiter backstop bounds the wait regardless.
  wait_until(clock_, flight->cv, lock, waiter_deadline(), [&]() REQUIRES(mu_) {
    return !claim->pending() || superseded(name, *flight) || hooks_.stopping() ||
           flight->waiters.empty();
  });
  claimant_.erase(claim.get());
  if (claim->range && !superseded(name, *flight) && !hooks_.stopping()) return *claim->range;
  if (claim->range) {
    cache_.cancel_reservation(claim->range->offset);
    claim->range.reset();
  }
  claim->withdrawn = true;
  hooks_.settle(admission_.pump());
  if (hooks_.stopping()) return shutting_down_status();
  if (superseded(name, *flight)) return unloaded_while_loading(name);
  // No request waits for it any more. It ends here, in the same critical
  // section that saw its waiters gone: run() finishes it only after mu_ was
  // released, and a request arriving in between found the name loading,
  // joined this flight and got its failure instead of a load of its own (a
  // client saw `no_space` for an adapter with ample room). Erased now, the
  // name starts afresh for the next request; run()'s finish is a no-op.
  Status gave_up(Errc::no_space, "no request waiting for " + quote(name) + " (" +
                                     format_size(length) + ") was admitted with room for it");
  finish(name, flight, gave_up);
  return gave_up;
}

void Flights::finish_early(const std::shared_ptr<Flight>& flight, const Status& failure) {
  MutexLock lock(mu_);
  finish(flight->name, flight, failure);
}

void Flights::give_back(cache::ResidentCache::Range range) {
  MutexLock lock(mu_);
  cache_.cancel_reservation(range.offset);
  hooks_.settle(admission_.pump());
}

Status Flights::publish(Flight& flight, cache::ResidentCache::Range range, std::uint64_t bytes,
                            const std::function<void()>& record) {
  const std::string& name = flight.name;
  MutexLock lock(mu_);
  if (hooks_.stopping()) return shutting_down_status();
  if (superseded(name, flight)) return unloaded_while_loading(name);
  record();  // before the waiters wake; Resilience's mutex is a leaf: in order under mu_
  // Identical bytes once: content equal to a resident copy's makes this
  // name an alias of that copy, and the fresh one, which no client has
  // seen, is freed now (cache/shared_copies.h; docs/architecture.md §3.1).
  const std::string content = flight.digest.hex();
  const bool shared = cache_.insert_shared(name, content, bytes);
  if (shared) {
    cache_.cancel_reservation(range.offset);
    ++counters_.loads_shared;
    client_log().info("{} generation {} has the content of a resident copy ({}): it shares it, "
                      "{} freed",
                      quote(name), flight.generation, content, format_size(range.length));
  } else {
    cache_.insert(name, range.offset, bytes, content);
  }
  AdapterEntry& e = entries_.at(name);
  e.state = AdapterState::ready;
  e.digest = flight.digest;
  e.flight.reset();
  e.last_used = clock_.now();
  counters_.bytes_loaded += bytes;
  ++counters_.loads_completed;
  for (Request* w : flight.waiters) {
    if (w->admitted) {
      if (w->wants_lease && !hooks_.abandoned(w->conn))
        w->leases.emplace_back(name, leases_.grant(name, w->conn));
    } else if (w->ticket && w->ticket->outcome == AdmissionTicket::Outcome::waiting) {
      // Not admitted yet, so it may not hold a lease; its ticket keeps the
      // entry from being evicted to serve it.
      w->ticket->keep.push_back(name);
    }
  }
  flight.notify_waiters();
  idle_.mark_used(name);  // unleased (its waiters went), it may idle from now
  // The freed range may admit a waiting ticket; this name's waiters hold
  // their leases (or keep it) already, and it is the most recently used.
  if (shared) hooks_.settle(admission_.pump());
  return Status::Ok();
}

void Flights::finish(const std::string& name, const std::shared_ptr<Flight>& flight,
                                Status status) {
  if (flight->phase >= Flight::Phase::finished) return;
  if (status.ok()) {
    // Counted by publish(): its waiters may answer before this runs.
  } else if (status.code() == Errc::cancelled) {
    ++counters_.loads_cancelled;
  } else {
    ++counters_.loads_failed;
  }
  flight->decide(status);  // an unload may have decided it (`cancelled`) already
  flight->phase = Flight::Phase::finished;
  if (!status.ok()) {
    auto it = entries_.find(name);
    if (it != entries_.end() && it->second.generation == flight->generation &&
        it->second.state == AdapterState::loading) {
      entries_.erase(it);  // nothing was created
    }
  }
  flight->notify_waiters();
  hooks_.check();
}

AdapterTable::iterator Flights::cancel_loading(AdapterTable::iterator it, const Status& why) {
  Flight& flight = *it->second.flight;
  flight.decide(why);
  if (flight.claim && flight.claim->pending()) flight.claim->withdrawn = true;
  // Its queued jobs leave the pool's queue and the workers running its
  // probe or fill parts are stopped; the flight frees its range once they
  // are reaped.
  pipeline_.cancel(*flight.cancel);
  flight.notify_waiters();
  flight.cv.notify_all();
  return entries_.erase(it);
}

void Flights::wake_claimant(const RangeClaim* claim) const {
  if (auto c = claimant_.find(claim); c != claimant_.end()) c->second->cv.notify_all();
}

void Flights::check_invariants() const {
  threads_.check_invariants();
  for (const auto& [claim, flight] : claimant_)
    GENOMED_CHECK(flight->claim.get() == claim, "a flight waits for a claim not its own");
}

}  // namespace genomed::loader
