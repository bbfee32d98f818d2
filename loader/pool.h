// The pool of genome-worker processes. One slot thread per worker owns that
// worker: it spawns it, feeds it one job at a time from a shared bounded
// queue, learns of its death from EOF on its socket, reaps it, and starts a
// replacement. Callers block in run() until their job's reply, its failure,
// or its deadline.
//
// Threads: `workers` slot threads. Lock: mu_ guards the queue and counters;
// it is never held across I/O with a worker.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "worker/job_protocol.h"

namespace genomed::loader {

using Clock = std::chrono::steady_clock;

struct PoolOptions {
  std::string worker_executable;
  int workers = 2;
  int arena_fd = -1;             // read-write arena descriptor, inherited by workers
  std::size_t queue_limit = 256;  // pending jobs beyond which run() fails with overloaded
  std::vector<std::string> worker_extra_args;  // test-only fault injection
};

struct PoolStats {
  std::uint64_t workers_alive = 0;
  std::uint64_t worker_restarts = 0;
  std::uint64_t worker_crashes = 0;
  std::uint64_t worker_timeouts = 0;
  std::uint64_t queue_depth = 0;
  std::uint64_t jobs_run = 0;
};

class Pool {
 public:
  explicit Pool(PoolOptions options);
  ~Pool();  // stop()

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Spawns every worker; a worker that cannot start (wrong path) is an error
  // here rather than at the first load.
  Status start();

  // Runs `job` on some worker and returns its raw reply frame body. Errors:
  // worker_crashed (the worker died holding the job), timeout (the deadline
  // passed, queued or running; a running worker is killed and replaced),
  // overloaded (queue full), shutting_down.
  Result<std::string> run(const jobs::Job& job, Clock::time_point deadline);

  // Fails queued jobs with shutting_down, ends every worker, joins the slots.
  void stop();

  PoolStats stats() const;

 private:
  struct Pending;
  struct Slot;
  void slot_main(Slot& slot);
  // Runs one job on the slot's worker; replaces the worker if it dies or hangs.
  Result<std::string> execute(Slot& slot, const Pending& job);
  Status ensure_worker(Slot& slot);

  const PoolOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;  // constant after start()

  // State below is protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable work_;  // signalled when the queue gains a job or stopping_
  std::deque<std::shared_ptr<Pending>> queue_;
  bool stopping_ = false;
  PoolStats stats_;
};

}  // namespace genomed::loader
