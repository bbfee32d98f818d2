// Flights: one load of one name, each run by its own thread, and the
// predecessor chain that keeps two loads of one name from ever running
// side by side.
//
//   running -> decided -> finished -> ended
//
// - running: its steps run (load_pipeline.h); waiters wait.
// - decided: `result` is final (an unload or abandonment cancelled it, or
//   it finished); its waiters may leave.
// - finished: its outcome is counted and its entry settled (published, or
//   erased after a failure).
// - ended: its thread is done: every worker that died running its jobs is
//   reaped and its range is given back. Only then may a successor of the
//   same name run a job.
//
// Concurrent requests for one name join one flight (its `waiters`). A
// flight started while earlier flights of its name have not ended yet
// (cancelled ones, still stopping their workers) holds them as its
// `predecessors` and runs no job before they all have.
//
// Threads and locks: FlightThreads and every Flight field but `progress`
// (relaxed atomics, written by the fill's parts) and `cancel` (its own
// lock) live under the coordinator's mutex, which the coordinator holds
// when it calls in (it owns FlightThreads as a member guarded by it). A
// flight's thread runs its body without it, then takes it to end.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cache/resident_cache.h"
#include "common/mutex.h"
#include "common/status.h"
#include "loader/admission_queue.h"
#include "loader/load_pipeline.h"
#include "loader/pool.h"

namespace genomed::loader {

struct Request;  // request_path.h

struct Flight {
  enum class Phase { running, decided, finished, ended };

  std::string name;  // its entry's key: the adapter's name, or a hidden key (generations.h)
  // The adapter whose files it loads: `name`, or for a RELOAD's flight the
  // name whose generation it will replace.
  std::string source;
  // A PUBLISH's bytes (loader/published_adapter.h), read instead of
  // `source`'s files; null for a load of files. Constant after start.
  std::shared_ptr<const OpenedAdapter> content;
  std::uint64_t generation = 0;
  // Its thread waits here: for predecessors to end, for a range, for a cancel.
  std::condition_variable cv;
  // Only ever moves forward (the order above).
  Phase phase = Phase::running;
  Status result;  // final from `decided` on
  // Fired by an unload or abandonment: stops its queued and running jobs.
  std::shared_ptr<CancelToken> cancel = std::make_shared<CancelToken>();
  // Earlier flights of the same name not yet ended when this one started;
  // it runs no job before they all have (one load per name at a time).
  // Cleared when it ends.
  std::vector<std::shared_ptr<Flight>> predecessors;
  // Set once probed: the range it needs. A ticket gives it its range.
  std::shared_ptr<RangeClaim> claim;
  FillProgress progress;  // LIST shows it while loading
  // Set by its thread once filled and verified, before publish() reads it.
  layout::ContentDigest digest;
  // Requests waiting on it; each deregisters before it returns.
  std::vector<Request*> waiters;

  bool decided() const { return phase >= Phase::decided; }
  // A running flight's result becomes `why`; false if it was decided already.
  bool decide(Status why) {
    if (phase != Phase::running) return false;
    result = std::move(why);
    phase = Phase::decided;
    return true;
  }
  bool predecessors_ended() const;
  void notify_waiters() const;
};

// The flights' threads and the chain of flights of each name not yet ended.
class FlightThreads {
 public:
  // `mu`: the coordinator's mutex, which an ending thread takes.
  explicit FlightThreads(Mutex& mu) : mu_(mu) {}

  // Starts `flight` (its predecessors: the live flights of its name) on a
  // thread of its own that runs `body`, then ends it under the mutex.
  void start(const std::shared_ptr<Flight>& flight, std::function<void()> body);
  // Joins the threads that have ended (each returns right after).
  void reap();
  // Shutdown: wakes every live flight's thread.
  void wake_all();
  // Shutdown: hands over every thread, to be joined without the mutex.
  std::map<std::uint64_t, std::thread> take_threads();

  // Aborts unless every live flight is not ended, is in the chain of its
  // own name, and has only live predecessors of that name.
  void check_invariants() const;

 private:
  void end(std::uint64_t id, const std::shared_ptr<Flight>& flight);

  Mutex& mu_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::thread> threads_;
  // Flights not yet ended, by name, oldest first (see Flight::predecessors).
  // No empty chains.
  std::map<std::string, std::vector<std::shared_ptr<Flight>>> live_;
  std::vector<std::uint64_t> ended_;  // threads about to return
};

}  // namespace genomed::loader
