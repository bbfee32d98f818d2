// The worker's two jobs on an adapter directory. Files are opened without
// following symlinks and must be regular: the name resolver checked the path,
// and a file swapped for a link or a FIFO afterwards must not be read
// (O_NONBLOCK keeps open() of a FIFO from hanging; regular files ignore it).
#include "worker/format/adapter_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "worker/format/layout_plan.h"
#include "worker/format/peft_config.h"
#include "worker/format/pread_full.h"
#include "worker/format/regular_file.h"

namespace genomed::format {
namespace {

// Copy granularity of fill: large enough that syscall overhead vanishes,
// small enough to stay responsive to a deadline kill.
constexpr std::uint64_t kCopyChunk = 8ull << 20;

Result<PeftConfig> read_config(const std::string& path) {
  GENOMED_ASSIGN_OR_RETURN(std::string text, read_small_file(path, kMaxConfigBytes));
  return parse_peft_config(text, path);
}

// Everything probe and fill both need: the validated header and the plan.
struct Checked {
  SafetensorsHeader header;
  AdapterContract contract;
  ProbeResult probe;
};

Result<Checked> check_adapter(const AdapterPaths& paths, int weights_fd,
                              const struct stat& weights_st) {
  auto config = read_config(paths.config);
  if (!config) return config.status();
  auto header = read_safetensors_header(weights_fd, paths.weights);
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

Status copy_tensor(int fd, const std::string& label, std::uint64_t file_offset, std::byte* out,
                   std::uint64_t length) {
  std::uint64_t done = 0;
  while (done < length) {
    const std::uint64_t want = std::min(kCopyChunk, length - done);
    const long long got = pread_full(fd, out + done, want, file_offset + done);
    if (got < 0) {
      return Status(Errc::file_unreadable, label + ": read failed at offset " +
                                               std::to_string(file_offset + done) + ": " +
                                               errno_text(errno));
    }
    if (static_cast<std::uint64_t>(got) != want) {
      return Status(Errc::file_changed, label + " ended at offset " +
                                            std::to_string(file_offset + done + got) +
                                            " while its tensors were copied (file shrank)");
    }
    done += want;
  }
  return Status::Ok();
}

}  // namespace

Result<ProbeResult> probe_adapter(const AdapterPaths& paths, const BaseModel* base_model) {
  auto weights = open_regular(paths.weights);
  if (!weights) return weights.status();
  auto checked = check_adapter(paths, weights->fd.get(), weights->st);
  if (!checked) return checked.status();
  if (base_model != nullptr) {
    GENOMED_RETURN_IF_ERROR(
        check_compatible(*base_model, checked->contract, checked->header.tensors, paths.weights));
  }
  return std::move(checked->probe);
}

Status fill_adapter(const AdapterPaths& paths, const ResidentLayout& expected,
                    std::span<std::byte> dest, FillPart part) {
  if (dest.size() < expected.total_bytes) {
    return Status(Errc::internal, "fill of " + paths.weights + ": destination of " +
                                      std::to_string(dest.size()) + " bytes is smaller than " +
                                      std::to_string(expected.total_bytes));
  }
  auto weights = open_regular(paths.weights);
  if (!weights) return weights.status();
  const int fd = weights->fd.get();
  auto checked = check_adapter(paths, fd, weights->st);
  if (!checked) return checked.status();
  const ResidentLayout& layout = checked->probe.layout;
  if (!same_layout(layout, expected)) {
    return Status(Errc::file_changed,
                  paths.weights + " or " + paths.config + " changed since the probe");
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  const std::size_t part_begin = std::min(part.begin, layout.tensors.size());
  const std::size_t part_end = std::min(part.end, layout.tensors.size());
  const auto [region_begin, region_end] = part_region(layout, part);
  std::uint64_t cursor = region_begin;
  if (part_begin == 0) {
    write_layout_header(layout, dest);
    cursor = layout.header_bytes;
  }
  const auto& infos = checked->header.tensors;  // same order as layout.tensors
  // Tensors that sit back to back both in the file and in the resident
  // layout (the usual case: name order in both, sizes multiples of 64) are
  // copied as one run: one large pread instead of one per tensor, which
  // profiles showed as the cost of many-tensor adapters.
  for (std::size_t i = part_begin; i < part_end;) {
    const ResidentTensor& first = layout.tensors[i];
    zero(dest, cursor, first.offset);
    std::uint64_t file_end = infos[i].data_end;
    std::uint64_t run_end = first.offset + first.length;
    std::size_t j = i + 1;
    while (j < part_end && infos[j].data_begin == file_end && layout.tensors[j].offset == run_end) {
      file_end = infos[j].data_end;
      run_end = layout.tensors[j].offset + layout.tensors[j].length;
      ++j;
    }
    Status s = copy_tensor(fd, paths.weights, checked->header.data_offset + infos[i].data_begin,
                           dest.data() + first.offset, run_end - first.offset);
    if (!s.ok()) return s;
    cursor = run_end;
    i = j;
  }
  zero(dest, cursor, region_end);
  return Status::Ok();
}

}  // namespace genomed::format
