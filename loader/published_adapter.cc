#include "loader/published_adapter.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "common/safe_text.h"
#include "common/size_parse.h"
#include "loader/file_identity.h"

namespace genomed::loader {
namespace {

std::string seal_names(int seals) {
  std::string out;
  const auto add = [&](int bit, const char* what) {
    if ((seals & bit) != 0) out += (out.empty() ? "" : "|") + std::string(what);
  };
  add(F_SEAL_WRITE, "F_SEAL_WRITE");
  add(F_SEAL_SHRINK, "F_SEAL_SHRINK");
  add(F_SEAL_GROW, "F_SEAL_GROW");
  return out.empty() ? "none" : out;
}

// One of the two memfds, checked: a sealed, readable memfd of at most
// `limit` bytes. Returns a read-only descriptor of the same memory for the
// workers (the client's may be read-write); `fd` is closed with the caller's.
Result<Fd> checked_memfd(int fd, const std::string& label, std::uint64_t limit,
                         FileIdentity* identity) {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    return Status(Errc::bad_request,
                  label + " is not a memfd (F_GET_SEALS: " + std::strerror(errno) +
                      "); publish sends the bytes in sealed memfds (memfd_create with "
                      "MFD_ALLOW_SEALING, then F_ADD_SEALS)");
  }
  if ((seals & required_publish_seals()) != required_publish_seals()) {
    return Status(Errc::bad_request,
                  label + " is not sealed against change: it carries " + seal_names(seals) +
                      ", publish needs F_SEAL_WRITE|F_SEAL_SHRINK|F_SEAL_GROW so that the bytes "
                      "cannot change while workers read them");
  }
  const int mode = ::fcntl(fd, F_GETFL);
  if (mode < 0 || (mode & O_ACCMODE) == O_WRONLY) {
    return Status(Errc::bad_request, label + " is not open for reading");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Status(Errc::file_unreadable, label + ": fstat failed: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status(Errc::bad_request, label + " is not a memfd");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > limit) {
    return Status(Errc::limit_exceeded, label + " holds " + format_size(size) +
                                            ", more than the " + format_size(limit) +
                                            " an adapter's file may have here");
  }
  // The workers read through a descriptor of their own that cannot write
  // (the seals forbid writes anyway; this keeps them from even trying).
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  Fd ro(::open(proc.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!ro.valid()) {
    return Status(Errc::file_unreadable,
                  label + ": cannot reopen it read-only: " + std::strerror(errno));
  }
  GENOMED_ASSIGN_OR_RETURN(*identity, identity_of_fd(ro.get(), label));
  if (identity->ino != static_cast<std::uint64_t>(st.st_ino)) {
    return Status(Errc::internal, label + ": reopened as another file");
  }
  return ro;
}

}  // namespace

int required_publish_seals() { return F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW; }

Result<OpenedAdapter> adopt_published(std::string_view name, FrameFds fds,
                                      const PublishLimits& limits) {
  if (fds.truncated || fds.fds.size() != 2) {
    return Status(Errc::bad_request,
                  "publish of " + quote(name) + " came with " +
                      (fds.truncated ? std::string("too many") : std::to_string(fds.fds.size())) +
                      " descriptor(s); it needs exactly 2 sealed memfds with the request's "
                      "frame: adapter_config.json's bytes, then adapter_model.safetensors'");
  }
  OpenedAdapter out;
  const std::string where = "published adapter " + printable(name, kMaxQuotedBytes) + ": ";
  out.paths = {where + layout::kConfigFileName, where + layout::kWeightsFileName};
  auto files = std::make_shared<layout::AdapterFds>();
  GENOMED_ASSIGN_OR_RETURN(files->config, checked_memfd(fds.fds[0].get(), out.paths.config,
                                                        limits.max_config_bytes, &out.config));
  GENOMED_ASSIGN_OR_RETURN(files->weights, checked_memfd(fds.fds[1].get(), out.paths.weights,
                                                         limits.max_weights_bytes, &out.weights));
  out.files = std::move(files);
  return out;  // the client's descriptors close with `fds`
}

}  // namespace genomed::loader
