#include "worker/jobs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ipc/protocol.h"

namespace genomed::jobs {
namespace {

Status fill_range(const Job& job, ArenaWindow& arena, const std::optional<Fault>& fault, std::string* garbage) {
  if (job.length < job.layout.total_bytes) {
    return Status(Errc::internal, "assigned range of " + std::to_string(job.length) + " bytes is smaller than the " +
                                      std::to_string(job.layout.total_bytes) + " bytes the layout needs");
  }
  GENOMED_ASSIGN_OR_RETURN(std::span<std::byte> dest, arena.open(job.offset, job.length));
  struct CloseWindow {
    ArenaWindow& arena;
    ~CloseWindow() { arena.close(); }
  } close_window{arena};
  if (fault && fault->fires(Fault::Stage::fill, job.paths.weights)) {
    // Leave a half-written range behind, as a worker dying mid-copy would.
    std::fill(dest.begin(), dest.begin() + static_cast<std::ptrdiff_t>(job.length / 2), std::byte{0xAB});
    *garbage = trigger_fault(*fault);
    return Status::Ok();
  }
  return format::fill_adapter(job.paths, job.layout, dest);
}

}  // namespace

std::string run_job(const Job& job, ArenaWindow& arena, const std::optional<Fault>& fault) {
  if (job.kind == JobKind::probe) {
    if (fault && fault->fires(Fault::Stage::probe, job.paths.weights)) return trigger_fault(*fault);
    auto probe = format::probe_adapter(job.paths);
    if (!probe) return ipc::encode_error(probe.status());
    return encode_probe_reply(ProbeReply{std::move(probe).value()});
  }
  std::string garbage;
  Status s = fill_range(job, arena, fault, &garbage);
  if (!garbage.empty()) return garbage;
  if (!s.ok()) return ipc::encode_error(s);
  return encode_fill_reply(FillReply{job.layout.total_bytes});
}

}  // namespace genomed::jobs
