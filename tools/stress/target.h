// The daemon under test: one the harness spawns (--spawn: on its scratch
// root, with --ready-fd, stopped with SIGTERM at the end and required to exit
// 0 within 30 s) or one it attaches to (--socket). Fills in DaemonFacts: the
// pid if /proc shows it here, the configured workers, the budget.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"
#include "tools/stress/invariants.h"
#include "tools/stress/options.h"
#include "tools/stress/scratch_root.h"

namespace genomed::stress {

class Target {
 public:
  // Starts genomed on `scratch` with the harness's defaults and the user's flags.
  static Result<Target> spawn(const Options& options, const ScratchRoot& scratch);
  static Result<Target> attach(const Options& options);

  Target(Target&&) noexcept;
  Target& operator=(Target&&) = delete;
  ~Target();

  DaemonFacts& facts() { return facts_; }
  bool spawned() const { return spawned_; }
  // True while the daemon runs (a spawned one not exited; an attached one answers).
  bool alive() const;
  // Spawned: SIGTERM, wait up to 30 s; a non-zero exit or a hang is an error.
  Status stop();
  // The genomed command line (spawned).
  const std::string& command() const { return command_; }

 private:
  Target() = default;
  // Reads the budget and the worker count over a first connection.
  Status learn(const Options& options, int workers_configured);

  DaemonFacts facts_;
  bool spawned_ = false;
  bool reaped_ = false;
  std::string command_;
};

}  // namespace genomed::stress
