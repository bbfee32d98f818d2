#include "tools/stress/error_policy.h"

namespace genomed::stress {

ErrorPolicy::ErrorPolicy(const Options& options, const ChaosRates& running) {
  for (Errc c : {Errc::no_space, Errc::cancelled, Errc::draining, Errc::not_loaded,
                 Errc::overloaded})
    allowed_.set(static_cast<std::size_t>(c));
  // Only the kinds that run count: one asked for but skipped (no inspectable
  // daemon, not the harness's root) causes nothing, and accepting what it
  // would cause would let a daemon bug with that code pass. stop-daemon adds
  // nothing: a pause of genomed is nobody's fault. kill-clients cancels
  // loads nobody else waits for, whose workers restart: the pool may trip
  // its restart intensity (unhealthy), but no load anyone waits for fails.
  if (running.kill_workers > 0 || running.stop_workers > 0 || running.bad_files > 0 ||
      running.replace_files > 0 || running.rewrite_files > 0 || running.reload_files > 0) {
    for (Errc c : {Errc::worker_crashed, Errc::quarantined, Errc::circuit_open, Errc::unhealthy,
                   Errc::file_changed})
      allowed_.set(static_cast<std::size_t>(c));
  }
  if (running.kill_clients > 0) allowed_.set(static_cast<std::size_t>(Errc::unhealthy));
  if (running.may_time_out()) allowed_.set(static_cast<std::size_t>(Errc::timeout));
  for (const auto& name : options.allow)
    if (auto c = errc_from_name(name)) allowed_.set(static_cast<std::size_t>(*c));
}

bool ErrorPolicy::refuses_bad_file(Errc code) {
  const auto n = static_cast<int>(code);
  return (n >= 10 && n <= 47 && code != Errc::file_changed) || code == Errc::limit_exceeded ||
         (n >= 70 && n <= 76);
}

bool ErrorPolicy::record(Op op, const Status& status, const Client& client, Tally& tally,
                         const std::string& what) const {
  const Errc code = status.code();
  const std::string detail =
      std::string(op_name(op)) + " " + what + ": " + std::string(errc_name(code)) + ": " +
      status.message();
  if (code == Errc::timeout && client.broken()) {
    tally.fail(Failure::hang, detail);
    return true;
  }
  if (code == Errc::not_connected) {
    tally.fail(Failure::lost_connection, detail);
    return true;
  }
  if (code == Errc::internal || code == Errc::protocol_error || errc_name(code) == "unknown") {
    tally.fail(Failure::untyped_error, detail);
    return client.broken();
  }
  if (!allowed(code)) {
    tally.fail(Failure::unexpected_error, detail);
    return client.broken();
  }
  tally.op(op).errors[static_cast<std::size_t>(code) % kCodes].fetch_add(1, std::memory_order_relaxed);
  return client.broken();
}

std::string ErrorPolicy::allowed_names() const {
  std::string out;
  for (std::size_t i = 0; i < kCodes; ++i) {
    if (!allowed_[i]) continue;
    if (!out.empty()) out += ",";
    out += errc_name(static_cast<Errc>(i));
  }
  return out;
}

}  // namespace genomed::stress
