// Runs one job inside a genome-worker process and returns the reply frame.
#pragma once

#include <string>

#include "worker/fault.h"
#include "worker/job_protocol.h"

namespace genomed::jobs {

// `arena_fd` is the read-write descriptor of the arena the worker inherited;
// a fill maps only [job.offset, job.offset + job.length) of it. `fault`
// (tests only) injects a failure at its stage.
std::string run_job(const Job& job, int arena_fd, const std::optional<Fault>& fault);

}  // namespace genomed::jobs
