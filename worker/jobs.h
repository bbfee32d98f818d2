// Runs one job inside a genome-worker process and returns the reply frame.
#pragma once

#include <string>

#include "worker/arena_window.h"
#include "worker/fault.h"
#include "worker/job_protocol.h"

namespace genomed::jobs {

// A fill opens only [job.offset, job.offset + job.length) of `arena` for
// writing, and closes it again before returning. `fault` (tests only)
// injects a failure at its stage.
std::string run_job(const Job& job, ArenaWindow& arena, const std::optional<Fault>& fault);

}  // namespace genomed::jobs
