#include "worker/jobs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ipc/protocol.h"

namespace genomed::jobs {
namespace {

// How this fill reads its weights: the worker's options, or, under a read
// fault (tests), direct reads forced and the fault applied to them.
format::ReadOptions read_options(const Job& job, const std::optional<Fault>& fault,
                                 format::ReadOptions read) {
  if (!fault || !fault->fires(Fault::Stage::read, job.paths.weights)) return read;
  read.direct_below_cached = 2;  // direct whatever the page cache holds
  read.direct_min = 0;
  read.faults.eio = fault->action == Fault::Action::eio;
  read.faults.short_reads = fault->action == Fault::Action::short_read;
  read.faults.no_direct = fault->action == Fault::Action::no_direct;
  return read;
}

Status fill_range(const Job& job, ArenaWindow& arena, const std::optional<Fault>& fault,
                  const format::ReadOptions& read, std::string* garbage,
                  std::vector<std::uint64_t>* checksums) {
  if (job.length < job.layout.total_bytes) {
    return Status(Errc::internal, "assigned range of " + std::to_string(job.length) +
                                      " bytes is smaller than the " +
                                      std::to_string(job.layout.total_bytes) +
                                      " bytes the layout needs");
  }
  // Only this part's region is opened: a part cannot write another's bytes.
  const auto [region_begin, region_end] = layout::part_region(job.layout, job.part);
  GENOMED_RETURN_IF_ERROR(
      arena.open(job.offset + region_begin, std::max<std::uint64_t>(region_end - region_begin, 1))
          .status());
  // Left open: the caller closes it once the reply is sent (run_job).
  const std::span<std::byte> dest = arena.view(job.offset, job.length);
  const bool fault_fires = fault && fault->fires(Fault::Stage::fill, job.paths.weights);
  if (fault_fires && fault->action == Fault::Action::stop) {
    // Stopped before the fill reads the files; what a writer does to them
    // meanwhile is what the load's check must catch.
    trigger_fault(*fault);
  } else if (fault_fires) {
    // Leave a half-written region behind, as a worker dying mid-copy would.
    std::fill(
        dest.begin() + static_cast<std::ptrdiff_t>(region_begin),
        dest.begin() + static_cast<std::ptrdiff_t>(region_begin + (region_end - region_begin) / 2),
        std::byte{0xAB});
    *garbage = trigger_fault(*fault);
    return Status::Ok();
  }
  return format::fill_adapter(job.paths, *job.files, job.layout, dest, job.part, checksums,
                              read_options(job, fault, read));
}

// Writes the header of a fill that was split into parts, with the checksums
// the parts reported (in job.layout): [offset, offset + header_bytes) only.
Status seal_range(const Job& job, ArenaWindow& arena) {
  if (job.length < job.layout.total_bytes || job.layout.header_bytes == 0) {
    return Status(Errc::internal, "seal of " + job.paths.weights + ": the layout's " +
                                      std::to_string(job.layout.total_bytes) +
                                      " bytes do not fit the assigned range of " +
                                      std::to_string(job.length));
  }
  GENOMED_ASSIGN_OR_RETURN(const std::span<std::byte> header,
                           arena.open(job.offset, job.layout.header_bytes));
  layout::write_layout_header(job.layout, header);
  arena.close();
  return Status::Ok();
}

}  // namespace

Result<const format::BaseModel*> WorkerState::base_model() {
  if (!base_model_dir_) return static_cast<const format::BaseModel*>(nullptr);
  if (!base_model_) {
    GENOMED_ASSIGN_OR_RETURN(base_model_, format::read_base_model(*base_model_dir_));
  }
  return &*base_model_;
}

std::string run_job(const Job& job, WorkerState& state) {
  const std::optional<Fault>& fault = state.fault();
  if (job.kind == JobKind::base_model) {
    auto base = state.base_model();
    if (!base) return ipc::encode_error(base.status());
    if (*base == nullptr) {
      return ipc::encode_error(Status(Errc::bad_request, "this worker has no --base-model"));
    }
    return encode_base_model_reply({(*base)->model_type, (*base)->files, (*base)->shapes.size()});
  }
  if (job.kind == JobKind::probe) {
    if (fault && fault->fires(Fault::Stage::probe, job.paths.weights)) {
      std::string reply = trigger_fault(*fault);
      if (!reply.empty()) return reply;  // else stopped, and continued
    }
    auto base = state.base_model();
    if (!base) return ipc::encode_error(base.status());
    auto probe = format::probe_adapter(job.paths, *job.files, *base);
    if (!probe) return ipc::encode_error(probe.status());
    return encode_probe_reply(ProbeReply{std::move(probe).value()});
  }
  if (job.kind == JobKind::seal) {
    const Status sealed = seal_range(job, state.arena());
    return sealed.ok() ? encode_seal_reply() : ipc::encode_error(sealed);
  }
  std::string garbage;
  FillReply reply{job.layout.total_bytes, {}};
  Status s =
      fill_range(job, state.arena(), fault, state.read_options(), &garbage, &reply.checksums);
  if (!garbage.empty()) return garbage;
  if (!s.ok()) return ipc::encode_error(s);
  return encode_fill_reply(reply);
}

}  // namespace genomed::jobs
