// Runs one job inside a genome-worker process and returns the reply frame.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "jobs/job_protocol.h"
#include "worker/arena_window.h"
#include "worker/fault.h"
#include "worker/format/adapter_files.h"
#include "worker/format/base_model.h"

namespace genomed::jobs {

// What a worker process keeps between jobs.
class WorkerState {
 public:
  WorkerState(ArenaWindow& arena, std::optional<Fault> fault,
              std::optional<std::string> base_model_dir, format::ReadOptions read = {})
      : arena_(arena),
        fault_(std::move(fault)),
        base_model_dir_(std::move(base_model_dir)),
        read_(read) {}

  ArenaWindow& arena() { return arena_; }
  // How fills read their weights (--buffered-cold-reads), before a test fault.
  const format::ReadOptions& read_options() const { return read_; }
  const std::optional<Fault>& fault() const { return fault_; }
  // The --base-model, read at its first use and kept for the process's life
  // (nullptr without --base-model). A failed read is retried next time.
  Result<const format::BaseModel*> base_model();

 private:
  ArenaWindow& arena_;
  const std::optional<Fault> fault_;  // tests only: injects a failure at its stage
  const std::optional<std::string> base_model_dir_;
  std::optional<format::BaseModel> base_model_;
  const format::ReadOptions read_;
};

// Runs one job and returns its reply frame. A fill opens only its part's
// region of [job.offset, job.offset + job.length) for writing, a seal only
// the header's. A seal closes it again before returning; a fill leaves it
// open, and the caller closes it (state.arena().close()) after sending the
// reply and before the next job: closing walks every page table entry of
// the region (6-7 ms per 128 MiB of 4 KiB pages, measured), time the
// supervisor need not wait for. Probe and fill read the adapter only
// through job.files.
std::string run_job(const Job& job, WorkerState& state);

}  // namespace genomed::jobs
