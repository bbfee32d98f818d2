#include "tools/stress/chaos.h"

#include <signal.h>

#include <algorithm>
#include <chrono>

#include "tools/stress/resources.h"

namespace genomed::stress {
namespace {

using Clock = std::chrono::steady_clock;

Clock::duration exponential(double rate, std::mt19937_64& rng) {
  const double seconds = std::exponential_distribution<double>(rate)(rng);
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

EffectiveChaos effective_chaos(const Options& options, const DaemonFacts& facts,
                               const Corpus& corpus, bool harness_root) {
  // A kind the target does not allow is skipped, with the reason: `--chaos`
  // alone asks for every kind that applies (options.h), and a SPEC naming
  // one the target cannot serve here is refused at parse time where that is
  // known then (replace-files without --spawn).
  EffectiveChaos out{options.chaos, {}};
  ChaosRates& rates = out.rates;
  if (facts.pid <= 0) {
    const char* why = "the daemon's processes are not visible here (another host or pid namespace)";
    if (rates.kill_workers > 0) out.skipped.push_back("kill-workers: " + std::string(why));
    if (rates.stop_workers > 0) out.skipped.push_back("stop-workers: " + std::string(why));
    rates.kill_workers = rates.stop_workers = 0;
  }
  if (rates.stop_daemon > 0 && (facts.pid <= 0 || !options.spawn)) {
    out.skipped.push_back("stop-daemon: it stops the daemon itself, and without --spawn the daemon "
                          "is not the harness's");
    rates.stop_daemon = 0;
  }
  if (rates.bad_files > 0 && !harness_root && corpus.bad().empty()) {
    out.skipped.push_back("bad-files: no --bad-root, and the root is not the harness's to write");
    rates.bad_files = 0;
  }
  std::size_t mutable_count = 0;
  for (const auto& a : corpus.good()) mutable_count += a.version_files.size() > 1;
  if (rates.writes_files() && (!harness_root || mutable_count == 0)) {
    const std::string why = !harness_root
                                ? "it rewrites adapter files, and without --spawn the root is "
                                  "not the harness's"
                                : "no mutable copies (--mutable-adapters 0)";
    if (rates.replace_files > 0) out.skipped.push_back("replace-files: " + why);
    if (rates.rewrite_files > 0) out.skipped.push_back("rewrite-files: " + why);
    if (rates.reload_files > 0) out.skipped.push_back("reload-files: " + why);
    rates.replace_files = rates.rewrite_files = rates.reload_files = 0;
  }
  return out;
}

ChaosMonkey::ChaosMonkey(const Options& options, const DaemonFacts& facts, const Corpus& corpus,
                         ScratchRoot* scratch, EffectiveChaos plan, const ErrorPolicy& policy,
                         Tally& tally, std::string self_exe)
    : options_(options),
      facts_(facts),
      corpus_(corpus),
      scratch_(scratch),
      policy_(policy),
      tally_(tally),
      self_exe_(std::move(self_exe)),
      rates_(plan.rates),
      skipped_(std::move(plan.skipped)),
      rng_(options.seed ^ 0xC4A05ull) {
  next_version_.assign(corpus.good().size(), 1);
}

ChaosMonkey::~ChaosMonkey() { stop(); }

void ChaosMonkey::start() {
  if (!rates_.any()) return;
  thread_ = std::thread([this] { loop(); });
}

void ChaosMonkey::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  resume_due(true);
  tend_victims(true);
  client_.reset();  // the daemon's footprint is compared without it
}

void ChaosMonkey::loop() {
  const auto now0 = Clock::now();
  struct Kind {
    double rate;
    void (ChaosMonkey::*act)();
    Clock::time_point next;
  };
  std::vector<Kind> kinds = {{rates_.kill_workers, &ChaosMonkey::kill_worker, {}},
                             {rates_.stop_workers, &ChaosMonkey::stop_worker, {}},
                             {rates_.kill_clients, &ChaosMonkey::start_victim, {}},
                             {rates_.bad_files, &ChaosMonkey::bad_file, {}},
                             {rates_.replace_files, &ChaosMonkey::replace_file, {}},
                             {rates_.rewrite_files, &ChaosMonkey::rewrite_file, {}},
                             {rates_.reload_files, &ChaosMonkey::reload_file, {}},
                             {rates_.stop_daemon, &ChaosMonkey::stop_daemon, {}}};
  std::erase_if(kinds, [](const Kind& k) { return k.rate <= 0; });
  for (auto& k : kinds) k.next = now0 + exponential(k.rate, rng_);
  while (true) {
    // Wake for the next event, or every millisecond while victims or stopped
    // workers need tending.
    auto wake = Clock::now() + std::chrono::milliseconds(200);
    for (const auto& k : kinds) wake = std::min(wake, k.next);
    if (!victims_.empty() || !stopped_.empty() || daemon_resume_at_)
      wake = std::min(wake, Clock::now() + std::chrono::milliseconds(1));
    if (wait_until(wake)) break;
    const auto now = Clock::now();
    for (auto& k : kinds) {
      if (now < k.next) continue;
      // Nothing else while the daemon is stopped: this thread continues it,
      // and an event that waits on the daemon would hold it stopped (a
      // bad-files acquire waits for its reply, up to the client's 60 s; a
      // rewrite-files open waits for the stopped daemon's read lease, up to
      // the kernel's lease-break-time). A due event runs once it resumes.
      if (daemon_resume_at_) continue;
      (this->*k.act)();
      k.next = now + exponential(k.rate, rng_);
    }
    resume_due(false);
    tend_victims(false);
  }
}

bool ChaosMonkey::wait_until(Clock::time_point wake) {
  MutexLock lock(mu_);
  lock.wait_until(cv_, wake, [&]() REQUIRES(mu_) { return stopping_; });
  return stopping_;
}

void ChaosMonkey::kill_worker() {
  const auto workers = workers_of(facts_.pid);
  if (workers.empty()) return;
  const pid_t victim = workers[std::uniform_int_distribution<std::size_t>(0, workers.size() - 1)(rng_)];
  if (::kill(victim, SIGKILL) == 0) tally_.chaos(Chaos::kill_worker);
}

void ChaosMonkey::stop_worker() {
  auto workers = workers_of(facts_.pid);
  std::erase_if(workers, [](pid_t p) { return testkit::process_state(p) == 'T'; });
  if (workers.empty()) return;
  const pid_t victim = workers[std::uniform_int_distribution<std::size_t>(0, workers.size() - 1)(rng_)];
  const auto ref = testkit::ref_of(victim);
  if (::kill(victim, SIGSTOP) != 0) return;
  tally_.chaos(Chaos::stop_worker);
  const int ms = std::uniform_int_distribution<int>(200, 3000)(rng_);
  stopped_.push_back({ref, Clock::now() + std::chrono::milliseconds(ms)});
}

// The whole daemon, every thread: as a VM pause or a debugger would. The
// harness spawned it (its pid cannot be reused while unreaped).
void ChaosMonkey::stop_daemon() {
  if (daemon_resume_at_) return;
  if (::kill(facts_.pid, SIGSTOP) != 0) return;
  tally_.chaos(Chaos::stop_daemon);
  const int ms = std::uniform_int_distribution<int>(200, 3000)(rng_);
  daemon_resume_at_ = Clock::now() + std::chrono::milliseconds(ms);
}

void ChaosMonkey::resume_due(bool all) {
  const auto now = Clock::now();
  if (daemon_resume_at_ && (all || now >= *daemon_resume_at_)) {
    ::kill(facts_.pid, SIGCONT);
    daemon_resume_at_.reset();
  }
  std::erase_if(stopped_, [&](const Stopped& s) {
    if (!all && now < s.resume_at) return false;
    // The daemon may have killed it (a load deadline) and its pid been reused.
    if (testkit::alive(s.worker)) ::kill(s.worker.pid, SIGCONT);
    return true;
  });
}

void ChaosMonkey::start_victim() {
  if (corpus_.good().empty()) return;
  if (!client_) {
    auto c = Client::connect(facts_.socket, "genome-stress chaos");
    if (!c) return;
    client_.emplace(std::move(*c));
  }
  const AdapterTruth& a =
      corpus_.good()[std::uniform_int_distribution<std::size_t>(0, corpus_.good().size() - 1)(rng_)];
  const bool kill_when_held = std::bernoulli_distribution(0.5)(rng_);
  if (!kill_when_held) {
    // Make it cold, so the victim is likely waiting for a load when killed.
    auto u = client_->unload(a.name, options_.op_deadline);
    if (!u && policy_.record(Op::unload, u.status(), *client_, tally_, a.name + " (chaos)"))
      client_.reset();
  }
  auto v = spawn_victim(self_exe_, facts_.socket, a.name);
  if (!v) {
    tally_.fail(Failure::harness, "kill-clients: " + v.status().to_string());
    return;
  }
  v->kill_when_held = kill_when_held;
  // A cold load takes a millisecond or more: killed within 0-2 ms of
  // connecting, the victim is most often still waiting for it.
  v->kill_at = Clock::now() + std::chrono::microseconds(
                                  std::uniform_int_distribution<int>(0, 2000)(rng_));
  victims_.push_back(*v);
}

void ChaosMonkey::tend_victims(bool all) {
  const auto now = Clock::now();
  std::erase_if(victims_, [&](Victim& v) {
    poll_victim(v);
    // Waiting victims are killed a few ms after connecting: in their acquire,
    // most likely waiting for the load the unload before made necessary.
    const bool due = v.kill_when_held ? v.held : (v.connected && now >= v.kill_at);
    if (!all && !due && !v.ended && now - v.started < std::chrono::seconds(30) + options_.op_deadline)
      return false;
    if (v.held && !all) tally_.chaos(Chaos::kill_client_holding);
    else if (v.connected && !v.ended && !all) tally_.chaos(Chaos::kill_client_waiting);
    kill_victim(v);
    return true;
  });
}

void ChaosMonkey::bad_file() {
  std::string name;
  if (scratch_ != nullptr) {
    auto written = scratch_->write_bad(bad_written_++);
    if (!written) {
      tally_.fail(Failure::harness, "bad-files: " + written.status().to_string());
      return;
    }
    name = *written;
  } else {
    name = corpus_.bad()[std::uniform_int_distribution<std::size_t>(0, corpus_.bad().size() - 1)(rng_)];
  }
  if (!client_) {
    auto c = Client::connect(facts_.socket, "genome-stress chaos");
    if (!c) return;
    client_.emplace(std::move(*c));
  }
  tally_.chaos(Chaos::bad_file);
  const auto t0 = Clock::now();
  auto lease = client_->acquire(name, options_.op_deadline);
  tally_.op(Op::bad_acquire).latency.record(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
  if (lease) {
    tally_.fail(Failure::bad_accepted, name + " was served (" +
                                           std::to_string(lease->tensors().size()) + " tensors)");
    return;
  }
  const Errc code = lease.code();
  if (ErrorPolicy::refuses_bad_file(code)) {
    tally_.bad_refused[static_cast<std::size_t>(code) % kCodes].fetch_add(1);
    tally_.op(Op::bad_acquire).ok.fetch_add(1);
    return;
  }
  if (policy_.record(Op::bad_acquire, lease.status(), *client_, tally_, name)) client_.reset();
}

bool ChaosMonkey::next_mutable(std::size_t* index, int* version) {
  std::vector<std::size_t> mutables;
  for (std::size_t i = 0; i < corpus_.good().size(); ++i)
    if (corpus_.good()[i].version_files.size() > 1) mutables.push_back(i);
  if (mutables.empty()) return false;
  *index = mutables[std::uniform_int_distribution<std::size_t>(0, mutables.size() - 1)(rng_)];
  *version = next_version_[*index]++ %
             static_cast<int>(corpus_.good()[*index].version_files.size());
  return true;
}

void ChaosMonkey::replace_file() {
  std::size_t i = 0;
  int v = 0;
  if (!next_mutable(&i, &v)) return;
  if (Status s = scratch_->replace(corpus_.good()[i], v); !s.ok()) {
    tally_.fail(Failure::harness, "replace-files: " + s.to_string());
    return;
  }
  tally_.chaos(Chaos::replace_file);
}

void ChaosMonkey::rewrite_file() {
  std::size_t i = 0;
  int v = 0;
  if (!next_mutable(&i, &v)) return;
  const bool truncate_first = std::bernoulli_distribution(0.5)(rng_);
  if (Status s = scratch_->rewrite(corpus_.good()[i], v, truncate_first); !s.ok()) {
    tally_.fail(Failure::harness, "rewrite-files: " + s.to_string());
    return;
  }
  tally_.chaos(Chaos::rewrite_file);
}

void ChaosMonkey::reload_file() {
  std::size_t i = 0;
  int v = 0;
  if (!next_mutable(&i, &v)) return;
  const AdapterTruth& a = corpus_.good()[i];
  if (Status s = scratch_->replace(a, v); !s.ok()) {
    tally_.fail(Failure::harness, "reload-files: " + s.to_string());
    return;
  }
  if (!client_) {
    auto c = Client::connect(facts_.socket, "genome-stress chaos");
    if (!c) return;
    client_.emplace(std::move(*c));
  }
  // The workload's leases are checked by the verifier against every
  // version (one version per lease); here only the RELOAD's own answer. It
  // may lose to the other kinds (a rewrite in place, a worker killed, no
  // room for two copies, an unload by the workload), never with a code
  // outside the policy.
  auto r = client_->reload(a.name, options_.op_deadline);
  if (!r && r.code() != Errc::no_space && r.code() != Errc::cancelled &&
      r.code() != Errc::draining &&
      policy_.record(Op::load, r.status(), *client_, tally_, a.name + " (chaos reload)")) {
    client_.reset();
  }
  tally_.chaos(Chaos::reload_file);
}

}  // namespace genomed::stress
