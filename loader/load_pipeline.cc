#include "loader/load_pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "common/safe_text.h"
#include "common/size_parse.h"
#include "jobs/job_protocol.h"

namespace genomed::loader {
namespace {

// Fills at least this large are split across workers (fill_parts).
constexpr std::uint64_t kSplitFillBytes = 8ull << 20;

bool is_worker_failure(Errc code) {
  return code == Errc::worker_crashed || code == Errc::timeout || code == Errc::worker_protocol;
}

double ms_between(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

}  // namespace

Result<std::string> LoadPipeline::run_job(const std::string& name, const jobs::Job& job,
                                          Clock::time_point deadline, const FileIdentity& file,
                                          const std::shared_ptr<CancelToken>& cancel,
                                          Fates* fates) {
  for (int attempt = 0;; ++attempt) {
    JobFate fate;
    auto result = pool_.run(job, deadline, &fate, cancel);
    if (fate.worker_died) fates->workers_gone.push_back(fate.worker_gone);
    if (result.ok() || !fate.worker_died || !is_worker_failure(result.code())) return result;
    fates->worker_failed = true;
    const auto verdict = resilience_.worker_died(name, fate, result.status(), file, attempt,
                                                 clock_.now() >= deadline);
    if (!verdict.strike) {
      spdlog::warn("worker lost during a job of {} ({}), not counted against it: {}", quote(name),
                   blame_name(fate.blame), printable(result.status().message()));
    }
    if (verdict.quarantined) {
      return Status(result.code(),
                    result.status().message() + "; adapter " + quote(name) + " is now quarantined");
    }
    if (!verdict.retry) return result;
    retries_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("retrying {} on a fresh worker (retry {}): {}", quote(name), attempt + 1,
                 printable(result.status().message()));
    // Never two writers in one range: the dead worker must be gone first.
    if (job.kind == jobs::JobKind::fill) fate.worker_gone.wait();
  }
}

void LoadPipeline::cancel(CancelToken& token) {
  pool_.cancel(token);  // fires the token
  budget_.wake();
}

Result<format::ResidentLayout> LoadPipeline::probe(const std::string& name,
                                                   const format::AdapterPaths& paths,
                                                   const FileIdentity& file,
                                                   const std::shared_ptr<CancelToken>& cancel,
                                                   Fates* fates) {
  jobs::Job job;
  job.kind = jobs::JobKind::probe;
  job.paths = paths;
  const auto start = clock_.now();
  const auto deadline = start + options_.load_timeout;
  // A large header takes its turn first (ProbeBudget), within the probe's
  // deadline, and keeps it through any retries.
  std::optional<ProbeBudget::Turn> turn;
  if (const std::uint64_t header = declared_header_bytes(paths.weights);
      header > kLargeHeaderBytes) {
    spdlog::debug("probe of '{}' declares a header of {}: it takes a large-header turn", name,
                  format_size(header));
    GENOMED_ASSIGN_OR_RETURN(ProbeBudget::Turn taken, budget_.take(deadline, cancel.get()));
    turn.emplace(std::move(taken));
  }
  GENOMED_ASSIGN_OR_RETURN(std::string body, run_job(name, job, deadline, file, cancel, fates));
  GENOMED_ASSIGN_OR_RETURN(jobs::ProbeReply probe, jobs::decode_probe_reply(body));
  format::ResidentLayout& layout = probe.probe.layout;
  spdlog::debug("probe of {}: {} tensors, {} in {:.2f} ms", quote(name), layout.tensors.size(),
                format_size(layout.total_bytes), ms_between(start, clock_.now()));
  if (layout.total_bytes == 0 || layout.total_bytes < layout.header_bytes) {
    return Status(Errc::worker_protocol, "worker planned an impossible layout for " + quote(name));
  }
  return std::move(layout);
}

Status LoadPipeline::fill(const std::string& name, const format::AdapterPaths& paths,
                          const format::ResidentLayout& layout, cache::ResidentCache::Range range,
                          const FileIdentity& file, const std::shared_ptr<CancelToken>& cancel,
                          Fates* fates) {
  jobs::Job job;
  job.kind = jobs::JobKind::fill;
  job.paths = paths;
  job.offset = range.offset;
  job.length = range.length;
  job.layout = layout;
  const auto start = clock_.now();
  const auto deadline =
      start + options_.load_timeout +
      std::chrono::milliseconds(static_cast<long long>(
          static_cast<double>(options_.timeout_per_gib.count()) *
          static_cast<double>(layout.total_bytes) / static_cast<double>(1ull << 30)));
  Status filled = [&]() -> Status {
    GENOMED_RETURN_IF_ERROR(fill_parts(name, job, deadline, file, cancel, fates));
    auto written = format::read_layout_header(std::span<const std::byte>(
        arena_.data + range.offset,
        std::min<std::uint64_t>(range.length, arena_.size - range.offset)));
    if (!written)
      return Status(Errc::worker_protocol,
                    "after filling " + quote(name) + ": " + written.status().message());
    if (!format::same_layout(*written, layout)) {
      return Status(Errc::worker_protocol,
                    "the resident header of " + quote(name) + " differs from its probe");
    }
    return Status::Ok();
  }();
  spdlog::debug("fill of {} into [{}, +{}): {} in {:.2f} ms", quote(name), range.offset,
                range.length, printable(filled.to_string()), ms_between(start, clock_.now()));
  return filled;
}

Status LoadPipeline::fill_parts(const std::string& name, const jobs::Job& job,
                                Clock::time_point deadline, const FileIdentity& file,
                                const std::shared_ptr<CancelToken>& cancel, Fates* fates) {
  // A single worker copies at the speed of one core's page-cache copy; a
  // large adapter is split into parts (disjoint tensor runs and byte
  // regions) that idle workers fill at once.
  const int wanted = options_.fill_parts > 0 ? options_.fill_parts : pool_.workers();
  const std::size_t parts =
      job.layout.total_bytes >= kSplitFillBytes ? static_cast<std::size_t>(std::max(1, wanted)) : 1;
  const std::vector<format::FillPart> split = format::split_fill(job.layout, parts);
  std::vector<Status> results(split.size());
  std::vector<Fates> part_fates(split.size());
  auto run_part = [&](std::size_t i) {
    jobs::Job part_job = job;
    part_job.part = split[i];
    auto body = run_job(name, part_job, deadline, file, cancel, &part_fates[i]);
    results[i] = body ? jobs::decode_fill_reply(*body).status() : body.status();
  };
  std::vector<std::thread> helpers;
  for (std::size_t i = 1; i < split.size(); ++i) helpers.emplace_back(run_part, i);
  run_part(0);
  for (auto& t : helpers) t.join();
  for (const auto& f : part_fates) {
    fates->worker_failed = fates->worker_failed || f.worker_failed;
    fates->workers_gone.insert(fates->workers_gone.end(), f.workers_gone.begin(),
                               f.workers_gone.end());
  }
  for (const auto& r : results) {  // a cancellation explains the other parts' failures
    if (r.code() == Errc::cancelled) return r;
  }
  for (const auto& r : results) {
    if (!r.ok()) return r;
  }
  return Status::Ok();
}

}  // namespace genomed::loader
