#include "loader/name_resolver.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/safe_text.h"

namespace genomed::loader {
namespace {

// realpath() that reports errno; nullopt-like empty string on failure.
std::string canonical(const std::string& path, int* err) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    *err = errno;
    return {};
  }
  *err = 0;
  return buf;
}

// True if `path` lies strictly below `root` (both canonical). The root "/"
// already ends in a separator.
bool inside(const std::string& path, const std::string& root) {
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
         (root.back() == '/' || path[root.size()] == '/');
}

}  // namespace

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

Result<NameResolver> NameResolver::create(const std::vector<std::string>& roots) {
  if (roots.empty())
    return Status(Errc::bad_request, "no adapter root configured; pass --root DIR");
  NameResolver r;
  for (const auto& root : roots) {
    int err = 0;
    std::string real = canonical(root, &err);
    if (real.empty())
      return Status(Errc::not_found, "adapter root '" + root + "': " + std::strerror(err));
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status(Errc::not_found, "adapter root '" + root + "' is not a directory");
    }
    r.roots_.push_back(std::move(real));
  }
  return r;
}

Result<format::AdapterPaths> NameResolver::resolve(std::string_view name) const {
  GENOMED_RETURN_IF_ERROR(validate_name(name));
  for (const auto& root : roots_) {
    const std::string candidate = root + "/" + std::string(name);
    int err = 0;
    const std::string dir = canonical(candidate, &err);
    if (dir.empty()) {
      if (err == ENOENT || err == ENOTDIR) continue;
      return Status(Errc::file_unreadable,
                    "adapter " + quote(name) + ": " + candidate + ": " + std::strerror(err));
    }
    if (!inside(dir, root)) {
      return Status(Errc::path_escapes_root, "adapter " + quote(name) + " resolves to " + dir +
                                                 ", outside its root " + root + "; refused");
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;

    format::AdapterPaths paths;
    for (auto [file, out] : {std::pair{format::kConfigFileName, &paths.config},
                             std::pair{format::kWeightsFileName, &paths.weights}}) {
      const std::string path = dir + "/" + file;
      std::string real = canonical(path, &err);
      if (real.empty()) {
        *out = path;  // missing or unreadable: the worker names the cause
        continue;
      }
      if (!inside(real, root)) {
        return Status(Errc::path_escapes_root, "adapter " + quote(name) + ": " + path +
                                                   " resolves to " + real + ", outside its root " +
                                                   root + "; refused");
      }
      *out = std::move(real);
    }
    return paths;
  }
  std::string where;
  for (const auto& root : roots_) where += (where.empty() ? "" : ", ") + root;
  return Status(Errc::not_found, "no adapter named " + quote(name) + " under " + where);
}

}  // namespace genomed::loader
