#include "loader/coordinator.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>

#include "cache/check.h"
#include "common/size_parse.h"
#include "jobs/job_protocol.h"
#include "layout/resident_layout.h"

namespace genomed::loader {
namespace {

FileIdentity identity_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<std::uint64_t>(st.st_size),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

bool is_worker_failure(Errc code) {
  return code == Errc::worker_crashed || code == Errc::timeout || code == Errc::worker_protocol;
}

// Arena ranges are page-aligned: a worker opens exactly its range.
constexpr std::uint64_t kRangeAlignment = 4096;

// Fills at least this large are split across workers (fill_parts).
constexpr std::uint64_t kSplitFillBytes = 8ull << 20;

const char* state_name(int s) {
  static const char* kNames[] = {"loading", "ready", "draining"};
  return kNames[s];
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, const NameResolver& resolver, Pool& pool,
                         ArenaView arena)
    : options_(options),
      resolver_(resolver),
      pool_(pool),
      arena_(arena),
      cache_(arena.size, kRangeAlignment),
      breaker_(options.breaker),
      quarantine_(options.quarantine) {}

Coordinator::~Coordinator() { shutdown(); }

Clock::time_point Coordinator::waiter_deadline() const {
  // A flight ends by itself within probe + admission + fill deadlines; this
  // is only a backstop so that no waiter can hang on a lost flight.
  const auto fill_allowance = std::chrono::milliseconds(
      static_cast<long long>(static_cast<double>(options_.timeout_per_gib.count()) *
                             static_cast<double>(arena_.size) / static_cast<double>(1ull << 30)));
  return Clock::now() + 2 * options_.load_timeout + fill_allowance + options_.admission_timeout +
         std::chrono::seconds(5);
}

Status Coordinator::ensure_ready(std::unique_lock<std::mutex>& lock, const std::string& name,
                                 bool* hit, Waiter& self, WaitHook* hook) {
  *hit = false;
  bool first_look = true;
  const auto deadline = waiter_deadline();
  const auto abandoned = [&] { return abandoned_.contains(self.conn); };
  const auto hung_up = [] {
    return Status(Errc::cancelled, "the client disconnected while its request waited");
  };
  for (;;) {
    if (shutting_down_) return Status(Errc::shutting_down, "genomed is stopping");
    if (abandoned()) return hung_up();
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      GENOMED_RETURN_IF_ERROR(validate_name(name));
      if (first_look) ++counters_.misses;
      first_look = false;
      start_flight(name);
      continue;
    }
    Entry& e = it->second;
    if (e.state == State::ready) {
      if (first_look) {
        ++counters_.hits;
        *hit = true;
      }
      return Status::Ok();
    }
    if (e.state == State::draining) {
      return Status(Errc::draining,
                    "adapter '" + name + "' is being unloaded; it is freed when its " +
                        std::to_string(cache_.find(name) ? cache_.find(name)->leases : 0) +
                        " lease(s) end; retry after that");
    }
    if (first_look) ++counters_.misses;
    first_look = false;
    const std::shared_ptr<Flight> flight = e.flight;
    if (hook != nullptr) hook->before_wait();  // its connection is watched for a hang-up now
    auto waiting = std::make_shared<Waiter>(Waiter{self.conn, self.wants_lease, 0});
    flight->waiters.push_back(waiting);
    const bool finished = changed_.wait_until(
        lock, deadline, [&] { return flight->done || shutting_down_ || abandoned(); });
    std::erase(flight->waiters, waiting);
    // Abandoned: a lease granted before that was ended by abandon(), and
    // none is granted after it.
    if (abandoned()) return hung_up();
    if (waiting->lease != 0) {
      // Published and leased in one step: whatever happened since (an
      // unload makes it draining), this lease holds the bytes.
      self.lease = waiting->lease;
      return Status::Ok();
    }
    if (!finished)
      return Status(Errc::timeout, "the load of '" + name + "' did not finish in time");
    if (shutting_down_) return Status(Errc::shutting_down, "genomed is stopping");
    if (!flight->result.ok()) return flight->result;
    // Loaded: loop to re-check (it may have been unloaded or evicted since).
  }
}

void Coordinator::start_flight(const std::string& name) {
  reap_finished_flights();
  auto flight = std::make_shared<Flight>();
  flight->generation = next_generation_++;
  Entry e;
  e.state = State::loading;
  e.generation = flight->generation;
  e.flight = flight;
  entries_[name] = e;
  ++counters_.loads_started;
  auto& live = live_flights_[name];
  flight->predecessors = live;
  live.push_back(flight);
  const std::uint64_t id = next_flight_id_++;
  flight_threads_.emplace(id, std::thread([this, name, flight, id] {
                            run_flight(name, flight);
                            std::lock_guard lock(mu_);
                            flight->ended = true;
                            flight->predecessors.clear();
                            auto it = live_flights_.find(name);
                            if (it != live_flights_.end()) {
                              std::erase(it->second, flight);
                              if (it->second.empty()) live_flights_.erase(it);
                            }
                            finished_flights_.push_back(id);
                            changed_.notify_all();  // a successor may start
                          }));
}

void Coordinator::reap_finished_flights() {
  // These threads have pushed their id as their last step under mu_; joining
  // them here waits only for them to return.
  for (std::uint64_t id : finished_flights_) {
    auto it = flight_threads_.find(id);
    if (it != flight_threads_.end()) {
      it->second.join();
      flight_threads_.erase(it);
    }
  }
  finished_flights_.clear();
}

bool Coordinator::superseded(const std::string& name, const Flight& flight) const {
  if (flight.done) return true;  // cancelled by an unload
  auto it = entries_.find(name);
  return it == entries_.end() || it->second.generation != flight.generation;
}

void Coordinator::run_flight(std::string name, std::shared_ptr<Flight> flight) {
  const auto start = Clock::now();
  Status s = load_steps(name, flight);
  std::lock_guard lock(mu_);
  if (s.ok()) {
    const auto it = entries_.find(name);
    spdlog::info("loaded '{}' generation {}: {} in {:.1f} ms", name, flight->generation,
                 format_size(it == entries_.end() ? 0 : it->second.bytes), ms_since(start));
  } else if (s.code() == Errc::cancelled) {
    spdlog::info("load of '{}' generation {} cancelled: {}", name, flight->generation, s.message());
  } else {
    spdlog::warn("load of '{}' failed: {}", name, s.to_string());
  }
  finish_flight(name, flight, std::move(s));
}

Result<std::string> Coordinator::run_job(const std::string& name, const Flight& flight,
                                         const jobs::Job& job, Clock::time_point deadline,
                                         const FileIdentity& file, bool* worker_failed,
                                         JobFate* fate) {
  for (int attempt = 0;; ++attempt) {
    *fate = JobFate{};
    // `cancelled` (the unload fired the token) is not a worker failure: it
    // is returned at once, with no strike, breaker failure or retry.
    auto result = pool_.run(job, deadline, fate, flight.cancel);
    if (result.ok() || !fate->worker_died || !is_worker_failure(result.code())) return result;
    *worker_failed = true;
    // Every worker death counts toward the breaker (a host that keeps
    // killing workers is a systematic failure too), but only what the
    // adapter can cause is a strike against it: a crash signal, an exit
    // mid-job, a missed deadline, a protocol violation. A signal genomed did
    // not send (the OOM killer's SIGKILL, an operator) is retried without a
    // strike, still bounded by job_retries and the breaker.
    const bool strike = fate->blame == Blame::adapter;
    bool quarantined_now = false;
    {
      std::lock_guard lock(mu_);
      breaker_.record_failure();
      if (strike) quarantined_now = quarantine_.strike(name, result.status().message(), file);
    }
    if (!strike) {
      spdlog::warn("worker lost during a job of '{}' ({}), not counted against it: {}", name,
                   blame_name(fate->blame), result.status().message());
    }
    if (quarantined_now) {
      return Status(result.code(),
                    result.status().message() + "; adapter '" + name + "' is now quarantined");
    }
    if (result.code() == Errc::timeout || attempt >= options_.job_retries ||
        Clock::now() >= deadline) {
      return result;
    }
    {
      std::lock_guard lock(mu_);
      ++counters_.load_retries;
    }
    spdlog::warn("retrying '{}' on a fresh worker (retry {} of {}): {}", name, attempt + 1,
                 options_.job_retries, result.status().message());
    // Never two writers in one range: the dead worker must be gone first.
    if (job.kind == jobs::JobKind::fill) fate->worker_gone.wait();
  }
}

Status Coordinator::fill_parts(const std::string& name, const Flight& flight, const jobs::Job& job,
                               Clock::time_point deadline, const FileIdentity& file,
                               bool* worker_failed, std::vector<JobFate>* fates) {
  // A single worker copies at the speed of one core's page-cache copy; a
  // large adapter is split into parts (disjoint tensor runs and byte
  // regions) that idle workers fill at once.
  const int wanted = options_.fill_parts > 0 ? options_.fill_parts : pool_.workers();
  const std::size_t parts =
      job.layout.total_bytes >= kSplitFillBytes ? static_cast<std::size_t>(std::max(1, wanted)) : 1;
  const std::vector<format::FillPart> split = format::split_fill(job.layout, parts);
  fates->assign(split.size(), JobFate{});
  std::vector<Status> results(split.size());
  std::vector<char> failed(split.size(), 0);
  auto run_part = [&](std::size_t i) {
    jobs::Job part_job = job;
    part_job.part = split[i];
    bool part_failed = false;
    auto body = run_job(name, flight, part_job, deadline, file, &part_failed, &(*fates)[i]);
    failed[i] = part_failed;
    if (!body) {
      results[i] = body.status();
      return;
    }
    results[i] = jobs::decode_fill_reply(*body).status();
  };
  std::vector<std::thread> helpers;
  for (std::size_t i = 1; i < split.size(); ++i) helpers.emplace_back(run_part, i);
  run_part(0);
  for (auto& t : helpers) t.join();
  for (std::size_t i = 0; i < split.size(); ++i) {
    if (failed[i]) *worker_failed = true;
  }
  for (const auto& r : results) {  // a cancellation explains the other parts' failures
    if (r.code() == Errc::cancelled) return r;
  }
  for (const auto& r : results) {
    if (!r.ok()) return r;
  }
  return Status::Ok();
}

Status Coordinator::wait_for_predecessors(std::unique_lock<std::mutex>& lock,
                                          const std::string& name, const Flight& flight) {
  const auto all_ended = [&] {
    return std::all_of(flight.predecessors.begin(), flight.predecessors.end(),
                       [](const auto& p) { return p->ended; });
  };
  if (all_ended()) return Status::Ok();
  spdlog::info("load of '{}' generation {} waits for the previous load of that name to stop", name,
               flight.generation);
  // The previous flight was cancelled (that is how its entry went away):
  // it ends within about 100 ms plus the kill grace. load_timeout is only
  // a backstop for a flight that does not.
  const bool ended = changed_.wait_for(lock, options_.load_timeout, [&] {
    return shutting_down_ || superseded(name, flight) || all_ended();
  });
  if (shutting_down_) return Status(Errc::shutting_down, "genomed is stopping");
  if (superseded(name, flight))
    return Status(Errc::cancelled, "adapter '" + name + "' was unloaded while it was loading");
  if (!ended) {
    return Status(Errc::timeout, "the previous load of '" + name + "' did not stop within " +
                                     std::to_string(options_.load_timeout.count()) +
                                     " ms of its cancellation; retry later");
  }
  return Status::Ok();
}

Status Coordinator::load_steps(const std::string& name, const std::shared_ptr<Flight>& flight) {
  {
    std::unique_lock lock(mu_);
    GENOMED_RETURN_IF_ERROR(wait_for_predecessors(lock, name, *flight));
  }
  GENOMED_ASSIGN_OR_RETURN(format::AdapterPaths paths, resolver_.resolve(name));
  const FileIdentity file = identity_of(paths.weights);
  CircuitBreaker::Ticket ticket;
  {
    std::lock_guard lock(mu_);
    GENOMED_RETURN_IF_ERROR(quarantine_.check(name, file));
    GENOMED_ASSIGN_OR_RETURN(ticket, breaker_.admit());
  }
  bool worker_failed = false;
  std::optional<DeferredFree> deferred;
  Status s = probe_reserve_fill(name, flight, paths, file, &worker_failed, &deferred);
  {
    std::lock_guard lock(mu_);
    breaker_.record(ticket, worker_failed);
    if (s.ok()) quarantine_.clear(name);
    if (deferred) {
      // Waiters learn the outcome now; the range follows once it is safe.
      finish_flight(name, flight, s);
    }
  }
  if (deferred) {
    for (auto& gone : deferred->workers_gone) gone.wait();
    if (deferred->offset) {
      std::lock_guard lock(mu_);
      cache_.cancel_reservation(*deferred->offset);
      changed_.notify_all();  // admission waiters may fit now
    }
  }
  return s;
}

Status Coordinator::probe_reserve_fill(const std::string& name,
                                       const std::shared_ptr<Flight>& flight,
                                       const format::AdapterPaths& paths, const FileIdentity& file,
                                       bool* worker_failed, std::optional<DeferredFree>* deferred) {
  const Status cancelled(Errc::cancelled,
                         "adapter '" + name + "' was unloaded while it was loading");

  // 1. Probe in a worker: untrusted files are parsed only there.
  JobFate fate;
  jobs::Job job;
  job.kind = jobs::JobKind::probe;
  job.paths = paths;
  const auto probe_start = Clock::now();
  auto probed =
      run_job(name, *flight, job, Clock::now() + options_.load_timeout, file, worker_failed, &fate);
  if (!probed.ok()) {
    // No range yet, but a worker stopped mid-probe (cancelled, hung) is
    // waited for before the flight ends: a reload must not run beside it.
    if (fate.worker_died) *deferred = DeferredFree{std::nullopt, {fate.worker_gone}};
    return probed.status();
  }
  std::string probe_body = std::move(probed).value();
  GENOMED_ASSIGN_OR_RETURN(jobs::ProbeReply probe, jobs::decode_probe_reply(probe_body));
  const format::ResidentLayout& layout = probe.probe.layout;
  spdlog::debug("probe of '{}': {} tensors, {} in {:.2f} ms", name, layout.tensors.size(),
                format_size(layout.total_bytes), ms_since(probe_start));
  if (layout.total_bytes == 0 || layout.total_bytes < layout.header_bytes) {
    return Status(Errc::worker_protocol, "worker planned an impossible layout for '" + name + "'");
  }

  // 2. Reserve a range, evicting unleased adapters in LRU order, or wait for
  //    leases to end up to the admission timeout.
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  {
    std::unique_lock lock(mu_);
    const auto admission_deadline = Clock::now() + options_.admission_timeout;
    for (;;) {
      if (shutting_down_) return Status(Errc::shutting_down, "genomed is stopping");
      if (superseded(name, *flight)) return cancelled;
      auto reservation = cache_.reserve(layout.total_bytes);
      if (reservation.ok()) {
        for (const auto& victim : reservation->evicted) {
          spdlog::info("evicted '{}' (least recently used, unleased) to make room for '{}'", victim,
                       name);
          entries_.erase(victim);
        }
        offset = reservation->offset;
        length = reservation->length;
        break;
      }
      if (reservation.code() != Errc::no_space) return reservation.status();
      ++admission_waiting_;
      const bool timed_out =
          changed_.wait_until(lock, admission_deadline) == std::cv_status::timeout &&
          Clock::now() >= admission_deadline;
      --admission_waiting_;
      if (timed_out) {
        return Status(Errc::no_space, "'" + name + "' needs " + format_size(layout.total_bytes) +
                                          " but the budget is held by leased adapters; waited " +
                                          std::to_string(options_.admission_timeout.count()) +
                                          " ms for leases to end (" +
                                          reservation.status().message() + ")");
      }
    }
  }

  // 3. Fill the range in a worker, then verify what it wrote.
  job.kind = jobs::JobKind::fill;
  job.offset = offset;
  job.length = length;
  job.layout = layout;
  const auto fill_deadline =
      Clock::now() + options_.load_timeout +
      std::chrono::milliseconds(static_cast<long long>(
          static_cast<double>(options_.timeout_per_gib.count()) *
          static_cast<double>(layout.total_bytes) / static_cast<double>(1ull << 30)));
  const auto fill_start = Clock::now();
  std::vector<JobFate> fates;
  Status filled = [&]() -> Status {
    GENOMED_RETURN_IF_ERROR(
        fill_parts(name, *flight, job, fill_deadline, file, worker_failed, &fates));
    auto written = format::read_layout_header(std::span<const std::byte>(
        arena_.data + offset, std::min<std::uint64_t>(length, arena_.size - offset)));
    if (!written)
      return Status(Errc::worker_protocol,
                    "after filling '" + name + "': " + written.status().message());
    if (!format::same_layout(*written, layout)) {
      return Status(Errc::worker_protocol,
                    "the resident header of '" + name + "' differs from its probe");
    }
    return Status::Ok();
  }();
  spdlog::debug("fill of '{}' into [{}, +{}): {} in {:.2f} ms", name, offset, length,
                filled.to_string(), ms_since(fill_start));

  // 4. Publish, unless unloaded meanwhile; a failed fill frees its range and
  //    leaves nothing a client can acquire.
  std::lock_guard lock(mu_);
  if (!filled.ok() || superseded(name, *flight) || shutting_down_) {
    DeferredFree pending{offset, {}};
    for (const auto& f : fates) {
      if (f.worker_died) pending.workers_gone.push_back(f.worker_gone);
    }
    if (!pending.workers_gone.empty())
      *deferred = std::move(pending);
    else
      cache_.cancel_reservation(offset);
    if (!filled.ok()) return filled;
    return shutting_down_ ? Status(Errc::shutting_down, "genomed is stopping") : cancelled;
  }
  cache_.insert(name, offset, layout.total_bytes);
  Entry& e = entries_.at(name);
  e.state = State::ready;
  e.offset = offset;
  e.bytes = layout.total_bytes;
  e.flight.reset();
  counters_.bytes_loaded += layout.total_bytes;
  for (const auto& w : flight->waiters) {
    if (w->wants_lease && !abandoned_.contains(w->conn))
      w->lease = grant_lease_locked(name, w->conn);
  }
  flight->waiters.clear();
  return Status::Ok();
}

void Coordinator::finish_flight(const std::string& name, const std::shared_ptr<Flight>& flight,
                                Status status) {
  if (flight->finished) return;
  flight->finished = true;
  if (status.ok()) {
    ++counters_.loads_completed;
  } else if (status.code() == Errc::cancelled) {
    ++counters_.loads_cancelled;
  } else {
    ++counters_.loads_failed;
  }
  if (!flight->done) {  // an unload may have finished it with `cancelled` already
    flight->done = true;
    flight->result = status;
  }
  if (!status.ok()) {
    auto it = entries_.find(name);
    if (it != entries_.end() && it->second.generation == flight->generation &&
        it->second.state == State::loading) {
      entries_.erase(it);  // nothing was created
    }
  }
  changed_.notify_all();
}

std::uint64_t Coordinator::grant_lease_locked(const std::string& name, ConnectionId conn) {
  const bool leased = cache_.lease(name);
  GENOMED_CHECK(leased,
                "a lease of an adapter that is not in the cache");  // REQUIRES: ready or draining
  const std::uint64_t id = next_lease_++;
  leases_[id] = LeaseRecord{name, conn};
  ++counters_.leases_granted;
  return id;
}

Result<ipc::AcquireReply> Coordinator::acquire(const std::vector<std::string>& names,
                                               ConnectionId conn, WaitHook* hook) {
  std::unique_lock lock(mu_);
  ipc::AcquireReply reply;
  for (const auto& name : names) {
    bool hit = false;
    Waiter claim{conn, true, 0};
    Status s = ensure_ready(lock, name, &hit, claim, hook);
    if (s.ok() && claim.lease == 0) claim.lease = grant_lease_locked(name, conn);
    if (!s.ok()) {
      if (claim.lease != 0) release_locked(claim.lease);
      for (const auto& g : reply.grants) release_locked(g.lease);
      if (names.size() > 1) return Status(s.code(), "'" + name + "': " + s.message());
      return s;
    }
    const Entry& e = entries_.at(name);
    reply.grants.push_back(ipc::LeaseGrant{name, claim.lease, e.offset, e.bytes, e.generation});
  }
  return reply;
}

void Coordinator::release_locked(std::uint64_t lease) {
  auto it = leases_.find(lease);
  if (it == leases_.end()) return;  // ended by abandon() (ids are never reused)
  const std::string name = std::move(it->second.name);
  leases_.erase(it);
  cache_.release(name);
  auto entry = entries_.find(name);
  const auto view = cache_.find(name);
  if (entry != entries_.end() && entry->second.state == State::draining && view &&
      view->leases == 0) {
    cache_.erase(name);
    entries_.erase(entry);
    spdlog::info("unloaded '{}': its last lease ended", name);
  }
  changed_.notify_all();  // admission waiters may fit now
}

void Coordinator::release(std::uint64_t lease, ConnectionId conn) {
  std::lock_guard lock(mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end() || it->second.conn != conn) {
    spdlog::warn("connection {} released lease {} which it does not hold; ignored", conn, lease);
    return;
  }
  release_locked(lease);
}

std::size_t Coordinator::release_all_locked(ConnectionId conn) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, rec] : leases_) {
    if (rec.conn == conn) ids.push_back(id);
  }
  for (auto id : ids) release_locked(id);
  return ids.size();
}

void Coordinator::release_all(ConnectionId conn) {
  std::lock_guard lock(mu_);
  abandoned_.erase(conn);
  if (const std::size_t n = release_all_locked(conn); n > 0)
    spdlog::info("connection {} closed holding {} lease(s); released", conn, n);
}

void Coordinator::abandon(ConnectionId conn) {
  std::lock_guard lock(mu_);
  if (!abandoned_.insert(conn).second) return;
  const std::size_t released = release_all_locked(conn);
  // A load whose waiters have all gone this way, this connection among
  // them, is wanted by nobody: stop it as an unload would.
  std::vector<std::string> cancelled;
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& e = it->second;
    const bool orphaned = e.state == State::loading &&
                          std::any_of(e.flight->waiters.begin(), e.flight->waiters.end(),
                                      [&](const auto& w) { return w->conn == conn; }) &&
                          std::all_of(e.flight->waiters.begin(), e.flight->waiters.end(),
                                      [&](const auto& w) { return abandoned_.contains(w->conn); });
    if (!orphaned) {
      ++it;
      continue;
    }
    cancelled.push_back(it->first);
    it =
        cancel_loading_locked(it, Status(Errc::cancelled, "every client waiting for the load of '" +
                                                              it->first + "' disconnected"));
  }
  spdlog::info(
      "connection {}: the client hung up while its request waited; {} lease(s) released, {} "
      "load(s) nobody else waited for cancelled",
      conn, released, cancelled.size());
  for (const auto& name : cancelled)
    spdlog::info("load of '{}' cancelled: every client waiting for it disconnected", name);
  changed_.notify_all();  // its waiting requests return now
}

bool Coordinator::holds_leases(ConnectionId conn) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, rec] : leases_) {
    if (rec.conn == conn) return true;
  }
  return false;
}

Result<ipc::LoadReply> Coordinator::load(const std::string& name, ConnectionId conn,
                                         WaitHook* hook) {
  std::unique_lock lock(mu_);
  bool hit = false;
  Waiter self{conn, false, 0};
  GENOMED_RETURN_IF_ERROR(ensure_ready(lock, name, &hit, self, hook));
  const Entry& e = entries_.at(name);
  cache_.touch(name);
  return ipc::LoadReply{name, e.bytes, e.generation, hit};
}

Result<ipc::UnloadReply> Coordinator::unload(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    GENOMED_RETURN_IF_ERROR(validate_name(name));
    if (quarantine_.contains(name)) {
      quarantine_.clear(name);
      spdlog::info("unload '{}': quarantine lifted", name);
      return ipc::UnloadReply{name, "unquarantined", 0};
    }
    return Status(Errc::not_loaded, "adapter '" + name + "' is not resident or loading");
  }
  quarantine_.clear(name);
  Entry& e = it->second;
  switch (e.state) {
    case State::loading: {
      spdlog::info("unload '{}': load generation {} cancelled", name, e.flight->generation);
      cancel_loading_locked(
          it, Status(Errc::cancelled, "adapter '" + name + "' was unloaded while it was loading"));
      return ipc::UnloadReply{name, "cancelled", 0};
    }
    case State::ready: {
      const auto view = cache_.find(name);
      if (view && view->leases > 0) {
        e.state = State::draining;
        spdlog::info("unload '{}': draining, {} lease(s) still held", name, view->leases);
        return ipc::UnloadReply{name, "draining", view->leases};
      }
      cache_.erase(name);
      entries_.erase(it);
      changed_.notify_all();
      spdlog::info("unloaded '{}'", name);
      return ipc::UnloadReply{name, "freed", 0};
    }
    case State::draining: {
      const auto view = cache_.find(name);
      return ipc::UnloadReply{name, "draining", view ? view->leases : 0};
    }
  }
  return Status(Errc::internal, "unknown state of '" + name + "'");
}

std::map<std::string, Coordinator::Entry>::iterator Coordinator::cancel_loading_locked(
    std::map<std::string, Entry>::iterator it, const Status& why) {
  Flight& flight = *it->second.flight;
  flight.done = true;
  flight.result = why;
  // Its queued jobs leave the pool's queue and the workers running its
  // probe or fill parts are stopped; the flight frees its range once they
  // are reaped (or when it next looks, between jobs).
  pool_.cancel(*flight.cancel);
  changed_.notify_all();
  return entries_.erase(it);
}

ipc::ListReply Coordinator::list() const {
  std::lock_guard lock(mu_);
  ipc::ListReply reply;
  for (const auto& [name, e] : entries_) {
    ipc::AdapterStatus s;
    s.name = name;
    s.state = state_name(static_cast<int>(e.state));
    s.bytes = e.bytes;
    s.generation = e.generation;
    if (const auto view = cache_.find(name)) s.leases = view->leases;
    reply.adapters.push_back(std::move(s));
  }
  return reply;
}

ipc::StatsReply Coordinator::stats() const {
  std::lock_guard lock(mu_);
  const PoolStats pool = pool_.stats();
  std::uint64_t resident = 0;
  std::uint64_t loading = 0;
  for (const auto& [name, e] : entries_) {
    if (e.state == State::loading)
      ++loading;
    else
      ++resident;
  }
  ipc::StatsReply r;
  auto put = [&](const char* key, std::uint64_t v) { r.values.emplace_back(key, v); };
  put("loads_started", counters_.loads_started);
  put("loads_completed", counters_.loads_completed);
  put("loads_failed", counters_.loads_failed);
  put("loads_cancelled", counters_.loads_cancelled);
  put("hits", counters_.hits);
  put("misses", counters_.misses);
  put("evictions", cache_.evictions());
  put("bytes_resident", cache_.bytes_resident());
  put("bytes_reserved", cache_.bytes_reserved());
  put("bytes_loaded", counters_.bytes_loaded);
  put("admission_waiting", admission_waiting_);
  put("budget_bytes", cache_.budget());
  put("adapters_resident", resident);
  put("adapters_loading", loading);
  put("leases_active", leases_.size());
  put("leases_granted", counters_.leases_granted);
  put("workers_alive", pool.workers_alive);
  put("worker_restarts", pool.worker_restarts);
  put("worker_crashes", pool.worker_crashes);
  put("worker_timeouts", pool.worker_timeouts);
  put("queue_depth", pool.queue_depth);
  put("load_retries", counters_.load_retries);
  put("quarantined", quarantine_.active());
  r.values.emplace_back("breaker_state", CircuitBreaker::state_name(breaker_.state()));
  put("breaker_transitions", breaker_.transitions());
  put("pool_healthy", pool.healthy ? 1 : 0);
  return r;
}

ipc::HealthReply Coordinator::health() const {
  const PoolStats pool = pool_.stats();
  std::lock_guard lock(mu_);
  if (shutting_down_) return ipc::HealthReply{false, "shutting down"};
  if (!pool.healthy) {
    return ipc::HealthReply{false, "loader workers restarted too often; spawning resumes in " +
                                       std::to_string(pool.unhealthy_ms_left) + " ms"};
  }
  if (const auto state = breaker_.state(); state != CircuitBreaker::State::closed) {
    return ipc::HealthReply{false, std::string("circuit breaker ") +
                                       CircuitBreaker::state_name(state) +
                                       ": loads fail fast until it closes"};
  }
  if (pool.workers_alive == 0) return ipc::HealthReply{false, "no loader worker is alive"};
  return ipc::HealthReply{true, ""};
}

void Coordinator::shutdown() {
  std::map<std::uint64_t, std::thread> threads;
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
  }
  changed_.notify_all();
  pool_.stop();  // queued jobs fail with shutting_down; running ones end
  {
    std::lock_guard lock(mu_);
    threads.swap(flight_threads_);
    finished_flights_.clear();
  }
  for (auto& [id, t] : threads) t.join();
}

}  // namespace genomed::loader
