#include "tools/stress/tally.h"

#include <bit>
#include <cmath>
#include <cstdio>

namespace genomed::stress {

int LatencyHistogram::bucket_of(std::uint64_t us) {
  if (us < kSub) return static_cast<int>(us);
  const int log = std::bit_width(us) - 1;  // >= 4
  const int sub = static_cast<int>((us >> (log - 4)) & (kSub - 1));
  return std::min(kBuckets - 1, (log - 3) * kSub + sub);
}

double LatencyHistogram::value_of(int bucket) {
  if (bucket < kSub) return bucket;
  const int log = bucket / kSub + 3;
  const int sub = bucket % kSub;
  // The middle of the bucket.
  return std::ldexp(kSub + sub + 0.5, log - 4);
}

void LatencyHistogram::record(std::uint64_t us) {
  buckets_[static_cast<std::size_t>(bucket_of(us))].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t seen = max_.load(std::memory_order_relaxed);
  while (us > seen && !max_.compare_exchange_weak(seen, us, std::memory_order_relaxed)) {
  }
}

double LatencyHistogram::quantile(double q) const {
  std::uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  std::uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
    if (seen >= std::max<std::uint64_t>(rank, 1))
      return std::min(value_of(i), static_cast<double>(max()));
  }
  return static_cast<double>(max());
}

std::uint64_t OpTally::errors_total() const {
  std::uint64_t n = 0;
  for (const auto& e : errors) n += e.load(std::memory_order_relaxed);
  return n;
}

const char* failure_name(Failure f) {
  switch (f) {
    case Failure::wrong_bytes: return "wrong_bytes";
    case Failure::unexpected_error: return "unexpected_error";
    case Failure::untyped_error: return "untyped_error";
    case Failure::hang: return "hang";
    case Failure::lost_connection: return "lost_connection";
    case Failure::bad_accepted: return "bad_adapter_accepted";
    case Failure::invariant: return "invariant";
    case Failure::daemon: return "daemon";
    case Failure::harness: return "harness";
    case Failure::empty_run: return "empty_run";
    case Failure::count: break;
  }
  return "?";
}

const char* chaos_name(Chaos c) {
  switch (c) {
    case Chaos::kill_worker: return "workers killed";
    case Chaos::stop_worker: return "workers stopped";
    case Chaos::kill_client_holding: return "clients killed holding";
    case Chaos::kill_client_waiting: return "clients killed waiting";
    case Chaos::bad_file: return "bad adapters";
    case Chaos::replace_file: return "files replaced";
    case Chaos::rewrite_file: return "files rewritten in place";
    case Chaos::reload_file: return "adapters reloaded";
    case Chaos::stop_daemon: return "daemon stopped";
    case Chaos::count: break;
  }
  return "?";
}

void Tally::fail_if_nothing_ran(double seconds) {
  if (ops_total.load() > 0) return;
  char text[128];
  std::snprintf(text, sizeof text, "no operation ran in %.1f s: the run tested nothing", seconds);
  fail(Failure::empty_run, text);
}

void Tally::fail(Failure f, const std::string& detail) {
  failures_[static_cast<int>(f)].fetch_add(1);
  MutexLock lock(details_mu_);
  if (details_.size() < kMaxDetails) details_.push_back(std::string(failure_name(f)) + ": " + detail);
}

std::uint64_t Tally::failures_total() const {
  std::uint64_t n = 0;
  for (const auto& f : failures_) n += f.load();
  return n;
}

std::vector<std::string> Tally::failure_details() const {
  MutexLock lock(details_mu_);
  return details_;
}

}  // namespace genomed::stress
