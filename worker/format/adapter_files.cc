// The worker's two jobs on an adapter's files, read through the descriptors
// the supervisor opened beneath its root. Every read is a pread: the same
// open files serve the probe and every part of the fill, in several worker
// processes at once, so no read may depend on the shared file offset.
#include "worker/format/adapter_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "layout/tensor_checksum.h"
#include "worker/format/layout_plan.h"
#include "worker/format/peft_config.h"
#include "worker/format/read_into.h"
#include "worker/format/regular_file.h"

namespace genomed::format {
namespace {

Result<PeftConfig> read_config(const layout::AdapterPaths& paths, const layout::AdapterFds& files) {
  GENOMED_ASSIGN_OR_RETURN(std::string text,
                           read_small_fd(files.config.get(), paths.config, kMaxConfigBytes));
  return parse_peft_config(text, paths.config);
}

// Everything probe and fill both need: the validated header and the plan.
struct Checked {
  SafetensorsHeader header;
  layout::AdapterContract contract;
  layout::ProbeResult probe;
};

Result<Checked> check_adapter(const layout::AdapterPaths& paths, const layout::AdapterFds& files) {
  GENOMED_ASSIGN_OR_RETURN(const struct stat weights_st,
                           regular_file_stat(files.weights.get(), paths.weights));
  auto config = read_config(paths, files);
  if (!config) return config.status();
  auto header = read_safetensors_header(files.weights.get(), paths.weights);
  if (!header) return header.status();
  const auto size = static_cast<std::uint64_t>(weights_st.st_size);
  if (header->data_offset + header->data_size != size) {
    return Result<Checked>(Errc::file_changed, paths.weights + " changed size while being read");
  }
  if (header->tensors.empty()) {
    return Result<Checked>(Errc::adapter_empty, paths.weights + " holds no tensors");
  }
  auto contract = build_contract(*config, header->tensors, paths.weights);
  if (!contract) return contract.status();
  auto layout = plan_layout(*header, *contract);
  if (!layout) return Status(layout.code(), paths.weights + ": " + layout.status().message());
  Checked out;
  out.contract = std::move(*contract);
  out.header = std::move(*header);
  out.probe.layout = std::move(*layout);
  out.probe.weights_file_size = size;
  out.probe.weights_mtime_ns =
      static_cast<std::int64_t>(weights_st.st_mtim.tv_sec) * 1'000'000'000 +
      weights_st.st_mtim.tv_nsec;
  return out;
}

void zero(std::span<std::byte> dest, std::uint64_t begin, std::uint64_t end) {
  if (end > begin) std::memset(dest.data() + begin, 0, end - begin);
}

// Checksums of the tensors of one run (tensors back to back in the
// resident layout) as the run's bytes arrive in order: each tensor's
// checksum is taken over the bytes just written, while they are in cache.
class RunChecksums {
 public:
  // The run is tensors [first, end).
  RunChecksums(const layout::ResidentLayout& layout, std::size_t first, std::size_t end,
               layout::ChecksumStream& stream, std::vector<std::uint64_t>* out)
      : layout_(layout),
        next_(first),
        end_(end),
        at_(layout.tensors[first].offset),
        stream_(stream),
        out_(out) {
    settle();
  }

  // The next `bytes` of the run, as written.
  void add(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      const layout::ResidentTensor& t = layout_.tensors[next_];
      const std::uint64_t take = std::min<std::uint64_t>(bytes.size(), t.offset + t.length - at_);
      stream_.update(bytes.first(take));
      bytes = bytes.subspan(take);
      at_ += take;
      settle();
    }
  }

 private:
  // Records every tensor that ends where the bytes so far end (empty ones too).
  void settle() {
    while (next_ < end_ && at_ == layout_.tensors[next_].offset + layout_.tensors[next_].length) {
      out_->push_back(stream_.digest());
      stream_.reset();
      ++next_;
    }
  }

  const layout::ResidentLayout& layout_;
  std::size_t next_;  // the tensor the next byte belongs to
  const std::size_t end_;
  std::uint64_t at_;  // resident offset of the next byte
  layout::ChecksumStream& stream_;
  std::vector<std::uint64_t>* out_;
};

}  // namespace

Result<layout::ProbeResult> probe_adapter(const layout::AdapterPaths& paths, const layout::AdapterFds& files,
                                  const BaseModel* base_model) {
  auto checked = check_adapter(paths, files);
  if (!checked) return checked.status();
  if (base_model != nullptr) {
    GENOMED_RETURN_IF_ERROR(
        check_compatible(*base_model, checked->contract, checked->header.tensors, paths.weights));
  }
  return std::move(checked->probe);
}

Status fill_adapter(const layout::AdapterPaths& paths, const layout::AdapterFds& files,
                    const layout::ResidentLayout& expected, std::span<std::byte> dest, layout::FillPart part,
                    std::vector<std::uint64_t>* checksums, const ReadOptions& read) {
  if (dest.size() < expected.total_bytes) {
    return Status(Errc::internal, "fill of " + paths.weights + ": destination of " +
                                      std::to_string(dest.size()) + " bytes is smaller than " +
                                      std::to_string(expected.total_bytes));
  }
  const int fd = files.weights.get();
  auto checked = check_adapter(paths, files);
  if (!checked) return checked.status();
  layout::ResidentLayout& layout = checked->probe.layout;
  if (!layout::same_layout(layout, expected)) {
    return Status(Errc::file_changed,
                  paths.weights + " or " + paths.config + " changed since the probe");
  }
  RangeReader reader(fd, paths.weights, read);

  const std::size_t part_begin = std::min(part.begin, layout.tensors.size());
  const std::size_t part_end = std::min(part.end, layout.tensors.size());
  const bool whole = part_begin == 0 && part_end == layout.tensors.size();
  const auto [region_begin, region_end] = layout::part_region(layout, part);
  // The header is written last (below, or by the seal): it holds the checksums.
  std::uint64_t cursor = part_begin == 0 ? layout.header_bytes : region_begin;
  checksums->clear();
  checksums->reserve(part_end - part_begin);
  layout::ChecksumStream stream;
  const auto& infos = checked->header.tensors;  // same order as layout.tensors
  // Tensors that sit back to back both in the file and in the resident
  // layout (the usual case: name order in both, sizes multiples of 64) are
  // copied as one run: one large pread instead of one per tensor, which
  // profiles showed as the cost of many-tensor adapters.
  for (std::size_t i = part_begin; i < part_end;) {
    const layout::ResidentTensor& first = layout.tensors[i];
    zero(dest, cursor, first.offset);
    std::uint64_t file_end = infos[i].data_end;
    std::uint64_t run_end = first.offset + first.length;
    std::size_t j = i + 1;
    while (j < part_end && infos[j].data_begin == file_end && layout.tensors[j].offset == run_end) {
      file_end = infos[j].data_end;
      run_end = layout.tensors[j].offset + layout.tensors[j].length;
      ++j;
    }
    RunChecksums sums(layout, i, j, stream, checksums);
    // Each piece is hashed as soon as it is written, while in cache.
    GENOMED_RETURN_IF_ERROR(reader.read(checked->header.data_offset + infos[i].data_begin,
                                        run_end - first.offset, dest.data() + first.offset,
                                        [&](std::span<const std::byte> piece) { sums.add(piece); }));
    cursor = run_end;
    i = j;
  }
  zero(dest, cursor, region_end);
  if (whole) {
    for (std::size_t k = 0; k < layout.tensors.size(); ++k) {
      layout.tensors[k].checksum = (*checksums)[k];
    }
    layout::write_layout_header(layout, dest);
  }
  return Status::Ok();
}

Result<layout::AdapterFds> open_adapter_files(const layout::AdapterPaths& paths) {
  GENOMED_ASSIGN_OR_RETURN(OpenFile config, open_regular(paths.config));
  GENOMED_ASSIGN_OR_RETURN(OpenFile weights, open_regular(paths.weights));
  return layout::AdapterFds{std::move(config.fd), std::move(weights.fd)};
}

}  // namespace genomed::format
