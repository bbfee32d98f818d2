#include "tools/stress/workload.h"

#include <algorithm>
#include <chrono>

namespace genomed::stress {
namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t micros_since(Clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
}

}  // namespace

Workload::Workload(const Options& options, const std::string& socket, const Corpus& corpus,
                   const Verifier& verifier, const ErrorPolicy& policy, Invariants& invariants,
                   Tally& tally)
    : options_(options),
      socket_(socket),
      corpus_(corpus),
      verifier_(verifier),
      policy_(policy),
      invariants_(invariants),
      tally_(tally),
      popularity_(corpus.good().size(), options.zipf, options.seed) {
  for (const auto& [op, w] : options.mix) {
    if (w <= 0) continue;
    mix_.emplace_back(op, w);
    mix_total_ += w;
  }
}

Workload::~Workload() {
  stop();
  join();
}

void Workload::start() {
  running_.store(options_.clients);
  for (int i = 0; i < options_.clients; ++i) threads_.emplace_back([this, i] { client_loop(i); });
}

void Workload::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

bool Workload::take_op() {
  if (stop_.load(std::memory_order_relaxed)) return false;
  if (options_.ops) return ops_started_.fetch_add(1) < *options_.ops;
  return true;
}

Op Workload::pick_op(std::mt19937_64& rng) const {
  int x = std::uniform_int_distribution<int>(0, mix_total_ - 1)(rng);
  for (const auto& [op, w] : mix_) {
    if (x < w) return op;
    x -= w;
  }
  return mix_.back().first;
}

void Workload::hold(std::mt19937_64& rng) const {
  // The client's think time with the lease held (what an inference server
  // does with it), not a synchronisation.
  const int ms = std::uniform_int_distribution<int>(options_.hold_min_ms, options_.hold_max_ms)(rng);
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

void Workload::client_loop(int index) {
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(index) + 1);
  ClientOptions copts;
  copts.client_name = "genome-stress client " + std::to_string(index);
  copts.request_timeout = options_.op_deadline;
  copts.load_timeout = options_.op_deadline;
  copts.connect_timeout = options_.op_deadline;
  std::optional<Client> client;
  while (take_op()) {
    if (!client) {
      auto c = Client::connect(socket_, copts);
      if (!c) {
        tally_.fail(c.code() == Errc::timeout ? Failure::hang : Failure::lost_connection,
                    "connect: " + c.status().to_string());
        // The daemon is gone or not answering: the monitor reports it; this
        // client stops instead of spinning.
        break;
      }
      client.emplace(std::move(*c));
    }
    const Op op = pick_op(rng);
    if (perform(op, *client, rng)) client.reset();
    tally_.ops_total.fetch_add(1, std::memory_order_relaxed);
  }
  running_.fetch_sub(1);
}

bool Workload::acquire_one(Client& client, std::mt19937_64& rng) {
  const AdapterTruth& a = corpus_.good()[popularity_.pick(rng)];
  const auto t0 = Clock::now();
  auto lease = client.acquire(a.name);
  tally_.op(Op::acquire).latency.record(micros_since(t0));
  if (!lease) return policy_.record(Op::acquire, lease.status(), client, tally_, a.name);
  tally_.leases_held.fetch_add(1);
  tally_.op(Op::acquire).ok.fetch_add(1, std::memory_order_relaxed);
  verifier_.check(*lease, a.name, rng);
  hold(rng);
  lease->release();
  tally_.leases_held.fetch_sub(1);
  return false;
}

bool Workload::acquire_batch(Client& client, std::mt19937_64& rng) {
  const std::size_t n = corpus_.good().size();
  const std::size_t want = std::uniform_int_distribution<std::size_t>(
      std::min<std::size_t>(2, n), std::min<std::size_t>(static_cast<std::size_t>(options_.batch_max), n))(rng);
  std::vector<std::string> names;
  for (int tries = 0; names.size() < want && tries < 64; ++tries) {
    const std::string& name = corpus_.good()[popularity_.pick(rng)].name;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  const auto t0 = Clock::now();
  auto leases = client.acquire(names);
  tally_.op(Op::batch).latency.record(micros_since(t0));
  std::string what = names.front() + (names.size() > 1 ? " +" + std::to_string(names.size() - 1) : "");
  if (!leases) return policy_.record(Op::batch, leases.status(), client, tally_, what);
  tally_.leases_held.fetch_add(static_cast<std::int64_t>(leases->size()));
  tally_.op(Op::batch).ok.fetch_add(1, std::memory_order_relaxed);
  if (leases->size() != names.size()) {
    tally_.fail(Failure::wrong_bytes, "batch " + what + ": " + std::to_string(leases->size()) +
                                          " leases for " + std::to_string(names.size()) + " names");
  }
  for (std::size_t i = 0; i < leases->size() && i < names.size(); ++i)
    verifier_.check((*leases)[i], names[i], rng);
  hold(rng);
  const auto count = static_cast<std::int64_t>(leases->size());
  leases->clear();
  tally_.leases_held.fetch_sub(count);
  return false;
}

template <class Call, class Check>
bool Workload::observe(Op op, Client& client, const std::string& what, Call call, Check check) {
  const auto t0 = Clock::now();
  auto result = call();
  tally_.op(op).latency.record(micros_since(t0));
  if (!result) return policy_.record(op, result.status(), client, tally_, what);
  check(*result);
  tally_.op(op).ok.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool Workload::perform(Op op, Client& client, std::mt19937_64& rng) {
  switch (op) {
    case Op::acquire:
      return acquire_one(client, rng);
    case Op::batch:
      return acquire_batch(client, rng);
    case Op::load: {
      const std::string& name = corpus_.good()[popularity_.pick(rng)].name;
      return observe(op, client, name, [&] { return client.load(name); },
                     [&](const LoadInfo& info) {
                       if (info.name != name || info.bytes == 0)
                         tally_.fail(Failure::wrong_bytes,
                                     "load " + name + " answered for '" + info.name + "' with " +
                                         std::to_string(info.bytes) + " bytes");
                     });
    }
    case Op::unload: {
      const std::string& name = corpus_.good()[popularity_.pick(rng)].name;
      return observe(op, client, name, [&] { return client.unload(name); },
                     [&](const UnloadInfo& info) {
                       const std::string& o = info.outcome;
                       if (o != "freed" && o != "draining" && o != "cancelled" &&
                           o != "unquarantined")
                         tally_.fail(Failure::unexpected_error,
                                     "unload " + name + ": outcome '" + o + "'");
                     });
    }
    case Op::list:
      return observe(op, client, "", [&] { return client.list(); },
                     [&](const auto& list) { invariants_.check_list(list); });
    case Op::stats:
      return observe(op, client, "", [&] { return client.stats(); },
                     [&](const auto& stats) { invariants_.check_stats(stats); });
    case Op::bad_acquire:
    case Op::count:
      break;
  }
  return false;
}

}  // namespace genomed::stress
