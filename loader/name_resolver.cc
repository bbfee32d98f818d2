#include "loader/name_resolver.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/safe_text.h"

namespace genomed::loader {
namespace {

// realpath() that reports errno; an empty string on failure.
std::string canonical(const std::string& path, int* err) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    *err = errno;
    return {};
  }
  *err = 0;
  return buf;
}

std::string join(const std::string& dir, std::string_view name) {
  return dir + (dir.back() == '/' ? "" : "/") + std::string(name);
}

Status symlink_refused(std::string_view name, const std::string& path) {
  return Status(Errc::path_escapes_root,
                "adapter " + quote(name) + ": " + printable(path) +
                    " is, or lies under, a symbolic link; refused: adapter names are resolved "
                    "beneath their root without following symlinks, which could lead outside it");
}

// Opens one of the adapter's files beneath its directory `dir` and takes
// its read lease (`leased`: held); the identity is taken once the lease is.
Result<Fd> open_file(int dir, const char* file, const std::string& path, std::string_view name,
                     BeneathResolution resolution, FileIdentity* identity, bool* leased) {
  BeneathOpen f = open_beneath(dir, file, O_RDONLY | O_NONBLOCK | O_NOCTTY, resolution);
  if (f.error == ELOOP) return symlink_refused(name, path);
  if (f.error != 0) {
    return Status(Errc::file_unreadable, path + " cannot be opened: " + std::strerror(f.error));
  }
  struct stat st {};
  if (::fstat(f.fd.get(), &st) != 0) {
    return Status(Errc::file_unreadable, path + ": fstat failed: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status(Errc::file_unreadable, path + " is not a regular file");
  const LeaseAttempt lease = take_read_lease(f.fd.get(), path);
  if (lease.taken == LeaseTaken::busy) {
    return Status(Errc::file_changed,
                  path + " is open for writing by another process, so it may be half-written; "
                         "the load was refused rather than read it: retry once the writer has "
                         "closed it");
  }
  *leased = lease.taken == LeaseTaken::held;
  // Written before the lease? Then the identity must be that of the version
  // the lease now holds still.
  auto id = identity_of_fd(f.fd.get(), path);
  if (!id.ok()) {
    release_lease(f.fd.get());  // before the close (file_lease.h)
    return id.status();
  }
  *identity = *id;
  return std::move(f.fd);
}

// Errc::file_changed if the lease on `fd` was broken since it was taken.
Status lease_kept(int fd, bool leased, const std::string& label) {
  if (!leased || lease_intact(fd)) return Status::Ok();
  return Status(Errc::file_changed,
                label + " was opened for writing or truncated while it was being loaded; the "
                        "load was refused rather than mix two versions: retry once the file is "
                        "stable");
}

}  // namespace

Status OpenedAdapter::unchanged() const {
  GENOMED_RETURN_IF_ERROR(lease_kept(files->config.get(), config_leased, paths.config));
  GENOMED_RETURN_IF_ERROR(lease_kept(files->weights.get(), weights_leased, paths.weights));
  GENOMED_RETURN_IF_ERROR(unchanged_since(files->config.get(), config, paths.config));
  return unchanged_since(files->weights.get(), weights, paths.weights);
}

Status validate_name(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Status(Errc::invalid_name, "invalid adapter name " + quote(name) + ": " + why);
  };
  if (name.empty()) return bad("it is empty");
  if (name.size() > kMaxNameLength)
    return bad("longer than " + std::to_string(kMaxNameLength) + " bytes");
  if (name.front() == '/') return bad("absolute paths are refused; name an adapter under a root");
  if (!is_utf8(name)) return bad("it is not UTF-8 text");
  if (name.find('\0') != std::string_view::npos) return bad("it contains a NUL byte");
  if (name.find('\\') != std::string_view::npos) return bad("it contains a backslash");
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t end = std::min(name.find('/', start), name.size());
    const std::string_view part = name.substr(start, end - start);
    if (part.empty()) return bad("it has an empty path component");
    if (part == "." || part == "..") return bad("'.' and '..' components are refused");
    start = end + 1;
  }
  return Status::Ok();
}

Result<NameResolver> NameResolver::create(const std::vector<std::string>& roots,
                                          BeneathResolution resolution) {
  if (roots.empty())
    return Status(Errc::bad_request, "no adapter root configured; pass --root DIR");
  NameResolver r;
  r.resolution_ = resolution;
  for (const auto& root : roots) {
    int err = 0;
    std::string real = canonical(root, &err);
    if (real.empty())
      return Status(Errc::not_found, "adapter root '" + root + "': " + std::strerror(err));
    Fd dir(::open(real.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) {
      const bool not_dir = errno == ENOTDIR;
      return Status(Errc::not_found, "adapter root '" + root + "' " +
                                         (not_dir ? std::string("is not a directory")
                                                  : std::string(": ") + std::strerror(errno)));
    }
    r.roots_.push_back({std::move(real), std::move(dir)});
  }
  return r;
}

std::vector<std::string> NameResolver::roots() const {
  std::vector<std::string> out;
  for (const Root& root : roots_) out.push_back(root.path);
  return out;
}

Result<OpenedAdapter> NameResolver::open(std::string_view name) const {
  GENOMED_RETURN_IF_ERROR(validate_name(name));
  for (const Root& root : roots_) {
    // Paths are only ever shown (files are opened beneath the root's
    // descriptor): the client's name in them is escaped and cut as any
    // client value in a message or a log line.
    const std::string dir_path = join(root.path, printable(name, kMaxQuotedBytes));
    BeneathOpen dir = open_beneath(root.dir.get(), name, O_PATH | O_DIRECTORY, resolution_);
    if (dir.error == ENOENT || dir.error == ENOTDIR) continue;  // not in this root
    if (dir.error == ELOOP) return symlink_refused(name, dir_path);
    if (dir.error == EXDEV) {
      return Status(Errc::path_escapes_root,
                    "adapter " + quote(name) + " leads outside its root " + root.path);
    }
    if (dir.error != 0) {
      return Status(Errc::file_unreadable, "adapter " + quote(name) + ": " + printable(dir_path) +
                                               ": " + std::strerror(dir.error));
    }
    OpenedAdapter out;
    out.paths = {join(dir_path, layout::kConfigFileName), join(dir_path, layout::kWeightsFileName)};
    // Whoever holds the files last (the load, a job still queued) lets
    // their leases go before they are closed: a lease outlives its
    // descriptor in the workers' copies, and its number may be reused.
    std::shared_ptr<layout::AdapterFds> files(new layout::AdapterFds,
                                              [](layout::AdapterFds* f) {
                                                release_lease(f->config.get());
                                                release_lease(f->weights.get());
                                                delete f;
                                              });
    GENOMED_ASSIGN_OR_RETURN(
        files->config, open_file(dir.fd.get(), layout::kConfigFileName, out.paths.config, name,
                                 resolution_, &out.config, &out.config_leased));
    GENOMED_ASSIGN_OR_RETURN(
        files->weights, open_file(dir.fd.get(), layout::kWeightsFileName, out.paths.weights, name,
                                  resolution_, &out.weights, &out.weights_leased));
    out.files = std::move(files);
    return out;
  }
  std::string where;
  for (const auto& root : roots_) where += (where.empty() ? "" : ", ") + root.path;
  return Status(Errc::not_found, "no adapter named " + quote(name) + " under " + where);
}

}  // namespace genomed::loader
