#include "worker/jobs.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ipc/protocol.h"

namespace genomed::jobs {
namespace {

Status fill_range(const Job& job, int arena_fd, const std::optional<Fault>& fault, std::string* garbage) {
  if (job.length < job.layout.total_bytes) {
    return Status(Errc::internal, "assigned range of " + std::to_string(job.length) + " bytes is smaller than the " +
                                      std::to_string(job.layout.total_bytes) + " bytes the layout needs");
  }
  // MAP_POPULATE: the arena's pages already exist (reserved and pre-faulted
  // by the supervisor), so populating the page tables up front is cheaper
  // than one minor fault per page during the copy.
  void* p = ::mmap(nullptr, job.length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, arena_fd,
                   static_cast<off_t>(job.offset));
  if (p == MAP_FAILED) {
    return Status(Errc::internal, std::string("cannot map the assigned arena range: ") + std::strerror(errno));
  }
  const std::span<std::byte> dest(static_cast<std::byte*>(p), job.length);
  if (fault && fault->fires(Fault::Stage::fill, job.paths.weights)) {
    // Leave a half-written range behind, as a worker dying mid-copy would.
    std::fill(dest.begin(), dest.begin() + static_cast<std::ptrdiff_t>(job.length / 2), std::byte{0xAB});
    *garbage = trigger_fault(*fault);
    ::munmap(p, job.length);
    return Status::Ok();
  }
  Status s = format::fill_adapter(job.paths, job.layout, dest);
  ::munmap(p, job.length);
  return s;
}

}  // namespace

std::string run_job(const Job& job, int arena_fd, const std::optional<Fault>& fault) {
  if (job.kind == JobKind::probe) {
    if (fault && fault->fires(Fault::Stage::probe, job.paths.weights)) return trigger_fault(*fault);
    auto probe = format::probe_adapter(job.paths);
    if (!probe) return ipc::encode_error(probe.status());
    return encode_probe_reply(ProbeReply{std::move(probe).value()});
  }
  std::string garbage;
  Status s = fill_range(job, arena_fd, fault, &garbage);
  if (!garbage.empty()) return garbage;
  if (!s.ok()) return ipc::encode_error(s);
  return encode_fill_reply(FillReply{job.layout.total_bytes});
}

}  // namespace genomed::jobs
