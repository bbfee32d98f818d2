// What happened, counted lock-free by every client thread and read by the
// status line and the report: per operation a latency histogram and errors by
// code; the failures (each a reason the verdict is FAIL) with the first few
// details; chaos events by kind; verification volume.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "genomed/errc.h"
#include "tools/stress/options.h"

namespace genomed::stress {

// Latencies in microseconds, log-linear buckets (16 per power of two: a
// quantile is reported within about 4 %); max exact.
class LatencyHistogram {
 public:
  void record(std::uint64_t us);
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }
  // The q-quantile (0..1) in microseconds; 0 when empty.
  double quantile(double q) const;

 private:
  static constexpr int kSub = 16;
  static constexpr int kBuckets = 64 * kSub;
  static int bucket_of(std::uint64_t us);
  static double value_of(int bucket);
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> max_{0};
};

inline constexpr int kCodes = 128;  // Errc values are below this

struct OpTally {
  LatencyHistogram latency;                       // every call, ok or not
  std::atomic<std::uint64_t> ok{0};
  std::array<std::atomic<std::uint64_t>, kCodes> errors{};  // typed, allowed
  std::uint64_t errors_total() const;
};

// Why a run fails; the report names each with its count.
enum class Failure {
  wrong_bytes,       // a view's bytes, dtype or shape differ from every version of the file
  unexpected_error,  // a typed error outside the allowed set
  untyped_error,     // internal, protocol_error, or a code this build does not know
  hang,              // a call not answered within --op-deadline
  lost_connection,   // the daemon closed a connection or died
  bad_accepted,      // a malformed adapter was served
  invariant,         // an invariant broke (details name which)
  daemon,            // the daemon died, or did not exit cleanly
  harness,           // the harness could not do its job (spawn, files, victims)
  empty_run,         // no operation ran: the run tested nothing
  count
};
inline constexpr int kFailures = static_cast<int>(Failure::count);
const char* failure_name(Failure f);

enum class Chaos {
  kill_worker,
  stop_worker,
  kill_client_holding,
  kill_client_waiting,
  bad_file,
  replace_file,
  rewrite_file,
  reload_file,
  stop_daemon,
  count
};
inline constexpr int kChaos = static_cast<int>(Chaos::count);
const char* chaos_name(Chaos c);

class Tally {
 public:
  OpTally& op(Op o) { return ops_[static_cast<int>(o)]; }
  const OpTally& op(Op o) const { return ops_[static_cast<int>(o)]; }

  void fail(Failure f, const std::string& detail);
  std::uint64_t failures(Failure f) const { return failures_[static_cast<int>(f)].load(); }
  std::uint64_t failures_total() const;
  std::vector<std::string> failure_details() const;
  // Records empty_run if no operation ran in the run's `seconds`: a run that
  // executed nothing must not pass.
  void fail_if_nothing_ran(double seconds);

  void chaos(Chaos c) { chaos_[static_cast<int>(c)].fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t chaos_count(Chaos c) const { return chaos_[static_cast<int>(c)].load(); }

  std::atomic<std::uint64_t> leases_verified{0};
  std::atomic<std::uint64_t> tensors_verified{0};
  std::atomic<std::uint64_t> bytes_verified{0};
  std::atomic<std::uint64_t> ops_total{0};
  std::atomic<std::int64_t> leases_held{0};  // by the harness's client threads, now
  // bad-files: how the daemon refused each malformed adapter, by code.
  std::array<std::atomic<std::uint64_t>, kCodes> bad_refused{};

 private:
  std::array<OpTally, kOps> ops_{};
  std::array<std::atomic<std::uint64_t>, kFailures> failures_{};
  std::array<std::atomic<std::uint64_t>, kChaos> chaos_{};
  mutable Mutex details_mu_;
  std::vector<std::string> details_ GUARDED_BY(details_mu_);  // the first kMaxDetails
  static constexpr std::size_t kMaxDetails = 40;
};

}  // namespace genomed::stress
