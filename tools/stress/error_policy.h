// Which typed errors a run accepts, and what every other outcome of a call
// means. Always accepted: what a correct daemon answers under load and races
// (no_space, cancelled, draining, not_loaded, overloaded). With chaos also
// what the injected faults of the kinds that run (effective_chaos, not those
// asked for) legitimately cause (worker_crashed, quarantined, circuit_open,
// unhealthy, file_changed; a daemon-side timeout only with a kind that
// stops, kills or feeds bad files to workers). kill-clients alone adds
// unhealthy (its cancelled loads restart workers), stop-daemon nothing: a
// pause of genomed is nobody's fault. --allow adds codes. A client-side
// deadline (the call timed out and broke its connection) is a hang; a lost
// connection, an untyped code or any other code is a failure.
#pragma once

#include <bitset>
#include <string>

#include "genomed/client.h"
#include "tools/stress/options.h"
#include "tools/stress/tally.h"

namespace genomed::stress {

class ErrorPolicy {
 public:
  // `running`: the chaos kinds that run (effective_chaos()).
  ErrorPolicy(const Options& options, const ChaosRates& running);

  bool allowed(Errc code) const { return allowed_[static_cast<std::size_t>(code) % kCodes]; }
  // The codes a malformed adapter may be refused with (file, config,
  // safetensors and contract errors).
  static bool refuses_bad_file(Errc code);

  // Records a failed call of `op` (about `what`) in `tally`: an allowed code is
  // counted, anything else is a failure. True if `client` is broken and must
  // be replaced.
  bool record(Op op, const Status& status, const Client& client, Tally& tally,
              const std::string& what) const;

  std::string allowed_names() const;

 private:
  std::bitset<kCodes> allowed_;
};

}  // namespace genomed::stress
