#include "loader/load_pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "common/safe_text.h"
#include "common/size_parse.h"
#include "jobs/job_protocol.h"
#include "layout/tensor_checksum.h"
#include "loader/client_log.h"
#include "loader/flight.h"

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

// Errors that judge what a worker read: the files' contents, their shapes,
// the contract between config and tensors, a documented limit of a file.
bool judges_the_files(Errc code) {
  const auto n = static_cast<int>(code);
  return (n >= 20 && n < 50) || code == Errc::limit_exceeded || (n >= 70 && n < 80);
}

// `failure`, unless it judges the files and they changed since they were
// opened: what the worker judged may then have been half-written, and the
// load fails with `file_changed` (so a retry reads the new version).
Status changed_or(const OpenedAdapter& adapter, const Status& failure) {
  if (!judges_the_files(failure.code()) || failure.code() == Errc::file_changed) return failure;
  const Status changed = adapter.unchanged();
  if (changed.code() != Errc::file_changed) return failure;
  return Status(Errc::file_changed,
                changed.message() + " (the worker had found: " + failure.to_string() + ")");
}

}  // namespace

Status LoadPipeline::load(const std::shared_ptr<Flight>& flight, LoadHost& host) {
  const std::string& name = flight->source;  // the files, quarantine and messages are its
  GENOMED_RETURN_IF_ERROR(host.await_predecessors(*flight));
  // The files are opened here, once: every job of the load reads these
  // (or a PUBLISH's sealed bytes, in their place).
  GENOMED_ASSIGN_OR_RETURN(const OpenedAdapter adapter,
                           flight->content ? Result<OpenedAdapter>(*flight->content)
                                           : resolver_.open(name));
  GENOMED_ASSIGN_OR_RETURN(CircuitBreaker::Ticket breaker_ticket,
                           resilience_.admit(name, adapter.weights));

  Fates fates;
  std::optional<cache::ResidentCache::Range> range;
  bool recorded = false;
  Status s = [&]() -> Status {
    // 1. Probe in a worker: untrusted files are parsed only there.
    GENOMED_ASSIGN_OR_RETURN(layout::ResidentLayout layout,
                             probe(name, adapter, flight->cancel, &fates));
    // 2. Room in the budget, through the admission queue.
    GENOMED_ASSIGN_OR_RETURN(range, host.await_range(flight, layout.total_bytes));
    // 3. Fill and verify.
    GENOMED_ASSIGN_OR_RETURN(
        flight->digest,
        fill(name, adapter, layout, *range, flight->cancel, &fates, &flight->progress));
    // 4. Publish, unless unloaded meanwhile. The outcome is recorded before
    // the waiters wake, so a client told that its load succeeded finds the
    // breaker already closed by it (a probe) and the quarantine lifted.
    GENOMED_RETURN_IF_ERROR(host.publish(*flight, *range, layout.total_bytes, [&] {
      resilience_.record(breaker_ticket, name, true, fates.worker_failed);
      recorded = true;
    }));
    range.reset();  // the entry owns it now
    return Status::Ok();
  }();
  if (!recorded) resilience_.record(breaker_ticket, name, false, fates.worker_failed);
  if (s.ok()) return s;

  // A failed load leaves nothing a client can acquire. Its waiters learn the
  // outcome now; a worker that died may still be writing into the range, and
  // a reload must not run beside it, so the flight ends (and the range is
  // given back) only once every such worker is reaped.
  if (!fates.workers_gone.empty()) {
    host.finish_early(flight, s);
    for (auto& gone : fates.workers_gone) gone.wait();
  }
  if (range) host.give_back(*range);
  return s;
}

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
    if (job.kind != jobs::JobKind::probe) fate.worker_gone.wait();
  }
}

void LoadPipeline::cancel(CancelToken& token) {
  pool_.cancel(token);  // fires the token
  budget_.wake();
}

Result<layout::ResidentLayout> LoadPipeline::probe(const std::string& name,
                                                   const OpenedAdapter& adapter,
                                                   const std::shared_ptr<CancelToken>& cancel,
                                                   Fates* fates) {
  jobs::Job job;
  job.kind = jobs::JobKind::probe;
  job.paths = adapter.paths;
  job.files = adapter.files;
  const auto start = clock_.now();
  const auto deadline = start + options_.load_timeout;
  // A large header takes its turn first (ProbeBudget), within the probe's
  // deadline, and keeps it through any retries.
  std::optional<ProbeBudget::Turn> turn;
  if (const std::uint64_t header = declared_header_bytes(adapter.files->weights.get());
      header > kLargeHeaderBytes) {
    client_log().debug("probe of {} declares a header of {}: it takes a large-header turn",
                       quote(name), format_size(header));
    GENOMED_ASSIGN_OR_RETURN(ProbeBudget::Turn taken, budget_.take(deadline, cancel.get()));
    turn.emplace(std::move(taken));
  }
  auto body = run_job(name, job, deadline, adapter.weights, cancel, fates);
  if (!body) return changed_or(adapter, body.status());
  auto probe = jobs::decode_probe_reply(*body);
  if (!probe) return changed_or(adapter, probe.status());
  layout::ResidentLayout& layout = probe->probe.layout;
  client_log().debug("probe of {}: {} tensors, {} in {:.2f} ms", quote(name), layout.tensors.size(),
                     format_size(layout.total_bytes), ms_between(start, clock_.now()));
  if (layout.total_bytes == 0 || layout.total_bytes < layout.header_bytes) {
    return Status(Errc::worker_protocol, "worker planned an impossible layout for " + quote(name));
  }
  return std::move(layout);
}

Result<layout::ContentDigest> LoadPipeline::fill(const std::string& name, const OpenedAdapter& adapter,
                          const layout::ResidentLayout& layout, cache::ResidentCache::Range range,
                          const std::shared_ptr<CancelToken>& cancel, Fates* fates,
                          FillProgress* progress) {
  if (progress != nullptr) progress->total.store(layout.total_bytes, std::memory_order_relaxed);
  jobs::Job job;
  job.kind = jobs::JobKind::fill;
  job.paths = adapter.paths;
  job.files = adapter.files;
  job.offset = range.offset;
  job.length = range.length;
  job.layout = layout;
  const auto start = clock_.now();
  const auto deadline =
      start + options_.load_timeout +
      std::chrono::milliseconds(static_cast<long long>(
          static_cast<double>(options_.timeout_per_gib.count()) *
          static_cast<double>(layout.total_bytes) / static_cast<double>(1ull << 30)));
  // A single worker copies at the speed of one core's page-cache copy; a
  // large adapter is split into parts (disjoint tensor runs and byte
  // regions) that idle workers fill at once.
  const int wanted = options_.fill_parts > 0 ? options_.fill_parts : pool_.workers();
  const std::size_t parts =
      layout.total_bytes >= kSplitFillBytes ? static_cast<std::size_t>(std::max(1, wanted)) : 1;
  const std::vector<layout::FillPart> split = layout::split_fill(layout, parts);
  layout::ContentDigest digest;
  Status filled = [&]() -> Status {
    std::vector<std::uint64_t> checksums;
    const Status written =
        fill_parts(name, job, split, deadline, adapter.weights, cancel, fates, &checksums, progress);
    if (!written.ok()) return changed_or(adapter, written);
    // Every part read the files the probe read; were they still that version?
    GENOMED_RETURN_IF_ERROR(adapter.unchanged());
    jobs::Job sealed = std::move(job);
    for (std::size_t i = 0; i < checksums.size(); ++i) {
      sealed.layout.tensors[i].checksum = checksums[i];
    }
    if (split.size() > 1) {
      // The parts left the header to be written once every checksum is known.
      sealed.kind = jobs::JobKind::seal;
      sealed.files.reset();
      GENOMED_ASSIGN_OR_RETURN(std::string body,
                               run_job(name, sealed, deadline, adapter.weights, cancel, fates));
      GENOMED_RETURN_IF_ERROR(jobs::decode_seal_reply(body));
    }
    GENOMED_RETURN_IF_ERROR(verify(name, sealed.layout, range));
    // Verified equal to the header clients read, so they can recompute it.
    digest = layout::content_digest(sealed.layout);
    return Status::Ok();
  }();
  client_log().debug("fill of {} into [{}, +{}) in {} part(s): {} in {:.2f} ms", quote(name),
                     range.offset, range.length, split.size(), printable(filled.to_string()),
                     ms_between(start, clock_.now()));
  if (!filled.ok()) return filled;
  return digest;
}

Status LoadPipeline::verify(const std::string& name, const layout::ResidentLayout& expected,
                            cache::ResidentCache::Range range) const {
  auto written = layout::read_layout_header(std::span<const std::byte>(
      arena_.data + range.offset,
      std::min<std::uint64_t>(range.length, arena_.size - range.offset)));
  if (!written) {
    return Status(Errc::worker_protocol,
                  "after filling '" + name + "': " + written.status().message());
  }
  if (!layout::same_layout(*written, expected)) {
    return Status(Errc::worker_protocol,
                  "the resident header of '" + name + "' differs from its probe");
  }
  for (std::size_t i = 0; i < expected.tensors.size(); ++i) {
    const layout::ResidentTensor& want = expected.tensors[i];
    if (written->tensors[i].checksum != want.checksum) {
      return Status(Errc::worker_protocol,
                    "the resident header of '" + name + "' records checksum " +
                        layout::checksum_text(written->tensors[i].checksum) + " for tensor '" +
                        want.name + "', but its fill reported " +
                        layout::checksum_text(want.checksum));
    }
  }
  return Status::Ok();
}

Status LoadPipeline::fill_parts(const std::string& name, const jobs::Job& job,
                                const std::vector<layout::FillPart>& split,
                                Clock::time_point deadline, const FileIdentity& file,
                                const std::shared_ptr<CancelToken>& cancel, Fates* fates,
                                std::vector<std::uint64_t>* checksums, FillProgress* progress) {
  std::vector<Status> results(split.size());
  std::vector<std::vector<std::uint64_t>> part_sums(split.size());
  std::vector<Fates> part_fates(split.size());
  auto run_part = [&](std::size_t i) {
    jobs::Job part_job = job;
    part_job.part = split[i];
    auto body = run_job(name, part_job, deadline, file, cancel, &part_fates[i]);
    if (!body) {
      results[i] = body.status();
      return;
    }
    auto reply = jobs::decode_fill_reply(*body);
    if (!reply) {
      results[i] = reply.status();
      return;
    }
    const std::size_t tensors = std::min(split[i].end, job.layout.tensors.size()) - split[i].begin;
    if (reply->checksums.size() != tensors) {
      results[i] =
          Status(Errc::worker_protocol,
                 "a fill of '" + name + "' reported " + std::to_string(reply->checksums.size()) +
                     " checksums for " + std::to_string(tensors) + " tensors");
      return;
    }
    part_sums[i] = std::move(reply->checksums);
    if (progress != nullptr) {
      std::uint64_t bytes = 0;
      for (std::size_t t = split[i].begin; t < split[i].begin + tensors; ++t)
        bytes += job.layout.tensors[t].length;
      progress->filled.fetch_add(bytes, std::memory_order_relaxed);
    }
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
  checksums->clear();
  for (const auto& sums : part_sums) checksums->insert(checksums->end(), sums.begin(), sums.end());
  return Status::Ok();
}

}  // namespace genomed::loader
