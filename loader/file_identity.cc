#include "loader/file_identity.h"

#include <cerrno>
#include <cstring>

namespace genomed::loader {
namespace {

std::int64_t nanoseconds(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

}  // namespace

FileIdentity identity_of(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_size), nanoseconds(st.st_mtim),
          static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
          nanoseconds(st.st_ctim)};
}

Result<FileIdentity> identity_of_fd(int fd, const std::string& label) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Status(Errc::file_unreadable, label + ": fstat failed: " + std::strerror(errno));
  }
  return identity_of(st);
}

Status unchanged_since(int fd, const FileIdentity& before, const std::string& label) {
  GENOMED_ASSIGN_OR_RETURN(const FileIdentity now, identity_of_fd(fd, label));
  if (now == before) return Status::Ok();
  std::string what;
  const auto add = [&](const std::string& part) { what += (what.empty() ? "" : ", ") + part; };
  if (now.size != before.size)
    add("size " + std::to_string(before.size) + " -> " + std::to_string(now.size));
  if (now.mtime_ns != before.mtime_ns) add("mtime changed");
  if (now.ctime_ns != before.ctime_ns) add("ctime changed");
  return Status(Errc::file_changed, label + " changed while it was being loaded (" + what +
                                        "); the load was refused rather than mix two versions: "
                                        "retry once the file is stable");
}

}  // namespace genomed::loader
