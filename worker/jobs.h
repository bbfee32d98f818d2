// Runs one job inside a genome-worker process and returns the reply frame.
#pragma once

#include <string>

#include "worker/job_protocol.h"

namespace genomed::jobs {

// `arena_fd` is the read-write descriptor of the arena the worker inherited;
// a fill maps only [job.offset, job.offset + job.length) of it.
std::string run_job(const Job& job, int arena_fd);

}  // namespace genomed::jobs
