#include "tools/stress/invariants.h"

#include <set>
#include <string>
#include <thread>

#include "tools/testkit/eventually.h"

namespace genomed::stress {
namespace {

using Clock = std::chrono::steady_clock;

const char* const kWithinBudget = "resident bytes within the budget";
const char* const kStates = "listed states are loading|ready|draining";
const char* const kStuck = "no load stuck in loading";
const char* const kSettles = "settles: nothing loading, queued or waiting";
const char* const kWorkers = "workers back to the configured number";
const char* const kLeases = "leases active = leases the harness holds";
const char* const kSum = "resident bytes = sum of listed entries";
const char* const kSweep = "every resident adapter verifies in full";
const char* const kResources = "daemon fds/threads/RSS back to baseline";

// Entries with equal digests share one copy (docs/protocol.md §8.2): each
// content counted once.
std::uint64_t listed_bytes(const std::vector<AdapterInfo>& list) {
  std::uint64_t n = 0;
  std::set<std::string> seen;
  for (const auto& e : list) {
    if (e.digest.empty() || seen.insert(e.digest).second) n += e.bytes;
  }
  return n;
}

// bytes_resident counts each entry's arena range, rounded up to 4096-byte
// pages (docs/protocol.md, STATS); LIST gives the unrounded size.
std::uint64_t listed_pages_bytes(const std::vector<AdapterInfo>& list) {
  std::uint64_t n = 0;
  for (const auto& e : list) n += (e.bytes + 4095) / 4096 * 4096;
  return n;
}

std::uint64_t listed_leases(const std::vector<AdapterInfo>& list) {
  std::uint64_t n = 0;
  for (const auto& e : list) n += e.leases;
  return n;
}

}  // namespace

std::uint64_t stat_of(const Stats& stats, const std::string& key) {
  for (const auto& [k, v] : stats)
    if (k == key)
      if (const auto* n = std::get_if<std::uint64_t>(&v)) return *n;
  return 0;
}

void Invariants::record(const std::string& name, bool ok, const std::string& detail,
                        const std::string& observed) {
  {
    MutexLock lock(mu_);
    CheckResult* r = nullptr;
    for (auto& existing : results_)
      if (existing.name == name) r = &existing;
    if (r == nullptr) r = &results_.emplace_back(CheckResult{name});
    ++r->checked;
    if (!ok) {
      if (r->violations++ == 0) r->detail = detail;
    } else if (r->violations == 0 && !observed.empty()) {
      r->detail = observed;
    }
  }
  if (!ok) tally_.fail(Failure::invariant, name + ": " + detail);
}

void Invariants::check_stats(const Stats& stats) {
  const std::uint64_t resident = stat_of(stats, "bytes_resident");
  const std::uint64_t budget = stat_of(stats, "budget_bytes");
  record(kWithinBudget, resident <= budget,
         "bytes_resident " + std::to_string(resident) + " > budget " + std::to_string(budget));
}

void Invariants::check_list(const std::vector<AdapterInfo>& list) {
  std::string bad;
  for (const auto& e : list)
    if (e.state != "loading" && e.state != "ready" && e.state != "draining")
      bad = e.name + " is '" + e.state + "'";
  record(kStates, bad.empty(), bad);
  const std::uint64_t sum = listed_bytes(list);
  if (facts_.budget > 0)
    record(kWithinBudget, sum <= facts_.budget,
           "listed entries hold " + std::to_string(sum) + " bytes > budget " +
               std::to_string(facts_.budget));
}

void Invariants::sample(const Stats& stats, const std::vector<AdapterInfo>& list) {
  check_stats(stats);
  check_list(list);
  const auto now = Clock::now();
  std::map<std::string, std::pair<std::uint64_t, Clock::time_point>> still;
  std::string stuck;
  for (const auto& e : list) {
    if (e.state != "loading") continue;
    auto it = loading_since_.find(e.name);
    const auto since =
        (it != loading_since_.end() && it->second.first == e.generation) ? it->second.second : now;
    still[e.name] = {e.generation, since};
    if (now - since > options_.op_deadline)
      stuck = e.name + " (generation " + std::to_string(e.generation) + ") has been loading for " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - since).count()) +
              " s";
  }
  loading_since_ = std::move(still);
  record(kStuck, stuck.empty(), stuck);
}

void Invariants::quiesce(const Corpus& corpus, const Verifier& verifier,
                         const ErrorPolicy& policy, std::mt19937_64& rng) {
  ClientOptions copts;
  copts.client_name = "genome-stress quiesce";
  copts.request_timeout = options_.op_deadline;
  copts.load_timeout = options_.op_deadline;
  auto client = Client::connect(facts_.socket, copts);
  if (!client) {
    record(kSettles, false, "cannot connect: " + client.status().to_string());
    return;
  }

  // 1. Settle: poll (a condition with a bound, not a sleep for ordering).
  const auto deadline = Clock::now() + options_.quiesce_timeout;
  Stats stats;
  std::vector<AdapterInfo> list;
  bool settled = false, workers_ok = false, leases_ok = false;
  std::string state;
  while (true) {
    auto s = client->stats();
    auto l = client->list();
    if (s && l) {
      stats = std::move(*s);
      list = std::move(*l);
      std::uint64_t draining_unleased = 0;
      for (const auto& e : list) draining_unleased += e.state == "draining" && e.leases == 0;
      const auto loading = stat_of(stats, "adapters_loading");
      const auto queued = stat_of(stats, "queue_depth");
      const auto waiting = stat_of(stats, "admission_waiting");
      const auto alive = stat_of(stats, "workers_alive");
      const auto leases = stat_of(stats, "leases_active");
      // A worker still busy once nothing is loading holds a job nobody waits
      // for any more (an abandoned load, stuck): not settled either.
      const auto busy = stat_of(stats, "workers_busy");
      settled = loading == 0 && queued == 0 && waiting == 0 && draining_unleased == 0 && busy == 0;
      workers_ok = facts_.workers_configured == 0 ||
                   alive == static_cast<std::uint64_t>(facts_.workers_configured);
      leases_ok = options_.shared || (leases == 0 && listed_leases(list) == 0);
      state = "loading " + std::to_string(loading) + ", queued " + std::to_string(queued) +
              ", admission waiting " + std::to_string(waiting) + ", draining without leases " +
              std::to_string(draining_unleased) + ", workers busy " + std::to_string(busy) +
              ", workers alive " + std::to_string(alive) +
              " of " + std::to_string(facts_.workers_configured) + ", leases active " +
              std::to_string(leases) + " (listed " + std::to_string(listed_leases(list)) + ")";
      if (settled && workers_ok && leases_ok) break;
    } else if (client->broken()) {
      if (auto again = Client::connect(facts_.socket, copts)) client = std::move(again);
    }
    if (Clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string after = " after " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                               options_.quiesce_timeout).count()) + " s: " + state;
  record(kSettles, settled, "not settled" + after, state);
  record(kWorkers, workers_ok, "not back" + after);
  if (!options_.shared) record(kLeases, leases_ok, "harness holds 0" + after);

  // 2. Accounting of one quiet moment.
  const std::uint64_t resident = stat_of(stats, "bytes_resident");
  // Names with equal content share one copy, counted once in bytes_resident
  // and once per further name in bytes_shared (0 from older daemons).
  const std::uint64_t shared = stat_of(stats, "bytes_shared");
  if (!options_.shared || settled) {
    record(kSum, resident + shared == listed_pages_bytes(list),
           "bytes_resident " + std::to_string(resident) + " + bytes_shared " +
               std::to_string(shared) + ", listed entries page-rounded " +
               std::to_string(listed_pages_bytes(list)),
           std::to_string(list.size()) + " entries, " + std::to_string(resident) + " bytes");
  }
  check_stats(stats);

  // 3. Leases held now = leases the daemon counts: K probe leases, then 0.
  if (!options_.shared && settled) {
    std::vector<Lease> held;
    for (const auto& a : corpus.good()) {
      if (held.size() == 3) break;
      auto lease = client->acquire(a.name);
      if (lease) {
        verifier.check(*lease, a.name, rng, true);
        held.push_back(std::move(*lease));
      } else if (policy.record(Op::acquire, lease.status(), *client, tally_, a.name + " (quiesce)")) {
        // Broken (a hang, counted): its leases end when it closes.
        held.clear();
        auto again = Client::connect(facts_.socket, copts);
        if (!again) return;
        client = std::move(again);
        break;
      }
    }
    auto s = client->stats();
    auto l = client->list();
    if (s && l) {
      const auto active = stat_of(*s, "leases_active");
      record(kLeases, active == held.size() && listed_leases(*l) == held.size(),
             "harness holds " + std::to_string(held.size()) + ", daemon counts " +
                 std::to_string(active) + " (listed " + std::to_string(listed_leases(*l)) + ")");
    }
    const std::size_t held_count = held.size();
    held.clear();  // releases
    std::uint64_t active = 0;
    const bool zero = testkit::eventually(
        [&] {
          auto s2 = client->stats();
          active = s2 ? stat_of(*s2, "leases_active") : ~0ull;
          return active == 0;
        },
        10000);
    record(kLeases, zero,
           "harness released every lease, daemon still counts " + std::to_string(active),
           "held " + std::to_string(held_count) + " probe leases, then 0");
  }

  // 4. Every resident adapter, read once more in full.
  if (auto l = client->list()) {
    std::uint64_t checked = 0;
    const auto wrong_before = tally_.failures(Failure::wrong_bytes);
    for (const auto& e : *l) {
      if (e.state != "ready" || corpus.find(e.name) == nullptr) continue;
      auto lease = client->acquire(e.name);
      if (!lease) {
        if (policy.record(Op::acquire, lease.status(), *client, tally_, e.name + " (sweep)")) break;
        continue;
      }
      verifier.check(*lease, e.name, rng, true);
      ++checked;
    }
    record(kSweep, tally_.failures(Failure::wrong_bytes) == wrong_before,
           "a resident adapter's bytes differ from its file (see failures)",
           std::to_string(checked) + " resident adapters verified");
  }

  // 5. The footprint, with the same single connection open as at the baseline.
  if (facts_.pid > 0 && !options_.shared) {
    Footprint now;
    std::string why;
    const bool back = testkit::eventually(
        [&] {
          now = footprint_of(facts_.pid);
          return back_to_baseline(facts_.baseline, now, &why);
        },
        10000);
    record(kResources, back, why + " (descriptors opened since the baseline: " +
                                 facts_.baseline.new_fds(now) + ")",
           facts_.baseline.to_string() + " -> " + now.to_string());
  }
}

std::vector<CheckResult> Invariants::results() const {
  MutexLock lock(mu_);
  return results_;
}

}  // namespace genomed::stress
